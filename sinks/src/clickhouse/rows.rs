use atlasmesh_core::window::WindowResult;
use atlasmesh_core::{TelemetryEvent, VehicleStatus};
use serde::{Deserialize, Serialize};

/// The `Enum8` codes of `status` (migrations/clickhouse/0001_telemetry.sql) are the positions
/// in [`VehicleStatus::ALL`].
const STATUS_CODES: [VehicleStatus; 7] = VehicleStatus::ALL;

fn status_code(s: VehicleStatus) -> i8 {
    STATUS_CODES
        .iter()
        .position(|c| *c == s)
        .expect("every status has a code") as i8
}

/// Row of `telemetry_raw` (migrations/clickhouse/0001_telemetry.sql) as read back; written
/// as [`RawRowRef`], which borrows the event instead of copying it.
#[derive(Debug, Clone, clickhouse::Row, Serialize, Deserialize)]
pub struct RawTelemetryRow {
    pub event_id: String,
    pub fleet_id: String,
    pub vehicle_id: String,
    /// DateTime('UTC') as epoch seconds.
    pub ts: u32,
    pub ts_ms: i64,
    pub seq: i64,
    pub lat: f64,
    pub lon: f64,
    pub speed_kph: f64,
    pub odometer_km: f64,
    pub energy_pct: f64,
    pub energy_used_kwh: f64,
    /// Enum8 code.
    pub status: i8,
    pub mission_id: String,
    pub zone_id: String,
    pub payload_kg: f64,
    pub fault_codes: Vec<String>,
    pub source_partition: i32,
    pub source_offset: i64,
    pub ingested_at_ms: i64,
}

impl RawTelemetryRow {
    /// The event the row was written from (an empty mission or zone is none); `None` for a
    /// status code outside the enum.
    pub fn to_event(&self) -> Option<TelemetryEvent> {
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Some(TelemetryEvent {
            event_id: self.event_id.clone(),
            fleet_id: self.fleet_id.clone(),
            vehicle_id: self.vehicle_id.clone(),
            ts_ms: self.ts_ms,
            seq: self.seq,
            lat: self.lat,
            lon: self.lon,
            speed_kph: self.speed_kph,
            odometer_km: self.odometer_km,
            energy_pct: self.energy_pct,
            energy_used_kwh: self.energy_used_kwh,
            status: *STATUS_CODES.get(usize::try_from(self.status).ok()?)?,
            mission_id: non_empty(&self.mission_id),
            zone_id: non_empty(&self.zone_id),
            payload_kg: self.payload_kg,
            fault_codes: self.fault_codes.clone(),
        })
    }
}

/// An accepted telemetry event and where it was read: what a `telemetry_raw` row is written
/// from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawEvent {
    pub event: TelemetryEvent,
    pub partition: i32,
    pub offset: i64,
}

/// The `telemetry_raw` row as written: the columns of [`RawTelemetryRow`], borrowed from a
/// [`RawEvent`] for the insert (no string is copied per event).
#[derive(Debug, clickhouse::Row, Serialize)]
pub struct RawRowRef<'a> {
    pub event_id: &'a str,
    pub fleet_id: &'a str,
    pub vehicle_id: &'a str,
    pub ts: u32,
    pub ts_ms: i64,
    pub seq: i64,
    pub lat: f64,
    pub lon: f64,
    pub speed_kph: f64,
    pub odometer_km: f64,
    pub energy_pct: f64,
    pub energy_used_kwh: f64,
    pub status: i8,
    pub mission_id: &'a str,
    pub zone_id: &'a str,
    pub payload_kg: f64,
    pub fault_codes: &'a [String],
    pub source_partition: i32,
    pub source_offset: i64,
    pub ingested_at_ms: i64,
}

impl<'a> RawRowRef<'a> {
    pub fn new(r: &'a RawEvent, ingested_at_ms: i64) -> Self {
        let e = &r.event;
        RawRowRef {
            event_id: &e.event_id,
            fleet_id: &e.fleet_id,
            vehicle_id: &e.vehicle_id,
            ts: (e.ts_ms.div_euclid(1000)).clamp(0, u32::MAX as i64) as u32,
            ts_ms: e.ts_ms,
            seq: e.seq,
            lat: e.lat,
            lon: e.lon,
            speed_kph: e.speed_kph,
            odometer_km: e.odometer_km,
            energy_pct: e.energy_pct,
            energy_used_kwh: e.energy_used_kwh,
            status: status_code(e.status),
            mission_id: e.mission_id.as_deref().unwrap_or_default(),
            zone_id: e.zone_id.as_deref().unwrap_or_default(),
            payload_kg: e.payload_kg,
            fault_codes: &e.fault_codes,
            source_partition: r.partition,
            source_offset: r.offset,
            ingested_at_ms,
        }
    }
}

impl RawRowRef<'_> {
    /// Appends the row in ClickHouse's RowBinary format, its columns in declaration order
    /// (`Self::COLUMN_NAMES`): what `clickhouse::Insert` writes for it.
    pub fn encode_row_binary(&self, out: &mut Vec<u8>) {
        fn leb128(out: &mut Vec<u8>, mut n: usize) {
            while n >= 0x80 {
                out.push((n as u8) | 0x80);
                n >>= 7;
            }
            out.push(n as u8);
        }
        fn string(out: &mut Vec<u8>, s: &str) {
            leb128(out, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        string(out, self.event_id);
        string(out, self.fleet_id);
        string(out, self.vehicle_id);
        out.extend_from_slice(&self.ts.to_le_bytes());
        out.extend_from_slice(&self.ts_ms.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        for f in [
            self.lat,
            self.lon,
            self.speed_kph,
            self.odometer_km,
            self.energy_pct,
            self.energy_used_kwh,
        ] {
            out.extend_from_slice(&f.to_le_bytes());
        }
        out.extend_from_slice(&self.status.to_le_bytes());
        string(out, self.mission_id);
        string(out, self.zone_id);
        out.extend_from_slice(&self.payload_kg.to_le_bytes());
        leb128(out, self.fault_codes.len());
        for code in self.fault_codes {
            string(out, code);
        }
        out.extend_from_slice(&self.source_partition.to_le_bytes());
        out.extend_from_slice(&self.source_offset.to_le_bytes());
        out.extend_from_slice(&self.ingested_at_ms.to_le_bytes());
    }
}

/// `telemetry_raw` rows in RowBinary, one after another: encoded as the events are accepted
/// (while each is in the cache: at 10,000 vehicles a checkpoint's events are not by the
/// time it is written, BENCHMARKS §3m) and sent as they are. The ingestion time, every row's
/// last column, is set just before they are written ([`RawRows::set_ingested_at`]).
///
/// The insert takes the rows without a copy: [`RawRows::share`] hands the buffer over as
/// [`bytes::Bytes`] (its chunks are slices of it), and [`RawRows::clear`] takes the memory
/// back once the insert has let go of it, so a checkpoint's rows are written into memory the
/// last checkpoint already used.
#[derive(Debug, Default)]
pub struct RawRows {
    bytes: Vec<u8>,
    /// The rows, shared with inserts ([`RawRows::share`]); `bytes` is empty meanwhile.
    shared: Option<bytes::Bytes>,
    /// Where each row ends in `bytes`.
    ends: Vec<usize>,
}

impl RawRows {
    pub fn push(&mut self, r: &RawEvent) {
        self.unshare();
        RawRowRef::new(r, 0).encode_row_binary(&mut self.bytes);
        self.ends.push(self.bytes.len());
    }

    /// Sets every row's `ingested_at_ms`.
    pub fn set_ingested_at(&mut self, ingested_at_ms: i64) {
        self.unshare();
        let v = ingested_at_ms.to_le_bytes();
        for &end in &self.ends {
            self.bytes[end - v.len()..end].copy_from_slice(&v);
        }
    }

    /// Hands the rows over for writing, without a copy (until the next change or clear).
    pub fn share(&mut self) {
        if self.shared.is_none() {
            self.shared = Some(bytes::Bytes::from(std::mem::take(&mut self.bytes)));
        }
    }

    /// The rows as an insert sends them: shared if [`RawRows::share`] was called, copied
    /// otherwise.
    pub fn to_bytes(&self) -> bytes::Bytes {
        match &self.shared {
            Some(b) => b.clone(),
            None => bytes::Bytes::copy_from_slice(&self.bytes),
        }
    }

    /// Takes the buffer back from [`RawRows::share`]: its memory if no insert holds it any
    /// more, a copy otherwise.
    fn unshare(&mut self) {
        if let Some(b) = self.shared.take() {
            self.bytes = match b.try_into_mut() {
                Ok(m) => Vec::from(m),
                Err(b) => b.to_vec(),
            };
        }
    }

    /// The rows, encoded.
    pub fn bytes(&self) -> &[u8] {
        self.shared.as_deref().unwrap_or(&self.bytes)
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Empty again, its buffers kept.
    pub fn clear(&mut self) {
        self.unshare();
        self.bytes.clear();
        self.ends.clear();
    }
}

/// A window row: the key columns, the counters of [`atlasmesh_core::for_each_window_counter!`]
/// in their order, then `emitted_at_ms` (the columns of migrations/clickhouse/0002).
macro_rules! window_row {
    (
        [$($counter:ident : $cty:ty),* $(,)?]
        $(#[$m:meta])* $name:ident { $($extra:ident : $ty:ty),* }
    ) => {
        $(#[$m])*
        #[derive(Debug, Clone, clickhouse::Row, Serialize, Deserialize)]
        pub struct $name {
            pub fleet_id: String,
            $(pub $extra: $ty,)*
            pub window_start: u32,
            pub window_start_ms: i64,
            pub window_end_ms: i64,
            pub version: u32,
            pub source_partition: i32,
            $(pub $counter: $cty,)*
            pub emitted_at_ms: i64,
        }

        impl $name {
            fn fill(r: &WindowResult, partition: i32, $($extra: $ty),*) -> Self {
                let c = &r.counters;
                $name {
                    fleet_id: r.fleet_id.clone(),
                    $($extra,)*
                    window_start: (r.window_start_ms / 1000) as u32,
                    window_start_ms: r.window_start_ms,
                    window_end_ms: r.window_end_ms,
                    version: r.version,
                    source_partition: partition,
                    $($counter: c.$counter,)*
                    emitted_at_ms: 0,
                }
            }

            /// The row's counters.
            pub fn counters(&self) -> atlasmesh_core::window::Counters {
                atlasmesh_core::window::Counters {
                    $($counter: self.$counter,)*
                }
            }
        }
    };
}

atlasmesh_core::for_each_window_counter!(
    window_row,
    /// Row of `vehicle_window_metrics`.
    VehicleWindowRow { vehicle_id: String }
);
atlasmesh_core::for_each_window_counter!(
    window_row,
    /// Row of `fleet_window_partials`.
    FleetPartialRow {}
);

impl VehicleWindowRow {
    pub fn from_result(r: &WindowResult, partition: i32) -> Self {
        Self::fill(r, partition, r.vehicle_id.clone())
    }
}

impl FleetPartialRow {
    pub fn from_result(r: &WindowResult, partition: i32) -> Self {
        Self::fill(r, partition)
    }
}

#[cfg(test)]
mod tests {
    use atlasmesh_core::window::Counters;
    use clickhouse::Row;

    use super::{FleetPartialRow, VehicleWindowRow};

    const WINDOWS_SQL: &str =
        include_str!("../../../migrations/clickhouse/0002_window_metrics.sql");
    const FLEET_VIEW_SQL: &str =
        include_str!("../../../migrations/clickhouse/0003_fleet_window_view.sql");

    /// `(column, type)` of `CREATE TABLE IF NOT EXISTS <table> ( ... )` in `sql`.
    fn columns(sql: &str, table: &str) -> Vec<(String, String)> {
        let head = format!("CREATE TABLE IF NOT EXISTS {table}\n(");
        let body = &sql[sql.find(&head).expect(table) + head.len()..];
        let body = &body[..body.find("\n)").expect(table)];
        body.lines()
            .map(|l| l.trim().trim_end_matches(','))
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (name, ty) = l.split_once(' ').expect(l);
                (name.to_string(), ty.to_string())
            })
            .collect()
    }

    /// The window rows have the migration's columns, in order, and the counter columns are the
    /// counter list (a counter added to one and not the other fails here).
    #[test]
    fn window_rows_match_the_migration() {
        for (table, row) in [
            ("vehicle_window_metrics", VehicleWindowRow::COLUMN_NAMES),
            ("fleet_window_partials", FleetPartialRow::COLUMN_NAMES),
        ] {
            let cols = columns(WINDOWS_SQL, table);
            let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, row, "{table}");
            let first = names.iter().position(|n| *n == "samples").expect(table);
            let counters = &cols[first..first + Counters::FIELDS.len()];
            for ((name, ty), field) in counters.iter().zip(Counters::FIELDS) {
                assert_eq!((name.as_str(), ty.as_str()), (*field, "UInt64"), "{table}");
            }
            assert_eq!(
                names[first + Counters::FIELDS.len()..],
                ["emitted_at_ms"],
                "{table}"
            );
        }
    }

    /// The fleet view sums every counter.
    #[test]
    fn fleet_view_sums_every_counter() {
        for field in Counters::FIELDS {
            let sum = format!("sum({field}) AS {field}");
            assert!(FLEET_VIEW_SQL.contains(&sum), "{sum}");
        }
    }

    /// The row as ClickHouse gives it back: each column of the written row, by name (the
    /// two structs have the same columns in the same order, asserted below).
    fn read_back(r: &super::RawRowRef<'_>) -> super::RawTelemetryRow {
        super::RawTelemetryRow {
            event_id: r.event_id.to_string(),
            fleet_id: r.fleet_id.to_string(),
            vehicle_id: r.vehicle_id.to_string(),
            ts: r.ts,
            ts_ms: r.ts_ms,
            seq: r.seq,
            lat: r.lat,
            lon: r.lon,
            speed_kph: r.speed_kph,
            odometer_km: r.odometer_km,
            energy_pct: r.energy_pct,
            energy_used_kwh: r.energy_used_kwh,
            status: r.status,
            mission_id: r.mission_id.to_string(),
            zone_id: r.zone_id.to_string(),
            payload_kg: r.payload_kg,
            fault_codes: r.fault_codes.to_vec(),
            source_partition: r.source_partition,
            source_offset: r.source_offset,
            ingested_at_ms: r.ingested_at_ms,
        }
    }

    /// A raw row gives back the event it was written from (the Redis hot-state rebuild), for
    /// every status; an empty mission or zone is none, as the writer stores none. The row
    /// written and the row read have the same columns.
    #[test]
    fn shared_rows_are_taken_back_without_a_copy() {
        let e = super::RawEvent::default();
        let mut rows = super::RawRows::default();
        for _ in 0..100 {
            rows.push(&e);
        }
        rows.set_ingested_at(7);
        let before = rows.bytes().to_vec();
        rows.share();
        let sent = rows.to_bytes();
        assert_eq!(
            (&sent[..], sent.as_ptr()),
            (&before[..], rows.bytes().as_ptr())
        );
        // Still held by an insert: a change copies, the insert's bytes stay as sent.
        rows.set_ingested_at(8);
        assert_eq!(&sent[..], &before[..]);
        assert_ne!(rows.bytes(), &before[..]);
        drop(sent);
        rows.share();
        let at = rows.bytes().as_ptr();
        rows.clear();
        rows.push(&e);
        assert_eq!(rows.bytes().as_ptr(), at, "the memory is taken back");
        assert_eq!(rows.len(), 1);
    }

    #[test]
    fn raw_rows_give_back_their_event() {
        use atlasmesh_core::{TelemetryEvent, VehicleStatus};

        use super::{status_code, RawEvent, RawRowRef, RawTelemetryRow, STATUS_CODES};
        assert_eq!(RawRowRef::COLUMN_NAMES, RawTelemetryRow::COLUMN_NAMES);
        let sql = include_str!("../../../migrations/clickhouse/0001_telemetry.sql");
        for (i, status) in STATUS_CODES.iter().enumerate() {
            assert_eq!(status_code(*status), i as i8);
            let code = format!("'{}' = {i}", status.as_str());
            assert!(sql.contains(&code), "the migration's Enum8 has {code}");
            let e = TelemetryEvent {
                event_id: format!("e{i}"),
                fleet_id: "f".into(),
                vehicle_id: "v".into(),
                ts_ms: 1_700_000_000_123 + i as i64,
                seq: i as i64,
                lat: 45.501_234_567_8,
                lon: -73.567_890_123_4,
                speed_kph: 31.25,
                odometer_km: 1234.567,
                energy_pct: 80.5,
                energy_used_kwh: 12.345,
                status: *status,
                mission_id: (i % 2 == 0).then(|| format!("m{i}")),
                zone_id: (i % 3 == 0).then(|| "z1".to_string()),
                payload_kg: 120.0,
                fault_codes: if *status == VehicleStatus::Fault {
                    vec!["P0A80".into()]
                } else {
                    vec![]
                },
            };
            let raw = RawEvent {
                event: e.clone(),
                partition: 3,
                offset: 77,
            };
            let mut row = read_back(&RawRowRef::new(&raw, 5));
            assert_eq!(
                (row.source_partition, row.source_offset, row.ingested_at_ms),
                (3, 77, 5)
            );
            assert_eq!(row.to_event().as_ref(), Some(&e));
            row.status = 42;
            assert_eq!(row.to_event(), None, "a code outside the enum");
        }
    }
}
