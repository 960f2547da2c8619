//! alerting: the rules of the alert engine (`alert_rules`) and the alert instances it
//! maintains (`alert_instances`, one per rule and subject), managed through the command path.
//!
//! Rules are validated with the kernel's own rule validation
//! ([`crate::analytics::alert::AlertRule::validate_field`]): thresholds finite, the clear
//! threshold on the non-firing side of the threshold, durations in range, label names valid and
//! not reserved. A federation rule (`scope = federation`) names its federation, of which the
//! owning fleet must be a member (checked by the command worker). The alerts pipeline re-reads
//! rules every `alerts.rules_refresh_ms`.
//!
//! Instances are written by the alerts pipeline only; people act on them: `acknowledge`
//! (records `acknowledged_by`/`acknowledged_at`) and `resolve` (records `resolved_by`,
//! `resolved_at`, the note). A manual resolve is picked up by the engine, which publishes the
//! `resolve` to the pager with the next seq and starts the machine over.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::validate::describe;
use super::{
    Action, ActionBody, Check, Fields, Ids, Lookup, NoUpdate, Ops, Resource, ResourceInfo,
    ScopeKind, Validate, BY_FLEET,
};
use crate::analytics::alert::{AlertRule, AlertScope, Comparison, Severity, MAX_DURATION_MS};
use crate::analytics::metrics;
use crate::Role;

const TAG: &str = "alerting";

/// Which writes instances accept: none (the engine writes them), only actions.
const NO_WRITES: Ops = Ops {
    create: false,
    update: false,
    delete: false,
};

fn duration(c: &mut Check, name: &str, v: Option<i64>) {
    c.opt_int(name, v, 0, MAX_DURATION_MS as i64);
}

fn metric(c: &mut Check, v: &str) {
    if !metrics::is_known(v) {
        let names: Vec<&str> = metrics::METRICS.iter().map(|m| m.name).collect();
        c.fail("metric", format!("must be one of {}", names.join(", ")));
    }
}

// ---------------------------------------------------------------- rules

/// An alert rule: a threshold on one metric of a fleet, its vehicles or a federation.
pub struct AlertRuleResource;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AlertRuleCreate {
    /// The owning fleet: fleet rules watch it, vehicle rules its vehicles; a federation rule's
    /// owner must be a member of the federation.
    pub fleet_id: String,
    pub scope: AlertScope,
    /// Required for `scope = federation`, refused otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation_id: Option<String>,
    /// One of the metric names of `atlasmesh_core::analytics::metrics::METRICS`. The daily
    /// vehicle health metrics (`vehicle_health_score`, `failure_risk`,
    /// `days_to_soh_threshold`) only for `scope = vehicle`.
    pub metric: String,
    pub comparison: Comparison,
    pub threshold: f64,
    /// Where a firing alert clears (hysteresis); on the non-firing side of `threshold`
    /// (≤ it for gt/ge, ≥ it for lt/le). Absent: clears at `threshold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_threshold: Option<f64>,
    /// How long the breach must hold before firing (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_ms: Option<i64>,
    /// How long the value must stay clear before resolving (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_firing_for_ms: Option<i64>,
    /// Re-send the trigger this often while firing (default 0 = never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resend_interval_ms: Option<i64>,
    pub severity: Severity,
    /// Extra Alertmanager labels (names `[A-Za-z_][A-Za-z0-9_]*`, not alertname, severity,
    /// metric, scope or subject).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook_url: Option<String>,
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

impl AlertRuleCreate {
    /// The kernel rule this body describes (id `id`).
    pub fn to_rule(&self, id: &str) -> AlertRule {
        let ms = |v: Option<i64>| v.unwrap_or(0).max(0) as u64;
        AlertRule {
            id: id.to_string(),
            metric: self.metric.clone(),
            scope: self.scope,
            comparison: self.comparison,
            threshold: self.threshold,
            clear_threshold: self.clear_threshold,
            for_ms: ms(self.for_ms),
            keep_firing_for_ms: ms(self.keep_firing_for_ms),
            severity: self.severity,
            labels: self.labels.clone(),
            runbook_url: self.runbook_url.clone(),
            resend_interval_ms: ms(self.resend_interval_ms),
        }
    }
}

impl Validate for AlertRuleCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        match (self.scope, self.federation_id.as_deref()) {
            (AlertScope::Federation, Some(f)) => c.id("federation_id", f),
            (AlertScope::Federation, None) => {
                c.fail("federation_id", "required for a federation rule")
            }
            (_, Some(_)) => c.fail("federation_id", "only for scope federation"),
            (_, None) => {}
        }
        metric(&mut c, &self.metric);
        c.finite("threshold", self.threshold);
        duration(&mut c, "for_ms", self.for_ms);
        duration(&mut c, "keep_firing_for_ms", self.keep_firing_for_ms);
        duration(&mut c, "resend_interval_ms", self.resend_interval_ms);
        c.opt_text("runbook_url", self.runbook_url.as_deref(), 2000);
        // The kernel's own checks (clear threshold side, labels, URL) on the rule as stored.
        if let Err((field, reason)) = self.to_rule("rule").validate_field() {
            c.fail(field, reason);
        }
        c.finish()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AlertRuleUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clear_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_firing_for_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resend_interval_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

impl Validate for AlertRuleUpdate {
    /// The fields on their own; the rule they make together with the stored one is checked by
    /// [`validate_rule_row`] in the command worker.
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        if let Some(m) = &self.metric {
            metric(&mut c, m);
        }
        if let Some(v) = self.threshold {
            c.finite("threshold", v);
        }
        if let Some(v) = self.clear_threshold {
            c.finite("clear_threshold", v);
        }
        duration(&mut c, "for_ms", self.for_ms);
        duration(&mut c, "keep_firing_for_ms", self.keep_firing_for_ms);
        duration(&mut c, "resend_interval_ms", self.resend_interval_ms);
        c.opt_text("runbook_url", self.runbook_url.as_deref(), 2000);
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AlertRuleView {
    /// The rule id: `alertname` label and part of every dedup key.
    pub id: String,
    pub fleet_id: String,
    pub scope: AlertScope,
    pub federation_id: Option<String>,
    pub metric: String,
    pub comparison: Comparison,
    pub threshold: f64,
    pub clear_threshold: Option<f64>,
    pub for_ms: i64,
    pub keep_firing_for_ms: i64,
    pub resend_interval_ms: i64,
    pub severity: Severity,
    pub labels: BTreeMap<String, String>,
    pub runbook_url: Option<String>,
    pub enabled: bool,
    pub created_at: String,
    pub updated_at: String,
}

/// The columns of a stored rule that make up a create body.
const RULE_FIELDS: [&str; 14] = [
    "fleet_id",
    "scope",
    "federation_id",
    "metric",
    "comparison",
    "threshold",
    "clear_threshold",
    "for_ms",
    "keep_firing_for_ms",
    "resend_interval_ms",
    "severity",
    "labels",
    "runbook_url",
    "enabled",
];

/// Validates a stored rule row with changes applied (`alert_rules` columns as JSON), as the
/// command worker does before an update: the whole rule must still be valid (e.g. a new
/// threshold must keep the stored clear threshold on its non-firing side).
pub fn validate_rule_row(row: &serde_json::Map<String, serde_json::Value>) -> Result<(), String> {
    let body: serde_json::Map<String, serde_json::Value> = RULE_FIELDS
        .iter()
        .filter_map(|k| {
            row.get(*k)
                .filter(|v| !v.is_null())
                .map(|v| (k.to_string(), v.clone()))
        })
        .collect();
    let rule: AlertRuleCreate = serde_json::from_value(serde_json::Value::Object(body))
        .map_err(|e| format!("invalid rule: {e}"))?;
    rule.validate()
        .map_err(|f| format!("invalid fields: {}", describe(&f)))
}

/// Why an update may not change a rule's metric from `old` to `new`, if it may not: a rule
/// stays on its side of window metrics and daily vehicle health metrics, which different
/// evaluators judge, each numbering the rule's transitions on its own (a rule moved between
/// them would repeat sequence numbers). Create a new rule instead.
pub fn metric_change_error(old: &str, new: &str) -> Option<String> {
    let daily = |m: &str| metrics::health_series(m).is_some();
    (daily(old) != daily(new)).then(|| {
        format!(
            "metric: {old} cannot become {new}: a rule stays on window metrics or on daily \
             vehicle health metrics; create a new rule"
        )
    })
}

impl Resource for AlertRuleResource {
    const INFO: ResourceInfo = ResourceInfo {
        name: "alert_rule",
        plural: "alert rules",
        table: "alert_rules",
        path: "/api/v1/alerting/rules",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: Ops::CRUD,
        actions: &[],
        lookups: &[BY_FLEET],
        references: &[],
        item_key: None,
        nested: None,
        create_also_at: None,
        delete_role: Role::Admin,
    };
    type Create = AlertRuleCreate;
    type Update = AlertRuleUpdate;
    type View = AlertRuleView;

    fn example(fleet_id: &str, _ids: &Ids) -> serde_json::Value {
        json!({"fleet_id": fleet_id, "scope": "fleet", "metric": "utilization", "comparison": "lt",
               "threshold": 0.5, "clear_threshold": 0.6, "for_ms": 180000, "keep_firing_for_ms": 120000,
               "resend_interval_ms": 300000, "severity": "warning", "labels": {"team": "ops"},
               "runbook_url": "https://runbooks.example/low-utilization"})
    }
}

// ---------------------------------------------------------------- instances

/// The alert of one rule and subject (fleet, vehicle or federation id), as the engine keeps
/// it: its latest transition, and what operators did (acknowledge, resolve).
pub struct AlertInstance;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AlertInstanceView {
    /// The dedup key (PagerDuty `dedup_key`, the alert topic's message key).
    pub id: String,
    pub dedup_key: String,
    pub rule_id: String,
    /// Fleet, vehicle or federation id.
    pub subject: String,
    /// The rule's owning fleet.
    pub fleet_id: String,
    /// pending, firing, resolved or cancelled (a pending alert whose breach did not last).
    pub status: String,
    /// The value of the latest transition.
    pub value: f64,
    /// Event time (epoch ms): pending/cancelled — when the breach began; firing/resolved —
    /// when it fired.
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    /// Seq of the latest transition (the `seq` header of its alert-topic message).
    pub last_transition_seq: i64,
    pub acknowledged_at: Option<String>,
    pub acknowledged_by: Option<String>,
    /// Who resolved it by hand; absent when the engine resolved it.
    pub resolved_by: Option<String>,
    pub resolved_at: Option<String>,
    pub resolution_note: Option<String>,
    /// Seq of the resolve the engine published for the manual resolve (absent until then).
    pub manual_resolve_seq: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
}

/// Why `action` (`acknowledge`, `resolve`) is refused on an instance in `status`
/// (acknowledged by `acknowledged_by`), if it is.
pub fn instance_action_error(
    action: &str,
    status: &str,
    acknowledged_by: Option<&str>,
) -> Option<String> {
    let active = matches!(status, "pending" | "firing");
    match action {
        "acknowledge" if !active => Some(format!(
            "alert instance is {status}: only pending or firing alerts can be acknowledged"
        )),
        "acknowledge" => acknowledged_by.map(|by| format!("already acknowledged by {by}")),
        "resolve" if !active => Some(format!(
            "alert instance is {status}: only pending or firing alerts can be resolved"
        )),
        "resolve" => None,
        other => Some(format!("alert instance has no action {other}")),
    }
}

impl Resource for AlertInstance {
    const INFO: ResourceInfo = ResourceInfo {
        name: "alert_instance",
        plural: "alert instances",
        table: "alert_instances",
        path: "/api/v1/alerting/instances",
        tag: TAG,
        scope: ScopeKind::Fleet,
        ops: NO_WRITES,
        actions: &[
            Action {
                name: "acknowledge",
                summary: "Acknowledge a pending or firing alert (records who)",
            },
            Action {
                name: "resolve",
                summary: "Resolve a pending or firing alert by hand; the engine sends the resolve to the pager",
            },
        ],
        lookups: &[
            BY_FLEET,
            Lookup {
                segment: "by-status",
                column: "status",
            },
            Lookup {
                segment: "by-rule",
                column: "rule_id",
            },
        ],
        references: &[],
        item_key: None,
        nested: None,
        create_also_at: None,
        delete_role: Role::Admin,
    };
    type Create = NoUpdate;
    type Update = NoUpdate;
    type View = AlertInstanceView;

    /// Instances are created by the alerts pipeline, never through the API.
    fn example(_fleet_id: &str, _ids: &Ids) -> serde_json::Value {
        json!({})
    }

    fn validate_action(action: &str, body: &ActionBody) -> Result<(), Fields> {
        let mut c = Check::new();
        if body.outcome.is_some() {
            c.fail("outcome", "not used by this action");
        }
        if action == "acknowledge" && body.note.is_some() {
            c.fail("note", "not used by this action");
        }
        c.opt_text("note", body.note.as_deref(), 2000);
        c.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> AlertRuleCreate {
        serde_json::from_value(AlertRuleResource::example("fleet-a", &Ids::new())).unwrap()
    }

    #[test]
    fn rules_are_validated_by_the_kernel() {
        assert!(example().validate().is_ok());
        let bad = |f: fn(&mut AlertRuleCreate)| {
            let mut r = example();
            f(&mut r);
            r.validate().unwrap_err()
        };
        // lt 0.5 clears at or above 0.5: 0.4 is on the firing side.
        let f = bad(|r| r.clear_threshold = Some(0.4));
        assert!(f["clear_threshold"].contains("non-firing side"), "{f:?}");
        let f = bad(|r| {
            r.comparison = Comparison::Gt;
            r.clear_threshold = Some(0.7);
        });
        assert!(f.contains_key("clear_threshold"));
        assert!(bad(|r| r.metric = "nope".into()).contains_key("metric"));
        // Daily vehicle health metrics are refused on fleet (and federation) rules, naming
        // the field; a vehicle rule may name them.
        let f = bad(|r| r.metric = "vehicle_health_score".into());
        assert!(f["metric"].contains("scope vehicle"), "{f:?}");
        let mut v = example();
        v.scope = AlertScope::Vehicle;
        v.metric = "vehicle_health_score".into();
        v.threshold = 50.0;
        v.clear_threshold = Some(60.0);
        assert!(v.validate().is_ok());
        assert!(bad(|r| r.for_ms = Some(-1)).contains_key("for_ms"));
        assert!(bad(|r| r.threshold = f64::NAN).contains_key("threshold"));
        assert!(bad(|r| {
            r.labels.insert("severity".into(), "x".into());
        })
        .contains_key("labels"));
        assert!(bad(|r| r.runbook_url = Some("ftp://x".into())).contains_key("runbook_url"));
        assert!(bad(|r| r.scope = AlertScope::Federation).contains_key("federation_id"));
        assert!(bad(|r| r.federation_id = Some("fed-1".into())).contains_key("federation_id"));
        let mut fed = example();
        fed.scope = AlertScope::Federation;
        fed.federation_id = Some("fed-1".into());
        assert!(fed.validate().is_ok());
        // Durations reach the kernel as stored.
        let r = example().to_rule("r1");
        assert_eq!(
            (r.for_ms, r.keep_firing_for_ms, r.clear_threshold()),
            (180_000, 120_000, 0.6)
        );
    }

    #[test]
    fn updates_are_checked_on_the_merged_row() {
        let mut row = match serde_json::to_value(example()).unwrap() {
            serde_json::Value::Object(m) => m,
            _ => unreachable!(),
        };
        row.insert("id".into(), json!("r1"));
        row.insert("created_at".into(), json!("2024-05-01T00:00:00Z"));
        row.insert("federation_id".into(), serde_json::Value::Null);
        row.insert("enabled".into(), json!(true));
        assert_eq!(validate_rule_row(&row), Ok(()));
        // Raising the threshold of `lt` above the stored clear threshold is refused.
        row.insert("threshold".into(), json!(0.7));
        let e = validate_rule_row(&row).unwrap_err();
        assert!(e.contains("clear_threshold"), "{e}");
        // A metric change stays within window metrics or daily vehicle health metrics.
        assert_eq!(metric_change_error("utilization", "score"), None);
        assert_eq!(
            metric_change_error("vehicle_health_score", "failure_risk"),
            None
        );
        let e = metric_change_error("utilization", "failure_risk").unwrap();
        assert!(e.starts_with("metric: "), "{e}");
        assert!(metric_change_error("days_to_soh_threshold", "utilization").is_some());
    }

    #[test]
    fn instance_actions() {
        assert_eq!(instance_action_error("acknowledge", "firing", None), None);
        assert_eq!(instance_action_error("acknowledge", "pending", None), None);
        assert_eq!(
            instance_action_error("acknowledge", "firing", Some("alice")).unwrap(),
            "already acknowledged by alice"
        );
        assert!(instance_action_error("acknowledge", "resolved", None).is_some());
        assert_eq!(
            instance_action_error("resolve", "firing", Some("alice")),
            None
        );
        assert!(instance_action_error("resolve", "resolved", None).is_some());
        assert!(instance_action_error("resolve", "cancelled", None).is_some());
        assert!(instance_action_error("delete", "firing", None).is_some());
        let note = ActionBody {
            note: Some("x".into()),
            outcome: None,
        };
        assert!(AlertInstance::validate_action("acknowledge", &note).is_err());
        assert!(AlertInstance::validate_action("resolve", &note).is_ok());
        assert!(AlertInstance::validate_action("acknowledge", &ActionBody::default()).is_ok());
    }
}
