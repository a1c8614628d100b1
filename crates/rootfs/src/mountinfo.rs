//! A small /proc/self/mountinfo reader (used to find the mount holding the rootfs).

use std::path::{Path, PathBuf};

use nix::errno::Errno;

use crate::error::RootfsError;

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub id: u32,
    pub parent: u32,
    pub root: PathBuf,
    pub mount_point: PathBuf,
    /// Per-mount options ("rw,nosuid,relatime").
    pub options: Vec<String>,
    /// Optional fields ("shared:1", "master:2").
    pub optional: Vec<String>,
    pub fstype: String,
    pub source: String,
    /// Per-superblock options.
    pub super_options: Vec<String>,
}

impl MountInfo {
    /// Whether the per-mount options contain `option`.
    pub fn has_option(&self, option: &str) -> bool {
        self.options.iter().any(|o| o == option)
    }
}

/// Read and parse /proc/self/mountinfo.
pub fn read() -> Result<Vec<MountInfo>, RootfsError> {
    let text =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| RootfsError::MountInfo {
            errno: crate::mounts::io_errno(&e),
        })?;
    Ok(parse(&text))
}

/// Parse mountinfo text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountInfo> {
    let (head, tail) = line.split_once(" - ")?;
    let mut head = head.split(' ');
    let id = head.next()?.parse().ok()?;
    let parent = head.next()?.parse().ok()?;
    let _dev = head.next()?;
    let root = unescape(head.next()?).into();
    let mount_point = unescape(head.next()?).into();
    let options = head.next()?.split(',').map(str::to_owned).collect();
    let optional = head.map(str::to_owned).collect();
    let mut tail = tail.split(' ');
    let fstype = tail.next()?.to_owned();
    let source = unescape(tail.next()?);
    let super_options = tail
        .next()
        .unwrap_or("")
        .split(',')
        .map(str::to_owned)
        .collect();
    Some(MountInfo {
        id,
        parent,
        root,
        mount_point,
        options,
        optional,
        fstype,
        source,
        super_options,
    })
}

/// Undo the kernel's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .and_then(|d| std::str::from_utf8(d).ok());
        match (bytes[i], octal.and_then(|d| u8::from_str_radix(d, 8).ok())) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount whose mount point is the longest prefix of `path`.
pub fn containing<'a>(mounts: &'a [MountInfo], path: &Path) -> Option<&'a MountInfo> {
    mounts
        .iter()
        .filter(|m| path.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.components().count())
}

/// Errno for a missing mountinfo entry.
pub(crate) fn not_found() -> RootfsError {
    RootfsError::MountInfo {
        errno: Errno::ENOENT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:25 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
41 22 0:40 / /my\\040dir rw master:3 - tmpfs tmp\\040fs rw,size=10k
";

    #[test]
    fn parses_fields_and_escapes() {
        let mounts = parse(SAMPLE);
        assert_eq!(mounts.len(), 3);
        assert_eq!(mounts[1].mount_point, PathBuf::from("/sys"));
        assert!(mounts[1].has_option("noexec"));
        assert_eq!(mounts[1].optional, vec!["shared:7"]);
        assert_eq!(mounts[2].mount_point, PathBuf::from("/my dir"));
        assert_eq!(mounts[2].source, "tmp fs");
        assert_eq!(mounts[2].super_options, vec!["rw", "size=10k"]);
        assert_eq!(mounts[0].fstype, "ext4");
    }

    #[test]
    fn containing_picks_the_deepest_mount() {
        let mounts = parse(SAMPLE);
        assert_eq!(containing(&mounts, Path::new("/sys/fs")).unwrap().id, 30);
        assert_eq!(containing(&mounts, Path::new("/system")).unwrap().id, 22);
        assert_eq!(containing(&mounts, Path::new("/my dir/x")).unwrap().id, 41);
    }
}
