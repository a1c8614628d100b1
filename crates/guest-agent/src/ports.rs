//! Finding virtio-console ports by the name the host gave them.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::error::AgentError;

const PORTS: &str = "/sys/class/virtio-ports";

/// The /dev node of the port named `name`, if it is there yet.
fn find(name: &str) -> Option<PathBuf> {
    let entries = std::fs::read_dir(PORTS).ok()?;
    entries.flatten().find_map(|e| {
        let n = std::fs::read_to_string(e.path().join("name")).ok()?;
        (n.trim_end() == name).then(|| PathBuf::from("/dev").join(e.file_name()))
    })
}

/// Opens the port named `name` for reading and writing, waiting up to 10 s for it
/// (the host announces names asynchronously once the driver is bound).
pub fn open(name: &str) -> Result<File, AgentError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(dev) = find(name).filter(|d| d.exists()) {
            return OpenOptions::new()
                .read(true)
                .write(true)
                .open(&dev)
                .map_err(|source| AgentError::Io {
                    what: format!("opening port {name} ({})", dev.display()),
                    source,
                });
        }
        if Instant::now() > deadline {
            return Err(AgentError::Timeout(format!("port {name}")));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
