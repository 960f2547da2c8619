//! The pure part of the alert engine: per-partition state (fleet partials waiting to settle,
//! one alert state machine per rule and subject) and the evaluation of a metrics record
//! against the rules. No I/O, no clock: the same records in the same order with the same
//! rules give the same transitions with the same sequence numbers, which is what makes a
//! replay after a crash produce exact duplicates (dropped downstream by `(dedup_key, seq)`).
//!
//! **Fleet windows.** `fleet.metrics.v1` carries per-source-partition fleet partials (one per
//! telemetry partition holding vehicles of the fleet, re-emitted with a higher version on a
//! late event). The topic is keyed by fleet, so every partial of a fleet reaches this
//! partition. A fleet window `W` is *settled* — summed over the newest version of each partial
//! and evaluated, exactly once — when either
//!   1. every source partition known for the fleet has delivered a partial of a later window
//!      (a telemetry partition closes its windows in order, so it will not send more for `W`
//!      except late revisions), or
//!   2. the fleet has a window ending at least `settle_grace_ms` after `W` ends (event time).
//!
//! A source is *known* once it delivered a partial; it is forgotten when its newest partial
//! ends `settle_grace_ms` before the fleet's newest (it went quiet; rule 2 covers it). Windows
//! settle in window order. A partial for an already settled window (a late revision, or a
//! source first seen after the window settled) is ignored and counted: alert timelines never
//! go back in time.
//!
//! **Vehicle windows** are evaluated when their first version arrives; revisions (version > 1)
//! are ignored for the same reason.
//!
//! **Time.** Observations are stamped with the window end (event time). The partition
//! watermark is the newest observation time; when it advances, every firing alert whose
//! subject has had no observation for `silent_after_ms` is advanced with
//! [`alert::tick`] (re-send, or resolve after `keep_firing_for`), and its clock moves to the
//! watermark. Observations of a subject older than its clock are ignored. Re-sends of
//! subjects that keep reporting happen in [`alert::step`] itself.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use atlasmesh_core::analytics::alert::{self, AlertRule, AlertScope, AlertState, Transition, TransitionKind};
use atlasmesh_core::analytics::metrics::metric_value;
use atlasmesh_core::analytics::score::ScoreParams;
use atlasmesh_core::window::Counters;
use atlasmesh_schemas::{MetricsScope, WindowMetricsRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A rule as loaded from `alert_rules`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedRule {
    pub rule: AlertRule,
    /// The owning fleet: fleet rules watch it, vehicle rules its vehicles.
    pub fleet_id: String,
}

/// The enabled, valid rules, indexed by what they watch.
#[derive(Debug, Default)]
pub struct RuleSet {
    fleet: HashMap<String, Vec<Arc<LoadedRule>>>,
    vehicle: HashMap<String, Vec<Arc<LoadedRule>>>,
    by_id: HashMap<String, Arc<LoadedRule>>,
}

impl RuleSet {
    pub fn new(rules: impl IntoIterator<Item = LoadedRule>) -> RuleSet {
        let mut set = RuleSet::default();
        for r in rules {
            let r = Arc::new(r);
            let slot = match r.rule.scope {
                AlertScope::Fleet => &mut set.fleet,
                AlertScope::Vehicle => &mut set.vehicle,
                // Federation windows span fleets, hence metrics partitions: not evaluated here.
                AlertScope::Federation => continue,
            };
            slot.entry(r.fleet_id.clone()).or_default().push(r.clone());
            set.by_id.insert(r.rule.id.clone(), r);
        }
        for v in set.fleet.values_mut().chain(set.vehicle.values_mut()) {
            v.sort_by(|a, b| a.rule.id.cmp(&b.rule.id));
        }
        set
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    fn rules_for(&self, scope: AlertScope, fleet_id: &str) -> &[Arc<LoadedRule>] {
        let map = match scope {
            AlertScope::Vehicle => &self.vehicle,
            _ => &self.fleet,
        };
        map.get(fleet_id).map_or(&[], Vec::as_slice)
    }
}

/// Tunables of the engine (`[alerts]` in the config).
#[derive(Debug, Clone)]
pub struct Settings {
    pub settle_grace_ms: i64,
    pub silent_after_ms: i64,
    pub score: ScoreParams,
}

/// One fleet partial of one window: the newest version from one source partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Partial {
    version: i32,
    counters: Counters,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct OpenWindow {
    end_ms: i64,
    partials: BTreeMap<i32, Partial>,
}

/// Fleet partials that have not settled yet, per fleet.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct FleetWindows {
    /// window start → partials.
    open: BTreeMap<i64, OpenWindow>,
    /// Known source partitions → end of their newest partial.
    sources: BTreeMap<i32, i64>,
    /// End of the newest partial from any source.
    newest_end_ms: i64,
    /// Start of the last settled window: partials of it and earlier windows are ignored.
    settled_through_ms: Option<i64>,
}

impl FleetWindows {
    /// Adds a partial; false when its window has settled already (ignored).
    fn add(&mut self, source: i32, start: i64, end: i64, version: i32, counters: Counters, grace: i64) -> bool {
        if self.settled_through_ms.is_some_and(|s| start <= s) {
            return false;
        }
        let w = self.open.entry(start).or_insert_with(|| OpenWindow { end_ms: end, partials: BTreeMap::new() });
        match w.partials.get(&source) {
            Some(p) if p.version >= version => {}
            _ => {
                w.partials.insert(source, Partial { version, counters });
            }
        }
        let newest = self.sources.entry(source).or_insert(end);
        *newest = (*newest).max(end);
        self.newest_end_ms = self.newest_end_ms.max(end);
        let horizon = self.newest_end_ms - grace;
        self.sources.retain(|_, e| *e > horizon);
        true
    }

    /// Removes and returns the settled windows, oldest first: `(start, end, summed counters)`.
    fn take_settled(&mut self, grace: i64) -> Vec<(i64, i64, Counters)> {
        let mut out = Vec::new();
        while let Some((&start, w)) = self.open.first_key_value() {
            let all_passed = !self.sources.is_empty() && self.sources.values().all(|&e| e > w.end_ms);
            let grace_passed = self.newest_end_ms - w.end_ms >= grace;
            if !(all_passed || grace_passed) {
                break;
            }
            let w = self.open.remove(&start).expect("first window");
            let mut sum = Counters::default();
            for p in w.partials.values() {
                sum.add(&p.counters);
            }
            self.settled_through_ms = Some(start);
            out.push((start, w.end_ms, sum));
        }
        out
    }
}

/// One `(rule, subject)` that has had a transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Instance {
    state: AlertState,
    /// Sequence number of the last transition (1, 2, ...).
    seq: u64,
    /// Event time of the last observation or tick.
    clock_ms: i64,
    fleet_id: String,
}

/// The checkpointed state of one metrics partition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertsState {
    fleets: BTreeMap<String, FleetWindows>,
    /// `(rule_id, subject)` → instance. Subjects without any transition are not stored.
    instances: BTreeMap<(String, String), Instance>,
    /// Newest observation time of the partition.
    watermark_ms: Option<i64>,
}

/// One transition to publish and record.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    pub dedup_key: String,
    pub seq: u64,
    pub rule_id: String,
    pub subject: String,
    pub fleet_id: String,
    pub transition: Transition,
    /// The pager message (`None` for pending/cancelled), with `payload.custom_details.seq`.
    pub message: Option<Value>,
}

impl Emitted {
    /// The `alert_instances.status` after this transition.
    pub fn status(&self) -> &'static str {
        match self.transition.kind {
            TransitionKind::Pending => "pending",
            TransitionKind::Cancelled => "cancelled",
            TransitionKind::Firing | TransitionKind::Resent => "firing",
            TransitionKind::Resolved => "resolved",
        }
    }
}

/// What one record did (for metrics and logs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    pub observations: usize,
    pub ignored_revisions: usize,
}

fn kind_str(k: TransitionKind) -> &'static str {
    match k {
        TransitionKind::Pending => "pending",
        TransitionKind::Cancelled => "cancelled",
        TransitionKind::Firing => "firing",
        TransitionKind::Resent => "resent",
        TransitionKind::Resolved => "resolved",
    }
}

pub fn transition_kind_str(k: TransitionKind) -> &'static str {
    kind_str(k)
}

fn counters_of(r: &WindowMetricsRecord) -> Counters {
    let u = |v: i64| v.max(0) as u64;
    Counters {
        samples: u(r.samples),
        observed_ms: u(r.observed_ms),
        busy_ms: u(r.busy_ms),
        available_ms: u(r.available_ms),
        idle_ms: u(r.idle_ms),
        charging_ms: u(r.charging_ms),
        maintenance_ms: u(r.maintenance_ms),
        fault_ms: u(r.fault_ms),
        offline_ms: u(r.offline_ms),
        distance_m: u(r.distance_m),
        energy_wh: u(r.energy_wh),
        moving_samples: u(r.moving_samples),
        moving_speed_ckph_sum: u(r.moving_speed_ckph_sum),
        fault_count: u(r.fault_count),
        mission_count: u(r.mission_count),
        active_vehicles: u(r.active_vehicles),
        vehicles: u(r.vehicles),
    }
}

impl AlertsState {
    /// Number of `(rule, subject)` instances and open fleet windows (state-size metrics).
    pub fn sizes(&self) -> (usize, usize) {
        (self.instances.len(), self.fleets.values().map(|f| f.open.len()).sum())
    }

    /// Folds one metrics record in; transitions are appended to `out` in order.
    pub fn on_record(&mut self, rules: &RuleSet, s: &Settings, r: &WindowMetricsRecord, out: &mut Vec<Emitted>) -> Outcome {
        let mut outcome = Outcome::default();
        match r.scope {
            MetricsScope::Vehicle => {
                if r.version > 1 {
                    outcome.ignored_revisions += 1;
                    return outcome;
                }
                let c = counters_of(r);
                let vehicle_rules = rules.rules_for(AlertScope::Vehicle, &r.fleet_id);
                self.observe(vehicle_rules, s, &r.fleet_id, &r.vehicle_id, r.window_end_ms, &c, out);
                outcome.observations += 1;
                self.advance(rules, s, r.window_end_ms, out);
            }
            MetricsScope::FleetPartial => {
                let fw = self.fleets.entry(r.fleet_id.clone()).or_default();
                if !fw.add(r.source_partition, r.window_start_ms, r.window_end_ms, r.version, counters_of(r), s.settle_grace_ms) {
                    outcome.ignored_revisions += 1;
                    return outcome;
                }
                let settled = fw.take_settled(s.settle_grace_ms);
                let fleet_rules = rules.rules_for(AlertScope::Fleet, &r.fleet_id);
                for (_, end, c) in settled {
                    self.observe(fleet_rules, s, &r.fleet_id, &r.fleet_id, end, &c, out);
                    outcome.observations += 1;
                    self.advance(rules, s, end, out);
                }
            }
        }
        outcome
    }

    #[allow(clippy::too_many_arguments)]
    fn observe(&mut self, rules: &[Arc<LoadedRule>], s: &Settings, fleet: &str, subject: &str, at: i64, c: &Counters, out: &mut Vec<Emitted>) {
        for lr in rules {
            let Some(value) = metric_value(&lr.rule.metric, c, &s.score) else { continue };
            let key = (lr.rule.id.clone(), subject.to_string());
            let (mut state, clock) = match self.instances.get(&key) {
                Some(i) => (i.state.clone(), i.clock_ms),
                None => (AlertState::Inactive, i64::MIN),
            };
            if at <= clock {
                continue; // older than what this subject has seen (or ticked past)
            }
            let ts = alert::step(&lr.rule, &mut state, value, at);
            self.record(lr, subject, fleet, state, at, ts, out);
        }
    }

    /// Stores the machine after a step/tick and emits its transitions. Subjects that never
    /// had a transition stay unstored (their state is `Inactive`).
    #[allow(clippy::too_many_arguments)]
    fn record(&mut self, lr: &LoadedRule, subject: &str, fleet: &str, state: AlertState, at: i64, ts: Vec<Transition>, out: &mut Vec<Emitted>) {
        let key = (lr.rule.id.clone(), subject.to_string());
        let inst = match self.instances.get_mut(&key) {
            Some(i) => i,
            None if ts.is_empty() => return,
            None => self.instances.entry(key).or_insert(Instance { state: AlertState::Inactive, seq: 0, clock_ms: at, fleet_id: fleet.to_string() }),
        };
        inst.state = state;
        inst.clock_ms = at;
        for t in ts {
            inst.seq += 1;
            let mut message = alert::pager_message(&lr.rule, subject, &t);
            if let Some(details) = message.as_mut().and_then(|m| m.pointer_mut("/payload/custom_details")).and_then(Value::as_object_mut) {
                details.insert("seq".into(), Value::from(inst.seq));
            }
            out.push(Emitted {
                dedup_key: alert::dedup_key(&lr.rule.id, subject),
                seq: inst.seq,
                rule_id: lr.rule.id.clone(),
                subject: subject.to_string(),
                fleet_id: inst.fleet_id.clone(),
                transition: t,
                message,
            });
        }
    }

    /// Moves the partition watermark to `at` (if later) and ticks silent firing alerts.
    fn advance(&mut self, rules: &RuleSet, s: &Settings, at: i64, out: &mut Vec<Emitted>) {
        if self.watermark_ms.is_some_and(|w| at <= w) {
            return;
        }
        self.watermark_ms = Some(at);
        self.tick_silent(rules, s, out);
    }

    /// Ticks every firing instance whose subject has been silent for `silent_after_ms`
    /// against the watermark. Needs the rules (an instance of a rule that is gone is left
    /// as it is).
    fn tick_silent(&mut self, rules: &RuleSet, s: &Settings, out: &mut Vec<Emitted>) {
        let Some(now) = self.watermark_ms else { return };
        let due: Vec<(String, String)> = self
            .instances
            .iter()
            .filter(|(_, i)| matches!(i.state, AlertState::Firing { .. }) && now - i.clock_ms >= s.silent_after_ms)
            .map(|(k, _)| k.clone())
            .collect();
        for (rule_id, subject) in due {
            let Some(lr) = rules.by_id.get(&rule_id).cloned() else { continue };
            let inst = &self.instances[&(rule_id.clone(), subject.clone())];
            let fleet = inst.fleet_id.clone();
            let mut state = inst.state.clone();
            let ts = alert::tick(&lr.rule, &mut state, now);
            self.record(&lr, &subject, &fleet, state, now, ts, out);
        }
    }
}

/// The kind of a transition as stored in `alert_transitions.kind`.
pub fn kind_name(t: &Transition) -> &'static str {
    kind_str(t.kind)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap as Map;

    use atlasmesh_core::analytics::alert::{Comparison, Severity};

    use super::*;

    const M: i64 = 60_000;

    fn settings() -> Settings {
        Settings { settle_grace_ms: 2 * M, silent_after_ms: 5 * M, score: ScoreParams::default() }
    }

    /// A record whose utilization is `busy / 60 s`.
    fn rec(scope: MetricsScope, fleet: &str, vehicle: &str, source: i32, minute: i64, version: i32, busy_ms: i64) -> WindowMetricsRecord {
        WindowMetricsRecord {
            scope,
            fleet_id: fleet.into(),
            vehicle_id: vehicle.into(),
            source_partition: source,
            window_start_ms: (minute - 1) * M,
            window_end_ms: minute * M,
            version,
            samples: 6,
            observed_ms: 60_000,
            busy_ms,
            available_ms: 60_000,
            idle_ms: 60_000 - busy_ms,
            charging_ms: 0,
            maintenance_ms: 0,
            fault_ms: 0,
            offline_ms: 0,
            distance_m: 0,
            energy_wh: 0,
            moving_samples: 0,
            moving_speed_ckph_sum: 0,
            fault_count: 0,
            mission_count: 0,
            active_vehicles: 1,
            vehicles: 1,
        }
    }

    fn partial(source: i32, minute: i64, version: i32, busy_ms: i64) -> WindowMetricsRecord {
        rec(MetricsScope::FleetPartial, "f1", "", source, minute, version, busy_ms)
    }

    fn rule(scope: AlertScope) -> LoadedRule {
        LoadedRule {
            rule: AlertRule {
                id: format!("low-util-{}", scope.as_str()),
                metric: "utilization".into(),
                scope,
                comparison: Comparison::Lt,
                threshold: 0.5,
                clear_threshold: Some(0.6),
                for_ms: 3 * M as u64,
                keep_firing_for_ms: 2 * M as u64,
                severity: Severity::Warning,
                labels: Map::new(),
                runbook_url: None,
                resend_interval_ms: 5 * M as u64,
            },
            fleet_id: "f1".into(),
        }
    }

    /// Feeds records; returns `(kind, minute, seq, value)` of every transition.
    fn feed(st: &mut AlertsState, rules: &RuleSet, recs: &[WindowMetricsRecord]) -> Vec<(&'static str, i64, u64, f64)> {
        let mut out = Vec::new();
        for r in recs {
            st.on_record(rules, &settings(), r, &mut out);
        }
        out.iter().map(|e| (kind_name(&e.transition), e.transition.at_ms / M, e.seq, e.transition.value)).collect()
    }

    #[test]
    fn fleet_window_settles_when_every_known_source_passed_it() {
        let rules = RuleSet::new([LoadedRule { rule: AlertRule { for_ms: 0, ..rule(AlertScope::Fleet).rule }, ..rule(AlertScope::Fleet) }]);
        let mut st = AlertsState::default();
        // Minute 1: 20 s busy from source 0 (v1, then v2 = 10 s), 20 s from source 1 → 30/120 s.
        assert!(feed(&mut st, &rules, &[partial(0, 1, 1, 20_000), partial(1, 1, 1, 20_000), partial(0, 1, 2, 10_000)]).is_empty());
        // Source 0 moved on; source 1 has not: a half-summed window must not be evaluated.
        assert!(feed(&mut st, &rules, &[partial(0, 2, 1, 60_000)]).is_empty());
        assert_eq!(st.sizes().1, 2);
        // Source 1 passed minute 1 as well: it settles with the newest versions summed.
        let t = feed(&mut st, &rules, &[partial(1, 2, 1, 60_000)]);
        assert_eq!(t, vec![("firing", 1, 1, 30_000.0 / 120_000.0)]);
        // Late revision of a settled window: ignored, counted.
        let mut out = Vec::new();
        let o = st.on_record(&rules, &settings(), &partial(1, 1, 2, 60_000), &mut out);
        assert_eq!((o.ignored_revisions, out.len()), (1, 0));
    }

    #[test]
    fn a_silent_source_is_covered_by_the_grace_then_forgotten() {
        let rules = RuleSet::new([LoadedRule { rule: AlertRule { for_ms: 0, ..rule(AlertScope::Fleet).rule }, ..rule(AlertScope::Fleet) }]);
        let mut st = AlertsState::default();
        assert!(feed(&mut st, &rules, &[partial(0, 1, 1, 10_000), partial(1, 1, 1, 10_000), partial(0, 2, 1, 60_000)]).is_empty());
        // Source 1 stays silent. Minute 1 waits until a window ends 2 min after it (minute 3).
        let t = feed(&mut st, &rules, &[partial(0, 3, 1, 60_000)]);
        assert_eq!(t, vec![("firing", 1, 1, 20_000.0 / 120_000.0)]);
        // Source 1 is forgotten now: minute 2 settled with source 0 alone once it passed it…
        assert_eq!(st.sizes().1, 1, "minute 3 still open (source 0 has not passed it)");
        // …and later windows settle as soon as source 0 moves on (1.0 ≥ 0.6 clears; keep 2 min).
        let t = feed(&mut st, &rules, &[partial(0, 4, 1, 60_000), partial(0, 5, 1, 60_000), partial(0, 6, 1, 60_000)]);
        assert_eq!(t, vec![("resolved", 4, 2, 1.0)]);
    }

    fn noisy() -> Vec<f64> {
        vec![
            0.70, 0.52, 0.48, 0.51, 0.47, 0.49, 0.53, // two short dips: pending, cancelled
            0.46, 0.44, 0.45, 0.43, // pending at 8, fires at 11
            0.52, 0.58, 0.55, 0.49, 0.57, // band: still firing; resend at 16
            0.62, 0.57, // clear at 17, reset at 18
            0.63, 0.65, 0.66, 0.70, 0.70, // clear since 19, resolved at 21
        ]
    }

    fn noisy_partials() -> Vec<WindowMetricsRecord> {
        // One source; each minute's partial also settles the previous minute.
        noisy().iter().enumerate().map(|(i, u)| partial(0, i as i64 + 1, 1, (u * 60_000.0).round() as i64)).collect()
    }

    fn expected() -> Vec<(&'static str, i64, u64)> {
        vec![
            ("pending", 3, 1),
            ("cancelled", 4, 2),
            ("pending", 5, 3),
            ("cancelled", 7, 4),
            ("pending", 8, 5),
            ("firing", 11, 6),
            ("resent", 16, 7),
            ("resolved", 21, 8),
        ]
    }

    #[test]
    fn noisy_crossing_through_the_engine() {
        let rules = RuleSet::new([rule(AlertScope::Fleet)]);
        let mut st = AlertsState::default();
        let t: Vec<_> = feed(&mut st, &rules, &noisy_partials()).into_iter().map(|(k, m, s, _)| (k, m, s)).collect();
        assert_eq!(t, expected());
    }

    #[test]
    fn a_restored_checkpoint_continues_with_the_same_transitions_and_seqs() {
        let rules = RuleSet::new([rule(AlertScope::Fleet)]);
        let recs = noisy_partials();
        for cut in [0, 5, 9, 12, 17, 20, recs.len()] {
            let mut st = AlertsState::default();
            let mut got = feed(&mut st, &rules, &recs[..cut]);
            let bytes = bincode::serialize(&st).unwrap();
            let mut restored: AlertsState = bincode::deserialize(&bytes).unwrap();
            assert_eq!(restored, st);
            got.extend(feed(&mut restored, &rules, &recs[cut..]));
            let got: Vec<_> = got.into_iter().map(|(k, m, s, _)| (k, m, s)).collect();
            assert_eq!(got, expected(), "cut at {cut}");
        }
    }

    #[test]
    fn rule_reload_keeps_state_and_messages_carry_seq() {
        let recs = noisy_partials();
        let mut st = AlertsState::default();
        let first = RuleSet::new([rule(AlertScope::Fleet), rule(AlertScope::Vehicle)]);
        feed(&mut st, &first, &recs[..12]);
        // A reload: another rule changed (vehicle threshold), this one did not.
        let mut changed = rule(AlertScope::Vehicle);
        changed.rule.threshold = 0.4;
        changed.rule.clear_threshold = Some(0.45);
        let second = RuleSet::new([rule(AlertScope::Fleet), changed]);
        let mut out = Vec::new();
        for r in &recs[12..] {
            st.on_record(&second, &settings(), r, &mut out);
        }
        let kinds: Vec<_> = out.iter().map(|e| (kind_name(&e.transition), e.seq)).collect();
        assert_eq!(kinds, vec![("resent", 7), ("resolved", 8)]);
        let m = out[0].message.as_ref().unwrap();
        assert_eq!(m["payload"]["custom_details"]["seq"], 7);
        assert_eq!(m["dedup_key"], alert::dedup_key("low-util-fleet", "f1"));
        assert_eq!(out[1].status(), "resolved");
    }

    #[test]
    fn vehicles_revisions_and_silent_subjects() {
        let rules = RuleSet::new([LoadedRule {
            rule: AlertRule { for_ms: 0, keep_firing_for_ms: 0, ..rule(AlertScope::Vehicle).rule },
            ..rule(AlertScope::Vehicle)
        }]);
        let v = |vid: &str, minute: i64, version: i32, busy: i64| rec(MetricsScope::Vehicle, "f1", vid, 0, minute, version, busy);
        let mut st = AlertsState::default();
        let t = feed(&mut st, &rules, &[v("v1", 1, 1, 0), v("v2", 1, 1, 60_000), v("v1", 1, 2, 60_000)]);
        assert_eq!(t, vec![("firing", 1, 1, 0.0)], "v1 fires; its revision is ignored");
        // v1 goes silent while firing; v2 keeps reporting. At 6 (5 min silent) v1 is ticked:
        // resend is due (5 min), and its clock moves to 6.
        let later: Vec<_> = (2..=7).map(|m| v("v2", m, 1, 60_000)).collect();
        assert_eq!(feed(&mut st, &rules, &later), vec![("resent", 6, 2, 0.0)]);
        // A v1 window older than its clock is ignored; a newer clear one resolves it.
        assert!(feed(&mut st, &rules, &[v("v1", 5, 1, 60_000)]).is_empty());
        assert_eq!(feed(&mut st, &rules, &[v("v1", 8, 1, 60_000)]), vec![("resolved", 8, 3, 1.0)]);
        // Vehicles that never had a transition are not stored.
        assert_eq!(st.sizes().0, 1);
    }
}
