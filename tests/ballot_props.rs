//! Property tests: parsing and decoding never panic and round-trip; a random sequence of
//! submissions ends in exactly the state a simple model of the revote rules predicts, and
//! the state rebuilt from the log equals it.

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;
use urna::ballot::wire::{b64, MAX_SEQ};
use urna::ballot::{
    decode_entry, parse_submission, verify, Admitted, Election, Entry, Limits, LoggedBallot,
    RevotePolicy, Roll, VoterId, VoterSecret, VoterStates,
};

fn submission_text(
    election: &str,
    alg: &str,
    key: &[u8],
    seq: u64,
    payload: &[u8],
    sig: &[u8],
) -> String {
    format!(
        r#"{{"election":"{election}","alg":"{alg}","voter":"{}","seq":{seq},"payload":"{}","sig":"{}"}}"#,
        b64(key),
        b64(payload),
        b64(sig)
    )
}

fn arb_submission() -> impl Strategy<Value = String> {
    (
        "[a-z0-9._-]{1,64}",
        prop_oneof![
            prop::collection::vec(any::<u8>(), 32).prop_map(|k| ("ed25519", k)),
            prop::collection::vec(any::<u8>(), 65).prop_map(|k| ("p256", k)),
        ],
        1..=MAX_SEQ,
        prop::collection::vec(any::<u8>(), 0..600),
        prop::collection::vec(any::<u8>(), 64),
        any::<u64>(),
    )
        .prop_map(|(e, (alg, key), seq, payload, sig, _)| {
            submission_text(&e, alg, &key, seq, &payload, &sig)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn parsing_never_panics_on_any_bytes(body in prop::collection::vec(any::<u8>(), 0..1500)) {
        let _ = parse_submission(&body, &Limits::default());
    }

    #[test]
    fn parsing_never_panics_on_mutated_submissions(
        text in arb_submission(),
        cut in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut bytes = text.into_bytes();
        let i = cut.index(bytes.len());
        bytes[i] = byte;
        let _ = parse_submission(&bytes, &Limits::default());
        bytes.truncate(i);
        let _ = parse_submission(&bytes, &Limits::default());
    }

    #[test]
    fn well_formed_submissions_round_trip(text in arb_submission(), received_ms in any::<u64>()) {
        let b = parse_submission(text.as_bytes(), &Limits::default()).unwrap();
        prop_assert_eq!(b.to_json(), text);
        let lb = LoggedBallot { ballot: b, received_ms };
        let bytes = lb.encode();
        prop_assert!(bytes.len() <= 65_535);
        prop_assert_eq!(decode_entry(&bytes).unwrap(), Entry::Ballot(lb));
    }

    #[test]
    fn entry_decoding_never_panics_and_accepted_bytes_reencode_identically(
        bytes in prop::collection::vec(any::<u8>(), 0..400),
        tag in prop_oneof![Just(b'B'), Just(b'M'), any::<u8>()],
    ) {
        let mut bytes = bytes;
        if let Some(b) = bytes.first_mut() { *b = tag; }
        match decode_entry(&bytes) {
            Ok(Entry::Ballot(lb)) => prop_assert_eq!(lb.encode(), bytes),
            Ok(Entry::Manifest(m)) => prop_assert_eq!(m.encode().unwrap(), bytes),
            Err(_) => {}
        }
    }
}

/// One voter's submission in the model: which voter, which seq, which of a few payloads.
#[derive(Debug, Clone)]
struct Step {
    voter: usize,
    seq: u64,
    payload: u8,
}

/// The revote rules, written as plainly as possible.
#[derive(Debug, Default, Clone, PartialEq)]
struct Model {
    /// voter → (seq, payload, index) of the last logged ballot
    last: HashMap<usize, (u64, u8, u64)>,
    /// voter → ballots logged
    count: HashMap<usize, u32>,
    /// most ballots per voter
    cap: u32,
}

impl Model {
    fn apply(
        &mut self,
        policy: RevotePolicy,
        s: &Step,
        next: u64,
    ) -> Result<Option<u64>, &'static str> {
        let count = self.count.get(&s.voter).copied().unwrap_or(0);
        let out = match (self.last.get(&s.voter), policy) {
            (None, _) => {
                self.last.insert(s.voter, (s.seq, s.payload, next));
                Ok(None)
            }
            (Some(&(seq, p, i)), _) if seq == s.seq && p == s.payload => Ok(Some(i)),
            (Some(_), RevotePolicy::None) => Err("already_voted"),
            (Some(&(seq, _, _)), RevotePolicy::Last) if s.seq > seq && count >= self.cap => {
                Err("too_many_ballots")
            }
            (Some(&(seq, _, _)), RevotePolicy::Last) if s.seq > seq => {
                self.last.insert(s.voter, (s.seq, s.payload, next));
                Ok(None)
            }
            (Some(&(seq, _, _)), RevotePolicy::Last) if s.seq == seq => Err("conflict"),
            (Some(_), RevotePolicy::Last) => Err("stale_seq"),
        };
        if out == Ok(None) {
            self.count.insert(s.voter, count + 1);
        }
        out
    }
}

const VOTERS: usize = 4;

fn voters() -> &'static (Vec<VoterSecret>, Arc<Roll>) {
    static V: std::sync::OnceLock<(Vec<VoterSecret>, Arc<Roll>)> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        let vs: Vec<_> = (0..VOTERS)
            .map(|i| VoterSecret::ed25519_from_seed(&[i as u8 + 10; 32]))
            .collect();
        let text: String = vs.iter().map(|v| v.roll_line() + "\n").collect();
        let roll = Arc::new(Roll::parse(text.as_bytes(), 0).unwrap());
        (vs, roll)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_submissions_end_in_the_state_the_model_predicts(
        last_policy in any::<bool>(),
        cap in 1u32..5,
        steps in prop::collection::vec(
            (0..VOTERS, 1u64..7, 0u8..3).prop_map(|(voter, seq, payload)| Step { voter, seq, payload }),
            0..40,
        ),
    ) {
        let policy = if last_policy { RevotePolicy::Last } else { RevotePolicy::None };
        let (secrets, roll) = voters();
        let election = Election::new("e", policy, None, None).unwrap();
        let mut states =
            VoterStates::new(roll.clone(), election.clone()).with_max_ballots_per_voter(cap);
        let mut model = Model { cap, ..Model::default() };
        let mut log: Vec<Vec<u8>> = vec![b"manifest placeholder".to_vec()];
        for s in &steps {
            let next = log.len() as u64;
            let json = secrets[s.voter].sign_submission("e", s.seq, &[s.payload]);
            let b = parse_submission(json.as_bytes(), &Limits::default()).unwrap();
            let pre = states.precheck(&b, 0).map_err(|e| e.code());
            let got = match pre {
                Err(code) => Err(code),
                Ok(_) => match states.admit(&verify(b).unwrap(), 0, next) {
                    Ok(Admitted::Append(bytes)) => { log.push(bytes); Ok(None) }
                    Ok(Admitted::Existing(i)) => Ok(Some(i)),
                    Err(e) => Err(e.code()),
                },
            };
            let want = model.apply(policy, s, next);
            prop_assert_eq!(got, want, "step {:?}", s);
        }
        for (v, secret) in secrets.iter().enumerate() {
            let id = roll.lookup(&secret.public_key()).unwrap();
            let got = states.last(id).map(|r| (r.seq, r.index, r.count));
            let want = model
                .last
                .get(&v)
                .map(|&(seq, _, i)| (seq, i, model.count[&v]));
            prop_assert_eq!(got, want);
        }
        // Replaying the log (after a manifest) rebuilds exactly this state.
        let manifest = urna::ballot::Manifest {
            election,
            roll_sha256: roll.sha256(),
            log_verifier_key: "log+00000000+AQ".into(),
        };
        log[0] = manifest.encode().unwrap();
        let mut rebuilt = VoterStates::new(roll.clone(), manifest.election.clone());
        for (i, e) in log.iter().enumerate() {
            rebuilt.replay_entry(i as u64, e).unwrap();
        }
        for i in 0..VOTERS as u32 {
            prop_assert_eq!(rebuilt.last(VoterId(i)), states.last(VoterId(i)));
        }
    }
}
