//! Writing a new user namespace's uid and gid maps (done by the runtime, which has
//! the privilege to, on behalf of the child that unshared).

use std::fs;
use std::path::PathBuf;

use oci_spec::runtime::{LinuxIdMapping, Spec};

/// What went wrong writing an id map.
#[derive(Debug, thiserror::Error)]
pub enum UserNsError {
    #[error("writing {path} ({map:?}): {source}")]
    Write {
        path: PathBuf,
        map: String,
        source: std::io::Error,
    },
}

/// Render mappings in the kernel's "inside outside count" line format.
pub fn render(maps: &[LinuxIdMapping]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// Write the spec's uid and gid maps for `pid`.
pub fn write_maps(pid: i32, spec: &Spec) -> Result<(), UserNsError> {
    let linux = spec.linux().as_ref();
    let uid = linux
        .and_then(|l| l.uid_mappings().clone())
        .unwrap_or_default();
    let gid = linux
        .and_then(|l| l.gid_mappings().clone())
        .unwrap_or_default();
    write_one(pid, "uid_map", &uid)?;
    write_one(pid, "gid_map", &gid)
}

fn write_one(pid: i32, file: &str, maps: &[LinuxIdMapping]) -> Result<(), UserNsError> {
    if maps.is_empty() {
        return Ok(());
    }
    let path = PathBuf::from(format!("/proc/{pid}/{file}"));
    let map = render(maps);
    fs::write(&path, &map).map_err(|source| UserNsError::Write { path, map, source })
}

/// Whether `id` (inside) is mapped by `maps`.
pub fn maps_id(maps: &[LinuxIdMapping], id: u32) -> bool {
    maps.iter()
        .any(|m| id >= m.container_id() && id - m.container_id() < m.size())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_checks_maps() {
        let maps: Vec<LinuxIdMapping> =
            serde_json::from_str(r#"[{"containerID":0,"hostID":100000,"size":65536}]"#).unwrap();
        assert_eq!(render(&maps), "0 100000 65536\n");
        assert!(maps_id(&maps, 0));
        assert!(maps_id(&maps, 65535));
        assert!(!maps_id(&maps, 65536));
    }
}
