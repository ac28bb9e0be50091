//! When to try a request again, and how long to wait first.

/// What an attempt ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP status came back.
    Status(u16),
    /// No response at all (DNS, refused, reset).
    NetworkError,
}

/// Exponential backoff for idempotent calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Wait before the first retry, ms.
    pub base_ms: u64,
    /// Longest wait, ms.
    pub max_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            base_ms: 100,
            max_ms: 2000,
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1` (0-based `attempt` just failed with `outcome`), or
    /// `None` to give up. Only idempotent calls are retried, on network errors, 429 and 5xx.
    /// `jitter` in [0, 1) spreads clients apart.
    pub fn retry_after(&self, idempotent: bool, attempt: u32, outcome: Outcome, jitter: f64) -> Option<u64> {
        let retryable = match outcome {
            Outcome::NetworkError => true,
            Outcome::Status(s) => s == 429 || (500..=599).contains(&s),
        };
        if !idempotent || !retryable || attempt + 1 >= self.attempts {
            return None;
        }
        let backoff = self.base_ms.saturating_mul(1 << attempt.min(16)).min(self.max_ms);
        Some(backoff / 2 + (backoff as f64 / 2.0 * jitter.clamp(0.0, 1.0)) as u64)
    }
}

/// Poll intervals while waiting for a deployment: quick at first (a local host boots a sandbox
/// in a few milliseconds, and each wait past that is time lost), then backing off to once a
/// second. Against Northflank, whose rollouts take seconds, the quick start costs about ten
/// extra requests in the first 100 ms.
#[derive(Debug, Clone)]
pub struct PollBackoff {
    next_ms: u64,
}

impl Default for PollBackoff {
    fn default() -> Self {
        Self { next_ms: 2 }
    }
}

impl Iterator for PollBackoff {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let now = self.next_ms;
        self.next_ms = (self.next_ms * 3 / 2).max(self.next_ms + 1).min(1000);
        Some(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_retry_on_network_429_and_5xx() {
        let p = RetryPolicy::default();
        assert_eq!(p.retry_after(true, 0, Outcome::NetworkError, 0.0), Some(50));
        assert_eq!(p.retry_after(true, 1, Outcome::Status(503), 0.0), Some(100));
        assert_eq!(p.retry_after(true, 2, Outcome::Status(429), 1.0), Some(400));
        assert_eq!(
            p.retry_after(true, 3, Outcome::Status(503), 0.0),
            None,
            "attempts are capped"
        );
    }

    #[test]
    fn creates_and_client_errors_never_retry() {
        let p = RetryPolicy::default();
        assert_eq!(p.retry_after(false, 0, Outcome::NetworkError, 0.0), None);
        assert_eq!(p.retry_after(false, 0, Outcome::Status(503), 0.0), None);
        assert_eq!(p.retry_after(true, 0, Outcome::Status(404), 0.0), None);
        assert_eq!(p.retry_after(true, 0, Outcome::Status(400), 0.0), None);
    }

    #[test]
    fn waits_are_capped() {
        let p = RetryPolicy {
            attempts: 30,
            base_ms: 100,
            max_ms: 2000,
        };
        assert_eq!(p.retry_after(true, 20, Outcome::NetworkError, 1.0), Some(2000));
    }

    #[test]
    fn polling_starts_fast_and_settles_at_a_second() {
        let waits: Vec<u64> = PollBackoff::default().take(20).collect();
        assert_eq!(&waits[..6], &[2, 3, 4, 6, 9, 13]);
        assert_eq!(*waits.last().unwrap(), 1000);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
    }
}
