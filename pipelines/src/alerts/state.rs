//! The pure part of the alert engine (the checkpointed fold): per-partition state (fleet partials waiting to settle,
//! one alert state machine per rule and subject) and the evaluation of a metrics record
//! against the rules. No I/O, no clock: the same records in the same order with the same
//! rules give the same transitions with the same sequence numbers, which is what makes a
//! replay after a crash produce exact duplicates (dropped downstream by `(dedup_key, seq)`).
//!
//! **Fleet windows.** `fleet.metrics.v1` carries per-source-partition fleet partials (one per
//! telemetry partition holding vehicles of the fleet, re-emitted with a higher version on a
//! late event) and the watermarks of every telemetry partition. The topic is keyed by fleet,
//! so every partial of a fleet reaches this partition; watermarks reach every partition. A
//! fleet window is *settled* — summed over the newest version of each partial and evaluated,
//! exactly once, in window order — when every telemetry partition has closed it (see
//! [`crate::settle`]). A partial for an already settled window (a late revision) is ignored
//! and counted: alert timelines never go back in time.
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
//!
//! **Manual resolves.** An operator resolves an instance through the API (`alert_instances`
//! gets `status = resolved`, `resolved_by`); the rules refresh loads those requests into the
//! [`RuleSet`] ([`ResolveRequest`]). The partition holding the instance applies a request
//! ([`AlertsState::apply_resolves`], before each record and when idle) once its machine is at
//! the seq PostgreSQL shows (so the request concerns the episode the operator saw) and the
//! episode matches (`started_at_ms`): [`alert::resolve_by_hand`] — a firing alert gets a
//! `resolved` transition with the next seq (paged), a pending one `cancelled` — and the machine
//! starts over (fires again only after a fresh breach held for `for`). The flush records the
//! seq in `manual_resolve_seq`; a replay after a crash re-applies the request at that same seq.
//!
//! **Federation windows.** Fleet windows that settle here are handed out ([`Outcome::settled`])
//! for fleets that are members of a federation with a federation rule; the pipeline stores
//! them and [`evaluate_federation`] sums them per federation (see its docs).
//!
//! **Daily vehicle health.** Vehicle rules on a daily health metric (health score, failure
//! risk, days to the state-of-health threshold) are no business of the partitions: their
//! values are the health pipeline's PostgreSQL rows, one per vehicle and closed day, which
//! [`evaluate_health`] judges with the same machine (see `alerts/health.rs`).

use crate::settle::{add_partial, on_watermark, FleetWindows, SourceWatermarks};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use atlasmesh_core::analytics::alert::{
    self, AlertRule, AlertScope, AlertState, Transition, TransitionKind,
};
use atlasmesh_core::analytics::metrics::{self, metric_value};
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
    /// The federation a federation rule watches.
    pub federation_id: Option<String>,
}

/// A manual resolve an operator made through the API that the engine may still have to
/// publish (an `alert_instances` row with `resolved_by` set and status `resolved`).
#[derive(Debug, Clone, PartialEq)]
pub struct ResolveRequest {
    pub rule_id: String,
    pub subject: String,
    /// `last_transition_seq` of the row: the seq of the machine the operator acted on.
    pub last_seq: u64,
    /// Set once the engine published the resolve: its seq.
    pub manual_resolve_seq: Option<u64>,
    /// The episode the operator resolved (`started_at_ms` of the row).
    pub started_at_ms: i64,
    /// The value of the row (reported by a cancelled pending alert).
    pub value: f64,
    pub resolved_by: String,
}

/// The enabled, valid rules, indexed by what they watch, with the federation memberships and
/// the pending manual resolves read in the same refresh.
#[derive(Debug, Default)]
pub struct RuleSet {
    fleet: HashMap<String, Vec<Arc<LoadedRule>>>,
    vehicle: HashMap<String, Vec<Arc<LoadedRule>>>,
    federation: Vec<Arc<LoadedRule>>,
    /// Vehicle rules on a daily vehicle health metric: judged by [`evaluate_health`] on the
    /// health pipeline's rows, not by the partitions on windows.
    health: Vec<Arc<LoadedRule>>,
    by_id: HashMap<String, Arc<LoadedRule>>,
    /// Federation id → member fleets (sorted), for federations with a rule.
    members: BTreeMap<String, Vec<String>>,
    /// Fleets whose settled windows federation rules need.
    federated_fleets: BTreeSet<String>,
    /// `(rule_id, subject)` → request.
    resolves: BTreeMap<(String, String), ResolveRequest>,
}

impl RuleSet {
    pub fn new(rules: impl IntoIterator<Item = LoadedRule>) -> RuleSet {
        let mut set = RuleSet::default();
        for r in rules {
            let r = Arc::new(r);
            let slot = match r.rule.scope {
                // Daily vehicle health values are rows of PostgreSQL, not windows of the
                // metrics topic: evaluated once per refresh by `evaluate_health`.
                AlertScope::Vehicle if metrics::health_series(&r.rule.metric).is_some() => {
                    set.health.push(r.clone());
                    set.by_id.insert(r.rule.id.clone(), r);
                    continue;
                }
                AlertScope::Fleet => &mut set.fleet,
                AlertScope::Vehicle => &mut set.vehicle,
                // Federation windows span fleets, hence metrics partitions: summed from the
                // settled fleet windows by `evaluate_federation`.
                AlertScope::Federation => {
                    set.federation.push(r.clone());
                    set.by_id.insert(r.rule.id.clone(), r);
                    continue;
                }
            };
            slot.entry(r.fleet_id.clone()).or_default().push(r.clone());
            set.by_id.insert(r.rule.id.clone(), r);
        }
        for v in set.fleet.values_mut().chain(set.vehicle.values_mut()) {
            v.sort_by(|a, b| a.rule.id.cmp(&b.rule.id));
        }
        set.federation.sort_by(|a, b| a.rule.id.cmp(&b.rule.id));
        set.health.sort_by(|a, b| a.rule.id.cmp(&b.rule.id));
        set
    }

    /// Adds the member fleets of the federations (federation id → fleets); only federations
    /// that have a rule are kept.
    pub fn with_members(mut self, members: impl IntoIterator<Item = (String, String)>) -> RuleSet {
        let wanted: BTreeSet<&str> = self
            .federation
            .iter()
            .filter_map(|r| r.federation_id.as_deref())
            .collect();
        let mut m: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (fed, fleet) in members {
            if wanted.contains(fed.as_str()) {
                m.entry(fed).or_default().insert(fleet);
            }
        }
        self.federated_fleets = m.values().flatten().cloned().collect();
        self.members = m
            .into_iter()
            .map(|(k, v)| (k, v.into_iter().collect()))
            .collect();
        self
    }

    /// Adds the manual resolves to act on.
    pub fn with_resolves(mut self, reqs: impl IntoIterator<Item = ResolveRequest>) -> RuleSet {
        self.resolves = reqs
            .into_iter()
            .map(|r| ((r.rule_id.clone(), r.subject.clone()), r))
            .collect();
        self
    }

    /// The federation rules, by id.
    pub fn federation_rules(&self) -> &[Arc<LoadedRule>] {
        &self.federation
    }

    /// The vehicle rules on daily vehicle health metrics, by id.
    pub fn health_rules(&self) -> &[Arc<LoadedRule>] {
        &self.health
    }

    /// The manual resolves of rule `rule_id`, by subject.
    pub fn resolves_for<'a>(
        &'a self,
        rule_id: &'a str,
    ) -> impl Iterator<Item = &'a ResolveRequest> + 'a {
        self.resolves
            .range((rule_id.to_string(), String::new())..)
            .take_while(move |((r, _), _)| r == rule_id)
            .map(|(_, req)| req)
    }

    /// The member fleets of `federation_id` (empty when unknown).
    pub fn members(&self, federation_id: &str) -> &[String] {
        self.members.get(federation_id).map_or(&[], Vec::as_slice)
    }

    /// Whether settled windows of `fleet_id` feed a federation rule.
    pub fn is_federated(&self, fleet_id: &str) -> bool {
        self.federated_fleets.contains(fleet_id)
    }

    pub fn resolve_request(&self, rule_id: &str, subject: &str) -> Option<&ResolveRequest> {
        self.resolves
            .get(&(rule_id.to_string(), subject.to_string()))
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// A rule the partitions evaluate on windows, by id (not a daily vehicle health rule,
    /// whose instances only `evaluate_health` advances).
    fn window_rule(&self, id: &str) -> Option<&Arc<LoadedRule>> {
        self.by_id
            .get(id)
            .filter(|r| metrics::health_series(&r.rule.metric).is_none())
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
    pub silent_after_ms: i64,
    pub score: ScoreParams,
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
    /// The telemetry partitions' watermarks: what has settled.
    sources: SourceWatermarks,
}

/// One transition to publish and record.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    /// The rule (for the alert history row).
    pub rule: Arc<LoadedRule>,
    /// Who resolved it by hand, when this transition publishes a manual resolve.
    pub manual_by: Option<String>,
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

/// A fleet window that settled, for the federation rules: handed out by
/// [`AlertsState::on_record`] ([`Outcome::settled`]), stored in `alert_fleet_windows` and read
/// back for [`evaluate_federation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettledWindow {
    pub fleet_id: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub counters: Counters,
}

/// What one record did (for metrics and logs), and the settled windows of federated fleets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub observations: usize,
    pub ignored_revisions: usize,
    pub settled: Vec<SettledWindow>,
}

impl AlertsState {
    /// Every fleet window of this partition ending at or before this has settled (see
    /// [`crate::settle`]); `None` until every telemetry partition has sent a watermark.
    pub fn frontier(&self) -> Option<i64> {
        self.sources.frontier()
    }

    /// Number of `(rule, subject)` instances and open fleet windows (state-size metrics).
    pub fn sizes(&self) -> (usize, usize) {
        (
            self.instances.len(),
            self.fleets.values().map(|f| f.open_len()).sum(),
        )
    }

    /// Folds one metrics record in; transitions are appended to `out` in order.
    pub fn on_record(
        &mut self,
        rules: &RuleSet,
        s: &Settings,
        r: &WindowMetricsRecord,
        out: &mut Vec<Emitted>,
    ) -> Outcome {
        let mut outcome = Outcome::default();
        match r.scope {
            MetricsScope::Vehicle => {
                if r.version > 1 {
                    outcome.ignored_revisions += 1;
                    return outcome;
                }
                let c = r.counters();
                let vehicle_rules = rules.rules_for(AlertScope::Vehicle, &r.fleet_id);
                self.observe(
                    vehicle_rules,
                    s,
                    &r.fleet_id,
                    &r.vehicle_id,
                    r.window_end_ms,
                    &c,
                    out,
                );
                outcome.observations += 1;
                self.advance(rules, s, r.window_end_ms, out);
            }
            MetricsScope::FleetPartial => {
                if !add_partial(&mut self.fleets, |f| f, &self.sources, r) {
                    outcome.ignored_revisions += 1;
                }
            }
            MetricsScope::Watermark => {
                for (fleet, w) in on_watermark(&mut self.fleets, |f| f, &mut self.sources, r) {
                    let fleet_rules = rules.rules_for(AlertScope::Fleet, &fleet);
                    self.observe(fleet_rules, s, &fleet, &fleet, w.end_ms, &w.counters, out);
                    outcome.observations += 1;
                    self.advance(rules, s, w.end_ms, out);
                    if rules.is_federated(&fleet) {
                        outcome.settled.push(SettledWindow {
                            fleet_id: fleet,
                            start_ms: w.start_ms,
                            end_ms: w.end_ms,
                            counters: w.counters,
                        });
                    }
                }
            }
        }
        outcome
    }

    #[allow(clippy::too_many_arguments)]
    fn observe(
        &mut self,
        rules: &[Arc<LoadedRule>],
        s: &Settings,
        fleet: &str,
        subject: &str,
        at: i64,
        c: &Counters,
        out: &mut Vec<Emitted>,
    ) {
        for lr in rules {
            let Some(value) = metric_value(&lr.rule.metric, c, &s.score) else {
                continue;
            };
            let key = (lr.rule.id.clone(), subject.to_string());
            let (mut state, clock) = match self.instances.get(&key) {
                Some(i) => (i.state.clone(), i.clock_ms),
                None => (AlertState::Inactive, i64::MIN),
            };
            if at <= clock {
                continue; // older than what this subject has seen (or ticked past)
            }
            let ts = alert::step(&lr.rule, &mut state, value, at);
            self.record(lr, subject, fleet, state, at, ts, None, out);
        }
    }

    /// Publishes the manual resolves of `rules` whose instance lives in this partition and is
    /// due (see the module docs); transitions are appended to `out`.
    pub fn apply_resolves(&mut self, rules: &RuleSet, out: &mut Vec<Emitted>) {
        for (key, req) in &rules.resolves {
            let Some(inst) = self.instances.get(key) else {
                continue;
            };
            let Some(lr) = rules.window_rule(&req.rule_id).cloned() else {
                continue;
            };
            if !resolve_is_due(req, inst.seq, &inst.state) {
                continue;
            }
            let mut state = inst.state.clone();
            let at = inst.clock_ms.max(self.watermark_ms.unwrap_or(i64::MIN));
            let fleet = inst.fleet_id.clone();
            let ts: Vec<Transition> = alert::resolve_by_hand(&mut state, at, req.value)
                .into_iter()
                .collect();
            self.record(
                &lr,
                &req.subject,
                &fleet,
                state,
                at,
                ts,
                Some(&req.resolved_by),
                out,
            );
        }
    }

    /// Stores the machine after a step/tick and emits its transitions. Subjects that never
    /// had a transition stay unstored (their state is `Inactive`).
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        lr: &Arc<LoadedRule>,
        subject: &str,
        fleet: &str,
        state: AlertState,
        at: i64,
        ts: Vec<Transition>,
        manual_by: Option<&str>,
        out: &mut Vec<Emitted>,
    ) {
        let key = (lr.rule.id.clone(), subject.to_string());
        let inst = match self.instances.get_mut(&key) {
            Some(i) => i,
            None if ts.is_empty() => return,
            None => self.instances.entry(key).or_insert(Instance {
                state: AlertState::Inactive,
                seq: 0,
                clock_ms: at,
                fleet_id: fleet.to_string(),
            }),
        };
        inst.state = state;
        inst.clock_ms = at;
        let fleet_id = inst.fleet_id.clone();
        emit(lr, subject, &fleet_id, &mut inst.seq, ts, manual_by, out);
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
            .filter(|(_, i)| {
                matches!(i.state, AlertState::Firing { .. })
                    && now - i.clock_ms >= s.silent_after_ms
            })
            .map(|(k, _)| k.clone())
            .collect();
        for (rule_id, subject) in due {
            let Some(lr) = rules.window_rule(&rule_id).cloned() else {
                continue;
            };
            let inst = &self.instances[&(rule_id.clone(), subject.clone())];
            let fleet = inst.fleet_id.clone();
            let mut state = inst.state.clone();
            let ts = alert::tick(&lr.rule, &mut state, now);
            self.record(&lr, &subject, &fleet, state, now, ts, None, out);
        }
    }
}

/// Numbers the transitions `ts` of `(rule, subject)` after `*seq` and appends them to `out`
/// with their pager messages (`payload.custom_details.seq`, and `resolved_by` for a manual
/// resolve).
fn emit(
    lr: &Arc<LoadedRule>,
    subject: &str,
    fleet: &str,
    seq: &mut u64,
    ts: Vec<Transition>,
    manual_by: Option<&str>,
    out: &mut Vec<Emitted>,
) {
    for t in ts {
        *seq += 1;
        let mut message = alert::pager_message(&lr.rule, subject, &t);
        if let Some(details) = message
            .as_mut()
            .and_then(|m| m.pointer_mut("/payload/custom_details"))
            .and_then(Value::as_object_mut)
        {
            details.insert("seq".into(), Value::from(*seq));
            if let Some(by) = manual_by {
                details.insert("resolved_by".into(), Value::from(by));
            }
        }
        out.push(Emitted {
            rule: lr.clone(),
            manual_by: manual_by.map(str::to_string),
            dedup_key: alert::dedup_key(&lr.rule.id, subject),
            seq: *seq,
            rule_id: lr.rule.id.clone(),
            subject: subject.to_string(),
            fleet_id: fleet.to_string(),
            transition: t,
            message,
        });
    }
}

/// Whether a manual resolve `req` applies to a machine at `seq` in `state`: the machine is
/// pending or firing in the episode the operator saw (`started_at_ms` is its pending start or
/// its firing time), and either the engine has not published it yet and the machine is at the
/// seq the operator saw, or it has (at `manual_resolve_seq`) and this machine is one before
/// it (a replay after a crash reproduces the same transition).
pub fn resolve_is_due(req: &ResolveRequest, seq: u64, state: &AlertState) -> bool {
    let same_episode = match *state {
        AlertState::Firing {
            since_ms,
            active_since_ms,
            ..
        } => req.started_at_ms == since_ms || req.started_at_ms == active_since_ms,
        AlertState::Pending { since_ms } => req.started_at_ms == since_ms,
        AlertState::Inactive | AlertState::Resolved { .. } => false,
    };
    let at_seq = match req.manual_resolve_seq {
        None => seq == req.last_seq,
        Some(m) => seq + 1 == m,
    };
    same_episode && at_seq
}

/// The durable state of one federation rule for its federation (`alert_federation_state`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FederationState {
    pub state: AlertState,
    pub seq: u64,
    /// End of the last evaluated federation window.
    pub clock_ms: Option<i64>,
    /// Start of the last settled federation window.
    pub settled_through_ms: Option<i64>,
}

/// The federation windows that have settled after `settled_through_ms`, oldest first, each
/// with the sum of its members' counters.
///
/// A federation window `W` (the 1-minute grid of the fleet windows) is the sum of the settled
/// fleet windows `W` of the federation's member fleets. It settles — is evaluated, once, in
/// window order — when every partition of the metrics topic has settled its fleet windows
/// through `W` (`frontier`: the minimum over the partitions, `alert_settle_frontier`). Each
/// partition stores its federated fleets' settled windows in the transaction that records its
/// frontier, so every member's `W` is then stored: present, or absent for lack of data.
/// Windows that no member has are skipped. Rows of non-members are ignored.
pub fn settle_federation(
    members: &[String],
    windows: &[SettledWindow],
    settled_through_ms: Option<i64>,
    frontier: Option<i64>,
) -> Vec<(i64, i64, Counters)> {
    let Some(frontier) = frontier else {
        return Vec::new();
    };
    if members.is_empty() {
        return Vec::new();
    }
    let is_member = |f: &str| members.iter().any(|m| m == f);
    let mut by_window: BTreeMap<i64, (i64, Counters)> = BTreeMap::new();
    for w in windows.iter().filter(|w| is_member(w.fleet_id.as_str())) {
        if settled_through_ms.is_some_and(|s| w.start_ms <= s) || w.end_ms > frontier {
            continue;
        }
        let slot = by_window
            .entry(w.start_ms)
            .or_insert((w.end_ms, Counters::default()));
        slot.1.add(&w.counters);
    }
    by_window
        .into_iter()
        .map(|(start, (end, sum))| (start, end, sum))
        .collect()
}

/// Evaluates one federation rule on the federation windows that settled (see
/// [`settle_federation`]) and applies a due manual resolve; transitions (subject = the
/// federation id, fleet = the rule's owning fleet) are appended to `out`. A state seen for the
/// first time (`fresh`) starts after the windows already settled: a new rule judges only
/// windows that settle after the engine first saw it.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_federation(
    lr: &Arc<LoadedRule>,
    members: &[String],
    st: &mut FederationState,
    fresh: bool,
    windows: &[SettledWindow],
    frontier: Option<i64>,
    resolve: Option<&ResolveRequest>,
    s: &Settings,
    out: &mut Vec<Emitted>,
) {
    let Some(fed) = lr.federation_id.as_deref() else {
        return;
    };
    let settled = settle_federation(members, windows, st.settled_through_ms, frontier);
    if fresh {
        st.settled_through_ms = settled.last().map(|w| w.0).or(st.settled_through_ms);
        return;
    }
    if let Some(req) = resolve.filter(|r| resolve_is_due(r, st.seq, &st.state)) {
        let at = st.clock_ms.unwrap_or(req.started_at_ms);
        let ts: Vec<Transition> = alert::resolve_by_hand(&mut st.state, at, req.value)
            .into_iter()
            .collect();
        emit(
            lr,
            fed,
            &lr.fleet_id,
            &mut st.seq,
            ts,
            Some(&req.resolved_by),
            out,
        );
    }
    for (start, end, c) in settled {
        st.settled_through_ms = Some(start);
        if st.clock_ms.is_some_and(|clock| end <= clock) {
            continue;
        }
        st.clock_ms = Some(end);
        let Some(value) = metric_value(&lr.rule.metric, &c, &s.score) else {
            continue;
        };
        let ts = alert::step(&lr.rule, &mut st.state, value, end);
        emit(lr, fed, &lr.fleet_id, &mut st.seq, ts, None, out);
    }
}

/// One daily value of a vehicle for a health rule, as read from the health pipeline's rows.
#[derive(Debug, Clone, PartialEq)]
pub struct DailyValue {
    pub vehicle_id: String,
    /// Event time: the end of the UTC day the value belongs to (the day of a health score, the
    /// day a prediction was made at).
    pub at_ms: i64,
    /// `None`: the row has no value (no data; e.g. not degrading for `days_to_soh_threshold`).
    pub value: Option<f64>,
}

/// The durable state of one health rule for one vehicle (`alert_health_state`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthInstance {
    pub state: AlertState,
    /// Seq of the last transition of `(rule, vehicle)`.
    pub seq: u64,
    /// Event time of the last judged daily value: values at or before it are never judged
    /// (again).
    pub clock_ms: Option<i64>,
}

/// Evaluates one vehicle rule on a daily vehicle health metric (see `alerts/health.rs` for
/// what is read and when): first the due manual resolves of its vehicles (at the vehicle's
/// clock, as [`evaluate_federation`] does), then `values` in event-time order (ties by
/// vehicle), each vehicle's own machine stepped once per value newer than its clock. A value
/// at or before the vehicle's clock (a re-written day already judged, a late day) changes
/// nothing; a day without a value (`None`) moves the clock but not the machine. Instances are
/// created on first sight (state inactive, seq 0) unless the caller already holds them;
/// transitions (subject = the vehicle, fleet = the rule's fleet) are appended to `out`.
pub fn evaluate_health<'a>(
    lr: &Arc<LoadedRule>,
    instances: &mut BTreeMap<String, HealthInstance>,
    values: &[DailyValue],
    resolves: impl IntoIterator<Item = &'a ResolveRequest>,
    out: &mut Vec<Emitted>,
) {
    for req in resolves {
        let Some(inst) = instances.get_mut(&req.subject) else {
            continue;
        };
        if !resolve_is_due(req, inst.seq, &inst.state) {
            continue;
        }
        let at = inst.clock_ms.unwrap_or(req.started_at_ms);
        let ts: Vec<Transition> = alert::resolve_by_hand(&mut inst.state, at, req.value)
            .into_iter()
            .collect();
        emit(
            lr,
            &req.subject,
            &lr.fleet_id,
            &mut inst.seq,
            ts,
            Some(&req.resolved_by),
            out,
        );
    }
    let mut order: Vec<&DailyValue> = values.iter().collect();
    order.sort_by(|a, b| (a.at_ms, &a.vehicle_id).cmp(&(b.at_ms, &b.vehicle_id)));
    for v in order {
        let inst = instances.entry(v.vehicle_id.clone()).or_default();
        if inst.clock_ms.is_some_and(|clock| v.at_ms <= clock) {
            continue;
        }
        inst.clock_ms = Some(v.at_ms);
        let Some(value) = v.value.filter(|x| x.is_finite()) else {
            continue;
        };
        let ts = alert::step(&lr.rule, &mut inst.state, value, v.at_ms);
        emit(
            lr,
            &v.vehicle_id,
            &lr.fleet_id,
            &mut inst.seq,
            ts,
            None,
            out,
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap as Map;

    use atlasmesh_core::analytics::alert::{Comparison, Severity};

    use super::*;

    const M: i64 = 60_000;

    fn settings() -> Settings {
        Settings {
            silent_after_ms: 5 * M,
            score: ScoreParams::default(),
        }
    }

    /// A record whose utilization is `busy / 60 s`.
    fn rec(
        scope: MetricsScope,
        fleet: &str,
        vehicle: &str,
        source: i32,
        minute: i64,
        version: i32,
        busy_ms: i64,
    ) -> WindowMetricsRecord {
        let busy = busy_ms as u64;
        let c = Counters {
            samples: 6,
            observed_ms: 60_000,
            busy_ms: busy,
            available_ms: 60_000,
            idle_ms: 60_000 - busy,
            active_vehicles: 1,
            vehicles: 1,
            ..Counters::default()
        };
        WindowMetricsRecord::window(
            scope,
            fleet,
            vehicle,
            source,
            (minute - 1) * M,
            minute * M,
            version,
            &c,
        )
    }

    fn partial(source: i32, minute: i64, version: i32, busy_ms: i64) -> WindowMetricsRecord {
        rec(
            MetricsScope::FleetPartial,
            "f1",
            "",
            source,
            minute,
            version,
            busy_ms,
        )
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
            federation_id: (scope == AlertScope::Federation).then(|| "fed".to_string()),
        }
    }

    /// Feeds records; returns `(kind, minute, seq, value)` of every transition.
    fn feed(
        st: &mut AlertsState,
        rules: &RuleSet,
        recs: &[WindowMetricsRecord],
    ) -> Vec<(&'static str, i64, u64, f64)> {
        let mut out = Vec::new();
        for r in recs {
            st.on_record(rules, &settings(), r, &mut out);
        }
        out.iter()
            .map(|e| {
                (
                    e.transition.kind.as_str(),
                    e.transition.at_ms / M,
                    e.seq,
                    e.transition.value,
                )
            })
            .collect()
    }

    /// Source `source` (of `count`) has closed every window through `minute`.
    fn wm(source: i32, count: i32, minute: i64, idle: bool) -> WindowMetricsRecord {
        WindowMetricsRecord::watermark(source, count, minute * M, idle)
    }

    #[test]
    fn fleet_window_settles_when_every_source_closed_it() {
        let rules = RuleSet::new([LoadedRule {
            rule: AlertRule {
                for_ms: 0,
                ..rule(AlertScope::Fleet).rule
            },
            ..rule(AlertScope::Fleet)
        }]);
        let mut st = AlertsState::default();
        // Minute 1: 20 s busy from source 0 (v1, then v2 = 10 s), 20 s from source 1 → 30/120 s.
        assert!(feed(
            &mut st,
            &rules,
            &[
                partial(0, 1, 1, 20_000),
                partial(1, 1, 1, 20_000),
                partial(0, 1, 2, 10_000)
            ]
        )
        .is_empty());
        // Sources 0 and 1 closed minute 1, source 2 (no vehicles of f1) has not spoken: a
        // window must not be evaluated before every source closed it.
        assert!(feed(
            &mut st,
            &rules,
            &[
                partial(0, 2, 1, 60_000),
                wm(0, 3, 2, false),
                wm(1, 3, 1, false)
            ]
        )
        .is_empty());
        assert_eq!(st.sizes().1, 2);
        // Source 2 closed minute 3: minute 1 settles with the newest versions summed; minute 2
        // waits for source 1.
        let t = feed(&mut st, &rules, &[wm(2, 3, 3, false)]);
        assert_eq!(t, vec![("firing", 1, 1, 30_000.0 / 120_000.0)]);
        assert_eq!(st.sizes().1, 1);
        // Late revision of a settled window: ignored, counted.
        let mut out = Vec::new();
        let o = st.on_record(&rules, &settings(), &partial(1, 1, 2, 60_000), &mut out);
        assert_eq!((o.ignored_revisions, out.len()), (1, 0));
    }

    #[test]
    fn an_idle_source_does_not_hold_the_fleet_back_and_a_silent_one_does() {
        let rules = RuleSet::new([LoadedRule {
            rule: AlertRule {
                for_ms: 0,
                ..rule(AlertScope::Fleet).rule
            },
            ..rule(AlertScope::Fleet)
        }]);
        let mut st = AlertsState::default();
        let first = [
            partial(0, 1, 1, 10_000),
            partial(1, 1, 1, 10_000),
            wm(1, 2, 1, false),
            partial(0, 2, 1, 60_000),
            partial(0, 3, 1, 60_000),
            wm(0, 2, 3, false),
        ];
        assert_eq!(
            feed(&mut st, &rules, &first),
            vec![("firing", 1, 1, 20_000.0 / 120_000.0)]
        );
        // Source 1 says nothing more (its worker is down, or its backlog is not read yet):
        // however far source 0 gets, minute 2 waits.
        let ahead: Vec<_> = (4..=9)
            .flat_map(|m| [partial(0, m, 1, 60_000), wm(0, 2, m, false)])
            .collect();
        assert!(feed(&mut st, &rules, &ahead).is_empty());
        assert_eq!(st.sizes().1, 8);
        // Source 1 is caught up and idle: it holds nothing open, so everything source 0
        // closed settles (1.0 ≥ 0.6 clears at minute 2; resolved after 2 min keep-firing).
        let t = feed(&mut st, &rules, &[wm(1, 2, 1, true)]);
        assert_eq!(t, vec![("resolved", 4, 2, 1.0)]);
        assert_eq!(st.sizes().1, 0);
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

    /// One source; after each minute's partial, its watermark settles the previous minute
    /// (two records per minute).
    fn noisy_partials() -> Vec<WindowMetricsRecord> {
        noisy()
            .iter()
            .enumerate()
            .flat_map(|(i, u)| {
                [
                    partial(0, i as i64 + 1, 1, (u * 60_000.0).round() as i64),
                    wm(0, 1, i as i64, false),
                ]
            })
            .collect()
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
        let t: Vec<_> = feed(&mut st, &rules, &noisy_partials())
            .into_iter()
            .map(|(k, m, s, _)| (k, m, s))
            .collect();
        assert_eq!(t, expected());
    }

    #[test]
    fn a_restored_checkpoint_continues_with_the_same_transitions_and_seqs() {
        let rules = RuleSet::new([rule(AlertScope::Fleet)]);
        let recs = noisy_partials();
        for cut in [0, 5, 9, 12, 17, 20, 31, 40, recs.len()] {
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
        feed(&mut st, &first, &recs[..24]);
        // A reload: another rule changed (vehicle threshold), this one did not.
        let mut changed = rule(AlertScope::Vehicle);
        changed.rule.threshold = 0.4;
        changed.rule.clear_threshold = Some(0.45);
        let second = RuleSet::new([rule(AlertScope::Fleet), changed]);
        let mut out = Vec::new();
        for r in &recs[24..] {
            st.on_record(&second, &settings(), r, &mut out);
        }
        let kinds: Vec<_> = out
            .iter()
            .map(|e| (e.transition.kind.as_str(), e.seq))
            .collect();
        assert_eq!(kinds, vec![("resent", 7), ("resolved", 8)]);
        let m = out[0].message.as_ref().unwrap();
        assert_eq!(m["payload"]["custom_details"]["seq"], 7);
        assert_eq!(m["dedup_key"], alert::dedup_key("low-util-fleet", "f1"));
        assert_eq!(out[1].status(), "resolved");
    }

    #[test]
    fn vehicles_revisions_and_silent_subjects() {
        let rules = RuleSet::new([LoadedRule {
            rule: AlertRule {
                for_ms: 0,
                keep_firing_for_ms: 0,
                ..rule(AlertScope::Vehicle).rule
            },
            ..rule(AlertScope::Vehicle)
        }]);
        let v = |vid: &str, minute: i64, version: i32, busy: i64| {
            rec(MetricsScope::Vehicle, "f1", vid, 0, minute, version, busy)
        };
        let mut st = AlertsState::default();
        let t = feed(
            &mut st,
            &rules,
            &[
                v("v1", 1, 1, 0),
                v("v2", 1, 1, 60_000),
                v("v1", 1, 2, 60_000),
            ],
        );
        assert_eq!(
            t,
            vec![("firing", 1, 1, 0.0)],
            "v1 fires; its revision is ignored"
        );
        // v1 goes silent while firing; v2 keeps reporting. At 6 (5 min silent) v1 is ticked:
        // resend is due (5 min), and its clock moves to 6.
        let later: Vec<_> = (2..=7).map(|m| v("v2", m, 1, 60_000)).collect();
        assert_eq!(feed(&mut st, &rules, &later), vec![("resent", 6, 2, 0.0)]);
        // A v1 window older than its clock is ignored; a newer clear one resolves it.
        assert!(feed(&mut st, &rules, &[v("v1", 5, 1, 60_000)]).is_empty());
        assert_eq!(
            feed(&mut st, &rules, &[v("v1", 8, 1, 60_000)]),
            vec![("resolved", 8, 3, 1.0)]
        );
        // Vehicles that never had a transition are not stored.
        assert_eq!(st.sizes().0, 1);
    }

    fn req(
        rule: &LoadedRule,
        subject: &str,
        last_seq: u64,
        manual: Option<u64>,
        started_at_ms: i64,
    ) -> ResolveRequest {
        ResolveRequest {
            rule_id: rule.rule.id.clone(),
            subject: subject.into(),
            last_seq,
            manual_resolve_seq: manual,
            started_at_ms,
            value: 0.4,
            resolved_by: "alice".into(),
        }
    }

    #[test]
    fn a_manual_resolve_is_published_once_with_the_next_seq_and_the_machine_starts_over() {
        let r = rule(AlertScope::Fleet);
        let recs = noisy_partials();
        let mut st = AlertsState::default();
        // Through minute 11: pending at 8, firing at 11 (seq 6).
        let rules = RuleSet::new([r.clone()]);
        feed(&mut st, &rules, &recs[..24]);
        // The operator saw seq 5 (pending): stale, the machine is at 6.
        let stale = RuleSet::new([r.clone()]).with_resolves([req(&r, "f1", 5, None, 8 * M)]);
        let mut out = Vec::new();
        st.apply_resolves(&stale, &mut out);
        assert!(out.is_empty());
        // Another episode (started elsewhere): not this one.
        let other = RuleSet::new([r.clone()]).with_resolves([req(&r, "f1", 6, None, 3 * M)]);
        st.apply_resolves(&other, &mut out);
        assert!(out.is_empty());
        // The firing episode at seq 6 (started_at = firing time 11): resolved as seq 7.
        let due = RuleSet::new([r.clone()]).with_resolves([req(&r, "f1", 6, None, 11 * M)]);
        let before = st.clone();
        st.apply_resolves(&due, &mut out);
        assert_eq!(out.len(), 1);
        let e = &out[0];
        assert_eq!(
            (
                e.transition.kind.as_str(),
                e.seq,
                e.transition.at_ms,
                e.manual_by.as_deref()
            ),
            ("resolved", 7, 11 * M, Some("alice"))
        );
        let m = e.message.as_ref().unwrap();
        assert_eq!(
            (
                m["event_action"].as_str(),
                m["payload"]["custom_details"]["resolved_by"].as_str()
            ),
            (Some("resolve"), Some("alice"))
        );
        assert_eq!(m["payload"]["custom_details"]["seq"], 7);
        // Applying the same request again does nothing (the machine is resolved).
        st.apply_resolves(&due, &mut out);
        assert_eq!(out.len(), 1);
        // A replay from the checkpoint before it, with the row showing it published at 7,
        // reproduces the same transition.
        let mut replay = before;
        let published =
            RuleSet::new([r.clone()]).with_resolves([req(&r, "f1", 7, Some(7), 11 * M)]);
        let mut again = Vec::new();
        replay.apply_resolves(&published, &mut again);
        assert_eq!(again, out);
        // The value stays breaching: pending again, firing only after `for` (3 min).
        let mut next = Vec::new();
        for r in &recs[24..] {
            st.on_record(&rules, &settings(), r, &mut next);
        }
        let kinds: Vec<_> = next
            .iter()
            .map(|e| (e.transition.kind.as_str(), e.transition.at_ms / M, e.seq))
            .collect();
        assert_eq!(kinds[0], ("pending", 15, 8), "{kinds:?}");
        assert!(next.iter().all(|e| e.manual_by.is_none()));
    }

    fn mw(fleet: &str, minute: i64, busy_ms: u64) -> SettledWindow {
        SettledWindow {
            fleet_id: fleet.into(),
            start_ms: (minute - 1) * M,
            end_ms: minute * M,
            counters: Counters {
                observed_ms: 60_000,
                busy_ms,
                samples: 6,
                vehicles: 1,
                ..Counters::default()
            },
        }
    }

    #[test]
    fn federation_windows_settle_once_every_metrics_partition_passed_them() {
        let members = vec!["a".to_string(), "b".to_string()];
        let w = vec![
            mw("a", 1, 30_000),
            mw("b", 1, 10_000),
            mw("a", 2, 60_000),
            mw("x", 1, 60_000),
            mw("a", 4, 0),
        ];
        // No frontier yet (some partition has not settled anything): nothing.
        assert!(settle_federation(&members, &w, None, None).is_empty());
        // Through minute 1: a and b summed (x is no member).
        let s = settle_federation(&members, &w, None, Some(M));
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].0, s[0].1, s[0].2.busy_ms, s[0].2.observed_ms),
            (0, M, 40_000, 120_000)
        );
        // Already settled: skipped; b has no minute 2 (no data), minute 3 nobody: skipped.
        let s = settle_federation(&members, &w, Some(0), Some(10 * M));
        assert_eq!(
            s.iter().map(|x| (x.0 / M, x.2.busy_ms)).collect::<Vec<_>>(),
            vec![(1, 60_000), (3, 0)]
        );
        assert!(settle_federation(&[], &w, None, Some(10 * M)).is_empty());
    }

    #[test]
    fn federation_rules_fire_on_the_combined_members_and_resolve_by_hand() {
        let lr = Arc::new(LoadedRule {
            rule: AlertRule {
                for_ms: 0,
                keep_firing_for_ms: 0,
                resend_interval_ms: 0,
                threshold: 0.45,
                clear_threshold: Some(0.5),
                ..rule(AlertScope::Federation).rule
            },
            ..rule(AlertScope::Federation)
        });
        let members = vec!["a".to_string(), "c".to_string()];
        let mut st = FederationState::default();
        let mut out = Vec::new();
        // The first look only marks what already settled.
        let early = vec![
            mw("a", 1, 6_000),
            mw("c", 1, 6_000),
            mw("a", 2, 6_000),
            mw("c", 2, 6_000),
        ];
        evaluate_federation(
            &lr,
            &members,
            &mut st,
            true,
            &early,
            Some(M),
            None,
            &settings(),
            &mut out,
        );
        assert!(out.is_empty());
        assert_eq!(st.settled_through_ms, Some(0));
        // Minute 2: a 0.7, c 0.3 → 0.5 (no breach although c alone breaches); minute 3: 0.4, 0.3 → 0.35.
        let w = vec![
            mw("a", 2, 42_000),
            mw("c", 2, 18_000),
            mw("a", 3, 24_000),
            mw("c", 3, 18_000),
            mw("a", 4, 0),
            mw("c", 4, 0),
        ];
        evaluate_federation(
            &lr,
            &members,
            &mut st,
            false,
            &w,
            Some(3 * M),
            None,
            &settings(),
            &mut out,
        );
        let got: Vec<_> = out
            .iter()
            .map(|e| {
                (
                    e.transition.kind.as_str(),
                    e.transition.at_ms / M,
                    e.seq,
                    e.transition.value,
                )
            })
            .collect();
        assert_eq!(got, vec![("firing", 3, 1, 0.35)]);
        assert_eq!(
            (out[0].subject.as_str(), out[0].fleet_id.as_str()),
            ("fed", "f1")
        );
        assert_eq!(
            out[0].message.as_ref().unwrap()["payload"]["source"],
            "atlasmesh/federation/fed"
        );
        assert_eq!(
            (st.settled_through_ms, st.clock_ms),
            (Some(2 * M), Some(3 * M))
        );
        // Evaluating the same rows again changes nothing.
        let before = st.clone();
        evaluate_federation(
            &lr,
            &members,
            &mut st,
            false,
            &w,
            Some(3 * M),
            None,
            &settings(),
            &mut out,
        );
        assert_eq!((st.clone(), out.len()), (before, 1));
        // Resolved by hand at its clock; the next breaching window fires again (for 0).
        let r = req(&lr, "fed", 1, None, 3 * M);
        let w5 = vec![mw("a", 4, 0), mw("c", 4, 0), mw("a", 5, 0), mw("c", 5, 0)];
        evaluate_federation(
            &lr,
            &members,
            &mut st,
            false,
            &w5,
            Some(4 * M),
            Some(&r),
            &settings(),
            &mut out,
        );
        let got: Vec<_> = out[1..]
            .iter()
            .map(|e| {
                (
                    e.transition.kind.as_str(),
                    e.transition.at_ms / M,
                    e.seq,
                    e.manual_by.clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("resolved", 3, 2, Some("alice".to_string())),
                ("firing", 4, 3, None)
            ]
        );
    }

    // ------------------------------------------------------------ daily vehicle health

    const DAY: i64 = 86_400_000;

    fn health_rule(metric: &str, comparison: Comparison, threshold: f64, clear: f64) -> LoadedRule {
        LoadedRule {
            rule: AlertRule {
                id: format!("health-{metric}"),
                metric: metric.into(),
                scope: AlertScope::Vehicle,
                comparison,
                threshold,
                clear_threshold: Some(clear),
                for_ms: DAY as u64,
                keep_firing_for_ms: 0,
                severity: Severity::Warning,
                labels: Map::new(),
                runbook_url: None,
                resend_interval_ms: 0,
            },
            fleet_id: "f1".into(),
            federation_id: None,
        }
    }

    /// The value of `vehicle` for UTC day `day` (stamped with its end).
    fn dv(vehicle: &str, day: i64, value: Option<f64>) -> DailyValue {
        DailyValue {
            vehicle_id: vehicle.into(),
            at_ms: (day + 1) * DAY,
            value,
        }
    }

    fn judge(
        lr: &Arc<LoadedRule>,
        inst: &mut BTreeMap<String, HealthInstance>,
        values: &[DailyValue],
        resolves: &[ResolveRequest],
    ) -> Vec<(String, &'static str, i64, u64, f64)> {
        let mut out = Vec::new();
        evaluate_health(lr, inst, values, resolves, &mut out);
        out.iter()
            .map(|e| {
                assert_eq!(
                    (e.fleet_id.as_str(), e.rule_id.as_str()),
                    ("f1", lr.rule.id.as_str())
                );
                (
                    e.subject.clone(),
                    e.transition.kind.as_str(),
                    e.transition.at_ms / DAY - 1,
                    e.seq,
                    e.transition.value,
                )
            })
            .collect()
    }

    #[test]
    fn health_rules_are_not_evaluated_on_windows() {
        let health = health_rule("vehicle_health_score", Comparison::Lt, 50.0, 60.0);
        let rules = RuleSet::new([health.clone(), rule(AlertScope::Vehicle)]);
        assert_eq!(rules.health_rules().len(), 1);
        assert_eq!(rules.health_rules()[0].rule.id, health.rule.id);
        let ids: Vec<_> = rules
            .rules_for(AlertScope::Vehicle, "f1")
            .iter()
            .map(|r| r.rule.id.as_str())
            .collect();
        assert_eq!(ids, vec!["low-util-vehicle"]);
        assert_eq!(rules.len(), 2);
        // A vehicle window breaching utilization fires the window rule only.
        let mut st = AlertsState::default();
        let t = feed(
            &mut st,
            &rules,
            &[rec(MetricsScope::Vehicle, "f1", "v1", 0, 1, 1, 0)],
        );
        assert_eq!(t, vec![("pending", 1, 1, 0.0)]);
        // The resolves of one rule, by subject.
        let other = rule(AlertScope::Fleet);
        let rules = RuleSet::new([health.clone(), other.clone()]).with_resolves([
            req(&health, "v2", 1, None, DAY),
            req(&other, "f1", 1, None, M),
            req(&health, "v1", 1, None, DAY),
        ]);
        let subjects: Vec<_> = rules
            .resolves_for(&health.rule.id)
            .map(|r| r.subject.as_str())
            .collect();
        assert_eq!(subjects, vec!["v1", "v2"]);
        assert_eq!(rules.resolves_for("nope").count(), 0);

        // A partition's instance of a rule that now watches a daily health metric is left
        // alone (no silence ticks, no resolves): only `evaluate_health` numbers its seqs.
        let window = LoadedRule {
            rule: AlertRule {
                metric: "utilization".into(),
                threshold: 0.5,
                clear_threshold: Some(0.6),
                for_ms: 0,
                keep_firing_for_ms: 0,
                resend_interval_ms: 5 * M as u64,
                ..health.rule.clone()
            },
            ..health.clone()
        };
        let v = |vid: &str, minute: i64| rec(MetricsScope::Vehicle, "f1", vid, 0, minute, 1, 0);
        let mut st = AlertsState::default();
        let before = RuleSet::new([window.clone()]);
        assert_eq!(
            feed(&mut st, &before, &[v("v1", 1)]),
            vec![("firing", 1, 1, 0.0)]
        );
        let mut silent = st.clone();
        let later: Vec<_> = (2..=8).map(|m| v("v2", m)).collect();
        // Still a window rule: v1 (silent) is re-sent at 6.
        assert!(feed(&mut st, &before, &later)
            .iter()
            .any(|t| (t.0, t.2) == ("resent", 2)));
        let after = RuleSet::new([health.clone()]).with_resolves([req(&health, "v1", 1, None, M)]);
        assert!(feed(&mut silent, &after, &later).is_empty());
        let mut out = Vec::new();
        silent.apply_resolves(&after, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn daily_values_are_judged_once_in_event_time_with_for_and_hysteresis() {
        let lr = Arc::new(health_rule(
            "vehicle_health_score",
            Comparison::Lt,
            50.0,
            60.0,
        ));
        let mut inst = BTreeMap::new();
        // v1 crosses (pending on day 2, firing on day 3: for = 1 day), stays in the band on
        // day 4 and recovers on day 5; v2 dips for one day only. Given out of order.
        let first = vec![
            dv("v1", 3, Some(40.0)),
            dv("v1", 1, Some(70.0)),
            dv("v2", 1, Some(45.0)),
            dv("v1", 2, Some(45.0)),
            dv("v2", 2, Some(80.0)),
        ];
        let got = judge(&lr, &mut inst, &first, &[]);
        let want = vec![
            ("v2".to_string(), "pending", 1, 1, 45.0),
            ("v1".to_string(), "pending", 2, 1, 45.0),
            ("v2".to_string(), "cancelled", 2, 2, 80.0),
            ("v1".to_string(), "firing", 3, 2, 40.0),
        ];
        assert_eq!(got, want);
        assert_eq!(inst["v1"].clock_ms, Some(4 * DAY));
        // The same rows read again, and day 3 re-written with another value (a higher
        // version): nothing is judged twice.
        let mut again = first.clone();
        again.push(dv("v1", 3, Some(90.0)));
        let before = inst.clone();
        assert!(judge(&lr, &mut inst, &again, &[]).is_empty());
        assert_eq!(inst, before);
        // Day 4 in the band (still firing), a day without a value (no data), day 5 clear.
        let got = judge(
            &lr,
            &mut inst,
            &[
                dv("v1", 4, Some(55.0)),
                dv("v1", 5, None),
                dv("v1", 6, Some(65.0)),
            ],
            &[],
        );
        assert_eq!(got, vec![("v1".to_string(), "resolved", 6, 3, 65.0)]);
        assert_eq!(
            inst["v1"].state,
            AlertState::Resolved {
                since_ms: 4 * DAY,
                at_ms: 7 * DAY
            }
        );
        // A late day (before the clock) is skipped.
        assert!(judge(&lr, &mut inst, &[dv("v1", 5, Some(10.0))], &[]).is_empty());
        let m = judge_messages(&lr, &[dv("v3", 1, Some(10.0)), dv("v3", 2, Some(10.0))]);
        assert_eq!(m.len(), 1, "pending is history only");
        assert_eq!(m[0]["payload"]["custom_details"]["seq"], 2);
        assert_eq!(m[0]["payload"]["source"], "atlasmesh/vehicle/v3");
        assert_eq!(m[0]["labels"]["metric"], "vehicle_health_score");
    }

    fn judge_messages(lr: &Arc<LoadedRule>, values: &[DailyValue]) -> Vec<Value> {
        let mut out = Vec::new();
        evaluate_health(lr, &mut BTreeMap::new(), values, [], &mut out);
        out.into_iter().filter_map(|e| e.message).collect()
    }

    #[test]
    fn predictions_fire_immediately_and_a_manual_resolve_starts_over() {
        let lr = Arc::new(LoadedRule {
            rule: AlertRule {
                for_ms: 0,
                ..health_rule("failure_risk", Comparison::Gt, 0.3, 0.2).rule
            },
            ..health_rule("failure_risk", Comparison::Gt, 0.3, 0.2)
        });
        // A vehicle whose instance already has seq 4 (the rule watched another metric).
        let mut inst = BTreeMap::from([(
            "v1".to_string(),
            HealthInstance {
                seq: 4,
                ..HealthInstance::default()
            },
        )]);
        let got = judge(&lr, &mut inst, &[dv("v1", 1, Some(0.35))], &[]);
        assert_eq!(got, vec![("v1".to_string(), "firing", 1, 5, 0.35)]);
        // Resolved by hand at its clock (seq 6); the next breaching day fires again (for 0).
        let r = req(&lr, "v1", 5, None, 2 * DAY);
        let got = judge(
            &lr,
            &mut inst,
            &[dv("v1", 2, Some(0.5))],
            std::slice::from_ref(&r),
        );
        assert_eq!(
            got,
            vec![
                ("v1".to_string(), "resolved", 1, 6, 0.35),
                ("v1".to_string(), "firing", 2, 7, 0.5)
            ]
        );
        // Not due again (the machine moved on), and unknown vehicles are left alone.
        let stray = req(&lr, "v9", 1, None, DAY);
        assert!(judge(&lr, &mut inst, &[], &[r, stray]).is_empty());
        assert!(!inst.contains_key("v9"));
    }
}
