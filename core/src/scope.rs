//! Who may do what: roles and fleet/federation scope of a caller.
//!
//! A scope travels with every command (`fleet_scope` of fleet.commands.v1) as strings:
//! `"*"` (every fleet), `"<fleet_id>"`, or `"federation:<federation_id>"`. Queries take a
//! [`Scope`] and must filter by it in SQL; handlers never filter after the fact.

use serde::{Deserialize, Serialize};

/// Roles, ordered: each includes the rights of the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads within its scope.
    Viewer,
    /// Reads and writes within its scope.
    Operator,
    /// Everything within its scope, including keys, rules and deletions.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

const ALL: &str = "*";
const FEDERATION_PREFIX: &str = "federation:";

/// The fleets and federations a caller may see and change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// Every fleet and federation (`"*"` in a claim).
    pub all: bool,
    pub fleets: Vec<String>,
    pub federations: Vec<String>,
}

impl Scope {
    pub fn all() -> Scope {
        Scope {
            all: true,
            fleets: Vec::new(),
            federations: Vec::new(),
        }
    }

    pub fn fleets<I: IntoIterator<Item = S>, S: Into<String>>(fleets: I) -> Scope {
        Scope {
            all: false,
            fleets: fleets.into_iter().map(Into::into).collect(),
            federations: Vec::new(),
        }
    }

    pub fn with_federations<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        federations: I,
    ) -> Scope {
        self.federations
            .extend(federations.into_iter().map(Into::into));
        self
    }

    pub fn allows_fleet(&self, fleet_id: &str) -> bool {
        self.all || self.fleets.iter().any(|f| f == fleet_id)
    }

    pub fn allows_federation(&self, federation_id: &str) -> bool {
        self.all || self.federations.iter().any(|f| f == federation_id)
    }

    /// The scope as carried in a command record.
    pub fn to_record(&self) -> Vec<String> {
        if self.all {
            return vec![ALL.to_string()];
        }
        self.fleets
            .iter()
            .cloned()
            .chain(
                self.federations
                    .iter()
                    .map(|f| format!("{FEDERATION_PREFIX}{f}")),
            )
            .collect()
    }

    /// Parses claim strings (`"*"`, fleet ids, `"federation:<id>"`).
    pub fn from_record<S: AsRef<str>>(items: &[S]) -> Scope {
        let mut s = Scope::default();
        for item in items {
            let item = item.as_ref();
            if item == ALL {
                s.all = true;
            } else if let Some(f) = item.strip_prefix(FEDERATION_PREFIX) {
                s.federations.push(f.to_string());
            } else if !item.is_empty() {
                s.fleets.push(item.to_string());
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        for r in [Role::Viewer, Role::Operator, Role::Admin] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn scope_round_trips_through_the_record() {
        let s = Scope::fleets(["fleet-a", "fleet-b"]).with_federations(["fed-1"]);
        assert_eq!(
            s.to_record(),
            vec!["fleet-a", "fleet-b", "federation:fed-1"]
        );
        assert_eq!(Scope::from_record(&s.to_record()), s);
        assert!(s.allows_fleet("fleet-a") && !s.allows_fleet("fleet-c"));
        assert!(s.allows_federation("fed-1") && !s.allows_federation("fed-2"));
        let all = Scope::from_record(&["*"]);
        assert!(all.all && all.allows_fleet("x") && all.allows_federation("y"));
        assert_eq!(all.to_record(), vec!["*"]);
    }
}
