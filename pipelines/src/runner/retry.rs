//! The one retry policy: exponential backoff from `runner.retry_initial_ms`, doubling, capped
//! at `runner.retry_max_ms`; retries stop on a non-retriable error and on shutdown.

use std::time::Duration;

use atlasmesh_core::config::RunnerConfig;
use tokio::sync::watch;

/// How long to wait between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
}

impl RetryPolicy {
    pub fn from_config(cfg: &RunnerConfig) -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_millis(cfg.retry_initial_ms),
            max: Duration::from_millis(cfg.retry_max_ms),
        }
    }

    /// The same policy with its delays capped at `max` (never above its own cap).
    pub fn capped(self, max: Duration) -> RetryPolicy {
        RetryPolicy {
            initial: self.initial.min(max),
            max: self.max.min(max),
        }
    }

    /// A fresh sequence of delays for one operation.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            probed_up: false,
            initial: self.initial.min(self.max),
            next: self.initial.min(self.max),
            max: self.max,
            attempts: 0,
        }
    }
}

/// The delays of one operation's retries, and how many failures it has seen.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// A wait of this operation already ended early on a probe that found the dependency up.
    probed_up: bool,
    initial: Duration,
    next: Duration,
    max: Duration,
    attempts: u32,
}

impl Backoff {
    /// Records a failure and returns how long to wait before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        self.attempts += 1;
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// A probe found the dependency answering again: the next delay starts over from the
    /// initial one (a failure right after is most likely a stale connection, retried soon).
    pub fn probed_up(&mut self) {
        self.next = self.initial;
        self.probed_up = true;
    }

    /// Whether a wait may end on the first probe that finds the dependency up: once per
    /// operation (it failed, so the dependency was down a moment ago); after that only when a
    /// probe saw it down first, so a dependency that answers probes while the operation keeps
    /// failing is retried at the backoff's pace, not the probes'.
    pub fn first_probe_may_end_wait(&self) -> bool {
        !self.probed_up
    }

    /// Failures so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Waits the next delay; false when `shutdown` was requested first (stop retrying).
    pub async fn wait(&mut self, shutdown: &mut watch::Receiver<bool>) -> bool {
        let d = self.next_delay();
        tokio::select! {
            biased;
            _ = requested(shutdown) => false,
            _ = tokio::time::sleep(d) => !*shutdown.borrow(),
        }
    }
}

/// Resolves once `shutdown` is true; never when its sender is gone first.
pub async fn requested(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let p = RetryPolicy::from_config(&RunnerConfig::default());
        let mut b = p.backoff();
        let ms: Vec<u128> = (0..7).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(ms, [200, 400, 800, 1600, 3000, 3000, 3000]);
        assert_eq!(b.attempts(), 7);
        let mut b = p.capped(Duration::from_secs(1)).backoff();
        let ms: Vec<u128> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(ms, [200, 400, 800, 1000]);
        assert!(b.first_probe_may_end_wait());
        b.probed_up();
        assert!(!b.first_probe_may_end_wait());
        assert_eq!(b.next_delay().as_millis(), 200);
        assert_eq!(b.attempts(), 5, "restarting the delays keeps the count");
    }

    #[tokio::test]
    async fn shutdown_stops_the_wait() {
        let (tx, mut rx) = watch::channel(false);
        let mut b = RetryPolicy {
            initial: Duration::from_secs(60),
            max: Duration::from_secs(60),
        }
        .backoff();
        tx.send(true).unwrap();
        assert!(!b.wait(&mut rx).await);
    }
}
