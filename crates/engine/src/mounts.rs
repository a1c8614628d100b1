//! Taking mounts off: what the process backend stacks under a container's rootfs
//! (`/proc`, `/dev`, volumes) goes before the rootfs itself.

use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{umount2, MntFlags};

/// Mount points strictly below `dir`, as `/proc/self/mountinfo` lists them (parents
/// before children). Octal escapes (`\040` for a space) are decoded.
pub fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape(m)))
        .filter(|m| m != dir && m.starts_with(dir))
        .collect()
}

fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|s| u8::from_str_radix(s, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts every mount below `dir` (not `dir` itself), children first; a busy one
/// is detached (which takes its own children with it). Best effort: the caller
/// unmounts `dir` next, detaching whatever is left.
pub fn unmount_below(dir: &Path) {
    for m in mounts_below(dir).iter().rev() {
        match umount2(m, MntFlags::UMOUNT_NOFOLLOW) {
            Ok(()) | Err(Errno::EINVAL | Errno::ENOENT) => {}
            Err(_) => {
                let _ = umount2(m, MntFlags::UMOUNT_NOFOLLOW | MntFlags::MNT_DETACH);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn mountinfo_escapes() {
        assert_eq!(super::unescape(r"/a\040b\134c"), r"/a b\c");
        assert_eq!(super::unescape("/plain"), "/plain");
    }
}
