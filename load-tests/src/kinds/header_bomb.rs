//! `header-bomb`: request heads past the server's bounds — more header lines than
//! `limits.max_headers` (64), one header value past `limits.max_header_bytes` (16 KiB), a
//! request line whose target is that long, a head of many small headers that together pass
//! the byte bound. The server should answer 431 (or 414 / 400) and close, having held at
//! most its bound of each: never a 2xx, never a head read without end.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::probe::{check_lanes, check_probing, driver, head, name_of, one_per_connection, Probe};
use super::{Kind, Plan, PlanContext};
use crate::scenario::Scenario;

/// Largest head this kind writes: 1 MiB, 64× the server's default bound.
const MAX_HEAD_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderBomb {
    pub name: String,
    pub connections: usize,
    pub sources: IpNet,
    #[serde(default)]
    pub rate_per_s: Option<f64>,
    #[serde(default = "all_variants")]
    pub variants: Vec<Variant>,
    /// Header lines of `many-headers` (default 200; the server's bound is 64).
    #[serde(default = "default_headers")]
    pub headers: usize,
    /// Bytes of `huge-value`'s value, `long-line`'s target and `many-bytes`' head
    /// (default 65536; the server's bound is 16384).
    #[serde(default = "default_bytes")]
    pub bytes: usize,
    #[serde(default = "one")]
    pub seed: u64,
    #[serde(default = "answer_wait_ms")]
    pub answer_wait_ms: u64,
}

fn one() -> u64 {
    1
}
fn default_headers() -> usize {
    200
}
fn default_bytes() -> usize {
    64 * 1024
}
fn answer_wait_ms() -> u64 {
    super::probe::DEFAULT_ANSWER_WAIT.as_millis() as u64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// `headers` short header lines.
    ManyHeaders,
    /// One header whose value is `bytes` long.
    HugeValue,
    /// `GET /log/<bytes of a>`: the request line itself too long.
    LongLine,
    /// Headers of 1 KiB each until the head is `bytes` long (under the line count bound).
    ManyBytes,
}

fn all_variants() -> Vec<Variant> {
    vec![
        Variant::ManyHeaders,
        Variant::HugeValue,
        Variant::LongLine,
        Variant::ManyBytes,
    ]
}

/// The whole request of `v` (a GET of the checkpoint: a cheap route if the head were let
/// through, so what is measured is the head's handling).
pub fn request(v: Variant, host: &str, headers: usize, bytes: usize) -> Vec<u8> {
    let mut out = match v {
        Variant::LongLine => head("GET", &format!("/log/{}", "a".repeat(bytes)), host, false),
        _ => head("GET", "/log/checkpoint", host, false),
    };
    match v {
        Variant::ManyHeaders => {
            for i in 0..headers {
                out.extend_from_slice(format!("X-Bomb-{i}: {i}\r\n").as_bytes());
            }
        }
        Variant::HugeValue => {
            out.extend_from_slice(b"X-Bomb: ");
            out.extend(std::iter::repeat_n(b'a', bytes));
            out.extend_from_slice(b"\r\n");
        }
        Variant::LongLine => {}
        Variant::ManyBytes => {
            let mut i = 0;
            while out.len() < bytes {
                out.extend_from_slice(format!("X-Bomb-{i}: ").as_bytes());
                out.extend(std::iter::repeat_n(b'a', 1024));
                out.extend_from_slice(b"\r\n");
                i += 1;
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

impl Kind for HeaderBomb {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, _: &Scenario) -> anyhow::Result<()> {
        let name = &self.name;
        check_lanes(name, self.connections, &self.sources, self.rate_per_s)?;
        anyhow::ensure!(!self.variants.is_empty(), "task {name}: variants is empty");
        anyhow::ensure!(
            (1..=10_000).contains(&self.headers),
            "task {name}: headers must be in 1..=10000"
        );
        anyhow::ensure!(
            (1..=MAX_HEAD_BYTES).contains(&self.bytes),
            "task {name}: bytes must be in 1..={MAX_HEAD_BYTES}"
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
                ..Probe::new(name_of(&v), request(v, cx.host, self.headers, self.bytes))
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
    fn each_bomb_passes_the_bound_it_aims_at() {
        let many = String::from_utf8(request(Variant::ManyHeaders, "h", 200, 0)).unwrap();
        assert_eq!(many.matches("X-Bomb-").count(), 200);
        let huge = request(Variant::HugeValue, "h", 0, 20_000);
        assert!(huge.len() > 20_000);
        let line = String::from_utf8(request(Variant::LongLine, "h", 0, 20_000)).unwrap();
        assert!(line.lines().next().unwrap().len() > 20_000);
        let bytes = String::from_utf8(request(Variant::ManyBytes, "h", 0, 20_000)).unwrap();
        assert!(bytes.len() >= 20_000 && bytes.matches("X-Bomb-").count() < 64);
        assert!(bytes.ends_with("\r\n\r\n"));
    }
}
