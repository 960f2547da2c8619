//! Redis key layout shared by the writers (pipelines) and the readers (query API).
//!
//! - `<prefix>:fleet:<fleet_id>:vehicles` — HASH vehicle_id → [`encode_latest`]'s binary
//!   [`crate::TelemetryEvent`] (readers take a JSON event as well: the form written before),
//!   the newest sample (by event time) of every vehicle of the fleet. The API's
//!   `/vehicles/{id}/latest` shows it as JSON.
//! - `<prefix>:fleet:<fleet_id>:live` — HASH vehicle_id → [`LiveSample`] (`<ts_ms> <energy_pct>
//!   <status>`), the fields of the same newest sample the fleet's live KPIs use, written beside
//!   the vehicles hash so a KPI read parses ~30 bytes per vehicle instead of a whole event.
//! - `<prefix>:fleet:<fleet_id>:windows` — HASH `<window_start_ms>:<source_partition>` → JSON
//!   [`FleetPartialKpi`], the newest version of each recent closed fleet partial. Readers sum
//!   the partials of a window; the pipeline keeps the newest [`KPI_WINDOWS_KEPT`] windows of a
//!   fleet and deletes every older field, whichever path closed the window.
//! - `<prefix>:fleet:<fleet_id>:window-index` — ZSET source partition → newest window start
//!   among the fleet's kept partials (`ZADD GT`, pruned with them), so a reader finds the
//!   window every partition has reported without listing the windows hash.
//! - `<prefix>:hot-state:telemetry:<partition>` — set once the two above hold everything of
//!   that telemetry partition; when it is missing (Redis restarted empty, or is new) the
//!   pipeline re-publishes the partition's hot state from ClickHouse.

use bincode::Options;
use serde::{Deserialize, Serialize};

use crate::window::Counters;
use crate::{TelemetryEvent, VehicleStatus};

pub const KPI_WINDOWS_KEPT: i64 = 60;

pub fn fleet_vehicles(prefix: &str, fleet_id: &str) -> String {
    format!("{prefix}:fleet:{fleet_id}:vehicles")
}

pub fn fleet_live(prefix: &str, fleet_id: &str) -> String {
    format!("{prefix}:fleet:{fleet_id}:live")
}

pub fn fleet_windows(prefix: &str, fleet_id: &str) -> String {
    format!("{prefix}:fleet:{fleet_id}:windows")
}

pub fn fleet_window_index(prefix: &str, fleet_id: &str) -> String {
    format!("{prefix}:fleet:{fleet_id}:window-index")
}

/// Present while Redis holds the hot state of telemetry partition `partition`; the telemetry
/// pipeline re-publishes that state from ClickHouse when it is missing.
pub fn hot_state_marker(prefix: &str, partition: i32) -> String {
    format!("{prefix}:hot-state:telemetry:{partition}")
}

pub fn fleet_window_field(window_start_ms: i64, partition: i32) -> String {
    format!("{window_start_ms}:{partition}")
}

/// Parses a `fleet_windows` field back into (window_start_ms, partition).
pub fn parse_fleet_window_field(field: &str) -> Option<(i64, i32)> {
    let (w, p) = field.split_once(':')?;
    Some((w.parse().ok()?, p.parse().ok()?))
}

/// What the live KPIs read of a vehicle's newest sample, in the `live` hash.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiveSample {
    pub ts_ms: i64,
    pub energy_pct: f64,
    pub status: VehicleStatus,
}

impl LiveSample {
    /// `<ts_ms> <energy_pct> <status>`; the float is written in its shortest exact form, so
    /// it parses back to the same value.
    pub fn encode(&self) -> String {
        let mut out = Vec::with_capacity(40);
        self.encode_into(&mut out);
        String::from_utf8(out).expect("ASCII")
    }

    /// [`LiveSample::encode`] appended to `out` (a buffer reused across vehicles).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(itoa::Buffer::new().format(self.ts_ms).as_bytes());
        out.push(b' ');
        out.extend_from_slice(ryu::Buffer::new().format(self.energy_pct).as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.status.as_str().as_bytes());
    }

    pub fn parse(s: &str) -> Option<LiveSample> {
        let mut it = s.split(' ');
        let sample = LiveSample {
            ts_ms: it.next()?.parse().ok()?,
            energy_pct: it.next()?.parse().ok()?,
            status: VehicleStatus::parse(it.next()?)?,
        };
        it.next().is_none().then_some(sample)
    }
}

impl From<&TelemetryEvent> for LiveSample {
    fn from(e: &TelemetryEvent) -> Self {
        LiveSample {
            ts_ms: e.ts_ms,
            energy_pct: e.energy_pct,
            status: e.status,
        }
    }
}

/// The first byte of a binary latest value: the encoding's version. A JSON event starts with
/// `{` (or white space), so the two forms never meet. Bump it when [`TelemetryEvent`]'s fields change (the
/// pinned bytes in this module's tests fail until then).
pub const LATEST_BINARY_V1: u8 = 1;

/// Longest latest value a reader decodes (a corrupt length prefix cannot make it allocate
/// more).
const LATEST_MAX_BYTES: u64 = 1 << 20;

/// bincode with variable-length integers: a fraction of the CPU of JSON (BENCHMARKS §3l),
/// and less than half its bytes (150–170 B against ~340 for the simulator's events).
fn latest_options() -> impl Options {
    bincode::DefaultOptions::new()
}

/// What a reader decodes with: bounded, and nothing may follow the event. (Only the reader:
/// with a limit, bincode's writer would measure every event before writing it.)
fn latest_read_options() -> impl Options {
    latest_options()
        .with_limit(LATEST_MAX_BYTES)
        .reject_trailing_bytes()
}

/// Appends the stored form of a vehicle's newest sample (the `vehicles` hash's value) to
/// `out`: [`LATEST_BINARY_V1`], then the event's fields in declaration order.
/// The fields are written by hand (`core/src/wire.rs`) as `latest_options` serialises the
/// event (a test holds the two to the same bytes); [`decode_latest`] reads them with bincode.
pub fn encode_latest_into(e: &TelemetryEvent, out: &mut Vec<u8>) {
    use crate::wire::{put_f64, put_i64, put_option_str, put_status, put_str, put_u64};
    let TelemetryEvent {
        event_id,
        fleet_id,
        vehicle_id,
        ts_ms,
        seq,
        lat,
        lon,
        speed_kph,
        odometer_km,
        energy_pct,
        energy_used_kwh,
        status,
        mission_id,
        zone_id,
        payload_kg,
        fault_codes,
    } = e;
    out.push(LATEST_BINARY_V1);
    put_str(out, event_id);
    put_str(out, fleet_id);
    put_str(out, vehicle_id);
    put_i64(out, *ts_ms);
    put_i64(out, *seq);
    for v in [
        lat,
        lon,
        speed_kph,
        odometer_km,
        energy_pct,
        energy_used_kwh,
    ] {
        put_f64(out, *v);
    }
    put_status(out, *status);
    put_option_str(out, mission_id.as_deref());
    put_option_str(out, zone_id.as_deref());
    put_f64(out, *payload_kg);
    put_u64(out, fault_codes.len() as u64);
    for c in fault_codes {
        put_str(out, c);
    }
}

/// [`encode_latest_into`] into a new buffer.
pub fn encode_latest(e: &TelemetryEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    encode_latest_into(e, &mut out);
    out
}

/// Reads a `vehicles` hash value: the binary form [`encode_latest`] writes, or a JSON event.
pub fn decode_latest(v: &[u8]) -> Result<TelemetryEvent, String> {
    match v.first() {
        Some(&LATEST_BINARY_V1) => latest_read_options()
            .deserialize(&v[1..])
            .map_err(|e| format!("binary latest value: {e}")),
        Some(b) if *b == b'{' || b.is_ascii_whitespace() => {
            serde_json::from_slice(v).map_err(|e| format!("JSON latest value: {e}"))
        }
        Some(b) => Err(format!(
            "unknown latest value encoding (first byte {b:#04x})"
        )),
        None => Err("empty latest value".into()),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetPartialKpi {
    pub window_start_ms: i64,
    pub window_end_ms: i64,
    pub source_partition: i32,
    pub version: u32,
    pub counters: Counters,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_round_trips() {
        let f = fleet_window_field(1_700_000_040_000, 3);
        assert_eq!(parse_fleet_window_field(&f), Some((1_700_000_040_000, 3)));
        assert_eq!(parse_fleet_window_field("x"), None);
    }

    #[test]
    fn live_sample_round_trips_exactly() {
        for (ts_ms, energy_pct, status) in [
            (1_700_000_040_123, 0.1 + 0.2, VehicleStatus::EnRoute),
            (-5, 100.0, VehicleStatus::Fault),
            (0, 1e-300, VehicleStatus::Offline),
            (7, f64::MAX, VehicleStatus::Idle),
            (8, -0.0, VehicleStatus::Idle),
            (9, 5e-324, VehicleStatus::Idle),
        ] {
            let s = LiveSample {
                ts_ms,
                energy_pct,
                status,
            };
            assert_eq!(LiveSample::parse(&s.encode()), Some(s));
        }
        for bad in ["", "1 2", "1 2 flying", "x 2 idle", "1 2 idle extra"] {
            assert_eq!(LiveSample::parse(bad), None, "{bad:?}");
        }
    }

    fn event(fault_codes: Vec<String>, mission_id: Option<String>) -> TelemetryEvent {
        TelemetryEvent {
            event_id: "e-1".into(),
            fleet_id: "fleet-001".into(),
            vehicle_id: "v 1/é".into(),
            ts_ms: 1_700_000_040_123,
            seq: -3,
            lat: 52.520_008,
            lon: -13.404_954,
            speed_kph: 0.1 + 0.2,
            odometer_km: 12_345.678,
            energy_pct: -0.0,
            energy_used_kwh: f64::MAX,
            status: VehicleStatus::OnMission,
            mission_id,
            zone_id: None,
            payload_kg: 5e-324,
            fault_codes,
        }
    }

    #[test]
    fn latest_values_round_trip_in_both_forms() {
        for e in [
            event(vec![], None),
            event(vec!["P0300".into(), String::new()], Some("m-9".into())),
        ] {
            let bin = encode_latest(&e);
            assert_eq!(bin[0], LATEST_BINARY_V1);
            let back = decode_latest(&bin).unwrap();
            // Bit for bit, the signed zero and the subnormal included.
            assert_eq!(back, e);
            assert_eq!(back.energy_pct.to_bits(), e.energy_pct.to_bits());
            let json = serde_json::to_vec(&e).unwrap();
            assert_eq!(decode_latest(&json).unwrap(), e);
            let pretty = format!("\n {}", serde_json::to_string_pretty(&e).unwrap());
            assert_eq!(decode_latest(pretty.as_bytes()).unwrap(), e);
            assert!(bin.len() < json.len(), "{} vs {}", bin.len(), json.len());
        }
    }

    /// The bytes of a known event, pinned: a change to [`TelemetryEvent`]'s fields (or to the
    /// encoding) fails here, and then needs a new [`LATEST_BINARY_V1`].
    #[test]
    fn latest_binary_form_is_pinned() {
        let bin = encode_latest(&event(vec!["P0300".into()], Some("m-9".into())));
        let hex: String = bin.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, PINNED_LATEST_HEX);
    }

    /// Tag; "e-1", "fleet-001", "v 1/é" (length-prefixed); ts_ms and seq (zigzag varints);
    /// the six floats to energy_used_kwh (8 bytes each, little endian); status 3
    /// (on_mission); Some("m-9"); None; payload_kg; one fault code "P0300".
    const PINNED_LATEST_HEX: &str = concat!(
        "0103652d3109666c6565742d303031067620312fc3a9fd7609cc9f17030000",
        "0545d4449f8f424a40cec4742156cf2ac0343333333333d33f5839b4c8d61c",
        "c8400000000000000080ffffffffffffef7f0301036d2d3900010000000000",
        "000001055030333030",
    );

    /// The hand-written encoder writes what bincode writes for the event, on random events
    /// (integers of every width, any float bits, empty and long texts, up to 5 fault codes).
    #[test]
    fn latest_binary_form_is_bincodes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let text = |rng: &mut rand_chacha::ChaCha8Rng| -> String {
            let n = [0, 1, 9, 250, 251, 300][rng.gen_range(0..6)];
            (0..n).map(|i| ['a', 'é', '1', '-'][(i + n) % 4]).collect()
        };
        for _ in 0..2_000 {
            let int = |rng: &mut rand_chacha::ChaCha8Rng| rng.gen::<i64>() >> rng.gen_range(0..64);
            let e = TelemetryEvent {
                event_id: text(&mut rng),
                fleet_id: text(&mut rng),
                vehicle_id: text(&mut rng),
                ts_ms: int(&mut rng),
                seq: int(&mut rng),
                lat: f64::from_bits(rng.gen()),
                lon: rng.gen(),
                speed_kph: f64::from_bits(rng.gen()),
                odometer_km: rng.gen(),
                energy_pct: f64::from_bits(rng.gen()),
                energy_used_kwh: rng.gen(),
                status: VehicleStatus::ALL[rng.gen_range(0..7)],
                mission_id: rng.gen_bool(0.5).then(|| text(&mut rng)),
                zone_id: rng.gen_bool(0.5).then(|| text(&mut rng)),
                payload_kg: f64::from_bits(rng.gen()),
                fault_codes: (0..rng.gen_range(0..6)).map(|_| text(&mut rng)).collect(),
            };
            let mut want = vec![LATEST_BINARY_V1];
            latest_options().serialize_into(&mut want, &e).unwrap();
            assert_eq!(encode_latest(&e), want);
        }
    }

    #[test]
    fn bad_latest_values_are_errors_not_panics() {
        let good = encode_latest(&event(vec!["P0300".into()], None));
        assert!(decode_latest(b"").unwrap_err().contains("empty"));
        assert!(decode_latest(b"[]").unwrap_err().contains("0x5b"));
        assert!(decode_latest(b"{not json").is_err());
        // Every truncation and a trailing byte are refused.
        for n in 1..good.len() {
            assert!(decode_latest(&good[..n]).is_err(), "{n}");
        }
        let mut long = good.clone();
        long.push(0);
        assert!(decode_latest(&long).is_err());
        // A length prefix claiming a huge string does not allocate it.
        let mut huge = vec![LATEST_BINARY_V1, 0xfd];
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode_latest(&huge).is_err());
    }
}
