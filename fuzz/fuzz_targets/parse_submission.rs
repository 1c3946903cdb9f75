//! Any body: the parser must not panic, and anything it accepts must re-encode to JSON
//! that parses back to the same ballot.
#![no_main]

use libfuzzer_sys::fuzz_target;
use urna::ballot::{parse_submission, Limits};

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(b) = parse_submission(data, &limits) {
        let again =
            parse_submission(b.to_json().as_bytes(), &limits).expect("re-encoded ballot parses");
        assert_eq!(again, b);
        let _ = b.signed_message();
    }
});
