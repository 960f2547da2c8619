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


# ---------------------------------------------------------------- main

def main():
    sc = json.load(open(os.path.join(HERE, "scenario.json")))
    p = sc["score_params"]
    t0, wms = sc["t0_ms"], sc["window_ms"]
    fleets = sc["fleets"]

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
            for h in ts["horizons_windows"]:
                pts = [(t, y) for t, y in series if t > series[-1][0] - h]
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

    out = {
        "generated_by": "core/tests/golden/compute.py",
        "window_scores": window_scores,
        "daily_scores": daily,
        "percent_of_benchmark": benchmark,
        "rank_by_daily_total": rank,
        "trends": trends,
        "alerts": alerts,
        "messages": messages,
    }
    with open(os.path.join(HERE, "expected.json"), "w") as fh:
        json.dump(out, fh, indent=1, sort_keys=True)
        fh.write("\n")


if __name__ == "__main__":
    main()
