//! Operations on a live container's cgroup: update, pause, resume, ps, events.

use std::time::Duration;

use oci_spec::runtime::LinuxResources;
use serde::Serialize;

use crate::container::{Runtime, Status};
use crate::error::ContainerError;
use crate::state::{self, ContainerDir};

/// One line of `events` output.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<berth_cgroups::Stats>,
}

impl Runtime {
    fn live(&self, id: &str) -> Result<(ContainerDir, state::State, Status), ContainerError> {
        crate::id::validate(id)?;
        let dir = ContainerDir::open(&self.root, id)?;
        let st = dir.load()?;
        let status = self.status_of(&dir, &st);
        Ok((dir, st, status))
    }

    /// The cgroup of a container whose status passes `allowed`, else `refusal`.
    fn cgroup_if(
        &self,
        id: &str,
        allowed: impl Fn(Status) -> bool,
        refusal: &str,
    ) -> Result<Box<dyn berth_cgroups::CgroupManager>, ContainerError> {
        let (_dir, st, status) = self.live(id)?;
        if !allowed(status) {
            return Err(crate::container::bad_status(id, status, refusal));
        }
        Ok(berth_cgroups::manager(&st.cgroup_path)?)
    }

    /// Change the resource limits of a created, running or paused container.
    pub fn update(&self, id: &str, resources: &LinuxResources) -> Result<(), ContainerError> {
        let cg = self.cgroup_if(
            id,
            |s| s != Status::Stopped,
            "cannot update a stopped container",
        )?;
        berth_cgroups::validate(resources)?;
        Ok(cg.apply(resources)?)
    }

    /// Freeze every process of a running container.
    pub fn pause(&self, id: &str) -> Result<(), ContainerError> {
        let cg = self.cgroup_if(
            id,
            |s| s == Status::Running,
            "only a running container can be paused",
        )?;
        Ok(cg.freeze(berth_cgroups::FreezerState::Frozen)?)
    }

    /// Thaw a paused container.
    pub fn resume(&self, id: &str) -> Result<(), ContainerError> {
        let cg = self.cgroup_if(
            id,
            |s| s == Status::Paused,
            "only a paused container can be resumed",
        )?;
        Ok(cg.freeze(berth_cgroups::FreezerState::Thawed)?)
    }

    /// Host pids of every process in the container.
    pub fn pids(&self, id: &str) -> Result<Vec<i32>, ContainerError> {
        let cg = self.cgroup_if(id, |s| s != Status::Stopped, "container not running")?;
        let mut pids = cg.pids()?;
        pids.sort_unstable();
        Ok(pids)
    }

    /// One stats event for the container.
    pub fn stats(&self, id: &str) -> Result<Event, ContainerError> {
        let (_dir, st, status) = self.live(id)?;
        if status == Status::Stopped {
            return Err(crate::container::bad_status(
                id,
                status,
                "container not running",
            ));
        }
        let data = berth_cgroups::manager(&st.cgroup_path)?.stats()?;
        Ok(Event {
            kind: "stats",
            id: id.to_string(),
            data: Some(data),
        })
    }

    /// Emit stats every `interval` and an `oom` event whenever the OOM killer strikes,
    /// until the container stops. The lock is not held between samples.
    pub fn events(
        &self,
        id: &str,
        interval: Duration,
        emit: &mut dyn FnMut(&Event) -> bool,
    ) -> Result<(), ContainerError> {
        let (_dir, st, _) = self.live(id)?;
        drop(_dir);
        let cg = berth_cgroups::manager(&st.cgroup_path)?;
        let mut ooms = cg.oom_kill_count().unwrap_or(0);
        let tick = interval
            .min(Duration::from_millis(200))
            .max(Duration::from_millis(10));
        let mut since_stats = interval;
        loop {
            if !crate::sys::process_alive(st.pid, st.pid_start_time) {
                return Ok(());
            }
            let now = cg.oom_kill_count().unwrap_or(ooms);
            if now > ooms {
                ooms = now;
                let ev = Event {
                    kind: "oom",
                    id: id.to_string(),
                    data: None,
                };
                if !emit(&ev) {
                    return Ok(());
                }
            }
            if since_stats >= interval {
                since_stats = Duration::ZERO;
                let ev = Event {
                    kind: "stats",
                    id: id.to_string(),
                    data: Some(cg.stats()?),
                };
                if !emit(&ev) {
                    return Ok(());
                }
            }
            std::thread::sleep(tick);
            since_stats += tick;
        }
    }
}
