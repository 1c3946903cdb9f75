//! The submission wire format (docs/PROTOCOL.md): JSON in, a typed [`Ballot`] out, and the exact
//! bytes a voter signs. Pure: no I/O, no clock, no state.
//!
//! Parse, don't validate: once a `Ballot` exists its election id has the right charset, its
//! key and signature have the right lengths for its algorithm, its binary fields came from
//! canonical base64url, its seq is in range and its payload is within the limit.

use std::borrow::Cow;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::error::BallotError;

/// Largest `seq` accepted: 2^53 − 1, the largest integer a JavaScript client can count to
/// exactly. Without it a browser client and the server could disagree on the signed text.
pub const MAX_SEQ: u64 = (1 << 53) - 1;

/// Longest election id (docs/PROTOCOL.md: `[a-z0-9._-]{1,64}`).
pub const MAX_ELECTION_ID_BYTES: usize = 64;

/// A logged entry must fit in 65,535 bytes (the C2SP tlog-tiles entry bundle limit). The
/// fixed part of a ballot entry is at most 1 + 8 + 1 + 64 + 1 + 65 + 8 + 2 + 64 = 214 bytes
/// (see `entry.rs`), so this is the largest payload any configuration may allow.
pub const MAX_PAYLOAD_BYTES_CEILING: usize = 65_535 - 214;

/// The first line of every signed message; bumping it is how the format would be versioned.
pub const SIGNED_MESSAGE_DOMAIN: &str = "urna/ballot/v1";

/// Size limits applied while parsing. Loaded from config (`[ballot]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest request body parsed at all. Checked before the JSON parser runs, so an
    /// oversized body costs one comparison; the edge (L4) should apply the same bound while
    /// reading, so the body is never even buffered.
    pub max_body_bytes: usize,
    /// Largest payload after base64url decoding (docs/PROTOCOL.md: default 16 KiB). Bounds the
    /// log's growth per ballot and keeps every entry under the 65,535-byte tile limit.
    pub max_payload_bytes: usize,
    /// Most ballots one voter may have logged under revote `last` (applied by
    /// `VoterStates::with_max_ballots_per_voter`). Bounds how much log one eligible key can
    /// write over the election.
    pub max_ballots_per_voter: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // 16 KiB of payload is 21,846 base64 characters; the other fields and JSON
            // punctuation are under 500 bytes. 32 KiB leaves room without inviting abuse.
            max_body_bytes: 32 * 1024,
            max_payload_bytes: 16 * 1024,
            max_ballots_per_voter: super::state::DEFAULT_MAX_BALLOTS_PER_VOTER,
        }
    }
}

impl Limits {
    /// Refuse a configuration whose ballots could not be logged.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_payload_bytes > MAX_PAYLOAD_BYTES_CEILING {
            return Err(format!(
                "max_payload_bytes {} exceeds {} (a logged entry must fit in 65,535 bytes)",
                self.max_payload_bytes, MAX_PAYLOAD_BYTES_CEILING
            ));
        }
        if self.max_body_bytes == 0 {
            return Err("max_body_bytes must be positive".into());
        }
        if self.max_ballots_per_voter == 0 {
            return Err("max_ballots_per_voter must be at least 1".into());
        }
        Ok(())
    }
}

/// A signature algorithm a voter key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Alg {
    /// RFC 8032 PureEdDSA over edwards25519; 32-byte keys, 64-byte signatures.
    Ed25519,
    /// ECDSA over P-256 with SHA-256; 65-byte uncompressed SEC1 keys, 64-byte r‖s
    /// signatures (the WebCrypto format).
    P256,
}

impl Alg {
    /// The name on the wire, in the roll and in the signed message.
    pub fn as_str(self) -> &'static str {
        match self {
            Alg::Ed25519 => "ed25519",
            Alg::P256 => "p256",
        }
    }

    /// Parse the wire name; exact, case-sensitive.
    pub fn from_name(s: &str) -> Option<Alg> {
        match s {
            "ed25519" => Some(Alg::Ed25519),
            "p256" => Some(Alg::P256),
            _ => None,
        }
    }

    /// Public key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Alg::Ed25519 => 32,
            Alg::P256 => 65,
        }
    }

    /// The one-byte code used in logged entries.
    pub(crate) fn code(self) -> u8 {
        match self {
            Alg::Ed25519 => 1,
            Alg::P256 => 2,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<Alg> {
        match c {
            1 => Some(Alg::Ed25519),
            2 => Some(Alg::P256),
            _ => None,
        }
    }
}

impl fmt::Display for Alg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A voter public key whose length matches its algorithm.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum PublicKey {
    Ed25519([u8; 32]),
    P256([u8; 65]),
}

impl PublicKey {
    /// Build from an algorithm and raw bytes; `None` if the length is wrong.
    pub fn from_bytes(alg: Alg, bytes: &[u8]) -> Option<PublicKey> {
        match alg {
            Alg::Ed25519 => bytes.try_into().ok().map(PublicKey::Ed25519),
            Alg::P256 => bytes.try_into().ok().map(PublicKey::P256),
        }
    }

    pub fn alg(&self) -> Alg {
        match self {
            PublicKey::Ed25519(_) => Alg::Ed25519,
            PublicKey::P256(_) => Alg::P256,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            PublicKey::Ed25519(k) => k,
            PublicKey::P256(k) => k,
        }
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.alg(), b64(self.as_bytes()))
    }
}

/// A well-formed submission. Fields are private: the only ways to make one are
/// [`parse_submission`] and the entry decoder, which both enforce every rule above.
#[derive(Clone, PartialEq, Eq)]
pub struct Ballot {
    pub(crate) election: String,
    pub(crate) key: PublicKey,
    /// The voter key exactly as sent. Canonical base64url makes it equal to
    /// `b64(key)`, but the signed message is defined over the text, so we keep the text.
    pub(crate) voter: String,
    pub(crate) seq: u64,
    pub(crate) payload: Vec<u8>,
    pub(crate) sig: [u8; 64],
}

impl fmt::Debug for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ballot")
            .field("election", &self.election)
            .field("key", &self.key)
            .field("seq", &self.seq)
            .field("payload_bytes", &self.payload.len())
            .finish()
    }
}

impl Ballot {
    pub fn election(&self) -> &str {
        &self.election
    }
    pub fn alg(&self) -> Alg {
        self.key.alg()
    }
    pub fn key(&self) -> &PublicKey {
        &self.key
    }
    /// The `voter` field exactly as sent.
    pub fn voter_text(&self) -> &str {
        &self.voter
    }
    pub fn seq(&self) -> u64 {
        self.seq
    }
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }
    pub fn sig(&self) -> &[u8; 64] {
        &self.sig
    }

    /// SHA-256 of the payload bytes, as named in the signed message.
    pub fn payload_sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.payload).into()
    }

    /// The exact bytes the voter signed (docs/PROTOCOL.md).
    pub fn signed_message(&self) -> Vec<u8> {
        signed_message(
            &self.election,
            self.alg(),
            &self.voter,
            self.seq,
            &self.payload_sha256(),
        )
    }

    /// What makes two submissions "the same ballot" for idempotent repeats: every signed
    /// field plus the signature itself. See [`ballot_digest`].
    pub fn digest(&self) -> BallotDigest {
        ballot_digest(&self.signed_message(), &self.sig)
    }

    /// The canonical JSON of this submission (fields in contract order). Parsing it gives
    /// back an equal `Ballot`.
    pub fn to_json(&self) -> String {
        submission_json(
            &self.election,
            self.alg(),
            &self.voter,
            self.seq,
            &self.payload,
            &self.sig,
        )
    }
}

/// The JSON body of a submission, fields in contract order, no whitespace.
pub(crate) fn submission_json(
    election: &str,
    alg: Alg,
    voter: &str,
    seq: u64,
    payload: &[u8],
    sig: &[u8; 64],
) -> String {
    // All strings here are from restricted alphabets (election charset, base64url), so
    // none needs JSON escaping; serde_json is still used for the one free-form-looking field
    // to keep this obviously correct.
    format!(
        "{{\"election\":{},\"alg\":\"{}\",\"voter\":\"{}\",\"seq\":{},\"payload\":\"{}\",\"sig\":\"{}\"}}",
        serde_json::Value::from(election),
        alg.as_str(),
        voter,
        seq,
        b64(payload),
        b64(sig)
    )
}

/// Identity of a ballot's content: the first 16 bytes of
/// `SHA-256(signed message ‖ sig)`. 16 bytes keep the per-voter state small (see
/// `state.rs`) while a second preimage still costs 2^128 work, so nobody can make a different
/// ballot pass as an "identical repeat".
pub type BallotDigest = [u8; 16];

pub(crate) fn ballot_digest(message: &[u8], sig: &[u8; 64]) -> BallotDigest {
    let mut h = Sha256::new();
    h.update(message);
    h.update(sig);
    let full: [u8; 32] = h.finalize().into();
    let mut d = [0u8; 16];
    d.copy_from_slice(&full[..16]);
    d
}

/// The signed message: five lines, each ending in `\n`.
pub fn signed_message(
    election: &str,
    alg: Alg,
    voter: &str,
    seq: u64,
    payload_sha256: &[u8; 32],
) -> Vec<u8> {
    let mut m = Vec::with_capacity(64 + election.len() + voter.len() + 60);
    m.extend_from_slice(SIGNED_MESSAGE_DOMAIN.as_bytes());
    m.extend_from_slice(b"\nelection ");
    m.extend_from_slice(election.as_bytes());
    m.extend_from_slice(b"\nvoter ");
    m.extend_from_slice(alg.as_str().as_bytes());
    m.push(b' ');
    m.extend_from_slice(voter.as_bytes());
    m.extend_from_slice(b"\nseq ");
    m.extend_from_slice(seq.to_string().as_bytes());
    m.extend_from_slice(b"\npayload ");
    m.extend_from_slice(b64(payload_sha256).as_bytes());
    m.push(b'\n');
    m
}

/// base64url without padding (RFC 4648 §5).
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Strict base64url-nopad decoding: the `base64` crate's `URL_SAFE_NO_PAD` engine rejects
/// padding, the standard alphabet's `+/`, whitespace, impossible lengths and non-zero
/// trailing bits — exactly the texts whose re-encoding would differ — so accepted text is
/// canonical.
pub fn b64_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

/// Is this a valid election id (`[a-z0-9._-]{1,64}`)?
pub fn is_valid_election_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ELECTION_ID_BYTES
        && s.bytes()
            .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
}

/// The JSON shape. Strings borrow from the body when they hold no escapes. Serde's derive
/// rejects duplicate fields; `deny_unknown_fields` rejects unknown ones.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    #[serde(borrow)]
    election: Cow<'a, str>,
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow)]
    voter: Cow<'a, str>,
    seq: u64,
    #[serde(borrow)]
    payload: Cow<'a, str>,
    #[serde(borrow)]
    sig: Cow<'a, str>,
}

/// Parse a request body into a [`Ballot`], or say why not.
///
/// Accepts one JSON object (RFC 8259; whitespace around tokens is allowed, anything else
/// after the object is not) with exactly the six contract fields.
pub fn parse_submission(body: &[u8], limits: &Limits) -> Result<Ballot, BallotError> {
    if body.len() > limits.max_body_bytes {
        return Err(BallotError::TooLarge {
            what: "body",
            got: body.len(),
            limit: limits.max_body_bytes,
        });
    }
    let wire: Wire<'_> =
        serde_json::from_slice(body).map_err(|e| BallotError::malformed(format!("json: {e}")))?;

    if !is_valid_election_id(&wire.election) {
        return Err(BallotError::malformed(
            "election id must match [a-z0-9._-]{1,64}",
        ));
    }
    let alg = Alg::from_name(&wire.alg)
        .ok_or_else(|| BallotError::malformed("alg must be \"ed25519\" or \"p256\""))?;
    let key_bytes = b64_decode(&wire.voter)
        .ok_or_else(|| BallotError::malformed("voter is not canonical base64url-nopad"))?;
    let key = PublicKey::from_bytes(alg, &key_bytes).ok_or_else(|| {
        BallotError::malformed(format!("voter must be {} bytes for {alg}", alg.key_len()))
    })?;
    if wire.seq == 0 || wire.seq > MAX_SEQ {
        return Err(BallotError::malformed("seq must be in 1..=2^53-1"));
    }
    // Bound the payload before decoding it: base64 text of n chars decodes to at most
    // floor(3n/4) bytes, so a text over the bound is refused without allocating for it.
    let n = wire.payload.len();
    let payload_upper = n / 4 * 3 + (n % 4).saturating_sub(1);
    if payload_upper > limits.max_payload_bytes {
        return Err(BallotError::TooLarge {
            what: "payload",
            got: payload_upper,
            limit: limits.max_payload_bytes,
        });
    }
    let payload = b64_decode(&wire.payload)
        .ok_or_else(|| BallotError::malformed("payload is not canonical base64url-nopad"))?;
    if payload.len() > limits.max_payload_bytes {
        return Err(BallotError::TooLarge {
            what: "payload",
            got: payload.len(),
            limit: limits.max_payload_bytes,
        });
    }
    let sig_bytes = b64_decode(&wire.sig)
        .ok_or_else(|| BallotError::malformed("sig is not canonical base64url-nopad"))?;
    let sig: [u8; 64] = sig_bytes
        .as_slice()
        .try_into()
        .map_err(|_| BallotError::malformed("sig must be 64 bytes"))?;

    Ok(Ballot {
        election: wire.election.into_owned(),
        key,
        voter: wire.voter.into_owned(),
        seq: wire.seq,
        payload,
        sig,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(election: &str, alg: &str, voter: &str, seq: &str, payload: &str, sig: &str) -> String {
        format!(
            r#"{{"election":"{election}","alg":"{alg}","voter":"{voter}","seq":{seq},"payload":"{payload}","sig":"{sig}"}}"#
        )
    }

    fn good() -> (String, String, String) {
        (b64(&[7u8; 32]), b64(b"secret ballot"), b64(&[9u8; 64]))
    }

    #[test]
    fn well_formed_submission_parses_and_round_trips() {
        let (k, p, s) = good();
        let text = body("demo-2026", "ed25519", &k, "3", &p, &s);
        let b = parse_submission(text.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(b.election(), "demo-2026");
        assert_eq!(b.alg(), Alg::Ed25519);
        assert_eq!(b.seq(), 3);
        assert_eq!(b.payload(), b"secret ballot");
        assert_eq!(b.to_json(), text);
        assert_eq!(
            parse_submission(b.to_json().as_bytes(), &Limits::default()).unwrap(),
            b
        );
    }

    #[test]
    fn every_shape_error_is_malformed() {
        let (k, p, s) = good();
        let lim = Limits::default();
        let cases = [
            body("Demo", "ed25519", &k, "1", &p, &s),
            body("", "ed25519", &k, "1", &p, &s),
            body(&"a".repeat(65), "ed25519", &k, "1", &p, &s),
            body("demo", "Ed25519", &k, "1", &p, &s),
            body("demo", "p256", &k, "1", &p, &s),
            body("demo", "ed25519", &format!("{k}="), "1", &p, &s),
            body("demo", "ed25519", &format!("+{}", &k[1..]), "1", &p, &s),
            body("demo", "ed25519", &k, "0", &p, &s),
            body("demo", "ed25519", &k, "-1", &p, &s),
            body("demo", "ed25519", &k, "1.0", &p, &s),
            body("demo", "ed25519", &k, "\"1\"", &p, &s),
            body("demo", "ed25519", &k, "9007199254740992", &p, &s),
            body("demo", "ed25519", &k, "1", &p, &b64(&[9u8; 63])),
            body("demo", "ed25519", &k, "1", "AB", &s),
            format!("{} ", body("demo", "ed25519", &k, "1", &p, &s)) + "x",
            body("demo", "ed25519", &k, "1", &p, &s).replace("\"seq\"", "\"extra\":1,\"seq\""),
            body("demo", "ed25519", &k, "1", &p, &s).replace("\"seq\":1", "\"seq\":1,\"seq\":2"),
            body("demo", "ed25519", &k, "1", &p, &s).replace(",\"sig\":", ",\"zig\":"),
            "[]".into(),
            "".into(),
        ];
        for c in cases {
            let e = parse_submission(c.as_bytes(), &lim).unwrap_err();
            assert_eq!(e.code(), "malformed", "{c}: {e}");
        }
    }

    #[test]
    fn non_canonical_trailing_bits_are_refused() {
        // "AB" decodes to one byte only if the low 4 bits of 'B' are zero; 'B' = 1 → refused.
        assert!(b64_decode("AB").is_none());
        assert_eq!(b64_decode("AA").unwrap(), vec![0]);
        assert!(b64_decode("AA==").is_none());
        assert!(b64_decode("A").is_none());
    }

    #[test]
    fn oversized_body_and_payload_are_too_large() {
        let (k, _, s) = good();
        let lim = Limits {
            max_body_bytes: 1000,
            max_payload_bytes: 100,
            ..Limits::default()
        };
        let big = body("demo", "ed25519", &k, "1", &b64(&[1u8; 101]), &s);
        assert_eq!(
            parse_submission(big.as_bytes(), &lim).unwrap_err().code(),
            "too_large"
        );
        let ok = body("demo", "ed25519", &k, "1", &b64(&[1u8; 100]), &s);
        assert!(parse_submission(ok.as_bytes(), &lim).is_ok());
        let huge = body("demo", "ed25519", &k, "1", &b64(&[1u8; 900]), &s);
        let e = parse_submission(huge.as_bytes(), &lim).unwrap_err();
        assert_eq!(e.code(), "too_large");
        assert_eq!(e.http_status(), 413);
    }

    #[test]
    fn signed_message_matches_the_contract_text() {
        let m = signed_message("demo-2026", Alg::P256, "KEY", 12, &[0u8; 32]);
        assert_eq!(
            String::from_utf8(m).unwrap(),
            "urna/ballot/v1\nelection demo-2026\nvoter p256 KEY\nseq 12\npayload AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"
        );
    }

    #[test]
    fn limits_come_from_config_with_defaults() {
        let l: Limits = toml::from_str("max_payload_bytes = 4096\n").unwrap();
        assert_eq!(l.max_payload_bytes, 4096);
        assert_eq!(l.max_body_bytes, Limits::default().max_body_bytes);
        assert!(toml::from_str::<Limits>("max_payload = 1\n").is_err());
    }

    #[test]
    fn payload_ceiling_leaves_room_for_the_largest_entry() {
        assert!(Limits::default().validate().is_ok());
        let lim = Limits {
            max_body_bytes: 1 << 20,
            max_payload_bytes: MAX_PAYLOAD_BYTES_CEILING + 1,
            ..Limits::default()
        };
        assert!(lim.validate().is_err());
        let lim = Limits {
            max_ballots_per_voter: 0,
            ..Limits::default()
        };
        assert!(lim.validate().is_err());
    }
}
