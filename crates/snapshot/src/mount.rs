//! What a snapshot needs mounted, and the helpers that do it.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use serde::{Deserialize, Serialize};

/// The most bytes of mount data the kernel takes (one page, NUL included).
pub const MAX_MOUNT_DATA: usize = 4095;

/// One mount to perform, like containerd's `mount.Mount`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// `"overlay"` or `"bind"`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The bind source, or `"overlay"`.
    pub source: PathBuf,
    /// `ro`/`rw` and, for overlay, `lowerdir=`, `upperdir=`, `workdir=`.
    pub options: Vec<String>,
}

impl Mount {
    /// A bind mount of `source`, read-only when `readonly`.
    pub fn bind(source: PathBuf, readonly: bool) -> Self {
        Self {
            kind: "bind".into(),
            source,
            options: vec![if readonly { "ro" } else { "rw" }.into(), "rbind".into()],
        }
    }

    /// The overlay mount data: every option but `ro`/`rw`, comma-joined.
    fn overlay_data(&self) -> String {
        self.options
            .iter()
            .filter(|o| !matches!(o.as_str(), "ro" | "rw"))
            .cloned()
            .collect::<Vec<_>>()
            .join(",")
    }

    fn readonly(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
    }
}

/// Why mounting or unmounting failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The mount type is neither overlay nor bind.
    #[error("mounting {kind} at {target}: unsupported mount type")]
    Unsupported {
        /// The type.
        kind: String,
        /// The mount point.
        target: PathBuf,
    },
    /// The overlay options do not fit one page (too many lower layers).
    #[error("mounting overlay at {target}: {len} bytes of options exceed the page limit")]
    TooLong {
        /// The mount point.
        target: PathBuf,
        /// The options' length.
        len: usize,
    },
    /// mount(2) or umount2(2) failed.
    #[error("{op} {target}")]
    Sys {
        /// What was being done.
        op: &'static str,
        /// The mount point.
        target: PathBuf,
        /// The cause.
        #[source]
        source: Errno,
    },
}

/// Mount `mounts`, in order, on `target` (a bind and its read-only remount, or one
/// overlay). On error the mounts already done stay for the caller to [`unmount`].
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<(), MountError> {
    for m in mounts {
        let sys = |op| {
            move |source| MountError::Sys {
                op,
                target: target.to_owned(),
                source,
            }
        };
        match m.kind.as_str() {
            "overlay" => {
                let data = m.overlay_data();
                if data.len() > MAX_MOUNT_DATA {
                    return Err(MountError::TooLong {
                        target: target.to_owned(),
                        len: data.len(),
                    });
                }
                let flags = if m.readonly() {
                    MsFlags::MS_RDONLY
                } else {
                    MsFlags::empty()
                };
                mount(
                    Some("overlay"),
                    target,
                    Some("overlay"),
                    flags,
                    Some(data.as_str()),
                )
                .map_err(sys("mounting overlay at"))?;
            }
            "bind" => {
                let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
                mount(Some(&m.source), target, None::<&str>, flags, None::<&str>)
                    .map_err(sys("bind mounting at"))?;
                if m.readonly() {
                    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
                    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
                        .map_err(sys("remounting read-only"))?;
                }
            }
            other => {
                return Err(MountError::Unsupported {
                    kind: other.to_owned(),
                    target: target.to_owned(),
                })
            }
        }
    }
    Ok(())
}

/// Unmount `target` (not following a symlink there).
pub fn unmount(target: &Path) -> Result<(), MountError> {
    umount2(target, MntFlags::UMOUNT_NOFOLLOW).map_err(|source| MountError::Sys {
        op: "unmounting",
        target: target.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_data_leaves_out_ro_rw() {
        let m = Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            options: vec!["ro".into(), "lowerdir=/a:/b".into()],
        };
        assert_eq!(m.overlay_data(), "lowerdir=/a:/b");
        assert!(m.readonly());
    }

    #[test]
    fn too_long_options_are_refused_before_mounting() {
        let m = Mount {
            kind: "overlay".into(),
            source: "overlay".into(),
            options: vec![format!("lowerdir={}", "/x".repeat(3000))],
        };
        let err = mount_all(&[m], Path::new("/nonexistent")).unwrap_err();
        assert!(matches!(err, MountError::TooLong { .. }), "{err}");
    }
}
