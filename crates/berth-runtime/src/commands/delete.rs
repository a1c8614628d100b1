use anyhow::Result;
use berth_container::state::StateError;
use berth_container::{ContainerError, Runtime};

pub fn run(rt: &Runtime, id: &str, force: bool) -> Result<i32> {
    match rt.delete(id, force) {
        // Like runc: `delete --force` of a container that does not exist succeeds, so a
        // client cleaning up after a failed create (podman, the containerd shim) does not
        // log a second error that hides the first.
        Err(ContainerError::State(StateError::NotFound(_))) if force => Ok(0),
        Err(e) => Err(e.into()),
        Ok(()) => Ok(0),
    }
}
