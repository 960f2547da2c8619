#!/usr/bin/env python3
"""Writes telemetry.json: the raw telemetry of the golden scenario, in arrival order.

Inputs only: nothing here computes a metric. compute.py turns telemetry.json into windows,
scores, trends and the alert timeline (expected_telemetry.json); the Rust tests feed the same
events to the real kernels and must arrive at exactly those numbers.

8 vehicles in 3 fleets report every 10 s for 30 minutes (each vehicle at its own offset
within the tick, so status segments straddle window boundaries). The fleets are shaped to show:
  fleet-a  utilization rising from a parked first minute (improving; its low-utilization alert
           fires early and resolves), kWh/km easing as the idle draw spreads over more distance;
  fleet-b  utilization wandering noisily across the 0.5 threshold, then a sustained breach and
           a recovery (hysteresis and `for` keep the pager quiet until the breach is real);
  fleet-c  utilization falling and consumption climbing past 0.28 kWh/km (critical alert).
The feed also has the awkward inputs of a real one: out-of-order arrival inside the out-of-orderness bound,
a sample arriving 40 s late (re-emits its closed window), one arriving 9 minutes late (dropped as
too late), an exact duplicate, a vehicle silent for 3 minutes (longer than max_gap), an
odometer and energy counter reset, a fault episode and maintenance.

Deterministic (seeded); rerun only to change the scenario:
    python3 core/tests/golden/make_telemetry.py && python3 core/tests/golden/compute.py
"""

import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
T0 = 1717200000000  # 2024-06-01T00:00:00Z
TICK = 10_000
TICKS = 180  # 30 minutes
WINDOW_PARAMS = {"window_ms": 60_000, "out_of_orderness_ms": 5_000, "allowed_lateness_ms": 120_000,
                 "max_gap_ms": 60_000}

VEHICLES = [
    ("fleet-a", "veh-a1", 1_250), ("fleet-a", "veh-a2", 4_700), ("fleet-a", "veh-a3", 8_100),
    ("fleet-b", "veh-b1", 2_300), ("fleet-b", "veh-b2", 5_500), ("fleet-b", "veh-b3", 9_050),
    ("fleet-c", "veh-c1", 3_600), ("fleet-c", "veh-c2", 7_400),
]

B_NOISY = [0.62, 0.58, 0.47, 0.55, 0.46, 0.53, 0.49, 0.57, 0.44, 0.52, 0.48, 0.56, 0.47, 0.54, 0.5]


def busy_share(fleet, minute):
    """Target share of busy samples in a minute (the generator's intent, not a metric)."""
    if fleet == "fleet-a":
        return 0.0 if minute == 0 else min(0.9, 0.25 + 0.022 * minute)
    if fleet == "fleet-b":
        if minute < 15:
            return B_NOISY[minute]
        if minute < 22:
            return 0.35
        return 0.75
    return max(0.2, 0.85 - 0.02 * minute)


def wh_per_km(fleet, minute):
    if fleet == "fleet-c":
        return 190 + 5 * minute
    return 200 if fleet == "fleet-a" else 230


def vehicle_samples(rng, fleet, vid, offset):
    out = []
    odo_m = rng.randrange(10_000_000, 90_000_000)
    energy_wh = rng.randrange(1_000_000, 9_000_000)
    mission_n = 0
    prev_busy = False
    for k in range(TICKS):
        ts = T0 + k * TICK + offset
        minute = (k * TICK + offset) // 60_000
        # Silence: veh-a2 reports nothing for 3 minutes.
        if vid == "veh-a2" and 60 <= k < 78:
            continue
        busy = rng.random() < busy_share(fleet, minute)
        status = "en_route" if busy else "idle"
        if busy and rng.random() < 0.5:
            status = "on_mission"
        if vid == "veh-b3" and 40 <= k < 46:
            status = "fault"
        if vid == "veh-b3" and 46 <= k < 52:
            status = "maintenance"
        if not busy and status == "idle" and rng.random() < 0.15:
            status = "charging"
        if vid == "veh-c2" and 150 <= k < 156:
            status = "offline"
        moving = status in ("en_route", "on_mission")
        speed = round(rng.uniform(18.0, 62.0), 2) if moving else (0.3 if rng.random() < 0.2 else 0.0)
        if moving and not prev_busy:
            mission_n += 1
        prev_busy = moving
        mission = "m-%s-%d" % (vid, mission_n) if status == "on_mission" else None
        # Counter reset (a replaced telematics unit): veh-c1's counters restart at zero.
        if vid == "veh-c1" and k == 95:
            odo_m, energy_wh = 0, 0
        out.append({
            "event_id": "%s-%d" % (vid, k),
            "fleet_id": fleet,
            "vehicle_id": vid,
            "ts_ms": ts,
            "seq": k,
            "lat": round(48.1 + rng.uniform(-0.05, 0.05), 6),
            "lon": round(11.5 + rng.uniform(-0.05, 0.05), 6),
            "speed_kph": speed,
            "odometer_km": odo_m / 1000,
            "energy_pct": round(rng.uniform(20.0, 95.0), 1),
            "energy_used_kwh": energy_wh / 1000,
            "status": status,
            "mission_id": mission,
            "zone_id": "zone-%s" % fleet[-1],
            "payload_kg": 0.0,
            "fault_codes": ["E-MOTOR-07"] if status == "fault" else [],
        })
        # Distance covered until the next sample, and energy for it plus a small idle draw.
        metres = int(speed * 1000 * TICK / 3_600_000) if moving else 0
        odo_m += metres
        energy_wh += metres * wh_per_km(fleet, minute) // 1000 + (3 if not moving else 0)
    return out


def main():
    rng = random.Random(20240601)
    per_vehicle = {vid: vehicle_samples(rng, fleet, vid, off) for fleet, vid, off in VEHICLES}
    # Arrival: by event time, then the irregularities.
    arrival = sorted((e for evs in per_vehicle.values() for e in evs), key=lambda e: (e["ts_ms"], e["vehicle_id"]))
    arrive_at = {id(e): e["ts_ms"] for e in arrival}
    # Out of order within the 5 s bound: veh-a1's samples 30..35 each arrive 4 s late.
    for e in per_vehicle["veh-a1"][30:36]:
        arrive_at[id(e)] += 4_000
    # Late: veh-b2's sample 100 (45.5 s into minute 16) arrives 40 s after its time, when
    # minute 16 has closed (it is re-emitted) but minute 17 has not, so the pipelines settle
    # minute 16 with it.
    arrive_at[id(per_vehicle["veh-b2"][100])] += 40_000
    # Too late: veh-c2's sample 40 arrives 9 minutes after its time (dropped).
    arrive_at[id(per_vehicle["veh-c2"][40])] += 540_000
    arrival.sort(key=lambda e: (arrive_at[id(e)], e["vehicle_id"], e["seq"]))
    # An exact duplicate of veh-a3's sample 120, delivered again 20 s later.
    dup = per_vehicle["veh-a3"][120]
    at = next(i for i, e in enumerate(arrival) if arrive_at[id(e)] > dup["ts_ms"] + 20_000)
    arrival.insert(at, dict(dup))
    out = {
        "description": " ".join(__doc__.strip().split("\n\n")[2].split()),
        "t0_ms": T0,
        "windows": TICKS * TICK // WINDOW_PARAMS["window_ms"],
        "window_params": WINDOW_PARAMS,
        "events": arrival,
    }
    # One event per line, so a change to the scenario reads as a diff.
    head = json.dumps({k: v for k, v in out.items() if k != "events"}, indent=1)
    events = ",\n".join("  " + json.dumps(e, sort_keys=True) for e in out["events"])
    with open(os.path.join(HERE, "telemetry.json"), "w") as fh:
        fh.write(head[:-2] + ',\n "events": [\n' + events + "\n ]\n}\n")


if __name__ == "__main__":
    main()
