use std::time::Instant;

use atlasmesh_core::config::ClickHouseConfig;

use super::rows::{FleetPartialRow, RawRowRef, RawRows, RawTelemetryRow, VehicleWindowRow};
use crate::{observe, Result};

/// Migration files, in order. Statements are separated by `;` at the end of a line.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_telemetry.sql",
        include_str!("../../../migrations/clickhouse/0001_telemetry.sql"),
    ),
    (
        "0002_window_metrics.sql",
        include_str!("../../../migrations/clickhouse/0002_window_metrics.sql"),
    ),
    (
        "0003_fleet_window_view.sql",
        include_str!("../../../migrations/clickhouse/0003_fleet_window_view.sql"),
    ),
    (
        "0004_performance_history.sql",
        include_str!("../../../migrations/clickhouse/0004_performance_history.sql"),
    ),
    (
        "0005_trend_history.sql",
        include_str!("../../../migrations/clickhouse/0005_trend_history.sql"),
    ),
    (
        "0006_alert_history.sql",
        include_str!("../../../migrations/clickhouse/0006_alert_history.sql"),
    ),
    (
        "0007_resource_history.sql",
        include_str!("../../../migrations/clickhouse/0007_resource_history.sql"),
    ),
    (
        "0008_zone_demand.sql",
        include_str!("../../../migrations/clickhouse/0008_zone_demand.sql"),
    ),
    (
        "0009_fleet_health.sql",
        include_str!("../../../migrations/clickhouse/0009_fleet_health.sql"),
    ),
];

/// Bytes per chunk of a pre-encoded insert's body (what `clickhouse::Insert` sends at once).
const RAW_CHUNK_BYTES: usize = 256 * 1024;

/// Splits a migration file into statements (comments dropped).
pub fn migration_statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in sql.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("--") || trimmed.is_empty() {
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
        if trimmed.ends_with(';') {
            let stmt = cur.trim().trim_end_matches(';').to_string();
            out.push(stmt);
            cur.clear();
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// Creates the configured database if missing and applies every migration (all idempotent:
/// `CREATE ... IF NOT EXISTS`).
pub async fn migrate(cfg: &ClickHouseConfig) -> Result<()> {
    let mut server = cfg.clone();
    server.database = "default".into();
    let admin = super::client(&server);
    admin
        .query("CREATE DATABASE IF NOT EXISTS ?")
        .bind(::clickhouse::sql::Identifier(&cfg.database))
        .execute()
        .await?;
    let db = super::client(cfg);
    for (_, sql) in MIGRATIONS {
        for stmt in migration_statements(sql) {
            db.query(&stmt).execute().await?;
        }
    }
    Ok(())
}

/// Writes batches to ClickHouse. Tables are ReplacingMergeTree keyed so that re-inserting the
/// same batch after a crash or retry leaves the results unchanged.
#[derive(Clone)]
pub struct ClickHouseSink {
    client: ::clickhouse::Client,
}

impl ClickHouseSink {
    pub fn new(cfg: &ClickHouseConfig) -> Self {
        ClickHouseSink {
            client: super::client(cfg),
        }
    }

    pub fn client(&self) -> &::clickhouse::Client {
        &self.client
    }

    pub async fn healthcheck(&self) -> Result<()> {
        self.client.query("SELECT 1").execute().await?;
        Ok(())
    }

    /// Writes `rows` to `table` in one insert (nothing when empty), observed as a batch.
    pub(super) async fn insert<T>(&self, table: &str, rows: &[T]) -> Result<()>
    where
        T: ::clickhouse::RowOwned + ::clickhouse::RowWrite,
    {
        self.insert_rows::<T, _>(table, rows.iter()).await
    }

    /// [`Self::insert`] of rows made one at a time, which may borrow (`R::Value<'_>`): none
    /// is kept once serialised into the request body.
    async fn insert_rows<'v, R, B>(
        &self,
        table: &str,
        rows: impl ExactSizeIterator<Item = B>,
    ) -> Result<()>
    where
        R: ::clickhouse::Row + ::clickhouse::RowWrite,
        B: std::borrow::Borrow<R::Value<'v>>,
    {
        let n = rows.len();
        if n == 0 {
            return Ok(());
        }
        let started = Instant::now();
        let r = async {
            let mut insert = self.client.insert::<R>(table).await?;
            for row in rows {
                insert.write(row.borrow()).await?;
            }
            insert.end().await?;
            Ok(())
        }
        .await;
        observe("clickhouse", n, started, &r);
        r
    }

    /// `telemetry_raw` rows encoded as they came ([`RawRows`]), in one insert (nothing when
    /// empty), observed as a batch.
    pub async fn write_raw(&self, rows: &RawRows) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let r = async {
            let sql = format!(
                "INSERT INTO telemetry_raw ({}) FORMAT RowBinary",
                <RawRowRef<'_> as ::clickhouse::Row>::COLUMN_NAMES.join(", ")
            );
            let mut insert = self.client.insert_formatted_with(sql);
            let all = rows.to_bytes();
            for start in (0..all.len()).step_by(RAW_CHUNK_BYTES) {
                let end = (start + RAW_CHUNK_BYTES).min(all.len());
                insert.send(all.slice(start..end)).await?;
            }
            insert.end().await?;
            Ok(())
        }
        .await;
        observe("clickhouse", rows.len(), started, &r);
        r
    }

    pub async fn write_vehicle_windows(&self, rows: &[VehicleWindowRow]) -> Result<()> {
        self.insert("vehicle_window_metrics", rows).await
    }

    pub async fn write_fleet_partials(&self, rows: &[FleetPartialRow]) -> Result<()> {
        self.insert("fleet_window_partials", rows).await
    }

    /// Vehicles of `fleet` that made a planned move approved at `since_ms`: seen in zone
    /// `from` (from 15 minutes before, where they were waiting) and later, at or after
    /// `since_ms`, in zone `to` (event time, from the raw samples).
    pub async fn moved_vehicles(
        &self,
        fleet: &str,
        from: &str,
        to: &str,
        since_ms: i64,
    ) -> Result<u64> {
        Ok(self
            .client
            .query(
                "SELECT count() FROM (SELECT vehicle_id, \
                   minIf(ts_ms, zone_id = ?) AS left_ms, \
                   maxIf(ts_ms, zone_id = ? AND ts_ms >= ?) AS arrived_ms, \
                   countIf(zone_id = ?) AS at_from, \
                   countIf(zone_id = ? AND ts_ms >= ?) AS at_to \
                 FROM telemetry_raw WHERE fleet_id = ? AND ts_ms >= ? GROUP BY vehicle_id) \
                 WHERE at_from > 0 AND at_to > 0 AND arrived_ms > left_ms",
            )
            .bind(from)
            .bind(to)
            .bind(since_ms)
            .bind(from)
            .bind(to)
            .bind(since_ms)
            .bind(fleet)
            .bind(since_ms - 900_000)
            .fetch_one::<u64>()
            .await?)
    }

    /// The newest raw row (by event time, then sequence) of every vehicle whose telemetry
    /// came through `partition`: what the hot "latest" state holds for them.
    pub async fn latest_raw_rows(&self, partition: i32) -> Result<Vec<RawTelemetryRow>> {
        Ok(self
            .client
            .query(
                "SELECT ?fields FROM telemetry_raw WHERE source_partition = ? \
                 ORDER BY fleet_id, vehicle_id, ts_ms DESC, seq DESC LIMIT 1 BY fleet_id, vehicle_id",
            )
            .bind(partition)
            .fetch_all::<RawTelemetryRow>()
            .await?)
    }

    /// The newest version of every fleet partial of `partition` among the newest `windows`
    /// windows of its fleet (counted from the newest window of the fleet over every
    /// partition, `window_ms` apart), in (fleet, window) order.
    pub async fn recent_fleet_partials(
        &self,
        partition: i32,
        windows: i64,
        window_ms: i64,
    ) -> Result<Vec<FleetPartialRow>> {
        #[derive(Debug, ::clickhouse::Row, serde::Deserialize)]
        struct Newest {
            fleet_id: String,
            newest_ms: i64,
        }
        let newest: std::collections::BTreeMap<String, i64> = self
            .client
            .query(
                "SELECT fleet_id, max(window_start_ms) AS newest_ms FROM fleet_window_partials \
                 GROUP BY fleet_id",
            )
            .fetch_all::<Newest>()
            .await?
            .into_iter()
            .map(|n| (n.fleet_id, n.newest_ms))
            .collect();
        let keep = (windows.max(1) - 1) * window_ms.max(1);
        let Some(from) = newest.values().map(|n| n - keep).min() else {
            return Ok(Vec::new());
        };
        let rows = self
            .client
            .query(
                "SELECT ?fields FROM fleet_window_partials \
                 WHERE source_partition = ? AND window_start_ms >= ? \
                 ORDER BY fleet_id, window_start_ms, version DESC \
                 LIMIT 1 BY fleet_id, window_start_ms",
            )
            .bind(partition)
            .bind(from)
            .fetch_all::<FleetPartialRow>()
            .await?;
        Ok(rows
            .into_iter()
            .filter(|r| {
                newest
                    .get(&r.fleet_id)
                    .is_some_and(|n| r.window_start_ms >= n - keep)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_statements_and_drops_comments() {
        let s = migration_statements(
            "-- c\nCREATE TABLE a (x UInt8)\nENGINE = Log;\n\nCREATE VIEW b AS SELECT 1;\n",
        );
        assert_eq!(
            s,
            vec![
                "CREATE TABLE a (x UInt8)\nENGINE = Log",
                "CREATE VIEW b AS SELECT 1"
            ]
        );
        for (_, sql) in MIGRATIONS {
            assert!(!migration_statements(sql).is_empty());
        }
    }
}
