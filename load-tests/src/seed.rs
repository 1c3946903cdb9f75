//! The run's seed: every random draw of a run (payloads, Poisson gaps, retry jitter, the
//! stranger key of an `unlisted` flood) comes from generators seeded from it, so a run can
//! be replayed draw for draw with `--seed N`. Each consumer gets its own stream, named by
//! the task and what it draws, so adding a task does not shift another task's draws.
//!
//! What the seed cannot fix: the server's and the machine's timing. Two runs of one seed
//! send the same bytes on the same schedule; what comes back may still differ.

use rand::rngs::StdRng;
use rand::SeedableRng;

/// A fresh seed for a run that names none (printed, so the run can be replayed).
pub fn random() -> u64 {
    rand::random()
}

/// The generator for stream `stream` (e.g. `"<task>/payload"`), part `n` of it (a lane, a
/// connection, a voter), of the run seeded with `seed`.
pub fn rng(seed: u64, stream: &str, n: u64) -> StdRng {
    StdRng::seed_from_u64(mix(seed, stream, n))
}

/// A 64-bit seed for stream `stream`, part `n`, of the run's `seed`: FNV-1a over the
/// stream's name, then SplitMix64 finalisers, so nearby inputs give unrelated seeds.
pub fn mix(seed: u64, stream: &str, n: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in stream.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    splitmix(splitmix(seed ^ h) ^ n)
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn one_seed_gives_one_stream_and_streams_differ() {
        let draw = |seed, stream, n| rng(seed, stream, n).next_u64();
        assert_eq!(draw(7, "v/payload", 3), draw(7, "v/payload", 3));
        assert_ne!(draw(7, "v/payload", 3), draw(8, "v/payload", 3));
        assert_ne!(draw(7, "v/payload", 3), draw(7, "v/payload", 4));
        assert_ne!(draw(7, "v/payload", 3), draw(7, "w/payload", 3));
    }
}
