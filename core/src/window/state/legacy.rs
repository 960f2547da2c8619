//! The layout of the window state before the bounded kernel (every retained sample per
//! vehicle, window versions in maps): checkpoints written by earlier releases are read in it
//! and upgraded, so a deployment keeps its state across the upgrade.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::track::VehicleTrack;
use super::{PartitionWindows, Sample, WindowParams};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct LegacyTrack {
    pub fleet_id: String,
    /// Sorted by (ts, seq); the first one may be an anchor older than the retention floor.
    pub samples: Vec<Sample>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Legacy {
    pub max_ts: Option<i64>,
    pub closed_until: Option<i64>,
    pub vehicles: BTreeMap<String, LegacyTrack>,
    pub vehicle_versions: BTreeMap<(String, i64), u32>,
    pub fleet_versions: BTreeMap<(String, i64), u32>,
}

impl Legacy {
    /// The same state in the bounded layout. The legacy state kept every sample from a gap
    /// and a window before the oldest window a late sample can change (plus one before), so
    /// counting them again gives those windows' counters exactly; older windows are pruned.
    pub fn upgrade(self, p: &WindowParams) -> PartitionWindows {
        let mut w = PartitionWindows {
            max_ts: self.max_ts,
            closed_until: self.closed_until,
            fleet_versions: self.fleet_versions,
            ..PartitionWindows::default()
        };
        for (vehicle, legacy) in self.vehicles {
            let mut t = VehicleTrack::default();
            t.fleet_id = super::id::Id::new(&legacy.fleet_id);
            for s in &legacy.samples {
                t.insert_sample(p, s);
            }
            w.vehicles.insert(super::id::Id::new(&vehicle), t);
        }
        for ((vehicle, ws), version) in self.vehicle_versions {
            if let Some(slot) = w
                .vehicles
                .get_mut(vehicle.as_bytes())
                .and_then(|t| t.slot_mut(ws))
            {
                slot.version = version;
            }
        }
        w.prune(p);
        w
    }
}
