//! Verifying a receipt offline, with nothing but the log's verifier key: what a voter or an
//! auditor runs (`urna verify-receipt`). Parses the C2SP tlog-proof and checkpoint itself and
//! checks the inclusion proof with [`super::proof`], independently of the log's code.

use super::proof::{leaf_hash, verify_inclusion, Digest32};
use crate::log::Receipt;
use base64::Engine;
use signed_note::{Note, StandardVerifier, Verifier, VerifierList};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// Longest tlog-proof accepted: 64 proof lines and a checkpoint with a few cosignatures fit
/// in a few KiB; the bound stops a hostile file from costing more.
const MAX_PROOF_BYTES: usize = 64 * 1024;
/// An RFC 6962 inclusion proof for a tree of at most 2^64 leaves has at most 64 hashes.
const MAX_PROOF_HASHES: usize = 64;

/// Why a receipt does not verify. Each variant names what is wrong with the receipt.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReceiptError {
    #[error("{}", key_message(.0))]
    Key(String),
    #[error("entry is not canonical standard base64")]
    Entry,
    #[error("malformed tlog-proof: {0}")]
    Proof(String),
    #[error("receipt index {receipt} differs from tlog-proof index {proof}")]
    IndexMismatch { receipt: u64, proof: u64 },
    #[error("checkpoint signature does not verify: {0}")]
    Signature(String),
    #[error("malformed checkpoint: {0}")]
    Checkpoint(String),
    #[error("checkpoint origin {found:?} is not the key's name {expected:?}")]
    Origin { found: String, expected: String },
    #[error("the inclusion proof does not lead to the checkpoint's root")]
    Inclusion,
}

/// signed_note's message for a key that does not parse is itself "malformed verifier key":
/// said once, while its other messages ("invalid verifier ID") keep the context.
fn key_message(inner: &str) -> String {
    if inner.starts_with("malformed verifier key") {
        inner.to_owned()
    } else {
        format!("malformed verifier key: {inner}")
    }
}

/// A parsed C2SP tlog-proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    /// Unauthenticated extra data, if any.
    pub extra: Option<Vec<u8>>,
    pub index: u64,
    /// Leaf's sibling first, up to the root's child.
    pub path: Vec<Digest32>,
    /// The signed checkpoint note, verbatim.
    pub checkpoint: Vec<u8>,
}

/// The checkpoint body a verified note carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointBody {
    pub origin: String,
    pub size: u64,
    pub root: Digest32,
}

/// What a verified receipt proves: `entry` is at `index` in the tree the log signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedReceipt {
    pub index: u64,
    pub entry: Vec<u8>,
    pub checkpoint: CheckpointBody,
    /// The signed checkpoint note, verbatim.
    pub checkpoint_note: Vec<u8>,
}

fn decimal(s: &str) -> Option<u64> {
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse().ok()
}

fn hash_line(s: &str) -> Option<Digest32> {
    B64.decode(s).ok()?.try_into().ok()
}

/// Parses tlog-proof text (c2sp.org/tlog-proof@v1).
pub fn parse_tlog_proof(text: &str) -> Result<TlogProof, ReceiptError> {
    let bad = |m: &str| ReceiptError::Proof(m.to_owned());
    if text.len() > MAX_PROOF_BYTES {
        return Err(bad("too long"));
    }
    let (head, checkpoint) = text
        .split_once("\n\n")
        .ok_or_else(|| bad("no empty line before the checkpoint"))?;
    let mut lines = head.split('\n');
    if lines.next() != Some("c2sp.org/tlog-proof@v1") {
        return Err(bad("first line is not c2sp.org/tlog-proof@v1"));
    }
    let mut line = lines.next().ok_or_else(|| bad("no index line"))?;
    let mut extra = None;
    if let Some(e) = line.strip_prefix("extra ") {
        extra = Some(B64.decode(e).map_err(|_| bad("extra is not base64"))?);
        line = lines.next().ok_or_else(|| bad("no index line"))?;
    }
    let index = line
        .strip_prefix("index ")
        .and_then(decimal)
        .ok_or_else(|| bad("bad index line"))?;
    let mut path = Vec::new();
    for l in lines {
        if path.len() == MAX_PROOF_HASHES {
            return Err(bad("too many proof hashes"));
        }
        path.push(hash_line(l).ok_or_else(|| bad("proof line is not a base64 hash"))?);
    }
    Ok(TlogProof {
        extra,
        index,
        path,
        checkpoint: checkpoint.as_bytes().to_vec(),
    })
}

/// Verifies a signed checkpoint note with `verifier_key` and returns its body. The origin
/// must be the key's name (C2SP tlog-checkpoint: the log's key is named by its origin).
pub fn verify_checkpoint(note: &[u8], verifier_key: &str) -> Result<CheckpointBody, ReceiptError> {
    let verifier =
        StandardVerifier::new(verifier_key).map_err(|e| ReceiptError::Key(e.to_string()))?;
    let name = verifier.name().to_owned();
    let parsed = Note::from_bytes(note).map_err(|e| ReceiptError::Signature(e.to_string()))?;
    parsed
        .verify(&VerifierList::new(vec![Box::new(verifier)]))
        .map_err(|e| ReceiptError::Signature(e.to_string()))?;
    let text = std::str::from_utf8(parsed.text())
        .map_err(|_| ReceiptError::Checkpoint("not UTF-8".into()))?;
    let mut lines = text.split('\n');
    let bad = |m: &str| ReceiptError::Checkpoint(m.to_owned());
    let origin = lines
        .next()
        .filter(|o| !o.is_empty())
        .ok_or_else(|| bad("no origin"))?;
    let size = lines
        .next()
        .and_then(decimal)
        .ok_or_else(|| bad("bad size line"))?;
    let root = lines
        .next()
        .and_then(hash_line)
        .ok_or_else(|| bad("bad root line"))?;
    if origin != name {
        return Err(ReceiptError::Origin {
            found: origin.to_owned(),
            expected: name,
        });
    }
    Ok(CheckpointBody {
        origin: origin.to_owned(),
        size,
        root,
    })
}

/// Verifies a receipt offline: the checkpoint's signature under `verifier_key`, and the
/// inclusion of exactly `entry` at `index` in the signed tree.
pub fn verify_receipt(
    receipt: &Receipt,
    verifier_key: &str,
) -> Result<VerifiedReceipt, ReceiptError> {
    let entry = B64
        .decode(&receipt.entry)
        .map_err(|_| ReceiptError::Entry)?;
    let proof = parse_tlog_proof(&receipt.tlog_proof)?;
    if proof.index != receipt.index {
        return Err(ReceiptError::IndexMismatch {
            receipt: receipt.index,
            proof: proof.index,
        });
    }
    let checkpoint = verify_checkpoint(&proof.checkpoint, verifier_key)?;
    if !verify_inclusion(
        proof.index,
        checkpoint.size,
        &leaf_hash(&entry),
        &proof.path,
        &checkpoint.root,
    ) {
        return Err(ReceiptError::Inclusion);
    }
    Ok(VerifiedReceipt {
        index: proof.index,
        entry,
        checkpoint,
        checkpoint_note: proof.checkpoint,
    })
}

/// Why a receipt's entry is not the ballot the voter says they sent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BallotMismatch {
    /// The submission file is not a well-formed submission.
    #[error("not a ballot submission: {0}")]
    Submission(String),
    /// The receipt's entry is the manifest or does not decode.
    #[error("the receipt's entry {index} is {what}, not a ballot")]
    NotABallot { index: u64, what: String },
    /// The entry is a ballot, but another one: names every field that differs.
    #[error("the receipt's entry {index} is another ballot: its {fields} differ")]
    Differs { index: u64, fields: String },
}

/// Checks that a verified receipt's entry is exactly the ballot in `submission` (the JSON
/// the voter sent): every signed field and the signature, so the receipt is the voter's own
/// and not another voter's, another version of theirs, or the manifest.
pub fn check_ballot(receipt: &VerifiedReceipt, submission: &[u8]) -> Result<(), BallotMismatch> {
    use crate::ballot::{decode_entry, parse_submission, Entry, Limits};
    // The largest payload any server may take (a logged entry fits in 65,535 bytes), not
    // this machine's default: the voter's server may allow more than 16 KiB.
    let limits = Limits {
        max_body_bytes: 128 * 1024,
        max_payload_bytes: crate::ballot::wire::MAX_PAYLOAD_BYTES_CEILING,
        ..Limits::default()
    };
    let sent = parse_submission(submission, &limits)
        .map_err(|e| BallotMismatch::Submission(e.to_string()))?;
    let index = receipt.index;
    let logged = match decode_entry(&receipt.entry) {
        Ok(Entry::Ballot(lb)) => lb.ballot,
        Ok(Entry::Manifest(_)) => {
            return Err(BallotMismatch::NotABallot {
                index,
                what: "the election manifest".into(),
            })
        }
        Err(e) => {
            return Err(BallotMismatch::NotABallot {
                index,
                what: format!("undecodable ({e})"),
            })
        }
    };
    let mut fields = Vec::new();
    if logged.election() != sent.election() {
        fields.push("election");
    }
    if logged.key() != sent.key() {
        fields.push("voter");
    }
    if logged.seq() != sent.seq() {
        fields.push("seq");
    }
    if logged.payload() != sent.payload() {
        fields.push("payload");
    }
    if logged.sig() != sent.sig() {
        fields.push("sig");
    }
    if fields.is_empty() && logged == sent {
        return Ok(());
    }
    if fields.is_empty() {
        // Same key bytes written differently: the signed text differs.
        fields.push("voter text");
    }
    Err(BallotMismatch::Differs {
        index,
        fields: fields.join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlog_proof_with_extra_and_no_hashes_parses() {
        let t = "c2sp.org/tlog-proof@v1\nextra AAE=\nindex 0\n\no\n1\nAAA=\n\n\u{2014} o x\n";
        let p = parse_tlog_proof(t).unwrap();
        assert_eq!(p.extra, Some(vec![0, 1]));
        assert_eq!(p.index, 0);
        assert!(p.path.is_empty());
        assert_eq!(p.checkpoint, "o\n1\nAAA=\n\n\u{2014} o x\n".as_bytes());
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_or_errs_without_panic(t in "\\PC{0,300}", tail in "[A-Za-z0-9+/=\n]{0,200}") {
            let _ = parse_tlog_proof(&t);
            let _ = parse_tlog_proof(&format!("c2sp.org/tlog-proof@v1\nindex 3\n{tail}\n\n{t}"));
            let _ = verify_checkpoint(t.as_bytes(), "a+01020304+AQ==");
        }
    }

    #[test]
    fn malformed_tlog_proofs_are_errors() {
        for t in [
            "",
            "c2sp.org/tlog-proof@v2\nindex 0\n\nx",
            "c2sp.org/tlog-proof@v1\nindex 01\n\nx",
            "c2sp.org/tlog-proof@v1\nindex -1\n\nx",
            "c2sp.org/tlog-proof@v1\nindex 1\nnot-a-hash\n\nx",
            "c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\nx",
            "c2sp.org/tlog-proof@v1\nindex 1",
        ] {
            assert!(parse_tlog_proof(t).is_err(), "{t:?}");
        }
    }
}
