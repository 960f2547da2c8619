#!/usr/bin/env python3
"""Renders the provisioned Grafana dashboards from the layout below plus the panel SQL files.

    scripts/grafana-build.py           write deploy/grafana/dashboards/*.json
    scripts/grafana-build.py --check   exit 1 if a dashboard JSON differs from what it renders

Every ClickHouse panel and template variable takes its SQL verbatim from a file under
deploy/grafana/queries/ (the single source: never edit rawSql in the JSON). Those files are
what the tests run, after the macro substitution of deploy/grafana/queries/macros.json:
sinks/tests/grafana_queries.rs on the ClickHouse 18.16 server and scripts/chdb-check.py on
chdb (ClickHouse 26.x). The helpers at the bottom (query_files, expected_columns, substitute)
are what chdb-check.py uses. Python 3 standard library only.
"""
import json
import os
import re
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRAFANA = os.path.join(ROOT, "deploy", "grafana")
QUERIES = os.path.join(GRAFANA, "queries")
DASHBOARDS = os.path.join(GRAFANA, "dashboards")

CH = {"type": "grafana-clickhouse-datasource", "uid": "atlasmesh-clickhouse"}
PROM = {"type": "prometheus", "uid": "atlasmesh-prometheus"}
# grafana-clickhouse-datasource v4 query formats.
FORMAT = {"timeseries": 0, "table": 1}


def ts(title, sql, w=12, h=8, unit=None, **kw):
    return dict(kind="timeseries", title=title, sql=sql, w=w, h=h, unit=unit, **kw)


def stat(title, sql, w=6, h=4, unit=None, **kw):
    return dict(kind="stat", title=title, sql=sql, w=w, h=h, unit=unit, **kw)


def table(title, sql, w=24, h=8, unit=None, **kw):
    return dict(kind="table", title=title, sql=sql, w=w, h=h, unit=unit, **kw)


def row(title):
    return dict(kind="row", title=title, w=24, h=1)


FLEET = ("fleet_id", "Fleet", "common/var-fleet_id.sql")

LAYOUT = [
    dict(
        file="atlasmesh-overview.json",
        uid="atlasmesh-overview",
        title="AtlasMesh fleet overview",
        time="now-6h",
        variables=[FLEET],
        panels=[
            row("Fleet"),
            stat("Active vehicles (newest window)", "fleet-overview/active-vehicles.sql", w=6),
            stat("Fleet KPIs over the range", "fleet-overview/kpis.sql", w=18),
            ts("Utilization / availability / idle share", "fleet-overview/utilization-availability.sql", unit="percentunit"),
            ts("Status time share", "fleet-overview/status-time.sql", unit="percentunit", stack=True),
            ts("Active vehicles", "fleet-overview/active-vehicles-over-time.sql"),
            ts("Distance (km) / energy (kWh)", "fleet-overview/distance-energy.sql"),
            ts("Faults and missions", "fleet-overview/faults-missions.sql", bars=True),
            table("Vehicles (latest state)", "fleet-overview/vehicles.sql", w=12),
            table("All fleets over the range", "fleet-overview/fleet-comparison.sql"),
            ts("Fleet utilization (busy / observed), all fleets", "fleet-overview/all-fleets-utilization.sql", w=24, unit="percentunit"),
            row("Pipeline health (Prometheus)"),
            dict(kind="prometheus", title="Events consumed / accepted per second", w=12, h=8, targets=[
                ("sum(rate(atlasmesh_events_consumed_total[1m]))", "consumed"),
                ("sum(rate(atlasmesh_events_accepted_total[1m]))", "accepted"),
                ("sum by (topic, reason) (rate(atlasmesh_dlq_messages_total[1m]))", "dlq {{topic}} {{reason}}"),
            ]),
            dict(kind="prometheus", title="Consumer lag (messages)", w=12, h=8, targets=[
                ("sum by (partition) (atlasmesh_consumer_lag_messages)", "p{{partition}}"),
            ]),
            dict(kind="prometheus", title="Checkpoint duration p99", w=12, h=8, unit="s", targets=[
                ("histogram_quantile(0.99, sum by (le) (rate(atlasmesh_checkpoint_duration_seconds_bucket[5m])))", "p99"),
            ]),
            dict(kind="prometheus", title="Sink write duration p99", w=12, h=8, unit="s", targets=[
                ("histogram_quantile(0.99, sum by (le, sink) (rate(atlasmesh_sink_write_duration_seconds_bucket[5m])))", "{{sink}}"),
            ]),
        ],
    ),
    dict(
        file="atlasmesh-vehicle.json",
        uid="atlasmesh-vehicle",
        title="AtlasMesh vehicle drill-down",
        time="now-6h",
        variables=[FLEET, ("vehicle_id", "Vehicle", "vehicle-drilldown/var-vehicle_id.sql")],
        panels=[
            table("Latest state", "vehicle-drilldown/latest-state.sql", h=4),
            ts("Speed (km/h) and state of charge (%)", "vehicle-drilldown/speed-energy.sql"),
            ts("Utilization / availability", "vehicle-drilldown/utilization.sql", unit="percentunit"),
            ts("Minutes per status", "vehicle-drilldown/status-time.sql", unit="m", stack=True, bars=True),
            ts("Distance / energy / kWh per km", "vehicle-drilldown/distance-energy.sql"),
            dict(kind="geomap", title="Track", sql="vehicle-drilldown/track.sql", w=12, h=10),
            table("Faults", "vehicle-drilldown/faults.sql", w=12, h=10),
            table("Missions", "vehicle-drilldown/missions.sql", w=12),
            table("Alert transitions", "vehicle-drilldown/alerts.sql", w=12),
            ts("Hourly score and components", "vehicle-drilldown/scores.sql", w=24),
        ],
    ),
    dict(
        file="atlasmesh-performance.json",
        uid="atlasmesh-performance",
        title="AtlasMesh performance and trends",
        time="now-7d",
        variables=[FLEET, ("metric", "Trend metric", "performance-trends/var-metric.sql")],
        panels=[
            stat("Newest daily score / % of benchmark", "performance-trends/latest-score.sql", w=8),
            dict(kind="bargauge", title="Newest hourly score components", sql="performance-trends/latest-components.sql", w=16, h=4),
            ts("Hourly score and components", "performance-trends/score-components.sql"),
            ts("Daily score and % of benchmark", "performance-trends/daily-score-benchmark.sql", bars=True),
            table("Fleets by newest daily score", "performance-trends/fleet-ranking.sql", w=12),
            table("Vehicles by mean hourly score", "performance-trends/vehicle-ranking.sql", w=12),
            ts("Forecast of $metric (with prediction interval)", "performance-trends/trend-forecast.sql"),
            ts("Slope / change % of $metric", "performance-trends/trend-slope.sql"),
            table("Newest trend per metric and horizon", "performance-trends/latest-trends.sql", w=12),
            ts("Daily KPIs", "performance-trends/daily-kpis.sql", w=12, bars=True),
        ],
    ),
    dict(
        file="atlasmesh-alerts.json",
        uid="atlasmesh-alerts",
        title="AtlasMesh alerts",
        time="now-24h",
        variables=[FLEET],
        panels=[
            stat("Firing now", "alerts/firing-count.sql", w=8),
            stat("Transitions in the range", "alerts/counts.sql", w=16),
            table("Firing now", "alerts/firing.sql"),
            ts("Transitions per interval", "alerts/transitions-over-time.sql", bars=True, stack=True),
            dict(kind="piechart", title="Triggered by severity", sql="alerts/by-severity.sql", w=12, h=8),
            table("Rules", "alerts/rules.sql"),
            table("History", "alerts/history.sql", h=12),
        ],
    ),
    dict(
        file="atlasmesh-resources.json",
        uid="atlasmesh-resources",
        title="AtlasMesh resources and missions",
        time="now-24h",
        variables=[FLEET],
        panels=[
            row("Resource pools"),
            stat("Pool utilization over the range", "resources/fleet-pool-utilization.sql", w=8),
            table("Pools (newest sample)", "resources/pools.sql", w=16),
            ts("Utilization per pool", "resources/pool-utilization.sql", unit="percentunit"),
            ts("Queued requests per pool kind", "resources/queued.sql"),
            table("Saturation (utilization >= 90 %)", "resources/saturation.sql"),
            row("Missions"),
            stat("Mission KPIs over the range", "resources/mission-kpis.sql", w=24),
            ts("Missions per window", "resources/missions.sql", bars=True),
            ts("Mission duration (min): actual vs planned", "resources/mission-duration.sql"),
            ts("Safety events", "resources/safety.sql", w=24),
            row("Coordination and optimization (Prometheus)"),
            dict(kind="prometheus", title="Inter-fleet messages delivered per second", w=12, h=8, targets=[
                ("sum(rate(atlasmesh_communications_delivered_total[5m]))", "delivered"),
            ]),
            dict(kind="prometheus", title="Communication latency (send to topic)", w=12, h=8, unit="s", targets=[
                ("histogram_quantile(0.5, sum by (le) (rate(atlasmesh_communication_latency_seconds_bucket[5m])))", "p50"),
                ("histogram_quantile(0.99, sum by (le) (rate(atlasmesh_communication_latency_seconds_bucket[5m])))", "p99"),
            ]),
            dict(kind="prometheus", title="Coordination success / acknowledgement / sharing efficiency", w=12, h=8, unit="percentunit", targets=[
                ("max(atlasmesh_coordination_success_ratio)", "delivered / sent"),
                ("max(atlasmesh_coordination_acknowledgement_ratio)", "acknowledged / delivered"),
                ("max(atlasmesh_federation_sharing_efficiency)", "sharing efficiency"),
            ]),
            dict(kind="prometheus", title="Federations", w=12, h=8, targets=[
                ("max(atlasmesh_federations)", "federations"),
            ]),
            dict(kind="prometheus", title="Optimization runs: success rate", w=12, h=8, unit="percentunit", targets=[
                ("sum(increase(atlasmesh_optimization_runs_total{outcome=\"completed\"}[1h])) / sum(increase(atlasmesh_optimization_runs_total[1h]))", "completed / finished (1 h)"),
            ]),
            dict(kind="prometheus", title="Optimization run time", w=12, h=8, unit="s", targets=[
                ("histogram_quantile(0.5, sum by (le) (rate(atlasmesh_optimization_run_seconds_bucket[15m])))", "p50"),
                ("histogram_quantile(0.99, sum by (le) (rate(atlasmesh_optimization_run_seconds_bucket[15m])))", "p99"),
            ]),
        ],
    ),
]


REBALANCING = dict(
    file="atlasmesh-rebalancing.json",
    uid="atlasmesh-rebalancing",
    title="AtlasMesh rebalancing",
    time="now-24h",
    variables=[FLEET, ("zone_id", "Zone", "rebalancing/var-zone_id.sql")],
    panels=[
        stat("Demand over the range", "rebalancing/kpis.sql", w=24),
        ts("Zone $zone_id: requests vs forecast", "rebalancing/demand-vs-forecast.sql", w=24),
        ts("Served / expired share of requests", "rebalancing/served.sql", unit="percentunit"),
        ts("Mean wait to assignment per zone (s)", "rebalancing/wait.sql", unit="s"),
        table("Zones over the range", "rebalancing/zones.sql"),
        ts("Vehicles planned to move, by destination", "rebalancing/moves-over-time.sql", bars=True, stack=True),
        table("Planned moves (newest first)", "rebalancing/plan-moves.sql", w=12),
        dict(kind="prometheus", title="Recommendation adoption, all fleets (last day)", w=12, h=8, unit="percentunit", targets=[
            ("max by (stage) (atlasmesh_optimization_adoption_ratio)", "{{stage}}"),
        ]),
    ],
)
LAYOUT.append(REBALANCING)

# Days of health and predictions, and the capacity hours ahead: the range reaches a day into the
# future so the forecast zone-hours show.
FLEET_HEALTH = dict(
    file="atlasmesh-fleet-health.json",
    uid="atlasmesh-fleet-health",
    title="AtlasMesh fleet health and predictions",
    time="now-7d",
    time_to="now+1d",
    variables=[
        FLEET,
        ("vehicle_id", "Vehicle", "fleet-health/var-vehicle_id.sql"),
        ("zone_id", "Zone", "fleet-health/var-zone_id.sql"),
    ],
    panels=[
        row("Fleet health"),
        stat("Newest day: health scores, alarms", "fleet-health/kpis.sql", w=24),
        ts("Fleet health score per day: median / p10 / min", "fleet-health/fleet-scores.sql"),
        ts("Failure alarms per day", "fleet-health/alarms.sql", bars=True),
        table("Worst vehicles (newest day)", "fleet-health/worst-vehicles.sql"),
        row("Battery state of health"),
        ts("State of health per vehicle (%)", "fleet-health/soh-per-vehicle.sql", unit="percent"),
        ts("State of health of $vehicle_id with its 95 % band", "fleet-health/soh-vehicle.sql", unit="percent"),
        table("Vehicles predicted to cross the state-of-health threshold", "fleet-health/soh-threshold.sql"),
        row("Failure risk"),
        ts("Failure risk per vehicle", "fleet-health/failure-risk.sql", unit="percentunit"),
        table("Newest failure risk and alarm per vehicle", "fleet-health/risk-table.sql", w=12),
        row("Capacity: vehicles available vs forecast demand"),
        stat("Newest capacity metric", "fleet-health/capacity-kpis.sql", w=24),
        ts("Zone $zone_id: available vs demand per hour", "fleet-health/capacity-zone.sql"),
        ts("Shortfall per zone and hour", "fleet-health/shortfall.sql", bars=True, stack=True),
        table("Zone-hours (largest shortfall first)", "fleet-health/capacity-hours.sql"),
        dict(kind="prometheus", title="Capacity metrics computed per hour, by outcome", w=12, h=8, targets=[
            ("sum by (outcome) (increase(atlasmesh_capacity_metrics_total[1h]))", "{{outcome}}"),
        ]),
        dict(kind="prometheus", title="Capacity metric computation time", w=12, h=8, unit="s", targets=[
            ("histogram_quantile(0.5, sum by (le) (rate(atlasmesh_capacity_metric_seconds_bucket[15m])))", "p50"),
            ("histogram_quantile(0.99, sum by (le) (rate(atlasmesh_capacity_metric_seconds_bucket[15m])))", "p99"),
        ]),
    ],
)
LAYOUT.append(FLEET_HEALTH)


def read_sql(rel):
    with open(os.path.join(QUERIES, rel)) as f:
        return f.read().strip()


def variable(name, label, rel):
    sql = read_sql(rel)
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": CH,
        "query": sql,
        "definition": sql,
        "refresh": 2,
        "sort": 1,
        "multi": False,
        "includeAll": False,
        "current": {},
        "options": [],
        "hide": 0,
    }


def ch_target(sql, fmt):
    return {
        "datasource": CH,
        "editorType": "sql",
        "format": FORMAT[fmt],
        "queryType": fmt,
        "rawSql": read_sql(sql),
        "refId": "A",
    }


def panel(p, pid, pos):
    kind = p["kind"]
    out = {"id": pid, "title": p["title"], "gridPos": pos}
    if kind == "row":
        out.update(type="row", collapsed=False, panels=[])
        return out
    defaults = {}
    if p.get("unit"):
        defaults["unit"] = p["unit"]
    custom = {}
    options = {}
    if kind == "prometheus":
        out.update(type="timeseries", datasource=PROM, targets=[
            {"datasource": PROM, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + i)}
            for i, (expr, legend) in enumerate(p["targets"])
        ])
    else:
        fmt = "timeseries" if kind == "timeseries" else "table"
        out.update(type=kind, datasource=CH, targets=[ch_target(p["sql"], fmt)])
        if kind == "timeseries":
            custom = {"drawStyle": "bars" if p.get("bars") else "line", "fillOpacity": 30 if p.get("bars") or p.get("stack") else 10,
                      "spanNulls": True}
            if p.get("stack"):
                custom["stacking"] = {"mode": "normal", "group": "A"}
            options = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                       "tooltip": {"mode": "multi", "sort": "none"}}
        elif kind in ("stat", "bargauge"):
            options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                       "colorMode": "value", "graphMode": "none", "textMode": "value_and_name"}
            if kind == "bargauge":
                options = {"reduceOptions": options["reduceOptions"], "orientation": "horizontal",
                           "displayMode": "gradient"}
                defaults.update(min=0, max=100)
        elif kind == "table":
            options = {"showHeader": True, "cellHeight": "sm"}
        elif kind == "piechart":
            options = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": True},
                       "pieType": "donut", "legend": {"displayMode": "table", "placement": "right", "values": ["value"]}}
        elif kind == "geomap":
            options = {"view": {"id": "fit", "lat": 0, "lon": 0, "zoom": 12},
                       "controls": {"showZoom": True, "mouseWheelZoom": True},
                       "basemap": {"type": "default", "name": "Basemap"},
                       "layers": [{"type": "route", "name": "Track", "config": {"style": {"size": {"fixed": 4}}},
                                   "location": {"mode": "coords", "latitude": "lat", "longitude": "lon"}}]}
    if custom:
        defaults["custom"] = custom
    out["fieldConfig"] = {"defaults": defaults, "overrides": []}
    out["options"] = options
    return out


def render(d):
    panels = []
    x = y = line_h = 0
    for i, p in enumerate(d["panels"], start=1):
        w, h = p["w"], p["h"]
        if x + w > 24:
            x, y, line_h = 0, y + line_h, 0
        panels.append(panel(p, i, {"h": h, "w": w, "x": x, "y": y}))
        x += w
        line_h = max(line_h, h)
    return {
        "uid": d["uid"],
        "title": d["title"],
        "description": "Generated by scripts/grafana-build.py from deploy/grafana/queries/ - edit those, not this file.",
        "tags": ["atlasmesh"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "time": {"from": d["time"], "to": d.get("time_to", "now")},
        "refresh": "1m",
        "templating": {"list": [variable(*v) for v in d["variables"]]},
        "links": [{"type": "dashboards", "tags": ["atlasmesh"], "asDropdown": True, "title": "AtlasMesh",
                   "includeVars": True, "keepTime": True}],
        "panels": panels,
    }


def rendered():
    """{file name: JSON text} of every dashboard."""
    return {d["file"]: json.dumps(render(d), indent=2) + "\n" for d in LAYOUT}


# ------------------------------------------------------------------ helpers for the tests

def query_files():
    """Every panel/variable SQL file (relative to deploy/grafana/queries), sorted."""
    out = []
    for dirpath, _, files in os.walk(QUERIES):
        for f in files:
            if f.endswith(".sql") and f != "fixtures.sql":
                out.append(os.path.relpath(os.path.join(dirpath, f), QUERIES))
    return sorted(out)


def expected_columns(sql):
    """The names of the `-- columns: a, b` header line."""
    for line in sql.splitlines():
        m = re.match(r"\s*--\s*columns:\s*(.*)$", line)
        if m:
            return [c.strip() for c in m.group(1).split(",") if c.strip()]
    raise ValueError("no '-- columns:' header")


def load_macros():
    with open(os.path.join(QUERIES, "macros.json")) as f:
        return json.load(f)


def substitute(sql, macros, now_s=None):
    """Replaces the Grafana macros and template variables as macros.json defines; raises on any
    `$` left over (an unsupported macro or an unknown variable)."""
    now_s = int(time.time()) if now_s is None else now_s
    vals = {"from": str(now_s + macros["from_offset_s"]), "to": str(now_s + macros["to_offset_s"]),
            "interval_s": str(macros["interval_s"])}

    def fill(template, arg=None):
        out = template
        for k, v in vals.items():
            out = out.replace("{" + k + "}", v)
        return out.replace("{0}", arg) if arg is not None else out

    for name in sorted(macros["macros"], key=len, reverse=True):
        template = macros["macros"][name]
        while True:
            i = sql.find(name)
            while i >= 0 and i + len(name) < len(sql) and (sql[i + len(name)].isalnum() or sql[i + len(name)] == "_"):
                i = sql.find(name, i + 1)
            if i < 0:
                break
            end = i + len(name)
            if "{0}" in template:
                if end >= len(sql) or sql[end] != "(":
                    raise ValueError(f"{name} needs one argument")
                depth, j = 0, end
                while True:
                    if sql[j] == "(":
                        depth += 1
                    elif sql[j] == ")":
                        depth -= 1
                        if depth == 0:
                            break
                    j += 1
                sql = sql[:i] + fill(template, sql[end + 1:j].strip()) + sql[j + 1:]
            else:
                sql = sql[:i] + fill(template) + sql[end:]
    for name, value in macros["variables"].items():
        sql = sql.replace("${" + name + "}", value)
    if "$" in sql:
        raise ValueError(f"unsupported macro or variable left: {sql[sql.index('$'):][:40]!r}")
    return sql


def main_check():
    """What `--check` does: 0 when the dashboards are up to date and every query file is used."""
    return main(check=True)


def main(check=None):
    check = "--check" in sys.argv[1:] if check is None else check
    stale = []
    for name, text in rendered().items():
        path = os.path.join(DASHBOARDS, name)
        old = open(path).read() if os.path.exists(path) else None
        if old != text:
            stale.append(name)
            if not check:
                with open(path, "w") as f:
                    f.write(text)
    used = {v[2] for d in LAYOUT for v in d["variables"]} | {p["sql"] for d in LAYOUT for p in d["panels"] if "sql" in p}
    unused = sorted(set(query_files()) - used)
    if unused:
        print(f"grafana-build: query files no dashboard uses: {', '.join(unused)}", file=sys.stderr)
        return 1
    for f in query_files():
        expected_columns(read_sql(f))
    if check and stale:
        print(f"grafana-build: stale dashboards (run scripts/grafana-build.py): {', '.join(stale)}", file=sys.stderr)
        return 1
    print(f"grafana-build: {len(LAYOUT)} dashboards " + ("up to date" if check else f"written ({len(stale)} changed)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
