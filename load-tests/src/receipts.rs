//! Checking a voter's receipt offline, as the voter would: the checkpoint's signature under
//! the log's verifier key and the inclusion proof (the project's own
//! `urna::audit::receipt::verify_receipt`, which `urna verify-receipt` runs), then that the
//! logged entry is exactly the ballot this voter sent — not merely some valid entry.
//!
//! Pure: no I/O. The verifier key comes from `GET /v1/election` before the run.

use urna::audit::receipt::{verify_receipt, ReceiptError};
use urna::ballot::{decode_entry, parse_submission, Entry, Limits};
use urna::log::receipt::Receipt;

/// Why a receipt was not good. Each is a fault of the server (or of what stands between
/// it and the voter): a voter given one of these has no proof their ballot counts.
#[derive(Debug, thiserror::Error)]
pub enum ReceiptFault {
    #[error("the 2xx body is not a receipt: {0}")]
    Malformed(String),
    #[error("the receipt does not verify: {0}")]
    Unverified(#[from] ReceiptError),
    #[error("the receipt's entry is not a ballot")]
    NotABallot,
    #[error("the receipt's entry is not the ballot this voter sent")]
    NotOurs,
}

impl ReceiptFault {
    /// A stable name for the report.
    pub fn code(&self) -> &'static str {
        match self {
            ReceiptFault::Malformed(_) => "receipt_malformed",
            ReceiptFault::Unverified(_) => "receipt_unverified",
            ReceiptFault::NotABallot => "receipt_not_a_ballot",
            ReceiptFault::NotOurs => "receipt_not_ours",
        }
    }
}

/// A good receipt: where the voter's ballot is in the log, and the leaf hash of exactly
/// the entry bytes the voter was given (what the closing audit looks for in the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Logged {
    pub index: u64,
    pub leaf: [u8; 32],
}

/// A receipt checked offline: good, or its fault.
pub type Checked = Result<Logged, ReceiptFault>;

/// Checks the receipt `answer` (a 2xx body) for the submission `sent` (the JSON body
/// posted) under `verifier_key`; where the entry is in the log when it is good.
pub fn check_receipt(answer: &[u8], sent: &[u8], verifier_key: &str) -> Checked {
    let receipt: Receipt =
        serde_json::from_slice(answer).map_err(|e| ReceiptFault::Malformed(e.to_string()))?;
    let verified = verify_receipt(&receipt, verifier_key)?;
    let Ok(Entry::Ballot(logged)) = decode_entry(&verified.entry) else {
        return Err(ReceiptFault::NotABallot);
    };
    // What we sent parses under any server's limits (a scenario's payloads are at most
    // 64 KiB); the comparison, not the limits, is the check.
    let limits = Limits {
        max_body_bytes: 1 << 20,
        max_payload_bytes: 1 << 20,
        ..Limits::default()
    };
    match parse_submission(sent, &limits) {
        Ok(mine) if mine == logged.ballot => Ok(Logged {
            index: verified.index,
            leaf: urna::audit::proof::leaf_hash(&verified.entry),
        }),
        _ => Err(ReceiptFault::NotOurs),
    }
}

/// The body of a pre-encoded HTTP/1.1 request (what follows the blank line).
pub fn request_body(request: &[u8]) -> &[u8] {
    request
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(&[][..], |i| &request[i + 4..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use urna::audit::proof::leaf_hash;
    use urna::ballot::keys::VoterSecret;
    use urna::ballot::{encode_entry, verify};
    use urna::log::note::{sign_checkpoint, tlog_proof};
    use urna::log::LogKey;

    /// A one-entry log holding `sent`: its receipt and the log's verifier key.
    fn logged(sent: &str) -> (Vec<u8>, String) {
        let (_, key) = LogKey::generate("sim.test/log").unwrap();
        let ballot = parse_submission(sent.as_bytes(), &Limits::default()).unwrap();
        let entry = encode_entry(&verify(ballot).unwrap(), 1_700_000_000_000);
        let root = tlog_tiles::Hash(leaf_hash(&entry));
        let cp = sign_checkpoint(&key, 1, root).unwrap();
        let receipt = Receipt::new(0, &entry, tlog_proof(0, &[], &cp.note));
        (
            serde_json::to_vec(&receipt).unwrap(),
            key.verifier_key().to_owned(),
        )
    }

    #[test]
    fn a_receipt_is_good_only_for_the_ballot_sent_and_the_logs_key() {
        let voter = VoterSecret::ed25519_from_seed(&[7; 32]);
        let sent = voter.sign_submission("demo-2026", 1, b"a ballot");
        let (receipt, key) = logged(&sent);
        assert_eq!(
            check_receipt(&receipt, sent.as_bytes(), &key)
                .unwrap()
                .index,
            0
        );
        // Another ballot of the same voter: a valid receipt, but not for this one.
        let other = voter.sign_submission("demo-2026", 2, b"a ballot");
        let got = check_receipt(&receipt, other.as_bytes(), &key);
        assert!(matches!(got, Err(ReceiptFault::NotOurs)), "{got:?}");
        // Another log's key: the checkpoint's signature does not verify.
        let (_, other_key) = logged(&sent);
        let got = check_receipt(&receipt, sent.as_bytes(), &other_key);
        assert!(matches!(got, Err(ReceiptFault::Unverified(_))), "{got:?}");
        // Not a receipt at all.
        let got = check_receipt(b"{}", sent.as_bytes(), &key);
        assert!(matches!(got, Err(ReceiptFault::Malformed(_))), "{got:?}");
        assert_eq!(got.unwrap_err().code(), "receipt_malformed");
    }

    #[test]
    fn the_body_of_an_encoded_request_is_what_follows_the_blank_line() {
        let req = crate::h1::encode_request(&http::Method::POST, "h:1", "/v1/ballots", Some(b"{}"));
        assert_eq!(request_body(&req), b"{}");
    }
}
