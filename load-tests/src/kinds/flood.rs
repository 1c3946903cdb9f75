//! `flood`: the same request over and over — what a rate limiter must absorb. From few
//! sources by default; with `requests_per_connection` and a `sources` pool larger than
//! `connections`, each lane reconnects from the next address of the pool, so a few hundred
//! lanes speak from 10,000+ addresses, each polite on its own.

use bytes::Bytes;
use http::Method;
use ipnet::IpNet;
use serde::Deserialize;
use urna::ballot::keys::VoterSecret;

use super::http::{check_streams, http_plan, Shape, Work};
use super::{check_connections, check_pool, check_rate, Kind, Plan, PlanContext, Pool};
use crate::ballots::seq_base;
use crate::scenario::Scenario;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flood {
    pub name: String,
    pub connections: usize,
    pub sources: IpNet,
    pub request: FloodRequest,
    #[serde(default)]
    pub rate_per_s: Option<f64>,
    #[serde(default)]
    pub http2: bool,
    #[serde(default = "one")]
    pub streams_per_connection: usize,
    /// HTTP/1.1 only: close each connection after this many answers (1..=10000) and open
    /// the next from the next address of `sources`. Absent: keep a connection until the
    /// server closes it.
    #[serde(default)]
    pub requests_per_connection: Option<usize>,
}

fn one() -> usize {
    1
}

/// What a flood sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FloodRequest {
    /// `GET /v1/election`.
    GetElection,
    /// `GET /log/checkpoint`.
    GetCheckpoint,
    /// `POST /v1/ballots` with a body that is not a submission.
    JunkBallot,
    /// A well-formed ballot for a voter on the roll, with a corrupted signature.
    BadSignature,
    /// A correctly signed ballot from a key that is not on the roll.
    Unlisted,
}

impl Kind for Flood {
    fn name(&self) -> &str {
        &self.name
    }

    fn check(&self, s: &Scenario) -> anyhow::Result<()> {
        let name = &self.name;
        check_connections(name, self.connections)?;
        check_pool(name, &self.sources)?;
        if self.request == FloodRequest::BadSignature {
            anyhow::ensure!(s.voters.is_some(), "task {name}: needs `voters`");
        }
        check_rate(name, self.rate_per_s)?;
        check_streams(name, self.http2, self.streams_per_connection)?;
        if let Some(n) = self.requests_per_connection {
            anyhow::ensure!(
                (1..=10_000).contains(&n),
                "task {name}: requests_per_connection must be in 1..=10000"
            );
            anyhow::ensure!(
                !self.http2,
                "task {name}: requests_per_connection is for HTTP/1.1 lanes"
            );
        }
        Ok(())
    }

    fn voters_wanted(&self, _: &Scenario) -> usize {
        usize::from(self.request == FloodRequest::BadSignature)
    }

    fn max_sockets(&self) -> usize {
        self.connections
    }

    fn plan(&self, cx: &mut PlanContext<'_>) -> anyhow::Result<Box<dyn Plan>> {
        let (method, path, body) = flood_request(
            self.request,
            &cx.scenario.election,
            cx.voters,
            crate::seed::mix(cx.scenario.run_seed(), &self.name, 0),
        )?;
        let shape = Shape {
            connections: self.connections,
            streams: self.streams_per_connection,
            http2: self.http2,
            rate_per_s: self.rate_per_s,
            pool: Pool::new(self.sources),
            requests_per_connection: self.requests_per_connection,
            retry: None,
            verifier_key: None,
        };
        Ok(Box::new(http_plan(shape, cx.host, || {
            Work::Repeat(method.clone(), path, body.clone())
        })))
    }
}

fn flood_request(
    kind: FloodRequest,
    election: &str,
    voters: &[VoterSecret],
    seed: u64,
) -> anyhow::Result<(Method, &'static str, Option<Bytes>)> {
    Ok(match kind {
        FloodRequest::GetElection => (Method::GET, "/v1/election", None),
        FloodRequest::GetCheckpoint => (Method::GET, "/log/checkpoint", None),
        FloodRequest::JunkBallot => (
            Method::POST,
            "/v1/ballots",
            Some(Bytes::from_static(b"{\"election\": [1, 2, 3")),
        ),
        FloodRequest::BadSignature => {
            let voter = voters
                .first()
                .ok_or_else(|| anyhow::anyhow!("bad-signature needs voters"))?;
            let body = voter.sign_submission(election, seq_base() + 1, b"flood");
            let mut v: serde_json::Value = serde_json::from_str(&body)?;
            // Flip the first signature character to another base64url letter: still
            // well-formed, never valid.
            let sig = v["sig"].as_str().unwrap_or_default().to_owned();
            let flipped = match sig.as_bytes().first() {
                Some(b'A') => format!("B{}", &sig[1..]),
                _ => format!("A{}", sig.get(1..).unwrap_or_default()),
            };
            v["sig"] = serde_json::Value::String(flipped);
            (
                Method::POST,
                "/v1/ballots",
                Some(Bytes::from(v.to_string())),
            )
        }
        FloodRequest::Unlisted => {
            let stranger =
                VoterSecret::generate_ed25519(&mut crate::seed::rng(seed, "stranger", 0));
            let body = stranger.sign_submission(election, 1, b"flood");
            (Method::POST, "/v1/ballots", Some(Bytes::from(body)))
        }
    })
}
