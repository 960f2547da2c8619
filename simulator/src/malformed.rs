//! Payloads that are not valid Confluent-framed Avro for `fleet.telemetry.v1`.
//!
//! To make a realistic truncated payload we need a real encoding first, so this module carries
//! a minimal Avro binary encoder for the telemetry record (field order of
//! `schemas/avro/fleet.telemetry.v1.avsc`). It is private: the lead's producer owns real encoding.

use atlasmesh_core::{TelemetryEvent, VehicleStatus};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

fn put_long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    loop {
        let b = (z & 0x7f) as u8;
        z >>= 7;
        if z == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_long(out, s.len() as i64);
    out.extend_from_slice(s.as_bytes());
}

fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => put_long(out, 0),
        Some(s) => {
            put_long(out, 1);
            put_str(out, s);
        }
    }
}

/// Avro binary encoding of the record body (no framing).
pub(crate) fn avro_body(ev: &TelemetryEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(192);
    put_str(&mut out, &ev.event_id);
    put_str(&mut out, &ev.fleet_id);
    put_str(&mut out, &ev.vehicle_id);
    put_long(&mut out, ev.ts_ms);
    put_long(&mut out, ev.seq);
    put_f64(&mut out, ev.lat);
    put_f64(&mut out, ev.lon);
    put_f64(&mut out, ev.speed_kph);
    put_f64(&mut out, ev.odometer_km);
    put_f64(&mut out, ev.energy_pct);
    put_f64(&mut out, ev.energy_used_kwh);
    let idx = VehicleStatus::ALL
        .iter()
        .position(|s| *s == ev.status)
        .unwrap_or(0);
    put_long(&mut out, idx as i64);
    put_opt_str(&mut out, ev.mission_id.as_deref());
    put_opt_str(&mut out, ev.zone_id.as_deref());
    put_f64(&mut out, ev.payload_kg);
    if !ev.fault_codes.is_empty() {
        put_long(&mut out, ev.fault_codes.len() as i64);
        for c in &ev.fault_codes {
            put_str(&mut out, c);
        }
    }
    put_long(&mut out, 0);
    out
}

/// Confluent wire format: magic 0, schema id (big-endian u32), Avro body.
pub(crate) fn confluent_frame(schema_id: u32, ev: &TelemetryEvent) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend(avro_body(ev));
    out
}

pub(crate) const WHY_RANDOM: &str = "random bytes";
pub(crate) const WHY_MAGIC: &str = "wrong magic byte";
pub(crate) const WHY_TRUNCATED: &str = "truncated avro body";
pub(crate) const WHY_JSON: &str = "json instead of avro";

/// Bytes that no correct decoder accepts, derived from the sample `ev` that was lost.
pub(crate) fn malformed(
    rng: &mut ChaCha8Rng,
    schema_id: u32,
    ev: &TelemetryEvent,
) -> (Vec<u8>, &'static str) {
    match rng.gen_range(0..4) {
        0 => {
            let len = rng.gen_range(1..=64);
            let mut b: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            // A zero first byte could look like a Confluent header; never emit one.
            b[0] = rng.gen_range(1..=255);
            (b, WHY_RANDOM)
        }
        1 => {
            let mut b = confluent_frame(schema_id, ev);
            b[0] = rng.gen_range(1..=255);
            (b, WHY_MAGIC)
        }
        2 => {
            let full = confluent_frame(schema_id, ev);
            // Keep the header and at most 60% of the frame: the doubles are always missing.
            let keep = rng.gen_range(5..=(full.len() * 3 / 5).max(5));
            (full[..keep].to_vec(), WHY_TRUNCATED)
        }
        _ => (
            serde_json::to_vec(ev).expect("telemetry event serializes to JSON"),
            WHY_JSON,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zigzag_varints() {
        let enc = |n| {
            let mut v = vec![];
            put_long(&mut v, n);
            v
        };
        assert_eq!(enc(0), vec![0]);
        assert_eq!(enc(-1), vec![1]);
        assert_eq!(enc(1), vec![2]);
        assert_eq!(enc(-64), vec![0x7f]);
        assert_eq!(enc(64), vec![0x80, 0x01]);
        assert_eq!(enc(i64::MAX).len(), 10);
    }
}
