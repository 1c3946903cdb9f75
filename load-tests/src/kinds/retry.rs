//! How a legitimate voter treats a refusal: a `429` or `503` says "later", with a
//! `Retry-After`; a voter waits that long, spread by jitter so refused voters do not come
//! back together, and tries again, up to a retry budget. Shared by the kinds whose ballots
//! are legitimate (`voters`, `arrivals`); hostile kinds never retry.

use std::time::Duration;

use rand::Rng;

/// The retry budget and the longest wait a voter accepts.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries of one ballot after 429/503 or a broken connection.
    pub max_retries: u32,
    /// Longest wait for one `Retry-After` (jitter included).
    pub max_wait: Duration,
}

/// `Retry-After` assumed when a 429/503 carries none (RFC 9110 leaves it to the client).
pub const DEFAULT_RETRY_AFTER_S: u64 = 1;

/// Whether an answer with this status asks the client to come back later.
pub fn is_retryable(status: u16) -> bool {
    status == 429 || status == 503
}

impl RetryPolicy {
    /// The wait before the next try of a ballot that got `status` after `retries` retries,
    /// or `None` when the answer is final (not a 429/503) or the budget is spent.
    pub fn wait(
        &self,
        status: u16,
        retry_after_s: Option<u64>,
        retries: u32,
        rng: &mut impl Rng,
    ) -> Option<Duration> {
        if !is_retryable(status) || retries >= self.max_retries {
            return None;
        }
        let told = Duration::from_secs(retry_after_s.unwrap_or(DEFAULT_RETRY_AFTER_S));
        Some(told.mul_f64(rng.gen_range(0.5..1.5)).min(self.max_wait))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_refusal_is_retried_after_its_retry_after_with_jitter_up_to_the_budget() {
        let p = RetryPolicy {
            max_retries: 2,
            max_wait: Duration::from_secs(10),
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for _ in 0..100 {
            let w = p.wait(429, Some(2), 0, &mut rng).unwrap();
            assert!(
                w >= Duration::from_secs(1) && w < Duration::from_secs(3),
                "{w:?}"
            );
        }
        // No Retry-After: one second, jittered.
        let w = p.wait(503, None, 1, &mut rng).unwrap();
        assert!(w >= Duration::from_millis(500) && w < Duration::from_millis(1500));
        // The budget is spent, or the answer is final: no retry.
        assert_eq!(p.wait(429, Some(1), 2, &mut rng), None);
        assert_eq!(p.wait(409, Some(1), 0, &mut rng), None);
        assert_eq!(p.wait(201, None, 0, &mut rng), None);
        // A server asking for an hour gets the voter's patience, no more.
        let short = RetryPolicy {
            max_retries: 1,
            max_wait: Duration::from_millis(300),
        };
        assert_eq!(
            short.wait(429, Some(3600), 0, &mut rng),
            Some(Duration::from_millis(300))
        );
    }
}
