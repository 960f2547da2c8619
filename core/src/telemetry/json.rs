//! The JSON of a [`TelemetryEvent`] written by hand for the hot path (the newest sample of
//! every vehicle goes to Redis at each checkpoint): the same document serde's derive writes —
//! the same keys in the same order, `null` for an absent text or a non-finite number, floats
//! in their shortest exact form — at a fraction of its cost (the keys are constants, a text
//! with nothing to escape is copied whole). The tests hold it to serde's output.

use super::TelemetryEvent;

impl TelemetryEvent {
    /// Appends the event's JSON object to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        // The keys, punctuation and numbers take under 300 bytes.
        out.reserve(300 + self.event_id.len() + self.fleet_id.len() + self.vehicle_id.len());
        out.extend_from_slice(b"{\"event_id\":");
        text(out, &self.event_id);
        out.extend_from_slice(b",\"fleet_id\":");
        text(out, &self.fleet_id);
        out.extend_from_slice(b",\"vehicle_id\":");
        text(out, &self.vehicle_id);
        out.extend_from_slice(b",\"ts_ms\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.ts_ms).as_bytes());
        out.extend_from_slice(b",\"seq\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.seq).as_bytes());
        for (key, v) in [
            (&b",\"lat\":"[..], self.lat),
            (b",\"lon\":", self.lon),
            (b",\"speed_kph\":", self.speed_kph),
            (b",\"odometer_km\":", self.odometer_km),
            (b",\"energy_pct\":", self.energy_pct),
            (b",\"energy_used_kwh\":", self.energy_used_kwh),
        ] {
            out.extend_from_slice(key);
            number(out, v);
        }
        out.extend_from_slice(b",\"status\":\"");
        out.extend_from_slice(self.status.as_str().as_bytes());
        out.extend_from_slice(b"\",\"mission_id\":");
        optional(out, self.mission_id.as_deref());
        out.extend_from_slice(b",\"zone_id\":");
        optional(out, self.zone_id.as_deref());
        out.extend_from_slice(b",\"payload_kg\":");
        number(out, self.payload_kg);
        out.extend_from_slice(b",\"fault_codes\":[");
        for (i, code) in self.fault_codes.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            text(out, code);
        }
        out.extend_from_slice(b"]}");
    }
}

/// A float as serde_json writes it: shortest exact form (a positive exponent with its `+`),
/// `null` when not finite.
fn number(out: &mut Vec<u8>, v: f64) {
    if !v.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    let mut buf = ryu::Buffer::new();
    let s = buf.format_finite(v).as_bytes();
    match s.iter().position(|&b| b == b'e') {
        Some(e) if s.get(e + 1) != Some(&b'-') => {
            out.extend_from_slice(&s[..=e]);
            out.push(b'+');
            out.extend_from_slice(&s[e + 1..]);
        }
        _ => out.extend_from_slice(s),
    }
}

fn optional(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => text(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// A JSON string: `"`, `\` and the control characters escaped as serde_json escapes them,
/// everything else (UTF-8 included) as is.
fn text(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    // Ids and codes rarely hold anything to escape: then the text is copied whole.
    if !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\') {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::super::VehicleStatus;
    use super::*;

    fn random_text(rng: &mut impl Rng) -> String {
        const PIECES: &[&str] = &[
            "v-0042",
            "fleet-001",
            "\"",
            "\\",
            "\n",
            "\r",
            "\t",
            "\u{8}",
            "\u{c}",
            "\u{0}",
            "\u{1f}",
            "\u{7f}",
            "/",
            "é",
            "車両",
            "😀",
            " ",
            "a",
        ];
        (0..rng.gen_range(0..6))
            .map(|_| PIECES[rng.gen_range(0..PIECES.len())])
            .collect()
    }

    fn random_number(rng: &mut impl Rng) -> f64 {
        match rng.gen_range(0..8) {
            0 => 0.0,
            1 => -0.0,
            2 => f64::from_bits(rng.gen()),
            3 => rng.gen_range(-1e-300..1e-300),
            4 => f64::MAX,
            5 => f64::NAN,
            6 => f64::INFINITY,
            _ => rng.gen_range(-200.0..200.0),
        }
    }

    fn random_event(rng: &mut impl Rng) -> TelemetryEvent {
        TelemetryEvent {
            event_id: random_text(rng),
            fleet_id: random_text(rng),
            vehicle_id: random_text(rng),
            ts_ms: rng.gen(),
            seq: rng.gen(),
            lat: random_number(rng),
            lon: random_number(rng),
            speed_kph: random_number(rng),
            odometer_km: random_number(rng),
            energy_pct: random_number(rng),
            energy_used_kwh: random_number(rng),
            status: VehicleStatus::ALL[rng.gen_range(0..VehicleStatus::ALL.len())],
            mission_id: rng.gen_bool(0.5).then(|| random_text(rng)),
            zone_id: rng.gen_bool(0.5).then(|| random_text(rng)),
            payload_kg: random_number(rng),
            fault_codes: (0..rng.gen_range(0..3)).map(|_| random_text(rng)).collect(),
        }
    }

    /// The same document as serde's: equal as JSON values (floats compared exactly: the
    /// crate parses them with `float_roundtrip`), and an event with finite numbers reads back
    /// equal to itself.
    #[test]
    fn writes_what_serde_writes() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut out = Vec::new();
        for i in 0..20_000 {
            let e = random_event(&mut rng);
            out.clear();
            e.write_json(&mut out);
            let ours: serde_json::Value = serde_json::from_slice(&out)
                .unwrap_or_else(|err| panic!("case {i}: {err}: {}", String::from_utf8_lossy(&out)));
            assert_eq!(ours, serde_json::to_value(&e).unwrap(), "case {i}");
            let finite = [
                e.lat,
                e.lon,
                e.speed_kph,
                e.odometer_km,
                e.energy_pct,
                e.energy_used_kwh,
                e.payload_kg,
            ]
            .iter()
            .all(|v| v.is_finite());
            if finite {
                let back: TelemetryEvent = serde_json::from_slice(&out).unwrap();
                assert_eq!(back, e, "case {i}");
                assert_eq!(out, serde_json::to_vec(&e).unwrap(), "case {i}: bytes");
            }
        }
    }

    #[test]
    fn escapes_quotes_backslashes_and_controls() {
        let mut out = Vec::new();
        text(&mut out, "a\"b\\c\nd\u{1}e\u{7f}é");
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"a\\\"b\\\\c\\nd\\u0001e\u{7f}é\""
        );
    }
}
