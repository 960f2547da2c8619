//! The status machines of the domain's entities: one `status_enum!` per lifecycle (its states,
//! their wire names and the allowed transitions), declared in the entity's area file. Cases
//! (resource conflicts, safety events) share [`CaseStatus`].

/// What the generic store rules need of a status machine (every `status_enum!` has it).
pub trait Status: Copy {
    fn parse(s: &str) -> Option<Self>;
    /// Why `self → to` is refused, if it is.
    fn transition_error(self, to: Self) -> Option<String>;
}

/// Declares a status enum with its wire names and allowed transitions.
macro_rules! status_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),* $(,)? }
     transitions { $($from:ident => [$($to:ident),*]),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $v),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),*];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),* }
            }

            pub fn parse(s: &str) -> Option<$name> {
                match s { $($s => Some($name::$v),)* _ => None }
            }

            /// The states this one may move to.
            pub fn next(self) -> &'static [$name] {
                #[allow(unreachable_patterns)]
                match self { $($name::$from => &[$($name::$to),*],)* _ => &[] }
            }

            /// A state nothing follows (completed, failed, …).
            pub fn is_final(self) -> bool {
                self.next().is_empty()
            }

            pub fn can_become(self, to: $name) -> bool {
                self.next().contains(&to)
            }

            /// Why `self → to` is refused, if it is.
            pub fn transition_error(self, to: $name) -> Option<String> {
                (!self.can_become(to)).then(|| format!("cannot go from {} to {}", self.as_str(), to.as_str()))
            }
        }

        impl $crate::domain::status::Status for $name {
            fn parse(s: &str) -> Option<$name> {
                $name::parse(s)
            }

            fn transition_error(self, to: $name) -> Option<String> {
                $name::transition_error(self, to)
            }
        }
    };
}
pub(crate) use status_enum;

status_enum! {
    /// Resource conflicts and safety events: open until resolved.
    CaseStatus { Open = "open", Resolved = "resolved" }
    transitions { Open => [Resolved] }
}

#[cfg(test)]
mod tests {
    use super::super::missions::ExecutionStatus;
    use super::super::optimization::{RebalancingStatus, RunStatus};
    use super::super::performance::AlertStatus;
    use super::super::resources::RequestStatus;
    use super::CaseStatus;

    #[test]
    fn transitions() {
        use ExecutionStatus::*;
        assert!(Scheduled.can_become(Running));
        assert!(Running.can_become(Completed));
        assert!(!Scheduled.can_become(Completed));
        assert!(!Completed.can_become(Running));
        assert!(Completed.is_final() && !Running.is_final());
        assert_eq!(
            Completed.transition_error(Running).unwrap(),
            "cannot go from completed to running"
        );
        assert!(AlertStatus::Firing.can_become(AlertStatus::Resolved));
        assert!(
            !AlertStatus::Resolved.can_become(AlertStatus::Resolved),
            "resolving twice is refused"
        );
        assert!(RunStatus::Queued.can_become(RunStatus::Cancelled));
        assert!(!RunStatus::Completed.can_become(RunStatus::Cancelled));
        assert!(!RequestStatus::Fulfilled.can_become(RequestStatus::Cancelled));
        assert!(RebalancingStatus::Approved.can_become(RebalancingStatus::Executed));
        assert!(!RebalancingStatus::Proposed.can_become(RebalancingStatus::Executed));
        for s in ExecutionStatus::ALL {
            assert_eq!(ExecutionStatus::parse(s.as_str()), Some(*s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
    }

    #[test]
    fn cases_resolve_once() {
        assert!(CaseStatus::Open.can_become(CaseStatus::Resolved));
        assert!(!CaseStatus::Resolved.can_become(CaseStatus::Resolved));
    }
}
