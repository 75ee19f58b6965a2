//! The SCIM request rate: a token bucket per SCIM token. A part of the application state that
//! knows nothing of it nor of HTTP; the `scim` edge charges it (`ScimClient`, Bulk).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::sync::Cache;
use uuid::Uuid;

struct Bucket {
    tokens: f64,
    refilled: Instant,
}

/// A token bucket per SCIM token: `per_second` sustained, bursts up to twice that. Per
/// instance: N instances allow N times the rate.
pub struct ScimRateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Cache<Uuid, Arc<Mutex<Bucket>>>,
}

impl ScimRateLimiter {
    /// `per_second == 0` disables limiting.
    pub fn new(per_second: u32) -> Self {
        let per_second = f64::from(per_second);
        ScimRateLimiter {
            per_second,
            burst: (per_second * 2.0).max(1.0),
            buckets: Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
        }
    }

    /// Takes one request's worth; on refusal, how long until one is available.
    pub fn take(&self, token: Uuid) -> Result<(), Duration> {
        self.take_at(token, 1, Instant::now())
    }

    /// Takes `n` requests' worth at once (a Bulk: one per operation), or nothing. It is granted
    /// when the bucket holds all `n` — or, for more than a whole burst, when the bucket is full,
    /// so a maximal Bulk is possible at all; the excess is then owed, and the token waits until
    /// it is repaid, which keeps the sustained rate whatever the batch size. On refusal, how
    /// long until the grant would be possible.
    pub fn take_n(&self, token: Uuid, n: u32) -> Result<(), Duration> {
        self.take_at(token, n, Instant::now())
    }

    fn take_at(&self, token: Uuid, n: u32, now: Instant) -> Result<(), Duration> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let bucket = self.buckets.get_with(token, || {
            Arc::new(Mutex::new(Bucket {
                tokens: self.burst,
                refilled: now,
            }))
        });
        let mut b = bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let elapsed = now.saturating_duration_since(b.refilled).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_second).min(self.burst);
        b.refilled = now;
        let n = f64::from(n);
        let needed = n.min(self.burst);
        if b.tokens >= needed {
            b.tokens -= n;
            Ok(())
        } else {
            Err(Duration::from_secs_f64(
                (needed - b.tokens) / self.per_second,
            ))
        }
    }
}

/// E-mail sign-in links sent per address: at most `per_window` in `window`, per instance. An
/// address over it is answered 429 whether or not anyone has it, so the limit tells nothing.
pub struct SignInMailLimiter {
    per_window: u32,
    sent: Cache<String, Arc<std::sync::atomic::AtomicU32>>,
}

impl SignInMailLimiter {
    pub fn new(per_window: u32, window: Duration) -> Self {
        SignInMailLimiter {
            per_window,
            sent: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(window)
                .build(),
        }
    }

    /// Counts one request for `address` (normalized); `false` once over the limit.
    pub fn allow(&self, address: &str) -> bool {
        let count = self
            .sent
            .get_with(address.to_owned(), || Arc::new(0.into()))
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        count < self.per_window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_gets_its_burst_then_the_sustained_rate() {
        let limiter = ScimRateLimiter::new(10);
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let t0 = Instant::now();
        for _ in 0..20 {
            assert!(limiter.take_at(a, 1, t0).is_ok());
        }
        let wait = limiter.take_at(a, 1, t0).expect_err("burst used up");
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(100));
        assert!(
            limiter.take_at(b, 1, t0).is_ok(),
            "other tokens have their own bucket"
        );
        assert!(
            limiter
                .take_at(a, 1, t0 + Duration::from_millis(100))
                .is_ok(),
            "one more after 1/rate"
        );
        assert!(
            limiter
                .take_at(a, 1, t0 + Duration::from_millis(100))
                .is_err()
        );
    }

    #[test]
    fn a_batch_costs_one_per_item_and_is_granted_whole_or_not_at_all() {
        let limiter = ScimRateLimiter::new(10); // burst 20
        let t = Uuid::from_u128(1);
        let t0 = Instant::now();
        assert!(limiter.take_at(t, 15, t0).is_ok());
        let wait = limiter.take_at(t, 6, t0).expect_err("5 left, 6 asked");
        assert_eq!(wait, Duration::from_millis(100), "one more token at 10/s");
        assert!(
            limiter.take_at(t, 5, t0).is_ok(),
            "nothing was taken by the refusal"
        );
        assert!(limiter.take_at(t, 1, t0).is_err());
    }

    #[test]
    fn a_batch_larger_than_the_burst_needs_a_full_bucket_and_leaves_a_debt() {
        let limiter = ScimRateLimiter::new(10); // burst 20
        let t = Uuid::from_u128(1);
        let t0 = Instant::now();
        assert!(limiter.take_at(t, 1, t0).is_ok());
        let wait = limiter.take_at(t, 1000, t0).expect_err("not full");
        assert_eq!(wait, Duration::from_millis(100));
        let t1 = t0 + Duration::from_millis(100);
        assert!(limiter.take_at(t, 1000, t1).is_ok(), "full: granted");
        // 20 in the bucket, 1000 taken: 980 owed, so 98.1 s at 10/s before the next one.
        let wait = limiter.take_at(t, 1, t1).expect_err("in debt");
        assert_eq!(wait.as_secs(), 98);
        assert!(limiter.take_at(t, 1, t1 + Duration::from_secs(90)).is_err());
        assert!(limiter.take_at(t, 1, t1 + Duration::from_secs(99)).is_ok());
    }

    #[test]
    fn zero_disables_limiting() {
        let limiter = ScimRateLimiter::new(0);
        let t0 = Instant::now();
        assert!((0..10_000).all(|_| limiter.take_at(Uuid::nil(), 1, t0).is_ok()));
        assert!(limiter.take_at(Uuid::nil(), 1000, t0).is_ok());
    }
}
