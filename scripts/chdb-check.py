#!/usr/bin/env python3
"""Runs every ClickHouse migration, then the Grafana fixtures (deploy/grafana/queries/fixtures.sql)
and every Grafana panel/variable query (deploy/grafana/queries/**/*.sql, macros substituted as
deploy/grafana/queries/macros.json defines) through chdb (ClickHouse 26.x in-process), so the SQL
is proven on a modern engine as well as on the 18.16 server the tests use
(sinks/tests/grafana_queries.rs runs the same files there). Each query must return >= 1 row with
the columns its `-- columns:` header names and some data in the first row; the dashboards must be
up to date with the query files (scripts/grafana-build.py --check). Exits non-zero on failure."""
import glob
import importlib.util
import json
import math
import os
import sys
import tempfile
import time

from chdb import session

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def statements(sql: str):
    cur = []
    for line in sql.splitlines():
        t = line.strip()
        if not t or t.startswith("--"):
            continue
        cur.append(line)
        if t.endswith(";"):
            yield "\n".join(cur).strip().rstrip(";")
            cur = []
    if cur:
        yield "\n".join(cur).strip()


def main() -> int:
    files = sorted(glob.glob(os.path.join(ROOT, "migrations/clickhouse/*.sql")))
    if not files:
        print("no ClickHouse migrations found", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as d:
        s = session.Session(d)
        s.query("CREATE DATABASE IF NOT EXISTS atlasmesh")
        s.query("USE atlasmesh")
        n = 0
        for f in files:
            for stmt in statements(open(f).read()):
                s.query(stmt)
                n += 1
            print(f"chdb: {os.path.relpath(f, ROOT)} ok")
        # Smoke: the view answers over one inserted partial.
        s.query("INSERT INTO fleet_window_partials (fleet_id, window_start, window_start_ms, window_end_ms, version, source_partition, observed_ms) VALUES ('f', now(), 1, 2, 1, 0, 5)")
        out = str(s.query("SELECT observed_ms FROM fleet_window_metrics WHERE fleet_id = 'f'", "CSV")).strip()
        if out != "5":
            print(f"chdb: fleet_window_metrics returned {out!r}, expected 5", file=sys.stderr)
            return 1
        version = str(s.query("SELECT version()", "CSV")).strip()
        print(f"chdb: {n} statements from {len(files)} migrations ran on ClickHouse {version}")
        if grafana_queries(s) != 0:
            return 1
    return 0


def is_data(v):
    if v is None or v == "" or v == []:
        return False
    if isinstance(v, (int, float)):
        return v != 0 and not (isinstance(v, float) and math.isnan(v))
    if isinstance(v, str):
        try:
            f = float(v)
            return f != 0 and not math.isnan(f)
        except ValueError:
            return True
    return True


def grafana_queries(s) -> int:
    spec = importlib.util.spec_from_file_location("grafana_build", os.path.join(ROOT, "scripts", "grafana-build.py"))
    gb = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gb)
    if gb.main_check() != 0:
        return 1
    fixtures = os.path.join(gb.QUERIES, "fixtures.sql")
    for stmt in statements(open(fixtures).read()):
        s.query(stmt)
    macros = gb.load_macros()
    now_s = int(time.time())
    failures = []
    files = gb.query_files()
    for f in files:
        text = gb.read_sql(f)
        try:
            out = json.loads(str(s.query(gb.substitute(text, macros, now_s), "JSONCompact")))
        except Exception as e:  # noqa: BLE001 - report every failing query
            failures.append(f"{f}: {str(e).strip()[:300]}")
            continue
        names = [c["name"] for c in out["meta"]]
        want = gb.expected_columns(text)
        if names != want or out["rows"] < 1:
            failures.append(f"{f}: {out['rows']} rows, columns {names}, expected {want}")
        elif not any(is_data(v) for v in out["data"][0]):
            failures.append(f"{f}: the first row holds only zeros/nulls: {out['data'][0]}")
        elif names[0] == "time" and not out["meta"][0]["type"].startswith("DateTime"):
            failures.append(f"{f}: time column is {out['meta'][0]['type']}, not DateTime")
    for msg in failures:
        print(f"chdb: grafana query failed: {msg}", file=sys.stderr)
    if failures:
        return 1
    print(f"chdb: {len(files)} Grafana queries returned rows over {os.path.relpath(fixtures, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
