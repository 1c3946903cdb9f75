//! Any bytes as a checkpoint note (C2SP tlog-checkpoint + signed-note), as `urna audit`
//! reads it: verifying under a fixed key, parsing the body unverified, and telling a key of
//! another log from a forged signature must answer without panicking, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use urna::audit::check::{diagnose_signature, parse_checkpoint_unverified};
use urna::audit::receipt::verify_checkpoint;

/// A real verifier key (the one the seeds' checkpoint is signed by).
const VKEY: &str = include_str!("../seeds/vkey.txt");

fuzz_target!(|data: &[u8]| {
    let verified = verify_checkpoint(data, VKEY.trim());
    let body = parse_checkpoint_unverified(data);
    if let Ok(v) = &verified {
        // What verifies also parses unverified, to the same body.
        assert_eq!(body.as_ref().ok(), Some(v));
    }
    let _ = diagnose_signature(data, VKEY.trim(), "urna.bench/bench-2026");
});
