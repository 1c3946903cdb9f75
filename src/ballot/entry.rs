//! Logged entries: the exact bytes the log stores and auditors read (docs/PROTOCOL.md
//! §Entries). Entry 0 is the election [`Manifest`]; every later entry is one accepted ballot
//! with the server's receive time. Pure: no I/O.
//!
//! The encoding is a fixed binary layout rather than JSON or CBOR because it must be
//! deterministic (one ballot, one byte string) and trivially reproducible by a client in any
//! language; every integer is big-endian, every variable field is length-prefixed, the
//! first byte says what the entry is, and nothing may follow the last field.

use super::election::{Difference, Election, RevotePolicy};
use super::error::BallotError;
use super::verify::{verify_signature, VerifiedBallot};
use super::wire::{
    b64, ballot_digest, is_valid_election_id, Alg, Ballot, BallotDigest, PublicKey, MAX_SEQ,
};

/// First byte of a ballot entry (format v1): ASCII `B`.
pub const TAG_BALLOT: u8 = b'B';
/// First byte of a manifest entry (format v1): ASCII `M`.
pub const TAG_MANIFEST: u8 = b'M';
/// C2SP tlog-tiles: an entry in a bundle is length-prefixed with a u16.
pub const MAX_ENTRY_BYTES: usize = 65_535;
/// Longest log verifier key text in a manifest.
pub const MAX_VERIFIER_KEY_BYTES: usize = 1024;

/// Why bytes are not a valid entry. Seen by the log on replay (corruption: an alarm) and by
/// auditors (a malformed log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("entry is empty")]
    Empty,
    #[error("unknown entry tag 0x{0:02x}")]
    UnknownTag(u8),
    #[error("entry ends early reading {0}")]
    Truncated(&'static str),
    #[error("{0} trailing bytes after the entry")]
    Trailing(usize),
    #[error("invalid {0}")]
    Invalid(&'static str),
    #[error("entry would be {0} bytes, over the 65,535-byte limit")]
    TooLong(usize),
}

/// A decoded entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Manifest(Manifest),
    Ballot(LoggedBallot),
}

/// Entry 0: what this log is about. Auditors check eligibility against the roll whose hash
/// is here, the rules against `election`, and checkpoints against `log_verifier_key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub election: Election,
    /// SHA-256 of the exact roll file bytes.
    pub roll_sha256: [u8; 32],
    /// The log's signed-note verifier key, `<name>+<hex key id>+<base64 key>`.
    pub log_verifier_key: String,
}

/// A ballot as logged: everything needed to re-verify its signature, plus when the server
/// received it (unix ms; the window is judged on this).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedBallot {
    pub ballot: Ballot,
    pub received_ms: u64,
}

impl LoggedBallot {
    /// Re-verify the voter's signature from this entry alone (`urna audit` checks a
    /// bundle's together, under the same rule: `verify_signatures`).
    pub fn verify_signature(&self) -> Result<(), BallotError> {
        verify_signature(
            &self.ballot.key,
            &self.ballot.signed_message(),
            &self.ballot.sig,
        )
    }

    /// The entry bytes (same layout as [`encode_entry`]). For auditors and tests that
    /// re-encode what they decoded; the sequencer encodes only verified ballots.
    pub fn encode(&self) -> Vec<u8> {
        encode_ballot(&self.ballot, self.received_ms)
    }

    /// Same as [`Ballot::digest`].
    pub fn digest(&self) -> BallotDigest {
        ballot_digest(&self.ballot.signed_message(), &self.ballot.sig)
    }
}

/// Encode an accepted ballot. Layout (all integers big-endian):
///
/// | bytes | field |
/// |---|---|
/// | 1 | `0x42` (`B`) |
/// | 8 | received_ms |
/// | 1 | election id length L (1..=64) |
/// | L | election id |
/// | 1 | alg: 1 = ed25519, 2 = p256 |
/// | 32 or 65 | voter public key |
/// | 8 | seq |
/// | 2 | payload length P |
/// | P | payload |
/// | 64 | signature |
pub fn encode_entry(ballot: &VerifiedBallot, received_ms: u64) -> Vec<u8> {
    encode_ballot(ballot.ballot(), received_ms)
}

pub(crate) fn encode_ballot(b: &Ballot, received_ms: u64) -> Vec<u8> {
    let key = b.key.as_bytes();
    let mut out = Vec::with_capacity(
        1 + 8 + 1 + b.election.len() + 1 + key.len() + 8 + 2 + b.payload.len() + 64,
    );
    out.push(TAG_BALLOT);
    out.extend_from_slice(&received_ms.to_be_bytes());
    // Election ids are 1..=64 bytes (checked when the Ballot was made).
    out.push(b.election.len() as u8);
    out.extend_from_slice(b.election.as_bytes());
    out.push(b.alg().code());
    out.extend_from_slice(key);
    out.extend_from_slice(&b.seq.to_be_bytes());
    // Payloads are at most MAX_PAYLOAD_BYTES_CEILING < 65,536 bytes: `Limits::validate`
    // refuses any larger configured maximum, so this cast never truncates.
    out.extend_from_slice(&(b.payload.len() as u16).to_be_bytes());
    out.extend_from_slice(&b.payload);
    out.extend_from_slice(&b.sig);
    debug_assert!(out.len() <= MAX_ENTRY_BYTES);
    out
}

/// Decode any entry. Strict: the inverse of the encoders, byte for byte, so
/// `encode(decode(bytes)) == bytes` for every accepted input.
pub fn decode_entry(bytes: &[u8]) -> Result<Entry, EntryError> {
    if bytes.len() > MAX_ENTRY_BYTES {
        return Err(EntryError::TooLong(bytes.len()));
    }
    let mut r = Reader { bytes, pos: 0 };
    let entry = match r.u8("tag").map_err(|_| EntryError::Empty)? {
        TAG_BALLOT => Entry::Ballot(decode_ballot_body(&mut r)?),
        TAG_MANIFEST => Entry::Manifest(decode_manifest_body(&mut r)?),
        t => return Err(EntryError::UnknownTag(t)),
    };
    match bytes.len() - r.pos {
        0 => Ok(entry),
        n => Err(EntryError::Trailing(n)),
    }
}

fn decode_ballot_body(r: &mut Reader<'_>) -> Result<LoggedBallot, EntryError> {
    let received_ms = r.u64("received_ms")?;
    let election = r.election()?;
    let alg = Alg::from_code(r.u8("alg")?).ok_or(EntryError::Invalid("alg"))?;
    let key_bytes = r.take(alg.key_len(), "voter key")?;
    // Length matches by construction of `take`.
    let key = PublicKey::from_bytes(alg, key_bytes).ok_or(EntryError::Invalid("voter key"))?;
    let seq = r.u64("seq")?;
    if seq == 0 || seq > MAX_SEQ {
        return Err(EntryError::Invalid("seq"));
    }
    let plen = r.u16("payload length")? as usize;
    let payload = r.take(plen, "payload")?.to_vec();
    let sig: [u8; 64] = r
        .take(64, "signature")?
        .try_into()
        .map_err(|_| EntryError::Truncated("signature"))?;
    let voter = b64(key.as_bytes());
    Ok(LoggedBallot {
        ballot: Ballot {
            election,
            key,
            voter,
            seq,
            payload,
            sig,
        },
        received_ms,
    })
}

impl Manifest {
    /// Encode entry 0. Layout (integers big-endian):
    ///
    /// | bytes | field |
    /// |---|---|
    /// | 1 | `0x4d` (`M`) |
    /// | 1 | election id length L |
    /// | L | election id |
    /// | 32 | SHA-256 of the roll file |
    /// | 1 | revote: 0 = none, 1 = last |
    /// | 1 | window flags: bit 0 = opens_at present, bit 1 = closes_at present |
    /// | 8 | opens_at_ms (0 if absent) |
    /// | 8 | closes_at_ms (0 if absent) |
    /// | 2 | verifier key length K |
    /// | K | log verifier key (ASCII) |
    pub fn encode(&self) -> Result<Vec<u8>, EntryError> {
        check_verifier_key(&self.log_verifier_key)?;
        let e = &self.election;
        let mut out = Vec::with_capacity(64 + e.id().len() + self.log_verifier_key.len());
        out.push(TAG_MANIFEST);
        out.push(e.id().len() as u8);
        out.extend_from_slice(e.id().as_bytes());
        out.extend_from_slice(&self.roll_sha256);
        out.push(match e.revote() {
            RevotePolicy::None => 0,
            RevotePolicy::Last => 1,
        });
        let flags =
            u8::from(e.opens_at_ms().is_some()) | (u8::from(e.closes_at_ms().is_some()) << 1);
        out.push(flags);
        out.extend_from_slice(&e.opens_at_ms().unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&e.closes_at_ms().unwrap_or(0).to_be_bytes());
        out.extend_from_slice(&(self.log_verifier_key.len() as u16).to_be_bytes());
        out.extend_from_slice(self.log_verifier_key.as_bytes());
        Ok(out)
    }

    /// Every field on which this manifest (a log's entry 0) and `configured` (the one this
    /// server would write) disagree, each with both values.
    pub fn differences(&self, configured: &Manifest) -> Vec<Difference> {
        let mut out = self.election.differences(&configured.election);
        if self.roll_sha256 != configured.roll_sha256 {
            out.push(Difference {
                field: "election.roll (its SHA-256)",
                logged: hex(&self.roll_sha256),
                configured: hex(&configured.roll_sha256),
            });
        }
        if self.log_verifier_key != configured.log_verifier_key {
            out.push(Difference {
                field: "log key (its verifier key)",
                logged: self.log_verifier_key.clone(),
                configured: configured.log_verifier_key.clone(),
            });
        }
        out
    }

    /// Decode entry 0; refuses a ballot entry.
    pub fn decode(bytes: &[u8]) -> Result<Manifest, EntryError> {
        match decode_entry(bytes)? {
            Entry::Manifest(m) => Ok(m),
            Entry::Ballot(_) => Err(EntryError::UnknownTag(TAG_BALLOT)),
        }
    }
}

/// Lowercase hex, as `urna roll check` prints a roll's SHA-256.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode_manifest_body(r: &mut Reader<'_>) -> Result<Manifest, EntryError> {
    let id = r.election()?;
    let roll_sha256: [u8; 32] = r
        .take(32, "roll hash")?
        .try_into()
        .map_err(|_| EntryError::Truncated("roll hash"))?;
    let revote = match r.u8("revote")? {
        0 => RevotePolicy::None,
        1 => RevotePolicy::Last,
        _ => return Err(EntryError::Invalid("revote")),
    };
    let flags = r.u8("window flags")?;
    if flags & !0b11 != 0 {
        return Err(EntryError::Invalid("window flags"));
    }
    let opens = r.u64("opens_at_ms")?;
    let closes = r.u64("closes_at_ms")?;
    let present = |bit: u8, v: u64| -> Result<Option<u64>, EntryError> {
        match (flags & bit != 0, v) {
            (true, v) => Ok(Some(v)),
            (false, 0) => Ok(None),
            (false, _) => Err(EntryError::Invalid("absent window bound must be 0")),
        }
    };
    let election = Election::new(id, revote, present(1, opens)?, present(2, closes)?)
        .map_err(|_| EntryError::Invalid("voting window"))?;
    let klen = r.u16("verifier key length")? as usize;
    let key = std::str::from_utf8(r.take(klen, "verifier key")?)
        .map_err(|_| EntryError::Invalid("verifier key"))?
        .to_owned();
    check_verifier_key(&key)?;
    Ok(Manifest {
        election,
        roll_sha256,
        log_verifier_key: key,
    })
}

fn check_verifier_key(k: &str) -> Result<(), EntryError> {
    if k.is_empty() || k.len() > MAX_VERIFIER_KEY_BYTES || !k.bytes().all(|c| c.is_ascii_graphic())
    {
        return Err(EntryError::Invalid("verifier key"));
    }
    Ok(())
}

/// A bounds-checked cursor: every read says what it was reading, and none can panic.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], EntryError> {
        let end = self.pos.checked_add(n).ok_or(EntryError::Truncated(what))?;
        let s = self
            .bytes
            .get(self.pos..end)
            .ok_or(EntryError::Truncated(what))?;
        self.pos = end;
        Ok(s)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, EntryError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, EntryError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, EntryError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_be_bytes(a))
    }
    fn election(&mut self) -> Result<String, EntryError> {
        let len = self.u8("election length")? as usize;
        let s = std::str::from_utf8(self.take(len, "election id")?)
            .map_err(|_| EntryError::Invalid("election id"))?;
        if !is_valid_election_id(s) {
            return Err(EntryError::Invalid("election id"));
        }
        Ok(s.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ballot::keys::VoterSecret;
    use crate::ballot::verify::verify;
    use crate::ballot::wire::{parse_submission, Limits};

    fn vb(seq: u64, payload: &[u8]) -> VerifiedBallot {
        let s = VoterSecret::ed25519_from_seed(&[1; 32]);
        let json = s.sign_submission("demo-2026", seq, payload);
        verify(parse_submission(json.as_bytes(), &Limits::default()).unwrap()).unwrap()
    }

    #[test]
    fn ballot_entry_round_trips_and_reverifies() {
        let v = vb(7, b"hello");
        let bytes = encode_entry(&v, 1_700_000_000_123);
        let Entry::Ballot(lb) = decode_entry(&bytes).unwrap() else {
            panic!("decoded as a manifest")
        };
        assert_eq!(&lb.ballot, v.ballot());
        assert_eq!(lb.received_ms, 1_700_000_000_123);
        assert_eq!(lb.digest(), v.digest());
        lb.verify_signature().unwrap();
        assert_eq!(encode_ballot(&lb.ballot, lb.received_ms), bytes);
    }

    #[test]
    fn every_truncation_and_any_trailing_byte_is_refused() {
        let bytes = encode_entry(&vb(1, b"xyz"), 5);
        for n in 0..bytes.len() {
            assert!(decode_entry(&bytes[..n]).is_err(), "prefix {n}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(decode_entry(&long), Err(EntryError::Trailing(1)));
    }

    #[test]
    fn manifest_round_trips_and_is_told_apart_from_ballots() {
        let m = Manifest {
            election: Election::new("demo-2026", RevotePolicy::Last, Some(1), None).unwrap(),
            roll_sha256: [3; 32],
            log_verifier_key: "urna.example/demo-2026+01234567+AQIDBA".into(),
        };
        let bytes = m.encode().unwrap();
        assert_eq!(bytes[0], b'M');
        assert_eq!(Manifest::decode(&bytes).unwrap(), m);
        assert_eq!(decode_entry(&bytes).unwrap(), Entry::Manifest(m.clone()));
        let ballot = encode_entry(&vb(1, b""), 0);
        assert!(Manifest::decode(&ballot).is_err());
        // Absent bound with a non-zero value is not a second encoding of the same manifest.
        let mut alt = bytes.clone();
        let closes_at = 1 + 1 + 9 + 32 + 1 + 1 + 8;
        alt[closes_at + 7] = 1;
        assert!(decode_entry(&alt).is_err());
    }

    #[test]
    fn largest_payload_entry_fits_the_tile_limit() {
        let payload = vec![0u8; crate::ballot::wire::MAX_PAYLOAD_BYTES_CEILING];
        let s = VoterSecret::generate_p256().unwrap();
        let lim = Limits {
            max_body_bytes: 1 << 20,
            max_payload_bytes: payload.len(),
            ..Limits::default()
        };
        let id = "e".repeat(64);
        let json = s.sign_submission(&id, 1, &payload);
        let v = verify(parse_submission(json.as_bytes(), &lim).unwrap()).unwrap();
        let bytes = encode_entry(&v, u64::MAX);
        assert_eq!(bytes.len(), MAX_ENTRY_BYTES);
        assert!(decode_entry(&bytes).is_ok());
    }
}
