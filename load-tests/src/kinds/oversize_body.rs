//! `oversize-body`: ballot requests whose body is past the server's limit, or whose
//! `Content-Length` lies — declared larger than what is sent (the server must not wait
//! forever: 408 after its body timeout), declared smaller (the rest is garbage for the
//! next request), absurd (2^40, a number past u64, negative, two lengths that differ) —
//! and a chunked body that streams past the limit. What PROTOCOL.md §6 promises: 413
//! `too_large` for a declared or streamed body over `max_body_bytes`, 408
//! `request_timeout` for one that never arrives, 400 for a head that cannot be framed.
//! A 2xx to any of them is a hostile ballot accepted.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::probe::{check_lanes, check_probing, driver, head, name_of, one_per_connection, Probe};
use super::{Kind, Plan, PlanContext};
use crate::scenario::Scenario;

/// Largest body this kind sends whole: 16× the server's default limit, so a raised limit
/// can still be overrun, and a probe's buffer stays small.
const MAX_LIMIT_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OversizeBody {
    pub name: String,
    pub connections: usize,
    pub sources: IpNet,
    #[serde(default)]
    pub rate_per_s: Option<f64>,
    /// The server's `max_body_bytes` (default 32768): `over-limit` sends one byte more.
    #[serde(default = "default_limit")]
    pub limit_bytes: usize,
    #[serde(default = "all_variants")]
    pub variants: Vec<Variant>,
    #[serde(default = "one")]
    pub seed: u64,
    /// Longest a probe waits for its answer (default 8000: past the body timeout, so a
    /// body declared larger than sent is seen answered).
    #[serde(default = "answer_wait_ms")]
    pub answer_wait_ms: u64,
}

fn one() -> u64 {
    1
}
fn default_limit() -> usize {
    32 * 1024
}
fn answer_wait_ms() -> u64 {
    super::probe::DEFAULT_ANSWER_WAIT.as_millis() as u64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// `limit_bytes + 1` bytes, declared truthfully and sent whole: 413.
    OverLimit,
    /// `Content-Length: 1024`, 100 bytes sent, then nothing: 408 (or a close).
    DeclaredLarger,
    /// `Content-Length: 10`, a whole ballot-sized body sent: the first 10 bytes are the
    /// body (400 `malformed`), the rest is not a request.
    DeclaredSmaller,
    /// `Content-Length: 1099511627776` (2^40) and a few bytes: 413 from the head alone.
    AbsurdLength,
    /// `Content-Length: 99999999999999999999999` (past u64): 400.
    OverflowLength,
    /// `Content-Length: -1`: 400.
    NegativeLength,
    /// Two `Content-Length`s that differ: 400 (RFC 9112 §6.3: a smuggling vector).
    ConflictingLengths,
    /// `Transfer-Encoding: chunked` streaming `limit_bytes + 1` bytes: 413.
    ChunkedOverLimit,
}

fn all_variants() -> Vec<Variant> {
    use Variant::*;
    vec![
        OverLimit,
        DeclaredLarger,
        DeclaredSmaller,
        AbsurdLength,
        OverflowLength,
        NegativeLength,
        ConflictingLengths,
        ChunkedOverLimit,
    ]
}

/// The request of `v`: a head with the lie, then what is really sent. The body is JSON
/// whitespace and a brace, so only its size (or the lie about it) is wrong.
pub fn request(v: Variant, host: &str, limit: usize) -> Vec<u8> {
    let mut out = head("POST", "/v1/ballots", host, true);
    fn with_length(mut out: Vec<u8>, declared: &str, sent: usize) -> Vec<u8> {
        out.extend_from_slice(format!("Content-Length: {declared}\r\n\r\n").as_bytes());
        out.extend(std::iter::repeat_n(b' ', sent));
        out
    }
    match v {
        Variant::OverLimit => with_length(out, &(limit + 1).to_string(), limit + 1),
        Variant::DeclaredLarger => with_length(out, "1024", 100),
        Variant::DeclaredSmaller => with_length(out, "10", 1024),
        Variant::AbsurdLength => with_length(out, "1099511627776", 16),
        Variant::OverflowLength => with_length(out, "99999999999999999999999", 16),
        Variant::NegativeLength => with_length(out, "-1", 16),
        Variant::ConflictingLengths => {
            out.extend_from_slice(b"Content-Length: 2\r\n");
            with_length(out, "16", 16)
        }
        Variant::ChunkedOverLimit => {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            let chunk = 4096;
            for _ in 0..(limit + 1).div_ceil(chunk) {
                out.extend_from_slice(format!("{chunk:x}\r\n").as_bytes());
                out.extend(std::iter::repeat_n(b' ', chunk));
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
            out
        }
    }
}

impl Kind for OversizeBody {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, _: &Scenario) -> anyhow::Result<()> {
        let name = &self.name;
        check_lanes(name, self.connections, &self.sources, self.rate_per_s)?;
        anyhow::ensure!(!self.variants.is_empty(), "task {name}: variants is empty");
        anyhow::ensure!(
            (1..MAX_LIMIT_BYTES).contains(&self.limit_bytes),
            "task {name}: limit_bytes must be in 1..{MAX_LIMIT_BYTES}"
        );
        check_probing(name, 1, self.answer_wait_ms)
    }

    fn max_sockets(&self) -> usize {
        self.connections
    }

    fn plan(&self, cx: &mut PlanContext<'_>) -> anyhow::Result<Box<dyn Plan>> {
        let probes: Vec<Probe> = self
            .variants
            .iter()
            .map(|&v| Probe {
                must_refuse: true,
                ..Probe::new(name_of(&v), request(v, cx.host, self.limit_bytes))
            })
            .collect();
        Ok(Box::new(one_per_connection(
            &self.name,
            driver(self.connections, self.rate_per_s, self.sources),
            probes,
            self.answer_wait_ms,
            self.seed,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_lie_is_the_one_named() {
        let over = request(Variant::OverLimit, "h", 100);
        assert!(over.ends_with(&[b' '; 101]));
        assert!(String::from_utf8_lossy(&over).contains("Content-Length: 101\r\n\r\n"));
        let larger = request(Variant::DeclaredLarger, "h", 100);
        let (head, body) =
            larger.split_at(larger.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4);
        assert!(String::from_utf8_lossy(head).contains("Content-Length: 1024"));
        assert_eq!(body.len(), 100);
        let chunked = request(Variant::ChunkedOverLimit, "h", 10_000);
        assert!(chunked.len() > 10_000 && chunked.ends_with(b"0\r\n\r\n"));
        let two = String::from_utf8(request(Variant::ConflictingLengths, "h", 1)).unwrap();
        assert_eq!(two.matches("Content-Length").count(), 2);
    }
}
