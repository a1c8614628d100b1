//! The guest kernel (from `scripts/fetch-kernel.sh`'s cache) and its modules.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use crate::VmError;

/// Modules the guest agent loads at boot, beyond what Debian builds in: virtio over
/// MMIO (found through ACPI on microvm), the console ports, the block device and ext4
/// (the root disk's filesystem). Each one costs boot time.
/// Dependencies are added from each module's `.modinfo`; crc32c_generic is ext4's
/// runtime crypto need, not a link dependency.
pub const GUEST_MODULES: &[&str] = &[
    "virtio_mmio",
    "virtio_console",
    "virtio_blk",
    "crc32c_generic",
    "ext4",
];

/// Modules loaded only for requests that share host directories (virtio-9p).
pub const SHARE_MODULES: &[&str] = &["9pnet_virtio", "9p"];

/// Modules loaded only for requests with a network (virtio-net; its dependencies,
/// `net_failover` and `failover`, come from `.modinfo`).
pub const NET_MODULES: &[&str] = &["virtio_net"];

/// Default cache directory of `scripts/fetch-kernel.sh`.
pub const DEFAULT_KERNEL_DIR: &str = "/var/cache/berth/kernel";

/// A kernel cache: `vmlinux` (PVH-bootable ELF), `version`, `lib/modules/VERSION`.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// The uncompressed kernel QEMU boots.
    pub vmlinux: PathBuf,
    /// The kernel release, e.g. `6.1.0-56-amd64`.
    pub version: String,
    /// `lib/modules/VERSION`.
    pub modules_dir: PathBuf,
}

impl Kernel {
    /// The kernel in `dir` (`$BERTH_KERNEL_DIR` or [`DEFAULT_KERNEL_DIR`] if `None`).
    pub fn locate(dir: Option<&Path>) -> Result<Self, VmError> {
        let dir = dir.map(Path::to_path_buf).unwrap_or_else(|| {
            std::env::var_os("BERTH_KERNEL_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_KERNEL_DIR))
        });
        let vmlinux = dir.join("vmlinux");
        let version = std::fs::read_to_string(dir.join("version"))
            .map(|v| v.trim().to_owned())
            .ok()
            .filter(|_| vmlinux.is_file())
            .ok_or_else(|| VmError::NoKernel(dir.clone()))?;
        let modules_dir = dir.join("lib/modules").join(&version);
        Ok(Self {
            vmlinux,
            version,
            modules_dir,
        })
    }

    /// The `.ko` files to load for `wanted`, dependencies first.
    pub fn module_files(&self, wanted: &[&str]) -> Result<Vec<PathBuf>, VmError> {
        let index = index_modules(&self.modules_dir.join("kernel"))
            .map_err(|e| VmError::io(format!("listing {}", self.modules_dir.display()), e))?;
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        for name in wanted {
            visit(&normalise(name), &index, &mut seen, &mut order)?;
        }
        Ok(order)
    }
}

/// Module names use `_` and `-` interchangeably.
fn normalise(name: &str) -> String {
    name.replace('-', "_")
}

/// name → path of every `.ko` under `dir`.
fn index_modules(dir: &Path) -> std::io::Result<BTreeMap<String, PathBuf>> {
    let mut index = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                if let Some(stem) = name.strip_suffix(".ko") {
                    index.insert(normalise(stem), path.clone());
                }
            }
        }
    }
    Ok(index)
}

/// Depth-first: dependencies before the module. Built-in modules are absent from the
/// index and skipped when they are dependencies; a wanted module must exist.
fn visit(
    name: &str,
    index: &BTreeMap<String, PathBuf>,
    seen: &mut HashSet<String>,
    order: &mut Vec<PathBuf>,
) -> Result<(), VmError> {
    if !seen.insert(name.to_owned()) {
        return Ok(());
    }
    let Some(path) = index.get(name) else {
        return Err(VmError::Module(name.to_owned()));
    };
    let data =
        std::fs::read(path).map_err(|e| VmError::io(format!("reading {}", path.display()), e))?;
    for dep in modinfo_depends(&data) {
        if index.contains_key(&dep) {
            visit(&dep, index, seen, order)?;
        }
    }
    order.push(path.clone());
    Ok(())
}

/// The `depends=` entry of a module's `.modinfo` strings (NUL-separated `key=value`).
pub fn modinfo_depends(ko: &[u8]) -> Vec<String> {
    ko.split(|&b| b == 0)
        .find_map(|s| s.strip_prefix(b"depends="))
        .map(|deps| {
            String::from_utf8_lossy(deps)
                .split(',')
                .filter(|d| !d.is_empty())
                .map(normalise)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_parsed_from_modinfo() {
        let ko = b"\x7fELF junk\0license=GPL\0depends=jbd2,mbcache,crc16\0intree=Y\0";
        assert_eq!(modinfo_depends(ko), ["jbd2", "mbcache", "crc16"]);
        assert!(modinfo_depends(b"\0depends=\0").is_empty());
        assert!(modinfo_depends(b"nothing").is_empty());
    }

    #[test]
    fn dependencies_come_first() {
        let dir = tempfile::tempdir().unwrap();
        let k = dir.path().join("lib/modules/v/kernel/x");
        std::fs::create_dir_all(&k).unwrap();
        std::fs::write(k.join("a.ko"), b"\0depends=b,c-d\0").unwrap();
        std::fs::write(k.join("b.ko"), b"\0depends=c_d,builtin\0").unwrap();
        std::fs::write(k.join("c_d.ko"), b"\0depends=\0").unwrap();
        std::fs::write(dir.path().join("vmlinux"), b"").unwrap();
        std::fs::write(dir.path().join("version"), b"v\n").unwrap();
        let kernel = Kernel::locate(Some(dir.path())).unwrap();
        let names: Vec<_> = kernel
            .module_files(&["a", "b"])
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["c_d.ko", "b.ko", "a.ko"]);
        assert!(matches!(
            kernel.module_files(&["nope"]),
            Err(VmError::Module(m)) if m == "nope"
        ));
    }
}
