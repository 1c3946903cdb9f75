//! Benches of the log's hot paths (DESIGN targets on the 2-core machine):
//! - `append/durable_600B`: in-process durable appends of 600-byte entries through the
//!   sequencer (group commit: 8,192 concurrent submitters, default config), receipts included; ≥ 200,000/s.
//! - `receipt/random_index`: a fresh receipt for a random index; ≥ 100,000/s.
//! - `baseline/*`: the floor measured in the same run (one fdatasync of a batch-sized write).
//!
//! Memory per entry (≤ 100 bytes beyond the segment files) is printed once, from the
//! in-memory structures' sizes and from the RSS delta, after filling a log.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use std::io::Write;
use std::time::{Duration, Instant};
use urna::log::{Log, LogConfig, LogHandle, LogKey, Opaque};

const ENTRY_BYTES: usize = 600;
const SUBMITTERS: u64 = 8192;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn open(dir: &std::path::Path) -> (LogHandle<Opaque>, std::thread::JoinHandle<()>) {
    let origin = "urna.bench/log";
    let (_, key) = LogKey::generate(origin).unwrap();
    let cfg = LogConfig {
        dir: dir.to_owned(),
        origin: origin.to_owned(),
        ..LogConfig::default()
    };
    Log::open(cfg, key, Opaque, || b"bench genesis".to_vec()).unwrap()
}

/// Submits `n` entries from `SUBMITTERS` concurrent tasks; returns the elapsed time.
fn append_n(rt: &tokio::runtime::Runtime, log: &LogHandle<Opaque>, n: u64) -> Duration {
    let start = Instant::now();
    rt.block_on(async {
        let per = n.div_ceil(SUBMITTERS);
        let tasks: Vec<_> = (0..SUBMITTERS.min(n))
            .map(|t| {
                let log = log.clone();
                tokio::spawn(async move {
                    for i in 0..per {
                        let mut e = vec![b'b'; ENTRY_BYTES];
                        e[..16].copy_from_slice(&(t * per + i).to_le_bytes().repeat(2));
                        let logged = log.submit(e).await.expect("append");
                        std::hint::black_box(logged.receipt);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    start.elapsed()
}

/// CPU time (user + system) this process has used, from /proc/self/stat (100 Hz ticks).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the ")" that closes the command name; utime and stime are 14th and 15th.
    let rest = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    (f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0)) as f64 / 100.0
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn benches(c: &mut Criterion) {
    let rt = runtime();

    // Baseline: one batch-sized write plus fdatasync, the per-batch floor of group commit.
    {
        let tmp = tempfile::tempdir().unwrap();
        let mut f = std::fs::File::create(tmp.path().join("b")).unwrap();
        let buf = vec![7u8; 608 * 512];
        let mut g = c.benchmark_group("baseline");
        g.sample_size(20);
        g.bench_function("write_311KiB_fdatasync", |b| {
            b.iter(|| {
                f.write_all(&buf).unwrap();
                f.sync_data().unwrap();
            })
        });
        g.finish();
    }

    // Durable appends.
    {
        let tmp = tempfile::tempdir().unwrap();
        let (log, writer) = open(tmp.path());
        let mut g = c.benchmark_group("append");
        g.throughput(Throughput::Elements(1));
        g.sample_size(10);
        g.warm_up_time(Duration::from_secs(2));
        g.measurement_time(Duration::from_secs(8));
        g.bench_function("durable_600B", |b| {
            b.iter_custom(|iters| append_n(&rt, &log, iters))
        });
        g.finish();
        rt.block_on(log.shutdown());
        drop(log);
        writer.join().unwrap();
    }

    // Receipts, and memory per entry, on a log of 300,000 entries.
    {
        let tmp = tempfile::tempdir().unwrap();
        let (log, writer) = open(tmp.path());
        // RSS is measured between 100,000 and 300,000 entries, so the runtime's and the
        // allocator's fixed costs cancel out.
        append_n(&rt, &log, 99_999);
        let rss_before = rss_bytes();
        let before = log.size();
        let n = 200_000u64;
        let cpu_before = cpu_seconds();
        let wall = append_n(&rt, &log, n - 1);
        let cpu = cpu_seconds() - cpu_before;
        eprintln!(
            "append cost: {} entries in {:.2} s wall ({:.0}/s), {:.2} s CPU = {:.2} µs CPU/entry \
             (ceiling on 2 idle cores: {:.0}/s)",
            n - 1,
            wall.as_secs_f64(),
            (n - 1) as f64 / wall.as_secs_f64(),
            cpu,
            cpu * 1e6 / (n - 1) as f64,
            2.0 * (n - 1) as f64 / cpu
        );
        let size = log.size();
        let rss_after = rss_bytes();
        eprintln!(
            "memory: {} entries; structures {} B = {:.1} B/entry; RSS grew {} B over the last \
             {} entries = {:.1} B/entry",
            size,
            log.memory_bytes(),
            log.memory_bytes() as f64 / size as f64,
            rss_after.saturating_sub(rss_before),
            size - before,
            rss_after.saturating_sub(rss_before) as f64 / (size - before) as f64
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut g = c.benchmark_group("receipt");
        g.throughput(Throughput::Elements(1));
        g.bench_function("random_index", |b| {
            b.iter_batched(
                || rng.gen_range(0..size),
                |i| log.receipt(i).unwrap(),
                BatchSize::SmallInput,
            )
        });
        g.finish();
        rt.block_on(log.shutdown());
        drop(log);
        writer.join().unwrap();
    }
}

criterion_group!(log_benches, benches);
criterion_main!(log_benches);
