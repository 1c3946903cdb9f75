//! Writes a large election log as a mirror directory, for measuring `urna audit`: `N`
//! Ed25519 voters (seeded keys, so every run gives the same roll), each with one ballot of a
//! 512-byte payload, in a log made with the log's own code (bundles, every hash tile, a
//! signed checkpoint), plus the roll and the verifier key.
//!
//!     cargo run --release --example audit_log -- /tmp/audit-1m 1000000
//!     /usr/bin/time -v target/release/urna audit --vkey /tmp/audit-1m/log.vkey \
//!         --roll /tmp/audit-1m/roll.txt --dir /tmp/audit-1m/mirror
//!
//! Signing is spread over every core (~20 µs a ballot); the entries are written a bundle at
//! a time, so memory is the tree's hashes (32 bytes an entry), not the entries.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use urna::ballot::{
    encode_entry, parse_submission, verify, Election, Limits, Manifest, RevotePolicy, Roll,
    VoterSecret,
};
use urna::log::note::sign_checkpoint;
use urna::log::tiles::{push_bundle_entry, Resource};
use urna::log::tree::HashStore;
use urna::log::LogKey;

const ELECTION: &str = "bench-2026";

fn voter(i: u64) -> VoterSecret {
    let mut seed = [3u8; 32];
    seed[..8].copy_from_slice(&i.to_be_bytes());
    VoterSecret::ed25519_from_seed(&seed)
}

fn write(dir: &Path, path: String, bytes: &[u8]) {
    let to = dir.join(path);
    std::fs::create_dir_all(to.parent().expect("a tile path has a parent")).unwrap();
    std::fs::write(to, bytes).unwrap();
}

fn main() {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().expect("usage: audit_log <dir> <voters>"));
    let n: u64 = args
        .next()
        .expect("usage: audit_log <dir> <voters>")
        .parse()
        .expect("voters: a number");
    let mirror = out.join("mirror");
    std::fs::create_dir_all(&mirror).unwrap();
    let threads = std::thread::available_parallelism().map_or(2, |p| p.get());

    // The roll, in voter order.
    let mut roll_text = String::with_capacity(n as usize * 52);
    for i in 0..n {
        roll_text.push_str(&voter(i).roll_line());
        roll_text.push('\n');
    }
    std::fs::write(out.join("roll.txt"), &roll_text).unwrap();
    let roll = Roll::parse(roll_text.as_bytes(), roll_text.len() as u64).unwrap();
    drop(roll_text);
    let key_path = out.join("log.key");
    let key = if key_path.exists() {
        LogKey::from_file(&key_path).unwrap()
    } else {
        LogKey::generate_file(&format!("urna.bench/{ELECTION}"), &key_path).unwrap()
    };
    std::fs::write(out.join("log.vkey"), format!("{}\n", key.verifier_key())).unwrap();
    let manifest = Manifest {
        election: Election::new(ELECTION, RevotePolicy::Last, None, None).unwrap(),
        roll_sha256: roll.sha256(),
        log_verifier_key: key.verifier_key().to_owned(),
    }
    .encode()
    .unwrap();

    let size = n + 1;
    let mut store = HashStore::new();
    let payload = vec![0x5au8; 512];
    let mut done = 0u64;
    for bundle_index in 0..size.div_ceil(256) {
        let first = bundle_index * 256;
        let width = (size - first).min(256);
        let bundle_path = mirror.join(
            Resource::Entries {
                index: bundle_index,
                width: width as u32,
            }
            .path(),
        );
        // Resumable: a bundle a previous run wrote (full and whole) is only re-hashed.
        if let Ok(bytes) = std::fs::read(&bundle_path) {
            let mut rest = &bytes[..];
            let mut leaves = Vec::new();
            while let [a, b, tail @ ..] = rest {
                let len = usize::from(u16::from_be_bytes([*a, *b]));
                let Some(e) = tail.get(..len) else { break };
                leaves.push(tlog_tiles::record_hash(e));
                rest = &tail[len..];
            }
            if leaves.len() as u64 == width && rest.is_empty() {
                for l in leaves {
                    store.append(l);
                }
                done += width;
                continue;
            }
        }
        // Sign this bundle's ballots on every core.
        let per = width.div_ceil(threads as u64);
        let parts: Vec<Vec<Vec<u8>>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads as u64)
                .map(|t| {
                    let payload = &payload;
                    let manifest = &manifest;
                    s.spawn(move || {
                        let lo = first + t * per;
                        let hi = (first + (t + 1) * per).min(first + width);
                        (lo..hi)
                            .map(|idx| {
                                if idx == 0 {
                                    return manifest.clone();
                                }
                                let json = voter(idx - 1).sign_submission(ELECTION, 1, payload);
                                let b =
                                    parse_submission(json.as_bytes(), &Limits::default()).unwrap();
                                encode_entry(&verify(b).unwrap(), 1_700_000_000_000 + idx)
                            })
                            .collect()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut bundle = Vec::new();
        for e in parts.iter().flatten() {
            store.append(tlog_tiles::record_hash(e));
            push_bundle_entry(&mut bundle, e);
        }
        write(
            &mirror,
            Resource::Entries {
                index: bundle_index,
                width: width as u32,
            }
            .path(),
            &bundle,
        );
        done += width;
        if bundle_index % 400 == 0 {
            eprint!("\r{done} of {size} entries");
            let _ = std::io::stderr().flush();
        }
    }
    eprintln!("\r{size} entries written");
    for level in 0u8..8 {
        let nodes = size >> (8 * u32::from(level));
        if nodes == 0 {
            break;
        }
        for index in 0..nodes.div_ceil(256) {
            let width = (nodes - index * 256).min(256) as u32;
            let tile = store.tile(level, index, width).unwrap();
            write(
                &mirror,
                Resource::Tile {
                    level,
                    index,
                    width,
                }
                .path(),
                &tile,
            );
        }
    }
    let cp = sign_checkpoint(&key, size, store.root(size).unwrap()).unwrap();
    write(&mirror, "checkpoint".into(), &cp.note);
    println!("{}", out.display());
}
