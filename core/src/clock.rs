//! The processing-time clock: the one place the workers and the API read wall time from, and
//! the one parser of instants given as text. Event time never comes from here (it is `ts_ms`
//! of the event).

use std::time::{SystemTime, UNIX_EPOCH};

use chrono::DateTime;

/// The instants accepted from outside, in epoch milliseconds: years 0001 to 9999 (what RFC 3339
/// can write). Every instant parsed here is within them, so arithmetic on it (a default period
/// before `to`, a window's end) cannot overflow.
pub const MIN_INSTANT_MS: i64 = -62_135_596_800_000;
/// See [`MIN_INSTANT_MS`]: 9999-12-31T23:59:59.999Z.
pub const MAX_INSTANT_MS: i64 = 253_402_300_799_999;

fn in_range(ms: i64) -> Option<i64> {
    (MIN_INSTANT_MS..=MAX_INSTANT_MS)
        .contains(&ms)
        .then_some(ms)
}

/// An RFC 3339 instant (`2024-05-01T10:00:00Z`, any offset) in epoch milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    in_range(
        DateTime::parse_from_rfc3339(s.trim())
            .ok()?
            .timestamp_millis(),
    )
}

/// An instant given as RFC 3339 or as integer epoch milliseconds, within
/// [`MIN_INSTANT_MS`]..=[`MAX_INSTANT_MS`]; `None` otherwise (never wrapped or saturated).
pub fn parse_instant(s: &str) -> Option<i64> {
    let t = s.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return in_range(t.parse().ok()?);
    }
    parse_rfc3339(t)
}

/// Milliseconds since the Unix epoch, now (0 if the system clock is before 1970).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The processing clock as [`crate::telemetry::validate`] needs it, read only when an event
/// could be beyond its far-future bound: a reading of the wall clock only grows, so an event
/// within the bound of an earlier reading is within it of now, and only one beyond it needs a
/// fresh reading (for a live stream about once per `max_future_ms`, not once per event). A
/// clock stepped back keeps the earlier, later reading until it is passed again: the bound is
/// looser by the step meanwhile.
#[derive(Debug, Clone, Copy)]
pub struct FutureBoundClock {
    read_ms: i64,
}

impl Default for FutureBoundClock {
    fn default() -> Self {
        FutureBoundClock { read_ms: i64::MIN }
    }
}

impl FutureBoundClock {
    /// The `now_ms` to validate an event at `ts_ms` against.
    pub fn now_for(&mut self, ts_ms: i64, max_future_ms: i64) -> i64 {
        self.now_for_with(ts_ms, max_future_ms, now_ms)
    }

    fn now_for_with(&mut self, ts_ms: i64, max_future_ms: i64, clock: impl FnOnce() -> i64) -> i64 {
        if ts_ms > self.read_ms.saturating_add(max_future_ms) {
            self.read_ms = clock();
        }
        self.read_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_future_bound_reads_the_clock_only_when_an_event_could_be_beyond_it() {
        let max = 300_000;
        let mut wall = 1_700_000_000_000_i64;
        let reads = std::cell::Cell::new(0);
        let mut bound = FutureBoundClock::default();
        let check = |bound: &mut FutureBoundClock, wall: i64, ts: i64| {
            let now = bound.now_for_with(ts, max, || {
                reads.set(reads.get() + 1);
                wall
            });
            // The verdict reading the clock for every event would give.
            assert_eq!(
                ts > now + max,
                ts > wall + max,
                "ts {ts} wall {wall} now {now}"
            );
            assert!(now <= wall);
        };
        check(&mut bound, wall, wall - 5);
        assert_eq!(reads.get(), 1, "the first event reads it");
        // A live stream: the wall clock moves on, events follow it, a minute at a time.
        for _ in 0..4 {
            wall += 60_000;
            check(&mut bound, wall, wall - 5);
        }
        assert_eq!(reads.get(), 1, "within the bound of the first reading");
        // Beyond the old reading's bound but not beyond now's: read again, accepted.
        wall += 60_000;
        check(&mut bound, wall, wall + 1_000);
        assert_eq!(reads.get(), 2);
        // Truly beyond now's bound: read again, rejected; the next ones as well.
        check(&mut bound, wall, wall + max + 1);
        check(&mut bound, wall + 1, wall + 10 * max);
        assert_eq!(reads.get(), 4);
        // Exactly at the bound is within it.
        check(&mut bound, wall + 1, wall + 1 + max);
        assert_eq!(reads.get(), 4, "{bound:?}");
    }

    #[test]
    fn instants_are_bounded_and_never_wrap() {
        assert_eq!(parse_instant("1700000040000"), Some(1_700_000_040_000));
        assert_eq!(
            parse_instant("2023-11-14T23:14:00+01:00"),
            Some(1_700_000_040_000)
        );
        assert_eq!(parse_instant("9223372036854775807"), None);
        assert_eq!(parse_instant("-9223372036854775808"), None);
        assert_eq!(parse_instant("99999999999999999999"), None);
        assert_eq!(parse_instant("253402300799999"), Some(MAX_INSTANT_MS));
        assert_eq!(parse_instant("253402300800000"), None);
        assert_eq!(parse_instant("-62135596800000"), Some(MIN_INSTANT_MS));
        assert_eq!(parse_instant("0001-01-01T00:00:00Z"), Some(MIN_INSTANT_MS));
        assert_eq!(parse_rfc3339("1700000040000"), None);
        assert_eq!(parse_instant("-"), None);
    }

    #[test]
    fn now_is_after_2020() {
        assert!(super::now_ms() > 1_577_836_800_000);
    }
}
