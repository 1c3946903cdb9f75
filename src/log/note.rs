//! Signed checkpoints (C2SP tlog-checkpoint on signed-note) and tlog-proof text. Spec code:
//! no I/O.

use super::key::LogKey;
use base64::Engine;
use signed_note::{Note, StandardVerifier, VerifierList};
use tlog_tiles::{Checkpoint, Hash};

/// First line of a C2SP tlog-proof.
pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// A checkpoint the log signed: its tree size, root and the whole signed note.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedCheckpoint {
    pub size: u64,
    pub root: Hash,
    /// The signed note, byte for byte as served at `/log/checkpoint`.
    pub note: Vec<u8>,
}

/// Why a checkpoint note was refused.
#[derive(Debug, thiserror::Error)]
pub enum NoteError {
    #[error("checkpoint is not a well-formed signed note: {0}")]
    Malformed(String),
    #[error("checkpoint signature does not verify with the log key: {0}")]
    BadSignature(String),
    #[error("checkpoint origin {found:?} is not {expected:?}")]
    WrongOrigin { found: String, expected: String },
}

/// Signs the checkpoint `origin / size / root` with the log key.
pub fn sign_checkpoint(key: &LogKey, size: u64, root: Hash) -> Result<SignedCheckpoint, NoteError> {
    let cp = Checkpoint::new(key.name(), size, root, "")
        .map_err(|e| NoteError::Malformed(e.to_string()))?;
    let mut note =
        Note::new(&cp.to_bytes(), &[]).map_err(|e| NoteError::Malformed(e.to_string()))?;
    note.add_sigs(&[key.signer()])
        .map_err(|e| NoteError::BadSignature(e.to_string()))?;
    Ok(SignedCheckpoint {
        size,
        root,
        note: note.to_bytes(),
    })
}

/// Parses a signed checkpoint and checks its signature against `verifier_key` and its origin
/// against the key's name.
pub fn open_checkpoint(note: &[u8], verifier_key: &str) -> Result<SignedCheckpoint, NoteError> {
    let verifier =
        StandardVerifier::new(verifier_key).map_err(|e| NoteError::Malformed(e.to_string()))?;
    let origin = signed_note::Verifier::name(&verifier).to_owned();
    let parsed = Note::from_bytes(note).map_err(|e| NoteError::Malformed(e.to_string()))?;
    parsed
        .verify(&VerifierList::new(vec![Box::new(verifier)]))
        .map_err(|e| NoteError::BadSignature(e.to_string()))?;
    let cp =
        Checkpoint::from_bytes(parsed.text()).map_err(|e| NoteError::Malformed(e.to_string()))?;
    if cp.origin() != origin {
        return Err(NoteError::WrongOrigin {
            found: cp.origin().to_owned(),
            expected: origin,
        });
    }
    Ok(SignedCheckpoint {
        size: cp.size(),
        root: *cp.hash(),
        note: note.to_vec(),
    })
}

/// The C2SP tlog-proof text for entry `index`: header, index, the inclusion proof (one base64
/// hash a line, leaf's sibling first), an empty line, then the checkpoint verbatim.
pub fn tlog_proof(index: u64, proof: &[Hash], checkpoint_note: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut s = String::with_capacity(64 + proof.len() * 45 + checkpoint_note.len());
    s.push_str(TLOG_PROOF_HEADER);
    s.push('\n');
    s.push_str("index ");
    s.push_str(&index.to_string());
    s.push('\n');
    for h in proof {
        b64.encode_string(h.0, &mut s);
        s.push('\n');
    }
    s.push('\n');
    // The note is UTF-8 by construction: `Note::new` refuses anything else.
    s.push_str(&String::from_utf8_lossy(checkpoint_note));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_checkpoint_opens_with_its_key_and_not_another() {
        let (_, key) = LogKey::generate("urna.test/a").unwrap();
        let (_, other) = LogKey::generate("urna.test/a").unwrap();
        let cp = sign_checkpoint(&key, 7, Hash([9; 32])).unwrap();
        let text = String::from_utf8(cp.note.clone()).unwrap();
        assert!(text.starts_with("urna.test/a\n7\nCQkJ"), "{text}");
        assert!(text.contains("\n\n\u{2014} urna.test/a "));
        let opened = open_checkpoint(&cp.note, key.verifier_key()).unwrap();
        assert_eq!(opened, cp);
        assert!(open_checkpoint(&cp.note, other.verifier_key()).is_err());
        let mut tampered = cp.note.clone();
        tampered[12] = b'8';
        assert!(open_checkpoint(&tampered, key.verifier_key()).is_err());
    }

    #[test]
    fn tlog_proof_layout_matches_the_spec() {
        let p = tlog_proof(
            3,
            &[Hash([0; 32]), Hash([1; 32])],
            "o\n4\nAAA=\n\n\u{2014} o x\n".as_bytes(),
        );
        let expected = "c2sp.org/tlog-proof@v1\nindex 3\n\
            AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\
            AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n\n\
            o\n4\nAAA=\n\n\u{2014} o x\n";
        assert_eq!(p, expected);
    }
}
