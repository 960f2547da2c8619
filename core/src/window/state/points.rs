//! A vehicle's retained samples, compact: only what a later sample next to one needs (its
//! time, sequence, status and counters), each stored as varint deltas from the one before.
//! At 1 Hz a point takes about 5 bytes instead of a 72-byte sample.

use serde::{Deserialize, Serialize};

use super::Sample;
use crate::telemetry::{km_to_m, kwh_to_wh, TelemetryEvent, VehicleStatus};
use crate::wire::{get_varint, put_varint, unzigzag, zigzag};

/// What the kernel keeps of a counted sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Point {
    pub ts: i64,
    pub seq: i64,
    pub status: VehicleStatus,
    pub odometer_m: i64,
    pub energy_wh: i64,
}

impl Point {
    /// The base the first point of a vehicle that never had an anchor is encoded against.
    const ZERO: Point = Point {
        ts: 0,
        seq: 0,
        status: VehicleStatus::Offline,
        odometer_m: 0,
        energy_wh: 0,
    };

    pub fn of(s: &Sample) -> Point {
        Point {
            ts: s.ts,
            seq: s.seq,
            status: s.status,
            odometer_m: s.odometer_m,
            energy_wh: s.energy_wh,
        }
    }

    /// The point of an event, with the same conversions as [`Sample::from_event`].
    pub fn of_event(e: &TelemetryEvent) -> Point {
        Point {
            ts: e.ts_ms,
            seq: e.seq,
            status: e.status,
            odometer_m: km_to_m(e.odometer_km),
            energy_wh: kwh_to_wh(e.energy_used_kwh),
        }
    }

    pub fn key(&self) -> (i64, i64) {
        (self.ts, self.seq)
    }
}

/// A varint of up to 67 bits: a sequence delta with the status in its low three bits.
fn put_varint_wide(out: &mut Vec<u8>, mut v: u128) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint_wide(bytes: &[u8], at: &mut usize) -> u128 {
    let (mut v, mut shift) = (0u128, 0);
    loop {
        let b = bytes[*at];
        *at += 1;
        v |= u128::from(b & 0x7f) << shift;
        if b < 0x80 {
            return v;
        }
        shift += 7;
    }
}

/// Appends `p` encoded against `prev` (wrapping deltas, so every i64 round-trips).
fn encode(out: &mut Vec<u8>, prev: &Point, p: &Point) {
    let seq_status = (u128::from(zigzag(p.seq.wrapping_sub(prev.seq))) << 3) | p.status as u128;
    put_varint_wide(out, seq_status);
    put_varint(out, zigzag(p.ts.wrapping_sub(prev.ts)));
    put_varint(out, zigzag(p.odometer_m.wrapping_sub(prev.odometer_m)));
    put_varint(out, zigzag(p.energy_wh.wrapping_sub(prev.energy_wh)));
}

fn decode(bytes: &[u8], at: &mut usize, prev: &Point) -> Point {
    let seq_status = get_varint_wide(bytes, at);
    let status = VehicleStatus::ALL[(seq_status & 7) as usize];
    let seq = prev.seq.wrapping_add(unzigzag((seq_status >> 3) as u64));
    let mut next = |base: i64| base.wrapping_add(unzigzag(get_varint(bytes, at)));
    Point {
        ts: next(prev.ts),
        seq,
        status,
        odometer_m: next(prev.odometer_m),
        energy_wh: next(prev.energy_wh),
    }
}

/// Where a key falls among the points.
pub(super) enum Place {
    /// Already there.
    Present,
    /// Between `prev` (the base when `None` and no point is before) and `next`; `at` and
    /// `next_end` are the byte range of `next`'s encoding.
    Between {
        prev: Option<Point>,
        next: Option<Point>,
        at: usize,
        next_end: usize,
    },
}

/// Sorted points, each encoded against the one before; the first against the track's anchor
/// (or [`Point::ZERO`]), which the caller passes as `base`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Points {
    bytes: Vec<u8>,
    len: u32,
}

impl Points {
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
    }

    fn base(anchor: Option<&Point>) -> Point {
        anchor.copied().unwrap_or(Point::ZERO)
    }

    /// The points in order.
    pub fn iter(&self, anchor: Option<&Point>) -> impl Iterator<Item = Point> + '_ {
        let mut prev = Self::base(anchor);
        let mut at = 0;
        std::iter::from_fn(move || {
            (at < self.bytes.len()).then(|| {
                prev = decode(&self.bytes, &mut at, &prev);
                prev
            })
        })
    }

    /// Appends `p`, newer than every point; `last` is the newest point (or the anchor).
    pub fn push(&mut self, last: Option<&Point>, p: &Point) {
        if self.bytes.capacity() - self.bytes.len() < 16 {
            // Grow by an eighth (at least 64 bytes), not by doubling: a reporting vehicle's
            // buffer stays within a few percent of what it holds.
            self.bytes.reserve_exact((self.bytes.len() / 8).max(64));
        }
        encode(&mut self.bytes, &Self::base(last), p);
        self.len += 1;
    }

    /// Where `key` falls; `anchor` is older than every key asked for.
    pub fn place(&self, anchor: Option<&Point>, key: (i64, i64)) -> Place {
        let mut prev: Option<Point> = anchor.copied();
        let mut at = 0;
        while at < self.bytes.len() {
            let start = at;
            let p = decode(&self.bytes, &mut at, &Self::base(prev.as_ref()));
            if p.key() == key {
                return Place::Present;
            }
            if p.key() > key {
                return Place::Between {
                    prev,
                    next: Some(p),
                    at: start,
                    next_end: at,
                };
            }
            prev = Some(p);
        }
        Place::Between {
            prev,
            next: None,
            at: self.bytes.len(),
            next_end: self.bytes.len(),
        }
    }

    /// Inserts `p` at a place found by [`Points::place`] (nothing changed since).
    pub fn insert(&mut self, place: &Place, p: &Point) {
        let Place::Between {
            prev,
            next,
            at,
            next_end,
        } = place
        else {
            return;
        };
        let mut enc = Vec::with_capacity(16);
        encode(&mut enc, &Self::base(prev.as_ref()), p);
        if let Some(n) = next {
            encode(&mut enc, p, n);
        }
        self.bytes.splice(*at..*next_end, enc);
        self.len += 1;
    }

    /// Drops the points older than `floor` and returns the newest of them (the new anchor),
    /// or `None` when none is older. The first kept point is re-encoded against it.
    pub fn drop_before(&mut self, anchor: Option<&Point>, floor: i64) -> Option<Point> {
        let mut prev = anchor.copied();
        let mut dropped = None;
        let mut at = 0;
        let mut n = 0;
        while at < self.bytes.len() {
            let p = decode(&self.bytes, &mut at, &Self::base(prev.as_ref()));
            if p.ts >= floor {
                if n > 0 {
                    let mut enc = Vec::with_capacity(16);
                    encode(&mut enc, &Self::base(dropped.as_ref()), &p);
                    self.bytes.splice(..at, enc);
                    self.len -= n;
                }
                return dropped;
            }
            prev = Some(p);
            dropped = Some(p);
            n += 1;
        }
        if dropped.is_some() {
            self.bytes = Vec::new();
            self.len = 0;
        }
        dropped
    }

    /// Releases spare capacity when it is more than the points need several times over.
    pub fn trim(&mut self) {
        if self.bytes.capacity() > 4 * self.bytes.len().max(32) {
            self.bytes.shrink_to(2 * self.bytes.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn point(rng: &mut impl Rng, ts: i64) -> Point {
        Point {
            ts,
            seq: rng.gen(),
            status: VehicleStatus::ALL[rng.gen_range(0..7)],
            odometer_m: if rng.gen_bool(0.1) {
                rng.gen()
            } else {
                rng.gen_range(0..1_000)
            },
            energy_wh: rng.gen(),
        }
    }

    /// Random points inserted anywhere and dropped from the front read back as a sorted list
    /// kept beside them; extreme values round-trip.
    #[test]
    fn points_match_a_plain_sorted_list() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..50 {
            let mut pts = Points::default();
            let mut anchor: Option<Point> = None;
            let mut plain: Vec<Point> = vec![];
            let mut floor = i64::MIN;
            for _ in 0..300 {
                let ts = floor.max(-5_000) + rng.gen_range(0..10_000);
                let p = point(&mut rng, ts);
                let last = plain.last().copied().or(anchor);
                if last.is_none_or(|l| l.key() < p.key()) {
                    pts.push(last.as_ref(), &p);
                    plain.push(p);
                } else if anchor.is_none_or(|a| a.key() < p.key()) {
                    let place = pts.place(anchor.as_ref(), p.key());
                    let present = plain.iter().any(|q| q.key() == p.key());
                    assert_eq!(matches!(place, Place::Present), present);
                    if !present {
                        pts.insert(&place, &p);
                        let i = plain.partition_point(|q| q.key() < p.key());
                        plain.insert(i, p);
                    }
                }
                if rng.gen_bool(0.05) && !plain.is_empty() {
                    floor = plain[rng.gen_range(0..plain.len())].ts;
                    let i = plain.partition_point(|q| q.ts < floor);
                    let want = (i > 0).then(|| plain[i - 1]);
                    let got = pts.drop_before(anchor.as_ref(), floor);
                    assert_eq!(got, want);
                    if let Some(a) = want {
                        anchor = Some(a);
                    }
                    plain.drain(..i);
                }
                assert_eq!(pts.iter(anchor.as_ref()).collect::<Vec<_>>(), plain);
                assert_eq!(pts.len(), plain.len());
            }
        }
    }
}
