//! Pre-signing the voters' ballots, so the run measures the server and not the client's
//! signing. Built on `urna::ballot::keys` (the same client-side code the tests use).

use std::io::BufRead;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rand::RngCore;
use urna::ballot::keys::{VoterKeyRecord, VoterSecret};

/// Loads `voters.jsonl` (`urna roll generate --keys`).
pub fn load_voters(path: &Path, max: usize) -> anyhow::Result<Vec<VoterSecret>> {
    let file = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        if out.len() >= max {
            break;
        }
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let rec: VoterKeyRecord = serde_json::from_str(&line)
            .map_err(|e| anyhow::anyhow!("{} line {}: {e}", path.display(), n + 1))?;
        let secret = VoterSecret::from_record(&rec)
            .map_err(|e| anyhow::anyhow!("{} line {}: {e}", path.display(), n + 1))?;
        out.push(secret);
    }
    anyhow::ensure!(!out.is_empty(), "{}: no voters", path.display());
    Ok(out)
}

/// The first `seq` of this run. Each run starts above every earlier run's seqs (milliseconds
/// since the epoch × 1000, so up to 1000 revotes per voter per millisecond between runs),
/// which lets a run be repeated against the same log under revote `last` without its
/// ballots being refused as stale. Stays below the protocol's 2^53 − 1 until the year 2255.
pub fn seq_base() -> u64 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    ms * 1000
}

/// Signs `total` ballots spread over `voters`, split into one ordered list per connection.
///
/// A voter's ballots all go to the same connection, in rising `seq`: on separate connections
/// a later revote could overtake an earlier one and turn it into a (correct) `stale_seq`.
/// Ballot `k` belongs to voter `k % V`, round `k / V`.
pub fn presign(
    voters: &[&VoterSecret],
    election: &str,
    total: usize,
    connections: usize,
    payload_bytes: usize,
    seq_base: u64,
    seed: u64,
) -> Vec<Vec<Bytes>> {
    let v = voters.len();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mut lists: Vec<Vec<Bytes>> = vec![Vec::new(); connections];
    std::thread::scope(|scope| {
        let mut handles = Vec::new();
        for t in 0..threads {
            handles.push(scope.spawn(move || {
                let mut payload = vec![0u8; payload_bytes];
                let mut mine = Vec::new();
                for c in (t..connections).step_by(threads) {
                    // One generator per connection, not per thread: the payloads do not
                    // depend on how many cores signed them.
                    let mut rng = crate::seed::rng(seed, "payload", c as u64);
                    let mut list = Vec::new();
                    for voter in (c..v).step_by(connections) {
                        let rounds = total / v + usize::from(voter < total % v);
                        for round in 0..rounds {
                            rng.fill_bytes(&mut payload);
                            let seq = seq_base + round as u64 + 1;
                            let body = voters[voter].sign_submission(election, seq, &payload);
                            list.push(Bytes::from(body));
                        }
                    }
                    mine.push((c, list));
                }
                mine
            }));
        }
        for h in handles {
            // A signing thread only panics on a bug in this module: surface it.
            for (c, list) in h.join().expect("signing thread panicked") {
                lists[c] = list;
            }
        }
    });
    lists
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ballot_is_signed_once_and_each_voter_stays_on_one_connection_in_seq_order() {
        let mut rng = rand::thread_rng();
        let owned: Vec<VoterSecret> = (0..7)
            .map(|_| VoterSecret::generate_ed25519(&mut rng))
            .collect();
        let voters: Vec<&VoterSecret> = owned.iter().collect();
        let lists = presign(&voters, "demo-2026", 30, 3, 16, 100, 9);
        assert_eq!(lists, presign(&voters, "demo-2026", 30, 3, 16, 100, 9));
        assert_ne!(lists, presign(&voters, "demo-2026", 30, 3, 16, 100, 10));
        assert_eq!(lists.iter().map(Vec::len).sum::<usize>(), 30);
        for list in &lists {
            let mut last: std::collections::HashMap<String, u64> = Default::default();
            for body in list {
                let v: serde_json::Value = serde_json::from_slice(body).unwrap();
                let voter = v["voter"].as_str().unwrap().to_owned();
                let seq = v["seq"].as_u64().unwrap();
                assert!(seq > *last.get(&voter).unwrap_or(&100));
                last.insert(voter, seq);
            }
        }
    }
}
