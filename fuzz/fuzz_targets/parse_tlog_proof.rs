//! Any text as a receipt's tlog-proof (c2sp.org/tlog-proof@v1), as `urna verify-receipt`
//! parses it: must not panic, and what parses names at most 64 proof hashes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use urna::audit::receipt::parse_tlog_proof;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(p) = parse_tlog_proof(text) {
        assert!(p.path.len() <= 64);
    }
});
