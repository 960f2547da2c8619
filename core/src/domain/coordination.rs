//! fleet-coordination: federations of fleets, their members, resource sharing between fleets
//! and federation metrics.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{
    Action, Check, Fields, Ids, Lookup, Nested, NoUpdate, Ops, Reference, Resource, ResourceInfo,
    ScopeKind, Validate, BY_FLEET,
};
use crate::Role;

const TAG: &str = "fleet-coordination";
const BY_FEDERATION: Lookup = Lookup {
    segment: "by-federation",
    column: "federation_id",
};
const FEDERATION_REF: Reference = Reference {
    field: "federation_id",
    target: "federation",
    same_fleet: false,
};

// ---------------------------------------------------------------- federations

/// A group of fleets that coordinate and share resources. Its id is its scope: callers with
/// the federation in scope manage it; member fleets read it. Creating one needs an unrestricted
/// scope (the new id cannot be in anyone's scope yet).
pub struct Federation;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FederationCreate {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Validate for FederationCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.text("name", &self.name, 200);
        c.opt_text("description", self.description.as_deref(), 4000);
        c.finish()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FederationUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Validate for FederationUpdate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.opt_text("name", self.name.as_deref(), 200);
        c.opt_text("description", self.description.as_deref(), 4000);
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FederationView {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for Federation {
    const INFO: ResourceInfo = ResourceInfo {
        name: "federation",
        plural: "federations",
        table: "federations",
        path: "/api/v1/fleet-coordination/federations",
        tag: TAG,
        scope: ScopeKind::Federation("id"),
        ops: Ops::CRUD,
        actions: &[],
        lookups: &[],
        references: &[],
        item_key: None,
        nested: None,
        create_also_at: None,
        delete_role: Role::Admin,
    };
    type Create = FederationCreate;
    type Update = FederationUpdate;
    type View = FederationView;

    fn example(_fleet_id: &str, _ids: &Ids) -> serde_json::Value {
        json!({"name": "Northern depots"})
    }
}

// ---------------------------------------------------------------- members

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    Member,
    Coordinator,
}

/// A fleet's membership of a federation (one per fleet and federation).
pub struct Member;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MemberCreate {
    pub federation_id: String,
    pub fleet_id: String,
    pub role: MemberRole,
}

impl Validate for MemberCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("federation_id", &self.federation_id);
        c.id("fleet_id", &self.fleet_id);
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MemberView {
    pub id: String,
    pub federation_id: String,
    pub fleet_id: String,
    pub role: MemberRole,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for Member {
    const INFO: ResourceInfo = ResourceInfo {
        name: "member",
        plural: "federation members",
        table: "federation_members",
        path: "/api/v1/fleet-coordination/members",
        tag: TAG,
        scope: ScopeKind::Federation("federation_id"),
        ops: Ops::CREATE_DELETE,
        actions: &[],
        lookups: &[BY_FEDERATION, BY_FLEET],
        references: &[FEDERATION_REF],
        item_key: None,
        nested: Some(Nested {
            parent: "federation",
            parent_path: Federation::INFO.path,
            segment: "members",
            column: "federation_id",
            key: Some("fleet_id"),
        }),
        create_also_at: None,
        delete_role: Role::Operator,
    };
    type Create = MemberCreate;
    type Update = NoUpdate;
    type View = MemberView;

    /// The fleet and a partner fleet (someone to write to, see [`Communication`]).
    const EXAMPLE_COUNT: usize = 2;

    fn example(fleet_id: &str, ids: &Ids) -> serde_json::Value {
        let federation = super::id_of(ids, "federation", 0);
        match ids.get("member").map_or(0, Vec::len) {
            0 => json!({"federation_id": federation, "fleet_id": fleet_id, "role": "coordinator"}),
            _ => {
                json!({"federation_id": federation, "fleet_id": format!("{fleet_id}-partner"), "role": "member"})
            }
        }
    }
}

// ---------------------------------------------------------------- sharing

/// Units of an owner fleet's pool lent to another fleet over a time range. The owner
/// (`fleet_id`) manages it; the target fleet sees it read-only; nobody else sees it. With a
/// federation, both fleets must be members of it.
pub struct Share;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ShareCreate {
    /// The owner fleet.
    pub fleet_id: String,
    pub target_fleet_id: String,
    /// A pool of the owner fleet.
    pub pool_id: String,
    /// Units lent, at most the pool's capacity.
    pub amount: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation_id: Option<String>,
    pub starts_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
}

impl Validate for ShareCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("fleet_id", &self.fleet_id);
        c.id("target_fleet_id", &self.target_fleet_id);
        if self.fleet_id == self.target_fleet_id {
            c.fail("target_fleet_id", "must differ from fleet_id");
        }
        c.id("pool_id", &self.pool_id);
        c.int("amount", self.amount, 1, super::resources::MAX_UNITS);
        c.opt_id("federation_id", self.federation_id.as_deref());
        let s = c.time("starts_at", &self.starts_at);
        let e = c.opt_time("ends_at", self.ends_at.as_deref());
        c.before("ends_at", s, e);
        c.finish()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ShareUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
}

impl Validate for ShareUpdate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.opt_int("amount", self.amount, 1, super::resources::MAX_UNITS);
        c.opt_time("ends_at", self.ends_at.as_deref());
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ShareView {
    pub id: String,
    pub fleet_id: String,
    pub target_fleet_id: String,
    pub pool_id: String,
    pub amount: i64,
    pub federation_id: Option<String>,
    pub starts_at: String,
    pub ends_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for Share {
    const INFO: ResourceInfo = ResourceInfo {
        name: "share",
        plural: "resource shares",
        table: "resource_shares",
        path: "/api/v1/fleet-coordination/resource-sharing",
        tag: TAG,
        scope: ScopeKind::SharedWith("target_fleet_id"),
        ops: Ops::CRUD,
        actions: &[],
        lookups: &[
            BY_FLEET,
            Lookup {
                segment: "by-target",
                column: "target_fleet_id",
            },
            BY_FEDERATION,
        ],
        references: &[Reference {
            field: "pool_id",
            target: "pool",
            same_fleet: true,
        }],
        item_key: None,
        nested: None,
        create_also_at: None,
        delete_role: Role::Operator,
    };
    type Create = ShareCreate;
    type Update = ShareUpdate;
    type View = ShareView;

    fn example(fleet_id: &str, ids: &Ids) -> serde_json::Value {
        json!({"fleet_id": fleet_id, "target_fleet_id": format!("{fleet_id}-partner"),
               "pool_id": super::id_of(ids, "pool", 0), "amount": 2, "starts_at": "2024-05-01T00:00:00Z",
               "ends_at": "2024-05-08T00:00:00Z"})
    }
}

// ---------------------------------------------------------------- federation metrics

/// A metric value of a federation over a period.
pub struct FederationMetric;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FederationMetricCreate {
    pub federation_id: String,
    pub metric: String,
    pub value: f64,
    pub period_start: String,
    pub period_end: String,
}

impl Validate for FederationMetricCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("federation_id", &self.federation_id);
        c.id("metric", &self.metric);
        c.finite("value", self.value);
        let s = c.time("period_start", &self.period_start);
        let e = c.time("period_end", &self.period_end);
        c.before("period_end", s, e);
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FederationMetricView {
    pub id: String,
    pub federation_id: String,
    pub metric: String,
    pub value: f64,
    pub period_start: String,
    pub period_end: String,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for FederationMetric {
    const INFO: ResourceInfo = ResourceInfo {
        name: "federation_metric",
        plural: "federation metrics",
        table: "federation_metrics",
        path: "/api/v1/fleet-coordination/metrics",
        tag: TAG,
        scope: ScopeKind::Federation("federation_id"),
        ops: Ops::CREATE,
        actions: &[],
        lookups: &[BY_FEDERATION],
        references: &[FEDERATION_REF],
        item_key: None,
        nested: None,
        create_also_at: None,
        delete_role: Role::Admin,
    };
    type Create = FederationMetricCreate;
    type Update = NoUpdate;
    type View = FederationMetricView;

    fn example(_fleet_id: &str, ids: &Ids) -> serde_json::Value {
        json!({"federation_id": super::id_of(ids, "federation", 0), "metric": "shared_units", "value": 2.0,
               "period_start": "2024-05-01T00:00:00Z", "period_end": "2024-05-02T00:00:00Z"})
    }
}

// ---------------------------------------------------------------- communications

/// What an inter-fleet message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CommunicationKind {
    /// Units a fleet can lend.
    ResourceOffer,
    /// Units a fleet needs.
    ResourceRequest,
    /// Work (a mission, a zone) passed to another fleet.
    Handover,
    Notice,
}

impl CommunicationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CommunicationKind::ResourceOffer => "resource_offer",
            CommunicationKind::ResourceRequest => "resource_request",
            CommunicationKind::Handover => "handover",
            CommunicationKind::Notice => "notice",
        }
    }
}

/// Largest message body, as serialized JSON.
pub const MAX_COMMUNICATION_BODY: usize = 16 * 1024;

/// A message from one member fleet of a federation to another (one row per recipient: a
/// message to the whole federation is one row per other member, sharing `message_id`). The
/// sender and the recipient read it; the recipient acknowledges it; nobody else sees it, and a
/// fleet that is not a member of the federation is refused (403) on every route. The
/// coordination relay delivers each row on `topics.coordination` (keyed by the recipient)
/// and records when the broker took it (`delivered_at`).
pub struct Communication;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CommunicationCreate {
    pub federation_id: String,
    /// The sender, a member fleet of the federation.
    pub fleet_id: String,
    /// The recipient, another member; absent: every other member of the federation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_fleet_id: Option<String>,
    pub kind: CommunicationKind,
    /// The conversation this message continues; absent: it starts one (its `message_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
    /// The content, a JSON object of at most 16 KiB.
    pub body: serde_json::Value,
}

impl Validate for CommunicationCreate {
    fn validate(&self) -> Result<(), Fields> {
        let mut c = Check::new();
        c.id("federation_id", &self.federation_id);
        c.id("fleet_id", &self.fleet_id);
        c.opt_id("target_fleet_id", self.target_fleet_id.as_deref());
        if self.target_fleet_id.as_deref() == Some(self.fleet_id.as_str()) {
            c.fail("target_fleet_id", "must differ from fleet_id");
        }
        c.opt_id("conversation_id", self.conversation_id.as_deref());
        if !self.body.is_object() {
            c.fail("body", "must be a JSON object");
        } else if self.body.to_string().len() > MAX_COMMUNICATION_BODY {
            c.fail(
                "body",
                format!("at most {MAX_COMMUNICATION_BODY} bytes of JSON"),
            );
        }
        c.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CommunicationView {
    pub id: String,
    pub federation_id: String,
    pub fleet_id: String,
    pub target_fleet_id: String,
    pub kind: CommunicationKind,
    /// The message this row is a copy of (the id of its first row).
    pub message_id: String,
    pub conversation_id: String,
    pub body: serde_json::Value,
    /// `sent` → `delivered` (on the topic) → `acknowledged` (by the recipient).
    pub status: String,
    pub sent_at: String,
    pub delivered_at: Option<String>,
    pub acknowledged_at: Option<String>,
    /// Who acknowledged (the recipient's actor).
    pub acknowledged_by: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl Resource for Communication {
    const INFO: ResourceInfo = ResourceInfo {
        name: "communication",
        plural: "inter-fleet communications",
        table: "communication_logs",
        path: "/api/v1/fleet-coordination/communications",
        tag: TAG,
        scope: ScopeKind::Correspondence {
            target: "target_fleet_id",
            federation: "federation_id",
        },
        ops: Ops::CREATE,
        actions: &[Action {
            name: "acknowledge",
            summary: "The recipient acknowledges the message (records when and who)",
        }],
        lookups: &[
            BY_FEDERATION,
            BY_FLEET,
            Lookup {
                segment: "by-target",
                column: "target_fleet_id",
            },
            Lookup {
                segment: "by-conversation",
                column: "conversation_id",
            },
        ],
        references: &[],
        item_key: None,
        nested: None,
        create_also_at: None,
        delete_role: Role::Admin,
    };
    type Create = CommunicationCreate;
    type Update = NoUpdate;
    type View = CommunicationView;

    fn example(fleet_id: &str, ids: &Ids) -> serde_json::Value {
        json!({"federation_id": super::id_of(ids, "federation", 0), "fleet_id": fleet_id,
               "kind": "resource_offer", "body": {"pool": "chargers", "units": 2}})
    }
}
