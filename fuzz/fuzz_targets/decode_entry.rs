//! Any bytes as a log entry: the decoder must not panic, and anything it accepts must
//! re-encode to exactly the same bytes (one entry, one encoding).
#![no_main]

use libfuzzer_sys::fuzz_target;
use urna::ballot::{decode_entry, Entry};

fuzz_target!(|data: &[u8]| {
    match decode_entry(data) {
        Ok(Entry::Ballot(lb)) => assert_eq!(lb.encode(), data),
        Ok(Entry::Manifest(m)) => assert_eq!(m.encode().expect("decoded manifest encodes"), data),
        Err(_) => {}
    }
});
