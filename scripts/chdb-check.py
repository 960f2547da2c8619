#!/usr/bin/env python3
"""Runs every ClickHouse migration (and any *.sql under dashboards/queries, if present)
through chdb (ClickHouse 26.x in-process) so the SQL is proven on a modern engine as well as
on the 18.16 server the tests use. Exits non-zero on the first failure."""
import glob
import os
import sys
import tempfile

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
    return 0


if __name__ == "__main__":
    sys.exit(main())
