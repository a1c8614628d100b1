//! Hybrid hosts: v1 hierarchies for the controllers mounted there, the cgroup2 mount
//! for the rest (and for process tracking, as systemd and runc do).

use crate::backend::{impl_cgroup_manager, Backend};
use crate::error::CgroupError;
use crate::v1::V1Manager;
use crate::v2::V2Manager;
use crate::Layout;

/// A container's cgroup on a hybrid host: created in every v1 hierarchy (including
/// name=systemd) and in the unified one; each controller is driven where it is mounted.
#[derive(Debug, Clone)]
pub struct HybridManager {
    pub(crate) cgroups_path: String,
    v1: V1Manager,
    v2: V2Manager,
}

impl HybridManager {
    /// Compose `v1` and `v2`; the v2 side keeps only the controllers v1 lacks.
    pub fn new(v1: V1Manager, v2: V2Manager) -> Result<Self, CgroupError> {
        if v1.cgroups_path != v2.cgroups_path {
            return Err(CgroupError::InvalidPath {
                path: v2.cgroups_path.clone(),
                reason: "the v1 and v2 managers must use the same cgroups path",
            });
        }
        let v2 = v2.for_hybrid(v1.controllers());
        Ok(Self {
            cgroups_path: v1.cgroups_path.clone(),
            v1,
            v2,
        })
    }

    /// The v1 side.
    pub fn v1(&self) -> &V1Manager {
        &self.v1
    }

    /// The unified side.
    pub fn v2(&self) -> &V2Manager {
        &self.v2
    }

    pub(crate) fn backends(&self) -> Vec<&dyn Backend> {
        vec![&self.v1, &self.v2]
    }

    fn layout_kind(&self) -> Layout {
        Layout::Hybrid
    }
}

impl_cgroup_manager!(HybridManager);
