//! The log's tree (tlog_tiles stored hashes) agrees with an RFC 9162 reference written from
//! the RFC, and its proofs pass the independent verifier in `urna::audit::proof`.

mod common;

use common::{consistency, leaf, mth, path, H};
use rand::{Rng, SeedableRng};
use urna::audit::proof::{verify_consistency, verify_inclusion};
use urna::log::tree::HashStore;
use urna::log::Hash;

fn entry(i: u64) -> Vec<u8> {
    format!("entry {i}").into_bytes()
}

fn hs(v: Vec<Hash>) -> Vec<H> {
    v.into_iter().map(|h| h.0).collect()
}

fn check_size(t: &HashStore, leaves: &[H], n: usize, rng: &mut impl Rng, full_paths: bool) {
    let root = mth(&leaves[..n]);
    assert_eq!(t.root(n as u64).unwrap().0, root, "root at size {n}");
    let mut idx = vec![0, n - 1, n / 2, rng.gen_range(0..n)];
    idx.dedup();
    for m in idx {
        let got = hs(t.inclusion(m as u64, n as u64).unwrap());
        if full_paths {
            assert_eq!(got, path(m, &leaves[..n]), "inclusion {m} in {n}");
        }
        assert!(verify_inclusion(
            m as u64, n as u64, &leaves[m], &got, &root
        ));
        // A proof for another index or another leaf must fail.
        let other = (m + 1) % n;
        if other != m {
            assert!(
                !verify_inclusion(other as u64, n as u64, &leaves[m], &got, &root)
                    || leaves[other] == leaves[m]
            );
        }
    }
    let mut olds = vec![1, n, n.div_ceil(2), rng.gen_range(1..=n)];
    olds.dedup();
    for m in olds {
        let got = hs(t.consistency(m as u64, n as u64).unwrap());
        if full_paths {
            assert_eq!(got, consistency(m, &leaves[..n]), "consistency {m} -> {n}");
        }
        let old_root = mth(&leaves[..m]);
        assert!(
            verify_consistency(m as u64, n as u64, &old_root, &root, &got),
            "{m} -> {n}"
        );
        if m < n {
            let wrong = mth(&leaves[1..m.max(2)]);
            assert!(!verify_consistency(m as u64, n as u64, &wrong, &root, &got));
        }
    }
}

#[test]
fn roots_and_proofs_match_rfc9162_for_every_size_up_to_1000() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut t = HashStore::new();
    let mut leaves = Vec::new();
    for n in 1..=1000u64 {
        let e = entry(n - 1);
        t.append(tlog_tiles::record_hash(&e));
        leaves.push(leaf(&e));
        check_size(&t, &leaves, n as usize, &mut rng, true);
    }
}

#[test]
fn every_inclusion_and_consistency_proof_verifies_up_to_size_64() {
    let mut t = HashStore::new();
    let mut leaves = Vec::new();
    for n in 1..=64usize {
        let e = entry(n as u64);
        t.append(tlog_tiles::record_hash(&e));
        leaves.push(leaf(&e));
        let root = mth(&leaves);
        for m in 0..n {
            let p = hs(t.inclusion(m as u64, n as u64).unwrap());
            assert_eq!(p, path(m, &leaves));
            assert!(verify_inclusion(m as u64, n as u64, &leaves[m], &p, &root));
        }
        for m in 1..=n {
            let p = hs(t.consistency(m as u64, n as u64).unwrap());
            assert_eq!(p, consistency(m, &leaves));
            assert!(verify_consistency(
                m as u64,
                n as u64,
                &mth(&leaves[..m]),
                &root,
                &p
            ));
        }
    }
}

#[test]
fn roots_and_proofs_match_rfc9162_at_random_sizes_up_to_a_million() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let mut sizes: Vec<usize> = (0..8).map(|_| rng.gen_range(1001..=1_000_000)).collect();
    sizes.extend([1 << 16, (1 << 19) + 1, 1_000_000]);
    sizes.sort_unstable();
    sizes.dedup();
    let mut t = HashStore::new();
    let mut leaves: Vec<H> = Vec::with_capacity(1_000_000);
    for n in sizes {
        while leaves.len() < n {
            let e = entry(leaves.len() as u64);
            t.append(tlog_tiles::record_hash(&e));
            leaves.push(leaf(&e));
        }
        check_size(&t, &leaves, n, &mut rng, true);
    }
}
