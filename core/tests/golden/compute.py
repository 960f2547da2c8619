#!/usr/bin/env python3
"""Expected results of the golden scenario, computed independently of the Rust kernels.

Reads scenario.json (3 fleets x 30 closed 1-minute fleet windows, score parameters, trend
settings, alert rules) and writes expected.json: window and daily scores with components,
percent of benchmark and rank, trends (OLS slope, r^2, t statistic, p-value, direction, change %,
forecast with a Student-t prediction interval) and the alert timeline with its pager messages.

Python 3 standard library only. It shares no code with core/src/analytics and deliberately
computes differently where it can: the Student-t distribution by Simpson integration of its
density (Rust: incomplete beta continued fraction), regression from raw sums in exact rational
arithmetic (Rust: centred floating-point sums), the alert machine as an explicit event loop.

Usage: python3 core/tests/golden/compute.py   (rewrites expected.json beside this file)
"""

import json
import math
import os
from datetime import datetime, timezone
from fractions import Fraction

HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------- scores

def clamp01(x):
    return min(1.0, max(0.0, x))


def components(c, p):
    obs = c["observed_ms"]
    dist = c["distance_m"]
    energy = c["energy_wh"]
    faults = c["fault_count"]
    out = {}
    if dist > 0:
        kwh_per_km = energy / dist  # Wh per m == kWh per km
        out["efficiency"] = 100.0 if kwh_per_km == 0 else 100.0 * clamp01(p["reference_kwh_per_km"] / kwh_per_km)
        rate_1000km = faults / (dist / 1_000_000.0)  # faults per 1000 km
        out["safety"] = 100.0 * clamp01(1.0 - rate_1000km / p["max_faults_per_1000km"])
        cost_per_km = kwh_per_km * p["energy_price_per_kwh"]
        out["cost"] = 100.0 * clamp01(1.0 - cost_per_km / p["max_cost_per_km"])
    else:
        out["efficiency"] = out["safety"] = out["cost"] = None
    if obs > 0:
        out["utilization"] = 100.0 * c["busy_ms"] / obs
        hours = obs / 3_600_000.0
        out["reliability"] = 100.0 * (c["available_ms"] / obs) * clamp01(1.0 - (faults / hours) / p["max_faults_per_hour"])
    else:
        out["utilization"] = out["reliability"] = None
    return out


def total(comp, weights):
    num = den = 0.0
    for name, w in weights.items():
        if comp[name] is not None:
            num += w * comp[name]
            den += w
    return num / den if den > 0 else None


def score(c, p):
    comp = components(c, p)
    return {"total": total(comp, p["weights"]), "components": comp}


def summed(rows):
    out = {}
    for r in rows:
        for k, v in r.items():
            out[k] = out.get(k, 0) + v
    return out


def competition_rank(pairs, higher_is_better):
    """[(fleet, value)] -> [(fleet, value, rank)], rank = 1 + number strictly better."""
    out = []
    for f, v in pairs:
        better = sum(1 for _, w in pairs if (w > v if higher_is_better else w < v))
        out.append((f, v, better + 1))
    out.sort(key=lambda x: (x[2], x[0]))
    return out


# ---------------------------------------------------------------- Student t

def t_pdf(x, df):
    return math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
                    - (df + 1) / 2 * math.log1p(x * x / df))


def t_central_mass(t, df, n=20000):
    """P(0 <= T <= t) by composite Simpson's rule."""
    if t == 0:
        return 0.0
    h = t / n
    s = t_pdf(0.0, df) + t_pdf(t, df)
    for i in range(1, n):
        s += (4 if i % 2 else 2) * t_pdf(i * h, df)
    return s * h / 3


def t_two_sided_p(t, df):
    return max(0.0, 1.0 - 2.0 * t_central_mass(abs(t), df))


def t_quantile(p, df):
    """q with P(T <= q) = p, p > 0.5, by bisection on the Simpson CDF."""
    target = p - 0.5
    lo, hi = 0.0, 1.0
    while t_central_mass(hi, df) < target:
        hi *= 2
    for _ in range(60):
        mid = (lo + hi) / 2
        if t_central_mass(mid, df) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


# ---------------------------------------------------------------- trends

def ols(points):
    """Exact rational sums, converted to float at the end."""
    n = len(points)
    ts = [Fraction(t) for t, _ in points]
    ys = [Fraction(y) for _, y in points]
    st, sy = sum(ts), sum(ys)
    stt = sum(t * t for t in ts)
    sty = sum(t * y for t, y in zip(ts, ys))
    syy = sum(y * y for y in ys)
    sxx = stt - st * st / n
    sxy = sty - st * sy / n
    syy_c = syy - sy * sy / n
    slope = sxy / sxx
    intercept = (sy - slope * st) / n
    sse = syy_c - slope * sxy
    r2 = 1 if syy_c == 0 else 1 - sse / syy_c
    s2 = sse / (n - 2)
    return {
        "n": n,
        "slope": float(slope),
        "intercept": float(intercept),
        "r2": float(r2),
        "residual_se": math.sqrt(float(s2)),
        "slope_se": math.sqrt(float(s2 / sxx)),
        "t_mean": float(st / n),
        "sxx": float(sxx),
        "t_first": float(min(ts)),
        "t_last": float(max(ts)),
    }


def trend(points, higher_is_better, alpha, confidence, horizon_steps):
    f = ols(points)
    df = f["n"] - 2
    if f["slope_se"] > 0:
        f["t_stat"] = f["slope"] / f["slope_se"]
        p = t_two_sided_p(f["t_stat"], df)
    else:
        f["t_stat"] = None
        p = 0.0 if f["slope"] != 0 else 1.0
    significant = p < alpha
    if not significant or f["slope"] == 0:
        direction = "stable"
    elif (f["slope"] > 0) == higher_is_better:
        direction = "improving"
    else:
        direction = "declining"
    start = f["intercept"] + f["slope"] * f["t_first"]
    end = f["intercept"] + f["slope"] * f["t_last"]
    change = None if abs(start) < 1e-12 else 100.0 * (end - start) / abs(start)
    step = (f["t_last"] - f["t_first"]) / (f["n"] - 1)
    tf = f["t_last"] + horizon_steps * step
    q = t_quantile(1 - (1 - confidence) / 2, df)
    half = q * f["residual_se"] * math.sqrt(1 + 1 / f["n"] + (tf - f["t_mean"]) ** 2 / f["sxx"])
    value = f["intercept"] + f["slope"] * tf
    return {
        "fit": f,
        "p_value": p,
        "significant": significant,
        "direction": direction,
        "change_pct": change,
        "forecast": {"t": tf, "value": value, "lower": value - half, "upper": value + half, "confidence": confidence},
    }


def metric(c, name, p):
    if name == "utilization":
        return c["busy_ms"] / c["observed_ms"] if c["observed_ms"] else None
    if name == "kwh_per_km":
        return c["energy_wh"] / c["distance_m"] if c["distance_m"] else None
    if name == "score":
        return score(c, p)["total"]
    raise ValueError(name)


# ---------------------------------------------------------------- alerts

CMP = {"gt": lambda v, x: v > x, "ge": lambda v, x: v >= x, "lt": lambda v, x: v < x, "le": lambda v, x: v <= x}
SYM = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def dedup_key(rule_id, subject):
    return "am-%016x" % fnv1a64(rule_id.encode() + b"\x1f" + subject.encode())


def rfc3339(ms):
    dt = datetime.fromtimestamp(ms // 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % (ms % 1000)


def alert_timeline(rule, observations):
    """observations: [(at_ms, value)] in time order -> [transition dict]."""
    cmp = CMP[rule["comparison"]]
    clear_thr = rule["clear_threshold"] if rule["clear_threshold"] is not None else rule["threshold"]
    state = "inactive"
    pending_since = fired_at = last_sent = clear_since = None
    out = []

    def emit(kind, at, value, starts, ends=None):
        out.append({"kind": kind, "at_ms": at, "value": value, "starts_at_ms": starts, "ends_at_ms": ends})

    for at, v in observations:
        if v is None:
            continue
        breach = cmp(v, rule["threshold"])
        if state in ("inactive", "resolved"):
            if breach:
                if rule["for_ms"] == 0:
                    state, fired_at, last_sent, clear_since = "firing", at, at, None
                    emit("firing", at, v, at)
                else:
                    state, pending_since = "pending", at
                    emit("pending", at, v, at)
        elif state == "pending":
            if not breach:
                state = "inactive"
                emit("cancelled", at, v, pending_since)
            elif at - pending_since >= rule["for_ms"]:
                state, fired_at, last_sent, clear_since = "firing", at, at, None
                emit("firing", at, v, at)
        else:  # firing
            if not cmp(v, clear_thr):
                if clear_since is None:
                    clear_since = at
            else:
                clear_since = None
            if clear_since is not None and at - clear_since >= rule["keep_firing_for_ms"]:
                state = "resolved"
                emit("resolved", at, v, fired_at, at)
            elif rule["resend_interval_ms"] > 0 and at - last_sent >= rule["resend_interval_ms"]:
                last_sent = at
                emit("resent", at, v, fired_at)
    return out


def pager_message(rule, subject, t):
    if t["kind"] not in ("firing", "resent", "resolved"):
        return None
    resolved = t["kind"] == "resolved"
    clear_thr = rule["clear_threshold"] if rule["clear_threshold"] is not None else rule["threshold"]
    head = "RESOLVED" if resolved else rule["severity"].upper()
    summary = "%s: %s %s %s %s is %.3f (fires when %s %.3f, clears at %.3f)" % (
        head, rule["id"], rule["scope"], subject, rule["metric"], t["value"], SYM[rule["comparison"]],
        rule["threshold"], clear_thr)
    labels = dict(rule["labels"])
    labels.update({"alertname": rule["id"], "severity": rule["severity"], "metric": rule["metric"],
                   "scope": rule["scope"], "subject": subject})
    annotations = {"summary": summary}
    links = []
    if rule["runbook_url"]:
        annotations["runbook_url"] = rule["runbook_url"]
        links = [{"href": rule["runbook_url"], "text": "Runbook: " + rule["id"]}]
    msg = {
        "event_action": "resolve" if resolved else "trigger",
        "dedup_key": dedup_key(rule["id"], subject),
        "client": "AtlasMesh",
        "payload": {
            "summary": summary,
            "source": "atlasmesh/%s/%s" % (rule["scope"], subject),
            "severity": rule["severity"],
            "timestamp": rfc3339(t["at_ms"]),
            "component": rule["scope"],
            "group": subject,
            "class": rule["metric"],
            "custom_details": {
                "rule_id": rule["id"], "transition": t["kind"], "metric": rule["metric"],
                "scope": rule["scope"], "subject": subject, "value": t["value"],
                "comparison": rule["comparison"], "threshold": rule["threshold"],
                "clear_threshold": clear_thr, "for_ms": rule["for_ms"],
                "keep_firing_for_ms": rule["keep_firing_for_ms"], "starts_at": rfc3339(t["starts_at_ms"]),
            },
        },
        "links": links,
        "status": "resolved" if resolved else "firing",
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339(t["starts_at_ms"]),
    }
    if t["ends_at_ms"] is not None:
        msg["endsAt"] = rfc3339(t["ends_at_ms"])
    return msg


# ---------------------------------------------------------------- telemetry -> windows

COUNTERS = ["samples", "observed_ms", "busy_ms", "available_ms", "idle_ms", "charging_ms", "maintenance_ms",
            "fault_ms", "offline_ms", "distance_m", "energy_wh", "moving_samples", "moving_speed_ckph_sum",
            "fault_count", "mission_count", "active_vehicles", "vehicles"]
BUSY = ("en_route", "on_mission")
UNAVAILABLE = ("maintenance", "fault", "offline")


def whole(x):
    """x rounded half away from zero to an integer (x >= 0 here)."""
    return int(math.floor(x + 0.5))


def admitted(tel):
    """Replays the arrival order: drops exact repeats of (vehicle, ts, seq) and events behind the
    closed frontier by more than the allowed lateness. The frontier is the start of the window
    holding the watermark (newest event time so far minus the out-of-orderness bound), and never
    lower than the window of the first event. Returns (kept events, dropped ids, repeats)."""
    wp = tel["window_params"]
    w = wp["window_ms"]
    seen = set()
    kept, dropped, repeats = [], [], 0
    newest = frontier = None
    for e in tel["events"]:
        if frontier is None:
            frontier = e["ts_ms"] // w * w
        if e["ts_ms"] < frontier - wp["allowed_lateness_ms"]:
            dropped.append(e["event_id"])
            continue
        key = (e["vehicle_id"], e["ts_ms"], e["seq"])
        if key in seen:
            repeats += 1
            continue
        seen.add(key)
        kept.append(e)
        newest = e["ts_ms"] if newest is None else max(newest, e["ts_ms"])
        frontier = max(frontier, (newest - wp["out_of_orderness_ms"]) // w * w)
    return kept, dropped, repeats


def vehicle_windows(events, wp):
    """{(vehicle, window start): counters} from the admitted events of every vehicle."""
    w, gap = wp["window_ms"], wp["max_gap_ms"]
    by_vehicle = {}
    for e in events:
        by_vehicle.setdefault(e["vehicle_id"], []).append(e)
    out = {}

    def slot(v, ws):
        return out.setdefault((v, ws), dict({k: 0 for k in COUNTERS}, missions=set()))

    for v, evs in by_vehicle.items():
        evs.sort(key=lambda e: (e["ts_ms"], e["seq"]))
        for i, e in enumerate(evs):
            # Status time: the sample's status holds until the next sample, at most max_gap.
            t = e["ts_ms"]
            end = t + (min(evs[i + 1]["ts_ms"] - t, gap) if i + 1 < len(evs) else gap)
            ws = t // w * w
            while ws < end:
                ms = min(end, ws + w) - max(t, ws)
                if ms > 0:
                    c = slot(v, ws)
                    c["observed_ms"] += ms
                    st = e["status"]
                    if st in BUSY:
                        c["busy_ms"] += ms
                    else:
                        name = st + "_ms"
                        if name in c:
                            c[name] += ms
                    if st not in UNAVAILABLE:
                        c["available_ms"] += ms
                ws += w
            # Per-sample counts, in the window of the sample's own time.
            c = slot(v, t // w * w)
            c["samples"] += 1
            if i > 0:
                p = evs[i - 1]
                c["distance_m"] += max(0, whole(e["odometer_km"] * 1000) - whole(p["odometer_km"] * 1000))
                c["energy_wh"] += max(0, whole(e["energy_used_kwh"] * 1000) - whole(p["energy_used_kwh"] * 1000))
            if e["status"] == "fault" and (i == 0 or evs[i - 1]["status"] != "fault"):
                c["fault_count"] += 1
            ckph = whole(e["speed_kph"] * 100)
            if ckph > 50:
                c["moving_samples"] += 1
                c["moving_speed_ckph_sum"] += ckph
            if e["status"] != "offline":
                c["active_vehicles"] = 1
            if e["mission_id"]:
                c["missions"].add(e["mission_id"])
    for c in out.values():
        c["mission_count"] = len(c.pop("missions"))
        c["vehicles"] = 1
    return out


def fleet_windows(tel):
    """{fleet: [counters of each of the scenario's windows]}, plus what admission left out."""
    wp = tel["window_params"]
    events, dropped, repeats = admitted(tel)
    fleet_of = {e["vehicle_id"]: e["fleet_id"] for e in events}
    per_vehicle = vehicle_windows(events, wp)
    # Every window up to the last one any vehicle's data reaches: past the scenario's last
    # sample, a vehicle's last status still holds for up to max_gap_ms (the tail window).
    last = max(ws for (_, ws) in per_vehicle)
    starts = list(range(tel["t0_ms"], last + 1, wp["window_ms"]))
    fleets = {}
    for (v, ws), c in per_vehicle.items():
        rows = fleets.setdefault(fleet_of[v], {s: {k: 0 for k in COUNTERS} for s in starts})
        for k in COUNTERS:
            rows[ws][k] += c[k]
    return {f: [rows[s] for s in starts] for f, rows in sorted(fleets.items())}, dropped, repeats


# ---------------------------------------------------------------- main

def analyse(sc, fleets, t0, wms):
    """Scores, benchmark, rank, trends and the alert timeline of per-fleet window counters."""
    p = sc["score_params"]
    window_scores = {}
    for f, rows in fleets.items():
        window_scores[f] = [dict(window_start_ms=t0 + i * wms, **score(c, p)) for i, c in enumerate(rows)]

    daily = {f: score(summed(rows), p) for f, rows in fleets.items()}
    benchmark = {f: 100.0 * daily[f]["total"] / sc["benchmark_total"] for f in fleets}
    rank = [{"fleet_id": f, "value": v, "rank": r}
            for f, v, r in competition_rank([(f, daily[f]["total"]) for f in fleets], True)]

    ts = sc["trend"]
    trends = []
    for f, rows in fleets.items():
        for m in ts["metrics"]:
            # t = window end in minutes since t0.
            series = [((i + 1) * wms / 60_000, metric(c, m["name"], p)) for i, c in enumerate(rows)]
            series = [(t, y) for t, y in series if y is not None]
            # The last h windows: the horizon ends at the newest window, even where the
            # metric is undefined (kWh/km of a window without distance).
            t_end = len(rows) * wms / 60_000
            for h in ts["horizons_windows"]:
                pts = [(t, y) for t, y in series if t > t_end - h]
                trends.append({"fleet_id": f, "metric": m["name"], "horizon_windows": h,
                               "trend": trend(pts, m["higher_is_better"], ts["alpha"], ts["confidence"],
                                              ts["horizon_steps"])})

    alerts = []
    messages = []
    for rule in sc["rules"]:
        for f, rows in fleets.items():
            obs = [(t0 + (i + 1) * wms, metric(c, rule["metric"], p)) for i, c in enumerate(rows)]
            for t in alert_timeline(rule, obs):
                alerts.append(dict(rule_id=rule["id"], subject=f, **t))
                m = pager_message(rule, f, t)
                if m is not None:
                    messages.append({"key": m["dedup_key"], "message": m})

    return {
        "window_scores": window_scores,
        "daily_scores": daily,
        "percent_of_benchmark": benchmark,
        "rank_by_daily_total": rank,
        "trends": trends,
        "alerts": alerts,
        "messages": messages,
    }


def write(name, out):
    with open(os.path.join(HERE, name), "w") as fh:
        json.dump(out, fh, indent=1, sort_keys=True)
        fh.write("\n")


def main():
    sc = json.load(open(os.path.join(HERE, "scenario.json")))
    out = {"generated_by": "core/tests/golden/compute.py"}
    out.update(analyse(sc, sc["fleets"], sc["t0_ms"], sc["window_ms"]))
    write("expected.json", out)

    # The same analysis from raw telemetry (telemetry.json), with scenario.json's score
    # parameters, trend settings and rules.
    tel = json.load(open(os.path.join(HERE, "telemetry.json")))
    fleets, dropped, repeats = fleet_windows(tel)
    out = {
        "generated_by": "core/tests/golden/compute.py",
        "dropped_too_late": dropped,
        "repeats_ignored": repeats,
        "fleet_windows": {f: [dict(window_start_ms=tel["t0_ms"] + i * tel["window_params"]["window_ms"], **c)
                              for i, c in enumerate(rows)] for f, rows in fleets.items()},
    }
    out.update(analyse(sc, fleets, tel["t0_ms"], tel["window_params"]["window_ms"]))
    write("expected_telemetry.json", out)


if __name__ == "__main__":
    main()
