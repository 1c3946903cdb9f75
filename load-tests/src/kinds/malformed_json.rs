//! `malformed-json`: ballot submissions that are not submissions (PROTOCOL.md §1) — cut
//! short, members of the wrong type, repeated, missing or unknown, nested deep, base64url
//! that is not canonical, bytes that are not UTF-8, data after the object. Each is made
//! from a ballot correctly signed by a voter on the roll, so a server that let one through
//! would log it: every one must be answered 400 `malformed`, and any 2xx is counted as a
//! hostile ballot accepted (which fails the run).

use ipnet::IpNet;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::probe::{check_lanes, check_probing, driver, name_of, post_ballot, MixPlan, Probe};
use super::{Kind, Plan, PlanContext};
use crate::ballots::seq_base;
use crate::scenario::Scenario;

/// Concrete bodies made of each variant (each from the seed): enough variety that the
/// server sees many cut points and wrong types, few enough to plan in a blink.
const BODIES_PER_VARIANT: usize = 16;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MalformedJson {
    pub name: String,
    /// Held at once (or, with `rate_per_s`, the most alive at once).
    pub connections: usize,
    pub sources: IpNet,
    /// New connections per second (open loop) instead of holding `connections`.
    #[serde(default)]
    pub rate_per_s: Option<f64>,
    /// Submissions per connection (the server closes after `max_refusals_per_connection`
    /// refusals, 8 by default; a close is counted and the slot reconnects).
    #[serde(default = "eight")]
    pub requests_per_connection: usize,
    /// Which malformations (default: all of [`Variant`]).
    #[serde(default = "all_variants")]
    pub variants: Vec<Variant>,
    /// Depth of `deep-nesting` (1..=16000: 2 bytes a level, under the 32 KiB body limit).
    #[serde(default = "default_depth")]
    pub nesting_depth: usize,
    #[serde(default = "one")]
    pub seed: u64,
    #[serde(default = "answer_wait_ms")]
    pub answer_wait_ms: u64,
}

fn eight() -> usize {
    8
}
fn one() -> u64 {
    1
}
fn default_depth() -> usize {
    10_000
}
fn answer_wait_ms() -> u64 {
    super::probe::DEFAULT_ANSWER_WAIT.as_millis() as u64
}

/// One family of malformed submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// A valid submission cut at a random byte.
    Truncated,
    /// One member of another JSON type (seq as a string or float, sig as an array...).
    WrongType,
    /// One member twice (same value: a parser that keeps either would see a valid ballot).
    DuplicateKey,
    /// `[[[[...]]]]` as a member's value.
    DeepNesting,
    /// voter, payload or sig with padding, `+`/`/`, a bad length or unused bits set.
    BadBase64,
    /// Bytes that are not UTF-8 (or an unpaired surrogate escape) in a string.
    NonUtf8,
    /// A seventh member.
    UnknownField,
    /// One of the six members left out.
    MissingField,
    /// Something after the object.
    TrailingData,
    /// Not an object at all (`[]`, `null`, a string, a number).
    NotObject,
    /// seq 0, seq 2^53, seq -1: out of the protocol's range.
    SeqRange,
}

fn all_variants() -> Vec<Variant> {
    use Variant::*;
    vec![
        Truncated,
        WrongType,
        DuplicateKey,
        DeepNesting,
        BadBase64,
        NonUtf8,
        UnknownField,
        MissingField,
        TrailingData,
        NotObject,
        SeqRange,
    ]
}

const MEMBERS: [&str; 6] = ["election", "alg", "voter", "seq", "payload", "sig"];

/// One malformed body of `variant`, made from the valid signed submission `valid`.
pub fn malform(variant: Variant, valid: &str, depth: usize, rng: &mut StdRng) -> Vec<u8> {
    // `valid` is what `sign_submission` wrote: a JSON object of the six members.
    let obj: serde_json::Map<String, Value> = serde_json::from_str(valid).unwrap_or_default();
    let with = |member: &str, v: Value| {
        let mut o = obj.clone();
        o.insert(member.to_owned(), v);
        Value::Object(o).to_string().into_bytes()
    };
    let member = MEMBERS[rng.gen_range(0..MEMBERS.len())];
    match variant {
        Variant::Truncated => valid.as_bytes()[..rng.gen_range(1..valid.len())].to_vec(),
        Variant::WrongType => {
            let seq = obj.get("seq").and_then(Value::as_u64).unwrap_or(1);
            let choices = [
                ("seq", json!(seq.to_string())),
                ("seq", json!(seq as f64 + 0.5)),
                ("seq", json!(true)),
                ("sig", json!([obj.get("sig")])),
                ("payload", Value::Null),
                ("election", json!(7)),
                ("alg", json!({"name": "ed25519"})),
                ("voter", json!([1, 2, 3])),
            ];
            let (m, v) = choices[rng.gen_range(0..choices.len())].clone();
            with(m, v)
        }
        Variant::DuplicateKey => {
            let value = obj.get(member).cloned().unwrap_or(Value::Null);
            let body = valid.trim_end().trim_end_matches('}');
            format!("{body},\"{member}\":{value}}}").into_bytes()
        }
        Variant::DeepNesting => {
            let d = depth.max(1);
            let nested = format!("{}{}", "[".repeat(d), "]".repeat(d));
            let mut o = obj.clone();
            o.remove(member);
            let body = Value::Object(o).to_string();
            let body = body.trim_end_matches('}');
            format!("{body},\"{member}\":{nested}}}").into_bytes()
        }
        Variant::BadBase64 => {
            // Each way is wrong whatever the text: padding, a letter outside the alphabet,
            // or (for the fixed-length voter and sig, whose last letter has unused bits)
            // those bits set. A letter added or changed in the payload could be another
            // valid payload, so the payload only gets the first two.
            let way = rng.gen_range(0..4);
            let m = if way < 2 {
                ["voter", "payload", "sig"][rng.gen_range(0..3)]
            } else {
                ["voter", "sig"][rng.gen_range(0..2)]
            };
            let s = obj.get(m).and_then(Value::as_str).unwrap_or("AAAA");
            let cut = s.len().saturating_sub(1);
            let bad = match way {
                0 => format!("{s}="),
                1 => format!("+{}", s.get(1..).unwrap_or_default()),
                // A key or signature one byte too long.
                2 => format!("{s}AA"),
                // A valid last letter has its unused bits zero, so it is never `B`.
                _ => format!("{}B", s.get(..cut).unwrap_or_default()),
            };
            with(m, json!(bad))
        }
        Variant::NonUtf8 => {
            if rng.gen_bool(0.5) {
                // Raw 0xff inside the payload string.
                let body = valid.as_bytes();
                let at = valid.find("\"payload\":\"").map_or(1, |i| i + 11);
                let mut out = body[..at].to_vec();
                out.extend_from_slice(&[0xff, 0xfe]);
                out.extend_from_slice(&body[at..]);
                out
            } else {
                let s = obj.get("election").and_then(Value::as_str).unwrap_or("");
                let body = Value::Object(obj.clone()).to_string();
                body.replacen(&format!("\"{s}\""), &format!("\"\\ud800{s}\""), 1)
                    .into_bytes()
            }
        }
        Variant::UnknownField => {
            let extra = ["extra", "receipt", "Seq", "sig2"][rng.gen_range(0..4)];
            with(extra, json!(1))
        }
        Variant::MissingField => {
            let mut o = obj.clone();
            o.remove(member);
            Value::Object(o).to_string().into_bytes()
        }
        Variant::TrailingData => {
            let tail = [" x", "{}", ",", "\u{0}", "]"][rng.gen_range(0..5)];
            format!("{valid}{tail}").into_bytes()
        }
        Variant::NotObject => {
            let v = ["[]", "null", "\"ballot\"", "42", "[{}]", ""][rng.gen_range(0..6)];
            v.as_bytes().to_vec()
        }
        Variant::SeqRange => {
            let v = [json!(0), json!(1u64 << 53), json!(-1)][rng.gen_range(0..3)].clone();
            with("seq", v)
        }
    }
}

impl Kind for MalformedJson {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, s: &Scenario) -> anyhow::Result<()> {
        let name = &self.name;
        check_lanes(name, self.connections, &self.sources, self.rate_per_s)?;
        anyhow::ensure!(s.voters.is_some(), "task {name}: needs `voters`");
        anyhow::ensure!(!self.variants.is_empty(), "task {name}: variants is empty");
        anyhow::ensure!(
            (1..=16_000).contains(&self.nesting_depth),
            "task {name}: nesting_depth must be in 1..=16000"
        );
        check_probing(name, self.requests_per_connection, self.answer_wait_ms)
    }

    fn voters_wanted(&self, _: &Scenario) -> usize {
        1
    }

    fn max_sockets(&self) -> usize {
        self.connections
    }

    fn plan(&self, cx: &mut PlanContext<'_>) -> anyhow::Result<Box<dyn Plan>> {
        let voter = cx
            .voters
            .get(cx.voter_offset)
            .ok_or_else(|| anyhow::anyhow!("task {}: no voter key left", self.name))?;
        cx.voter_offset += 1;
        // A real voter's real signature: only the malformation stands between the body and
        // the log. The seq is one no earlier run has used.
        let valid = voter.sign_submission(&cx.scenario.election, seq_base() + 1, b"malformed");
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut probes = Vec::new();
        for &v in &self.variants {
            for _ in 0..BODIES_PER_VARIANT {
                let body = malform(v, &valid, self.nesting_depth, &mut rng);
                probes.push(Probe {
                    must_refuse: true,
                    ..Probe::new(name_of(&v), post_ballot(cx.host, &body))
                });
            }
        }
        Ok(Box::new(MixPlan::new(
            &self.name,
            driver(self.connections, self.rate_per_s, self.sources),
            probes,
            self.requests_per_connection,
            self.answer_wait_ms,
            self.seed,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use urna::ballot::keys::VoterSecret;

    /// Every variant, made from a valid submission, must fail the server's own parser: the
    /// kind never sends a "malformed" ballot that is in fact well-formed.
    #[test]
    fn every_variant_is_refused_by_the_servers_own_parser() {
        let voter = VoterSecret::generate_ed25519(&mut rand::thread_rng());
        let valid = voter.sign_submission("demo-2026", 7, b"x");
        let limits = urna::ballot::wire::Limits::default();
        assert!(urna::ballot::wire::parse_submission(valid.as_bytes(), &limits).is_ok());
        let mut rng = StdRng::seed_from_u64(3);
        for v in all_variants() {
            for _ in 0..64 {
                let body = malform(v, &valid, 100, &mut rng);
                assert!(
                    urna::ballot::wire::parse_submission(&body, &limits).is_err(),
                    "{v:?} parsed: {}",
                    String::from_utf8_lossy(&body)
                );
            }
        }
    }
}
