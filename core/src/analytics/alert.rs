//! Alert rules, their per-subject state machine and the pager message of a transition.
//!
//! A rule watches one metric of one scope kind (fleet, vehicle, federation); a *subject* is one
//! fleet, vehicle or federation id. Per `(rule, subject)` there is one [`AlertState`]:
//!
//! ```text
//!            breach                 breach held for_ms
//! inactive ─────────► pending ────────────────────────► firing ──┐ re-sent every
//!  ▲ resolved ◄─────── │ no breach (cancelled)            │  ▲    │ resend_interval_ms
//!  │                   ▼                                  │  └────┘
//!  └──────────────── inactive            clear for keep_firing_for_ms
//!  resolved ◄─────────────────────────────────────────────┘
//! ```
//!
//! - *breach*: `value <comparison> threshold` (e.g. `utilization < 0.5`).
//! - *clear*: `!(value <comparison> clear_threshold)`, where `clear_threshold` lies on the
//!   non-firing side of `threshold` (`≤` it for `gt`/`ge`, `≥` it for `lt`/`le`; validated) and
//!   defaults to `threshold`. Values between the two thresholds neither breach nor clear: a
//!   firing alert stays firing there, which is the hysteresis that stops a noisy value flapping
//!   around the threshold.
//! - pending → firing only once every observation since the first breach breached and the last
//!   one is at least `for_ms` after the first; one non-breaching observation cancels.
//! - firing → resolved only once every observation since the first clear one was clear and the
//!   last observation (or [`tick`]) is at least `keep_firing_for_ms` after it; an observation
//!   that is not clear resets this.
//! - while firing, the trigger is re-sent when `resend_interval_ms > 0` and that long has
//!   passed since it was last sent (by [`step`] or [`tick`]).
//!
//! Times are event-time milliseconds, fed in non-decreasing order per subject (observations
//! are closed windows, stamped with their end). Observations that are not finite (no data)
//! change nothing. The state is plain serde data: the alerts pipeline checkpoints it, so the
//! machine survives restarts, and the stable [`dedup_key`] makes a re-sent or re-played message
//! land on the same PagerDuty incident / Alertmanager alert.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{Error, Result};

/// The longest duration a rule may configure (366 days): keeps all time arithmetic in range.
pub const MAX_DURATION_MS: u64 = 366 * 24 * 3_600_000;

/// Label names a rule may not set: the message derives them.
pub const RESERVED_LABELS: [&str; 5] = ["alertname", "severity", "metric", "scope", "subject"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Comparison {
    Gt,
    Ge,
    Lt,
    Le,
}

impl Comparison {
    /// `value <self> threshold`; false when either is NaN.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Gt => value > threshold,
            Comparison::Ge => value >= threshold,
            Comparison::Lt => value < threshold,
            Comparison::Le => value <= threshold,
        }
    }

    /// `gt`, `ge`, `lt`, `le` (also `>`, `>=`, `<`, `<=`).
    pub fn parse(s: &str) -> Option<Comparison> {
        match s {
            "gt" | ">" => Some(Comparison::Gt),
            "ge" | ">=" => Some(Comparison::Ge),
            "lt" | "<" => Some(Comparison::Lt),
            "le" | "<=" => Some(Comparison::Le),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Gt => "gt",
            Comparison::Ge => "ge",
            Comparison::Lt => "lt",
            Comparison::Le => "le",
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Gt => ">",
            Comparison::Ge => ">=",
            Comparison::Lt => "<",
            Comparison::Le => "<=",
        }
    }

    /// Whether firing means "above" (`gt`, `ge`).
    pub fn fires_above(self) -> bool {
        matches!(self, Comparison::Gt | Comparison::Ge)
    }
}

/// PagerDuty Events v2 severities (Alertmanager uses the same words as a label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = AlertSeverity))]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// What kind of subject a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum AlertScope {
    Fleet,
    Vehicle,
    Federation,
}

impl AlertScope {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertScope::Fleet => "fleet",
            AlertScope::Vehicle => "vehicle",
            AlertScope::Federation => "federation",
        }
    }
}

/// The hysteresis condition without timers: whether an alert that `was_active` is active
/// after seeing `value` — active ones stay active until `value` clears `clear_threshold`,
/// inactive ones become active when `value` breaches `threshold`. A NaN `value` (no data)
/// changes nothing. [`step`] adds `for` / `keep_firing_for` on top of this.
pub fn condition(
    comparison: Comparison,
    threshold: f64,
    clear_threshold: f64,
    value: f64,
    was_active: bool,
) -> bool {
    if value.is_nan() {
        return was_active;
    }
    if was_active {
        comparison.holds(value, clear_threshold)
    } else {
        comparison.holds(value, threshold)
    }
}

/// One alert rule (configuration or the alert-rule resource).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// Stable id; the `alertname` label and part of the dedup key.
    pub id: String,
    /// Metric name, e.g. `utilization`, `kwh_per_km`, `score`.
    pub metric: String,
    pub scope: AlertScope,
    pub comparison: Comparison,
    pub threshold: f64,
    /// Where a firing alert clears; defaults to `threshold` (no hysteresis band).
    #[serde(default)]
    pub clear_threshold: Option<f64>,
    /// How long the breach must hold before firing (Prometheus `for`).
    #[serde(default)]
    pub for_ms: u64,
    /// How long the value must stay clear before resolving (Prometheus `keep_firing_for`).
    #[serde(default)]
    pub keep_firing_for_ms: u64,
    pub severity: Severity,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub runbook_url: Option<String>,
    /// Re-send the trigger this often while firing; 0 = never.
    #[serde(default)]
    pub resend_interval_ms: u64,
}

fn is_label_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

impl AlertRule {
    pub fn clear_threshold(&self) -> f64 {
        self.clear_threshold.unwrap_or(self.threshold)
    }

    /// The firing condition.
    pub fn breaches(&self, value: f64) -> bool {
        self.comparison.holds(value, self.threshold)
    }

    /// The clearing condition (see the module docs); false for NaN.
    pub fn is_clear(&self, value: f64) -> bool {
        !value.is_nan() && !self.comparison.holds(value, self.clear_threshold())
    }

    pub fn validate(&self) -> Result<()> {
        self.validate_field()
            .map_err(|(_, m)| Error::Config(format!("alert rule {:?}: {m}", self.id)))
    }

    /// Like [`AlertRule::validate`], naming the offending field (`id`, `metric`, `threshold`,
    /// `clear_threshold`, `for_ms`, `keep_firing_for_ms`, `resend_interval_ms`, `labels`,
    /// `runbook_url`) with the reason: what the alert-rule resource reports as a 422. A known
    /// metric must allow the rule's scope (daily vehicle health metrics are vehicle-only, see
    /// [`crate::analytics::metrics`]); whether the name is known at all is the caller's check.
    pub fn validate_field(&self) -> std::result::Result<(), (&'static str, String)> {
        let err = |f: &'static str, m: String| Err((f, m));
        if self.id.is_empty() || self.id.len() > 200 || self.id.chars().any(char::is_control) {
            return err("id", "id must be 1..200 printable characters".into());
        }
        if self.metric.is_empty() || self.metric.len() > 200 {
            return err("metric", "metric must be 1..200 characters".into());
        }
        if let Some(m) = crate::analytics::metrics::find(&self.metric) {
            if !m.allows_scope(self.scope) {
                return err(
                    "metric",
                    format!(
                        "metric {} is a daily vehicle health metric: only scope vehicle rules can name it, not {}",
                        m.name,
                        self.scope.as_str()
                    ),
                );
            }
        }
        if !self.threshold.is_finite() {
            return err("threshold", "threshold must be finite".into());
        }
        let clear = self.clear_threshold();
        if !clear.is_finite() {
            return err("clear_threshold", "clear_threshold must be finite".into());
        }
        let cmp = self.comparison;
        if (cmp.fires_above() && clear > self.threshold)
            || (!cmp.fires_above() && clear < self.threshold)
        {
            return err(
                "clear_threshold",
                format!(
                    "clear_threshold {clear} must be on the non-firing side of {} {}",
                    cmp.symbol(),
                    self.threshold
                ),
            );
        }
        for (name, v) in [
            ("for_ms", self.for_ms),
            ("keep_firing_for_ms", self.keep_firing_for_ms),
            ("resend_interval_ms", self.resend_interval_ms),
        ] {
            if v > MAX_DURATION_MS {
                return err(name, format!("{name} must be at most {MAX_DURATION_MS}"));
            }
        }
        for (k, v) in &self.labels {
            if !is_label_name(k) || RESERVED_LABELS.contains(&k.as_str()) {
                return err("labels", format!("label name {k:?} is invalid or reserved"));
            }
            if v.len() > 1000 {
                return err(
                    "labels",
                    format!("label {k} is longer than 1000 characters"),
                );
            }
        }
        if let Some(url) = &self.runbook_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return err("runbook_url", "runbook_url must be an http(s) URL".into());
            }
        }
        Ok(())
    }
}

/// Durable state of one `(rule, subject)`. Externally tagged (the serde default) so that it
/// round-trips through JSON and through bincode, the format of the runner's checkpoints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    #[default]
    Inactive,
    /// Breaching since `since_ms`, not yet for `for_ms`.
    Pending { since_ms: i64 },
    Firing {
        /// When it fired (`startsAt`).
        since_ms: i64,
        /// When the breach began (the pending start; equals `since_ms` when `for_ms` is 0).
        active_since_ms: i64,
        last_sent_ms: i64,
        /// First of the run of clear observations, if the latest one was clear.
        clear_since_ms: Option<i64>,
        last_value: f64,
    },
    /// Resolved at `at_ms` after firing since `since_ms`; behaves as inactive.
    Resolved { since_ms: i64, at_ms: i64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionKind {
    /// inactive/resolved → pending.
    Pending,
    /// pending → inactive (the breach did not last `for_ms`).
    Cancelled,
    /// → firing: a trigger.
    Firing,
    /// Still firing: the trigger again.
    Resent,
    /// firing → resolved: a resolve.
    Resolved,
}

impl TransitionKind {
    /// The name stored in `alert_transitions.kind` (the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionKind::Pending => "pending",
            TransitionKind::Cancelled => "cancelled",
            TransitionKind::Firing => "firing",
            TransitionKind::Resent => "resent",
            TransitionKind::Resolved => "resolved",
        }
    }

    /// Whether the pager hears of it (trigger or resolve); pending and cancelled are kept in
    /// the alert history only.
    pub fn is_paged(self) -> bool {
        matches!(
            self,
            TransitionKind::Firing | TransitionKind::Resent | TransitionKind::Resolved
        )
    }
}

/// One state change, with everything its message needs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Transition {
    pub kind: TransitionKind,
    pub at_ms: i64,
    /// The observation that caused it (the last one for a [`tick`]).
    pub value: f64,
    /// Pending/cancelled: when the breach began; firing/resent/resolved: when it fired.
    pub starts_at_ms: i64,
    /// Resolved: when.
    pub ends_at_ms: Option<i64>,
}

fn fire(
    rule: &AlertRule,
    state: &mut AlertState,
    active_since: i64,
    at: i64,
    value: f64,
) -> Transition {
    let _ = rule;
    *state = AlertState::Firing {
        since_ms: at,
        active_since_ms: active_since,
        last_sent_ms: at,
        clear_since_ms: None,
        last_value: value,
    };
    Transition {
        kind: TransitionKind::Firing,
        at_ms: at,
        value,
        starts_at_ms: at,
        ends_at_ms: None,
    }
}

/// Resolves (when clear long enough) or re-sends (when due) a firing state at `at`.
fn firing_timers(rule: &AlertRule, state: &mut AlertState, at: i64, out: &mut Vec<Transition>) {
    let AlertState::Firing {
        since_ms,
        last_sent_ms,
        clear_since_ms,
        last_value,
        ..
    } = state
    else {
        return;
    };
    let (since, value) = (*since_ms, *last_value);
    if let Some(cs) = *clear_since_ms {
        if at.saturating_sub(cs) >= rule.keep_firing_for_ms as i64 {
            *state = AlertState::Resolved {
                since_ms: since,
                at_ms: at,
            };
            out.push(Transition {
                kind: TransitionKind::Resolved,
                at_ms: at,
                value,
                starts_at_ms: since,
                ends_at_ms: Some(at),
            });
            return;
        }
    }
    if rule.resend_interval_ms > 0
        && at.saturating_sub(*last_sent_ms) >= rule.resend_interval_ms as i64
    {
        *last_sent_ms = at;
        out.push(Transition {
            kind: TransitionKind::Resent,
            at_ms: at,
            value,
            starts_at_ms: since,
            ends_at_ms: None,
        });
    }
}

/// Feeds one observation of the rule's metric for one subject at event time `at_ms`.
/// Returns the transitions it caused, in order (usually none or one).
pub fn step(rule: &AlertRule, state: &mut AlertState, value: f64, at_ms: i64) -> Vec<Transition> {
    let mut out = Vec::new();
    if !value.is_finite() {
        return out;
    }
    match *state {
        AlertState::Inactive | AlertState::Resolved { .. } => {
            if rule.breaches(value) {
                if rule.for_ms == 0 {
                    out.push(fire(rule, state, at_ms, at_ms, value));
                } else {
                    *state = AlertState::Pending { since_ms: at_ms };
                    out.push(Transition {
                        kind: TransitionKind::Pending,
                        at_ms,
                        value,
                        starts_at_ms: at_ms,
                        ends_at_ms: None,
                    });
                }
            }
        }
        AlertState::Pending { since_ms } => {
            if !rule.breaches(value) {
                *state = AlertState::Inactive;
                out.push(Transition {
                    kind: TransitionKind::Cancelled,
                    at_ms,
                    value,
                    starts_at_ms: since_ms,
                    ends_at_ms: None,
                });
            } else if at_ms.saturating_sub(since_ms) >= rule.for_ms as i64 {
                out.push(fire(rule, state, since_ms, at_ms, value));
            }
        }
        AlertState::Firing { .. } => {
            let clear = rule.is_clear(value);
            if let AlertState::Firing {
                clear_since_ms,
                last_value,
                ..
            } = state
            {
                *last_value = value;
                *clear_since_ms = if clear {
                    Some(clear_since_ms.unwrap_or(at_ms))
                } else {
                    None
                };
            }
            firing_timers(rule, state, at_ms, &mut out);
        }
    }
    out
}

/// Advances time without an observation (`now_ms` on the observations' clock, e.g. the
/// partition watermark): resolves a firing alert whose value has been clear for
/// `keep_firing_for_ms`, and re-sends a trigger that is due.
pub fn tick(rule: &AlertRule, state: &mut AlertState, now_ms: i64) -> Vec<Transition> {
    let mut out = Vec::new();
    firing_timers(rule, state, now_ms, &mut out);
    out
}

/// An operator resolved the alert by hand (API) at `at_ms` (the subject's event-time clock):
/// a firing alert is resolved (a `Resolved` transition the pager hears) and a pending one
/// cancelled (history only). Either way the machine starts over: it fires again only after a
/// fresh breach held for `for_ms`. Inactive and resolved states are left alone (`None`).
/// `pending_value` is the value a cancelled pending alert reports (the state does not keep
/// it; the caller passes the last one it recorded).
pub fn resolve_by_hand(
    state: &mut AlertState,
    at_ms: i64,
    pending_value: f64,
) -> Option<Transition> {
    match *state {
        AlertState::Firing {
            since_ms,
            last_value,
            ..
        } => {
            let at = at_ms.max(since_ms);
            *state = AlertState::Resolved {
                since_ms,
                at_ms: at,
            };
            Some(Transition {
                kind: TransitionKind::Resolved,
                at_ms: at,
                value: last_value,
                starts_at_ms: since_ms,
                ends_at_ms: Some(at),
            })
        }
        AlertState::Pending { since_ms } => {
            *state = AlertState::Inactive;
            Some(Transition {
                kind: TransitionKind::Cancelled,
                at_ms: at_ms.max(since_ms),
                value: pending_value,
                starts_at_ms: since_ms,
                ends_at_ms: None,
            })
        }
        AlertState::Inactive | AlertState::Resolved { .. } => None,
    }
}

pub use crate::hash::fnv1a64;

/// The dedup key of `(rule_id, subject)`: `am-` and the 16 lower-case hex digits of FNV-1a 64
/// over `rule_id`, the byte 0x1f (unit separator, so `("a", "bc")` and `("ab", "c")` differ)
/// and `subject`, in UTF-8. Also the Kafka key of the alert topic.
pub fn dedup_key(rule_id: &str, subject: &str) -> String {
    format!(
        "am-{:016x}",
        crate::hash::fnv1a64_parts(&[rule_id.as_bytes(), &[0x1f], subject.as_bytes()])
    )
}

/// RFC 3339 UTC with milliseconds, e.g. `2024-05-01T12:00:00.000Z`.
pub fn rfc3339_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".to_string())
}

/// The one-line summary of a paged transition.
pub fn summary(rule: &AlertRule, subject: &str, t: &Transition) -> String {
    let head = if t.kind == TransitionKind::Resolved {
        "RESOLVED".to_string()
    } else {
        rule.severity.as_str().to_uppercase()
    };
    let s = format!(
        "{head}: {} {} {} {} is {:.3} (fires when {} {:.3}, clears at {:.3})",
        rule.id,
        rule.scope.as_str(),
        subject,
        rule.metric,
        t.value,
        rule.comparison.symbol(),
        rule.threshold,
        rule.clear_threshold(),
    );
    // PagerDuty caps the summary at 1024 characters.
    s.chars().take(1024).collect()
}

/// The message of a paged transition on `fleet.alerts.v1` (`None` for pending/cancelled):
/// a PagerDuty Events v2 event a bridge forwards as is after adding its `routing_key`
/// (an integration secret, deliberately never in the topic), plus the fields of an
/// Alertmanager alert:
///
/// - PagerDuty: `event_action` (`trigger` for firing and re-sends, `resolve`), `dedup_key`,
///   `client`, `payload` {`summary`, `source` = `atlasmesh/<scope>/<subject>`, `severity`,
///   `timestamp` (RFC 3339, the transition time), `component` = scope, `group` = subject,
///   `class` = metric, `custom_details`}, `links` [{`href` = runbook, `text`}];
/// - Alertmanager: `status` (`firing`/`resolved`), `labels` (the rule's labels plus
///   `alertname` = rule id, `severity`, `metric`, `scope`, `subject`), `annotations`
///   {`summary`, `runbook_url`?}, `startsAt` (when it fired), `endsAt` (resolve only).
pub fn pager_message(rule: &AlertRule, subject: &str, t: &Transition) -> Option<Value> {
    if !t.kind.is_paged() {
        return None;
    }
    let resolved = t.kind == TransitionKind::Resolved;
    let summary = summary(rule, subject, t);
    let mut labels: BTreeMap<String, String> = rule.labels.clone();
    labels.insert("alertname".into(), rule.id.clone());
    labels.insert("severity".into(), rule.severity.as_str().into());
    labels.insert("metric".into(), rule.metric.clone());
    labels.insert("scope".into(), rule.scope.as_str().into());
    labels.insert("subject".into(), subject.into());
    let mut annotations = serde_json::Map::new();
    annotations.insert("summary".into(), json!(summary));
    let links: Vec<Value> = match &rule.runbook_url {
        Some(url) => {
            annotations.insert("runbook_url".into(), json!(url));
            vec![json!({ "href": url, "text": format!("Runbook: {}", rule.id) })]
        }
        None => vec![],
    };
    let mut msg = json!({
        "event_action": if resolved { "resolve" } else { "trigger" },
        "dedup_key": dedup_key(&rule.id, subject),
        "client": "AtlasMesh",
        "payload": {
            "summary": summary,
            "source": format!("atlasmesh/{}/{}", rule.scope.as_str(), subject),
            "severity": rule.severity.as_str(),
            "timestamp": rfc3339_ms(t.at_ms),
            "component": rule.scope.as_str(),
            "group": subject,
            "class": rule.metric,
            "custom_details": {
                "rule_id": rule.id,
                "transition": t.kind,
                "metric": rule.metric,
                "scope": rule.scope,
                "subject": subject,
                "value": t.value,
                "comparison": rule.comparison,
                "threshold": rule.threshold,
                "clear_threshold": rule.clear_threshold(),
                "for_ms": rule.for_ms,
                "keep_firing_for_ms": rule.keep_firing_for_ms,
                "starts_at": rfc3339_ms(t.starts_at_ms),
            },
        },
        "links": links,
        "status": if resolved { "resolved" } else { "firing" },
        "labels": labels,
        "annotations": annotations,
        "startsAt": rfc3339_ms(t.starts_at_ms),
    });
    if let (Some(end), Some(obj)) = (t.ends_at_ms, msg.as_object_mut()) {
        obj.insert("endsAt".into(), json!(rfc3339_ms(end)));
    }
    Some(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transition_kind_names_are_the_serde_names() {
        use TransitionKind::*;
        for k in [Pending, Cancelled, Firing, Resent, Resolved] {
            assert_eq!(serde_json::to_value(k).unwrap(), json!(k.as_str()));
        }
    }

    const M: i64 = 60_000;

    fn rule() -> AlertRule {
        AlertRule {
            id: "low-utilization".into(),
            metric: "utilization".into(),
            scope: AlertScope::Fleet,
            comparison: Comparison::Lt,
            threshold: 0.5,
            clear_threshold: Some(0.6),
            for_ms: 3 * M as u64,
            keep_firing_for_ms: 2 * M as u64,
            severity: Severity::Warning,
            labels: BTreeMap::from([("team".to_string(), "ops".to_string())]),
            runbook_url: Some("https://runbooks.example/low-utilization".into()),
            resend_interval_ms: 5 * M as u64,
        }
    }

    fn run(rule: &AlertRule, values: &[f64]) -> (AlertState, Vec<(TransitionKind, i64)>) {
        let mut st = AlertState::default();
        let mut seen = vec![];
        for (i, &v) in values.iter().enumerate() {
            for t in step(rule, &mut st, v, (i as i64 + 1) * M) {
                seen.push((t.kind, t.at_ms / M));
            }
        }
        (st, seen)
    }

    #[test]
    fn comparisons() {
        assert!(Comparison::Gt.holds(2.0, 1.0) && !Comparison::Gt.holds(1.0, 1.0));
        assert!(Comparison::Ge.holds(1.0, 1.0) && !Comparison::Ge.holds(0.9, 1.0));
        assert!(Comparison::Lt.holds(0.0, 1.0) && !Comparison::Lt.holds(1.0, 1.0));
        assert!(Comparison::Le.holds(1.0, 1.0) && !Comparison::Le.holds(1.1, 1.0));
        assert!(!Comparison::Gt.holds(f64::NAN, 1.0) && !Comparison::Lt.holds(f64::NAN, 1.0));
        let r = rule();
        assert!(r.breaches(0.49) && !r.breaches(0.5));
        assert!(!r.is_clear(0.59) && r.is_clear(0.6) && !r.is_clear(f64::NAN));
    }

    #[test]
    fn hysteresis_condition() {
        use Comparison::*;
        assert_eq!(Comparison::parse("le"), Some(Le));
        assert_eq!(Comparison::parse(">"), Some(Gt));
        assert_eq!(Comparison::parse("eq"), None);
        for c in [Gt, Ge, Lt, Le] {
            assert_eq!(Comparison::parse(c.as_str()), Some(c));
        }
        // lt 0.5, clear at 0.6.
        assert!(condition(Lt, 0.5, 0.6, 0.4, false));
        assert!(!condition(Lt, 0.5, 0.6, 0.55, false), "band does not start");
        assert!(condition(Lt, 0.5, 0.6, 0.55, true), "band does not clear");
        assert!(!condition(Lt, 0.5, 0.6, 0.6, true));
        assert!(
            condition(Gt, 0.9, 0.8, f64::NAN, true) && !condition(Gt, 0.9, 0.8, f64::NAN, false)
        );
        // Agrees with the rule's own predicates.
        let r = rule();
        for v in [0.3, 0.5, 0.55, 0.6, 0.9] {
            assert_eq!(
                condition(r.comparison, r.threshold, r.clear_threshold(), v, false),
                r.breaches(v)
            );
            assert_eq!(
                condition(r.comparison, r.threshold, r.clear_threshold(), v, true),
                !r.is_clear(v)
            );
        }
    }

    #[test]
    fn validation() {
        assert!(rule().validate().is_ok());
        let bad = |f: fn(&mut AlertRule)| {
            let mut r = rule();
            f(&mut r);
            r.validate().is_err()
        };
        assert!(
            bad(|r| r.clear_threshold = Some(0.4)),
            "clear on the firing side of lt"
        );
        assert!(bad(|r| {
            r.comparison = Comparison::Gt;
            r.threshold = 0.9;
            r.clear_threshold = Some(0.95);
        }));
        assert!(!bad(|r| {
            r.comparison = Comparison::Ge;
            r.threshold = 0.9;
            r.clear_threshold = Some(0.8);
        }));
        assert!(!bad(|r| r.clear_threshold = None));
        assert!(bad(|r| r.threshold = f64::NAN));
        assert!(bad(|r| r.clear_threshold = Some(f64::INFINITY)));
        assert!(bad(|r| r.id.clear()));
        assert!(bad(|r| r.metric.clear()));
        assert!(bad(|r| r.for_ms = MAX_DURATION_MS + 1));
        assert!(bad(|r| {
            r.labels.insert("severity".into(), "x".into());
        }));
        assert!(bad(|r| {
            r.labels.insert("bad-name".into(), "x".into());
        }));
        assert!(bad(|r| r.runbook_url = Some("javascript:alert(1)".into())));
        let json = r#"{"id":"x","metric":"utilization","scope":"fleet","comparison":"gt","threshold":1,
            "severity":"critical","labels":{"team":"a"}}"#;
        let r: AlertRule = serde_json::from_str(json).unwrap();
        assert_eq!(
            (r.for_ms, r.clear_threshold(), r.resend_interval_ms),
            (0, 1.0, 0)
        );
        assert!(
            serde_json::from_str::<AlertRule>(&json.replace("\"id\"", "\"nope\":1,\"id\""))
                .is_err()
        );
    }

    #[test]
    fn noisy_crossing_does_not_flap() {
        // Minute k gets values[k-1]. Breach < 0.5, clear ≥ 0.6, for 3 min, keep 2 min, resend 5 min.
        let values = [
            0.70, 0.52, 0.48, 0.51, 0.47, 0.49, 0.53, // two short dips: pending, cancelled
            0.46, 0.44, 0.45, 0.43, // pending at 8, fires at 11
            0.52, 0.58, 0.55, 0.49, 0.57, // in the band: still firing; resend at 16
            0.62, 0.57, // clear at 17, reset at 18
            0.63, 0.65, 0.66, 0.70, // clear since 19, resolved at 21
        ];
        let (st, seen) = run(&rule(), &values);
        use TransitionKind::*;
        assert_eq!(
            seen,
            vec![
                (Pending, 3),
                (Cancelled, 4),
                (Pending, 5),
                (Cancelled, 7),
                (Pending, 8),
                (Firing, 11),
                (Resent, 16),
                (Resolved, 21)
            ]
        );
        assert_eq!(
            st,
            AlertState::Resolved {
                since_ms: 11 * M,
                at_ms: 21 * M
            }
        );

        // Without hysteresis and delays the same series flaps.
        let naive = AlertRule {
            clear_threshold: None,
            for_ms: 0,
            keep_firing_for_ms: 0,
            resend_interval_ms: 0,
            ..rule()
        };
        let (_, seen) = run(&naive, &values);
        assert!(
            seen.iter().filter(|(k, _)| *k == Firing).count() >= 4,
            "{seen:?}"
        );
    }

    #[test]
    fn immediate_rules_and_nan() {
        let r = AlertRule {
            for_ms: 0,
            keep_firing_for_ms: 0,
            resend_interval_ms: 0,
            ..rule()
        };
        let mut st = AlertState::default();
        assert!(step(&r, &mut st, f64::NAN, M).is_empty());
        let t = step(&r, &mut st, 0.1, M);
        assert_eq!(t.len(), 1);
        assert_eq!((t[0].kind, t[0].starts_at_ms), (TransitionKind::Firing, M));
        assert!(
            step(&r, &mut st, f64::NAN, 2 * M).is_empty(),
            "no data keeps firing"
        );
        assert!(step(&r, &mut st, 0.55, 3 * M).is_empty(), "band");
        let t = step(&r, &mut st, 0.6, 4 * M);
        assert_eq!(
            (t[0].kind, t[0].ends_at_ms),
            (TransitionKind::Resolved, Some(4 * M))
        );
        // Re-fires from resolved.
        assert_eq!(
            step(&r, &mut st, 0.2, 5 * M)[0].kind,
            TransitionKind::Firing
        );
    }

    #[test]
    fn tick_resolves_after_keep_firing_for_and_resends() {
        let r = rule();
        let mut st = AlertState::default();
        step(&r, &mut st, 0.1, 0);
        assert_eq!(
            step(&r, &mut st, 0.1, 3 * M)[0].kind,
            TransitionKind::Firing
        );
        assert!(tick(&r, &mut st, 7 * M).is_empty());
        let t = tick(&r, &mut st, 8 * M);
        assert_eq!(
            (t[0].kind, t[0].starts_at_ms, t[0].value),
            (TransitionKind::Resent, 3 * M, 0.1)
        );
        assert!(
            tick(&r, &mut st, 12 * M).is_empty(),
            "next resend 5 min after the last"
        );
        assert!(
            step(&r, &mut st, 0.7, 12 * M).is_empty(),
            "clear since 12, not yet for 2 min"
        );
        assert_eq!(
            tick(&r, &mut st, 13 * M)[0].kind,
            TransitionKind::Resent,
            "still firing while keeping"
        );
        assert!(tick(&r, &mut st, 13 * M + 59_999).is_empty());
        let t = tick(&r, &mut st, 14 * M);
        assert_eq!(
            (t[0].kind, t[0].ends_at_ms, t[0].value),
            (TransitionKind::Resolved, Some(14 * M), 0.7)
        );
        assert!(tick(&r, &mut st, 30 * M).is_empty());
        let mut inactive = AlertState::default();
        assert!(tick(&r, &mut inactive, 30 * M).is_empty());
    }

    #[test]
    fn state_round_trips_through_json_and_bincode() {
        let r = rule();
        let mut st = AlertState::default();
        step(&r, &mut st, 0.1, 0);
        step(&r, &mut st, 0.1, 3 * M);
        step(&r, &mut st, 0.7, 4 * M);
        let json = serde_json::to_string(&st).unwrap();
        assert!(json.starts_with("{\"firing\":{"), "{json}");
        let mut back: AlertState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, st);
        // Checkpoints are bincode: the same state comes back from it too.
        let bin: AlertState = bincode::deserialize(&bincode::serialize(&st).unwrap()).unwrap();
        assert_eq!(bin, st);
        // The restored machine continues where it was: resolved 2 min after the clear.
        assert_eq!(
            step(&r, &mut back, 0.7, 6 * M)[0].kind,
            TransitionKind::Resolved
        );
    }

    #[test]
    fn resolve_by_hand_resets_the_machine() {
        let r = rule();
        let mut st = AlertState::default();
        step(&r, &mut st, 0.1, 0);
        assert_eq!(
            step(&r, &mut st, 0.2, 3 * M)[0].kind,
            TransitionKind::Firing
        );
        let t = resolve_by_hand(&mut st, 4 * M, 0.0).unwrap();
        assert_eq!(
            (t.kind, t.at_ms, t.value, t.starts_at_ms, t.ends_at_ms),
            (TransitionKind::Resolved, 4 * M, 0.2, 3 * M, Some(4 * M))
        );
        assert_eq!(
            st,
            AlertState::Resolved {
                since_ms: 3 * M,
                at_ms: 4 * M
            }
        );
        assert_eq!(
            pager_message(&r, "f", &t).unwrap()["event_action"],
            "resolve"
        );
        assert!(
            resolve_by_hand(&mut st, 5 * M, 0.0).is_none(),
            "twice changes nothing"
        );
        // Still breaching: it fires again only after a fresh breach held for `for` (3 min).
        assert_eq!(
            step(&r, &mut st, 0.1, 5 * M)[0].kind,
            TransitionKind::Pending
        );
        assert!(step(&r, &mut st, 0.1, 7 * M).is_empty());
        assert_eq!(
            step(&r, &mut st, 0.1, 8 * M)[0].kind,
            TransitionKind::Firing
        );
        // A pending alert is cancelled (history only), keeping the value the caller passes.
        let mut p = AlertState::Pending { since_ms: 10 * M };
        let t = resolve_by_hand(&mut p, 9 * M, 0.3).unwrap();
        assert_eq!(
            (t.kind, t.at_ms, t.value, t.starts_at_ms),
            (TransitionKind::Cancelled, 10 * M, 0.3, 10 * M)
        );
        assert_eq!(p, AlertState::Inactive);
        assert!(pager_message(&r, "f", &t).is_none());
        assert!(resolve_by_hand(&mut AlertState::Inactive, M, 0.0).is_none());
    }

    #[test]
    fn validation_names_the_field() {
        let mut r = rule();
        r.clear_threshold = Some(0.4);
        assert_eq!(r.validate_field().unwrap_err().0, "clear_threshold");
        let mut r = rule();
        r.keep_firing_for_ms = MAX_DURATION_MS + 1;
        assert_eq!(r.validate_field().unwrap_err().0, "keep_firing_for_ms");
        let mut r = rule();
        r.labels.insert("alertname".into(), "x".into());
        assert_eq!(r.validate_field().unwrap_err().0, "labels");
        // Daily vehicle health metrics: vehicle rules only.
        for scope in [AlertScope::Fleet, AlertScope::Federation] {
            let r = AlertRule {
                metric: "vehicle_health_score".into(),
                scope,
                ..rule()
            };
            let (field, reason) = r.validate_field().unwrap_err();
            assert_eq!(field, "metric");
            assert!(reason.contains("vehicle"), "{reason}");
        }
        let r = AlertRule {
            metric: "failure_risk".into(),
            scope: AlertScope::Vehicle,
            comparison: Comparison::Gt,
            threshold: 0.3,
            clear_threshold: Some(0.2),
            ..rule()
        };
        assert_eq!(r.validate_field(), Ok(()));
    }

    #[test]
    fn dedup_key_is_fixed() {
        // FNV-1a 64 reference vectors.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
        assert_eq!(dedup_key("r", "s"), dedup_key("r", "s"));
        assert_ne!(dedup_key("a", "bc"), dedup_key("ab", "c"));
        let k = dedup_key("low-utilization", "fleet-b");
        assert!(k.starts_with("am-") && k.len() == 19, "{k}");
    }

    #[test]
    fn pager_message_shape() {
        let r = rule();
        let trig = Transition {
            kind: TransitionKind::Firing,
            at_ms: 1_700_000_100_000,
            value: 0.43,
            starts_at_ms: 1_700_000_100_000,
            ends_at_ms: None,
        };
        let m = pager_message(&r, "fleet-b", &trig).unwrap();
        assert_eq!(m["event_action"], "trigger");
        assert_eq!(m["dedup_key"], dedup_key("low-utilization", "fleet-b"));
        assert!(m.get("routing_key").is_none());
        assert_eq!(m["payload"]["severity"], "warning");
        assert_eq!(m["payload"]["timestamp"], "2023-11-14T22:15:00.000Z");
        assert_eq!(m["payload"]["source"], "atlasmesh/fleet/fleet-b");
        assert_eq!(m["payload"]["class"], "utilization");
        assert_eq!(m["payload"]["custom_details"]["value"], 0.43);
        assert_eq!(
            m["payload"]["summary"],
            "WARNING: low-utilization fleet fleet-b utilization is 0.430 (fires when < 0.500, clears at 0.600)"
        );
        assert_eq!(
            m["links"][0]["href"],
            "https://runbooks.example/low-utilization"
        );
        assert_eq!(m["labels"]["alertname"], "low-utilization");
        assert_eq!(m["labels"]["team"], "ops");
        assert_eq!(m["status"], "firing");
        assert_eq!(m["startsAt"], "2023-11-14T22:15:00.000Z");
        assert!(m.get("endsAt").is_none());

        let res = Transition {
            kind: TransitionKind::Resolved,
            at_ms: 1_700_000_400_000,
            ends_at_ms: Some(1_700_000_400_000),
            ..trig
        };
        let m = pager_message(&r, "fleet-b", &res).unwrap();
        assert_eq!(
            (m["event_action"].as_str(), m["status"].as_str()),
            (Some("resolve"), Some("resolved"))
        );
        assert_eq!(m["endsAt"], "2023-11-14T22:20:00.000Z");
        assert!(m["payload"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("RESOLVED: "));

        let no_runbook = AlertRule {
            runbook_url: None,
            ..r.clone()
        };
        let m = pager_message(&no_runbook, "fleet-b", &trig).unwrap();
        assert_eq!(m["links"], json!([]));
        assert!(m["annotations"].get("runbook_url").is_none());
        let pending = Transition {
            kind: TransitionKind::Pending,
            ..trig
        };
        assert_eq!(pager_message(&r, "fleet-b", &pending), None);
    }
}
