//! Token buckets, per caller (keyed by [`super::Caller::actor`]) and per client address
//! ([`crate::limits`]).
//!
//! Each key owns a bucket holding up to `burst`
//! tokens that refills at `per_s` tokens per second; a request takes one token or is refused with
//! the time until the next token. A bucket idle long enough to have refilled completely is
//! indistinguishable from a new one, so such buckets are evicted on a periodic sweep: memory is
//! bounded by the callers active within the last `burst / per_s` seconds.
//!
//! The clock is injected (`*_at(.., now)`) so the arithmetic is tested without sleeping.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often idle (full) buckets are swept out.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Token buckets keyed by caller. `per_s == 0` disables limiting.
#[derive(Debug)]
pub struct RateLimiter {
    per_s: f64,
    burst: f64,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    buckets: HashMap<String, Bucket>,
    last_sweep: Option<Instant>,
}

impl RateLimiter {
    /// `per_s` tokens per second, at most `burst` (at least 1) at once.
    pub fn new(per_s: u32, burst: u32) -> RateLimiter {
        RateLimiter {
            per_s: f64::from(per_s),
            burst: f64::from(burst.max(1)),
            inner: Mutex::new(Inner {
                buckets: HashMap::new(),
                last_sweep: None,
            }),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.per_s > 0.0
    }

    /// Takes one token of `key`'s bucket now; `Err(wait)` when empty.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    /// Takes one token of `key`'s bucket at `now`; `Err(wait)` until the next token when empty.
    pub fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        self.token_at(key, now, true)
    }

    /// Whether `key`'s bucket holds a token at `now`, without taking it; `Err(wait)` until the
    /// next token when empty. A key never seen has a full bucket (and gets none yet).
    pub fn peek_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        self.token_at(key, now, false)
    }

    fn token_at(&self, key: &str, now: Instant, take: bool) -> Result<(), Duration> {
        if !self.is_enabled() {
            return Ok(());
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.sweep(now, self.full_after());
        let (per_s, burst) = (self.per_s, self.burst);
        if !inner.buckets.contains_key(key) {
            if !take {
                return Ok(());
            }
            let fresh = Bucket {
                tokens: burst,
                updated: now,
            };
            inner.buckets.insert(key.to_string(), fresh);
        }
        let bucket = inner.buckets.get_mut(key).expect("inserted above");
        // A clock that went backwards (injected instants) refills nothing.
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_s).min(burst);
        bucket.updated = bucket.updated.max(now);
        if bucket.tokens >= 1.0 {
            if take {
                bucket.tokens -= 1.0;
            }
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_s))
        }
    }

    /// Buckets currently held (for tests and gauges).
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .buckets
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Time an untouched empty bucket needs to be full again.
    fn full_after(&self) -> Duration {
        Duration::from_secs_f64(self.burst / self.per_s)
    }
}

impl Inner {
    fn sweep(&mut self, now: Instant, full_after: Duration) {
        match self.last_sweep {
            None => self.last_sweep = Some(now),
            Some(last) if now.saturating_duration_since(last) >= SWEEP_INTERVAL => {
                self.last_sweep = Some(now);
                self.buckets
                    .retain(|_, b| now.saturating_duration_since(b.updated) < full_after);
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn burst_then_refill_at_the_rate() {
        let rl = RateLimiter::new(10, 3);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(rl.check_at("a", t0), Ok(()));
        }
        // Empty: the next token arrives after 1/10 s.
        let wait = rl.check_at("a", t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        // 50 ms later half a token: still refused, 50 ms to go.
        let wait = rl.check_at("a", t0 + ms(50)).unwrap_err();
        assert!((wait.as_secs_f64() - 0.05).abs() < 1e-9, "{wait:?}");
        assert_eq!(rl.check_at("a", t0 + ms(100)), Ok(()));
        assert!(rl.check_at("a", t0 + ms(100)).is_err());
        // A long pause refills to the burst, never beyond it.
        let t1 = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(rl.check_at("a", t1), Ok(()));
        }
        assert!(rl.check_at("a", t1).is_err());
    }

    #[test]
    fn callers_have_separate_buckets() {
        let rl = RateLimiter::new(1, 1);
        let t0 = Instant::now();
        assert_eq!(rl.check_at("a", t0), Ok(()));
        assert!(rl.check_at("a", t0).is_err());
        assert_eq!(rl.check_at("b", t0), Ok(()));
        assert!(rl.check_at("b", t0).is_err());
    }

    #[test]
    fn sustained_rate_matches_configuration() {
        // 5/s with burst 5 over 10 s of requests every 10 ms: 5 + 10 * 5 admitted.
        let rl = RateLimiter::new(5, 5);
        let t0 = Instant::now();
        let admitted = (0..=1000)
            .filter(|i| rl.check_at("a", t0 + ms(i * 10)).is_ok())
            .count();
        assert_eq!(admitted, 55);
    }

    #[test]
    fn peeking_takes_nothing() {
        let rl = RateLimiter::new(1, 2);
        let t0 = Instant::now();
        assert_eq!(rl.peek_at("a", t0), Ok(()));
        assert!(rl.is_empty(), "a peek creates no bucket");
        rl.check_at("a", t0).unwrap();
        for _ in 0..5 {
            assert_eq!(rl.peek_at("a", t0), Ok(()));
        }
        rl.check_at("a", t0).unwrap();
        let wait = rl.peek_at("a", t0).unwrap_err();
        assert!((wait.as_secs_f64() - 1.0).abs() < 1e-9, "{wait:?}");
        assert_eq!(rl.peek_at("a", t0 + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn zero_rate_disables_limiting() {
        let rl = RateLimiter::new(0, 0);
        let t0 = Instant::now();
        assert!((0..10_000).all(|_| rl.check_at("a", t0).is_ok()));
        assert!(rl.is_empty());
    }

    #[test]
    fn clock_going_backwards_refills_nothing() {
        let rl = RateLimiter::new(1, 1);
        let t0 = Instant::now() + Duration::from_secs(10);
        assert_eq!(rl.check_at("a", t0), Ok(()));
        assert!(rl.check_at("a", t0 - Duration::from_secs(5)).is_err());
        assert!(rl.check_at("a", t0).is_err());
        assert_eq!(rl.check_at("a", t0 + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn idle_full_buckets_are_evicted() {
        // Full again after 2 s (burst 4 at 2/s).
        let rl = RateLimiter::new(2, 4);
        let t0 = Instant::now();
        for i in 0..100 {
            rl.check_at(&format!("caller-{i}"), t0).unwrap();
        }
        assert_eq!(rl.len(), 100);
        // One caller stays active; the sweep after SWEEP_INTERVAL drops the idle ones.
        let later = t0 + SWEEP_INTERVAL;
        rl.check_at("caller-0", later - ms(1)).unwrap();
        rl.check_at("caller-0", later).unwrap();
        assert_eq!(rl.len(), 1);
        // An evicted caller starts again with a full bucket.
        for _ in 0..4 {
            rl.check_at("caller-7", later).unwrap();
        }
        assert!(rl.check_at("caller-7", later).is_err());
    }
}
