//! The edge's per-request and per-connection costs, without sockets:
//! - L4 `check_rate` for one known source (the common case), for sources spread over a
//!   bounded map, and for one source far past its limit (the 429 path);
//! - the whole router for a rate-limited ballot (route, 429 decision, JSON error answer);
//! - L1 `admit` + drop of a connection ticket.
//!
//! Run: `cargo bench --bench edge`.

use std::net::IpAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use http::Request;
use http_body_util::Full;
use urna::config::LimitsConfig;
use urna::edge::accept::AcceptGate;
use urna::edge::admission::{Admission, Class};
use urna::edge::overload::Overload;
use urna::edge::router::{handle, Front};

#[path = "../examples/support/null_backend.rs"]
mod null_backend;
use null_backend::NullBackend;

fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

fn admission(c: &mut Criterion) {
    let generous = LimitsConfig {
        ballots_per_source_per_s: nz(1_000_000_000),
        ballots_burst_per_source: nz(1_000_000_000),
        ballots_per_prefix_per_s: nz(1_000_000_000),
        ballots_burst_per_prefix: nz(1_000_000_000),
        max_tracked_keys: NonZeroUsize::new(100_000).unwrap(),
        ..LimitsConfig::default()
    };
    let a = Admission::new(&generous);
    let ip: IpAddr = "198.51.100.7".parse().unwrap();
    c.bench_function("l4_check_rate_one_source_admitted", |b| {
        b.iter(|| a.check_rate(Class::Ballot, black_box(ip)).is_ok())
    });

    let ips: Vec<IpAddr> = (0..50_000u32)
        .map(|i| IpAddr::from((0x0a00_0000u32 + i * 256 + 1).to_be_bytes()))
        .collect();
    let mut i = 0usize;
    c.bench_function("l4_check_rate_50k_sources_admitted", |b| {
        b.iter(|| {
            i = (i + 1) % ips.len();
            a.check_rate(Class::Ballot, black_box(ips[i])).is_ok()
        })
    });

    let strict = LimitsConfig::default();
    let a = Admission::new(&strict);
    c.bench_function("l4_check_rate_one_source_refused", |b| {
        b.iter(|| a.check_rate(Class::Ballot, black_box(ip)).is_err())
    });
}

fn router(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let front = Front::new(
        Arc::new(NullBackend),
        &LimitsConfig::default(),
        urna::edge::metrics::install(),
        vec![],
        Arc::new(Overload::new(&LimitsConfig::default())),
    );
    // A slot in the table, as a connection has. The source lands in the penalty box after
    // its first strikes: the bench measures the 429 path with the box's bookkeeping.
    let held = front
        .gate
        .table
        .insert("198.51.100.7".parse().unwrap())
        .0
        .unwrap();
    let conn = held.state().clone();
    c.bench_function("router_ballot_rate_limited_429", |b| {
        b.iter(|| {
            let req = Request::post("/v1/ballots")
                .header("content-type", "application/json")
                .header("content-length", "2")
                .body(Full::new(Bytes::from_static(b"{}")))
                .unwrap();
            let resp = rt.block_on(handle(&front, &conn, req)).unwrap();
            black_box(resp.status())
        })
    });
}

fn accept(c: &mut Criterion) {
    let limits = LimitsConfig {
        new_connections_per_source_per_s: nz(1_000_000_000),
        new_connections_burst: nz(1_000_000_000),
        ..LimitsConfig::default()
    };
    let gate = AcceptGate::new(&limits);
    let ip: IpAddr = "198.51.100.7".parse().unwrap();
    c.bench_function("l1_admit_and_close", |b| {
        b.iter(|| drop(black_box(gate.admit(ip).unwrap())))
    });
}

criterion_group!(benches, admission, router, accept);
criterion_main!(benches);
