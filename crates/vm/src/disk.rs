//! Root disks: a read-only base ext4 image per source directory (cached), and a qcow2
//! copy-on-write overlay per VM.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::initramfs::{fnv1a, FNV_START};
use crate::VmError;

/// Runs `cmd`, turning a failure into [`VmError::Tool`].
pub(crate) fn run_tool(cmd: &mut Command, what: &str) -> Result<(), VmError> {
    let out = cmd.output().map_err(|e| VmError::io(what.to_owned(), e))?;
    if out.status.success() {
        return Ok(());
    }
    Err(VmError::Tool {
        what: what.to_owned(),
        output: format!(
            "{}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .trim_end()
        .to_owned(),
    })
}

/// A fingerprint of the tree at `dir` (paths, types, sizes, modes, owners, mtimes) and
/// the bytes it holds, for sizing the image.
fn fingerprint(dir: &Path) -> Result<(u64, u64, u64), VmError> {
    let mut hash = fnv1a(FNV_START, dir.as_os_str().as_encoded_bytes());
    let (mut bytes, mut entries) = (0u64, 0u64);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut children: Vec<_> = std::fs::read_dir(&d)
            .map_err(|e| VmError::io(format!("reading {}", d.display()), e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .collect();
        children.sort();
        for path in children {
            let md = path
                .symlink_metadata()
                .map_err(|e| VmError::io(format!("stat {}", path.display()), e))?;
            hash = fnv1a(hash, path.as_os_str().as_encoded_bytes());
            for v in [
                md.mode().into(),
                md.size(),
                md.mtime() as u64,
                md.mtime_nsec() as u64,
            ] {
                hash = fnv1a(hash, &v.to_le_bytes());
            }
            hash = fnv1a(hash, &[md.uid(), md.gid()].map(u32::to_le_bytes).concat());
            entries += 1;
            bytes += md.size();
            if md.is_dir() {
                stack.push(path);
            }
        }
    }
    Ok((hash, bytes, entries))
}

/// The base image of `rootfs` in `cache_dir`, made with `mkfs.ext4 -d` if not there.
/// Any change under `rootfs` (size, mode, mtime…) makes a new image.
pub fn base_image(rootfs: &Path, cache_dir: &Path) -> Result<PathBuf, VmError> {
    let rootfs = rootfs
        .canonicalize()
        .map_err(|e| VmError::io(format!("resolving {}", rootfs.display()), e))?;
    let (hash, _, _) = fingerprint(&rootfs)?;
    let path = cache_dir.join(format!("base-{hash:016x}.ext4"));
    if path.is_file() {
        return Ok(path);
    }
    make_ext4(&rootfs, &path)?;
    Ok(path)
}

/// The base image of an image whose layers are the read-only directories `layers`
/// (top first, as overlayfs's `lowerdir` lists them), cached in `cache_dir` under
/// `key` (the image's top chain id: same key, same content). Built once: from the
/// only layer, or from a read-only overlay of them mounted for the while. Concurrent
/// callers wait for one build.
pub fn base_image_of_layers(
    key: &str,
    layers: &[PathBuf],
    cache_dir: &Path,
) -> Result<PathBuf, VmError> {
    let name: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let path = cache_dir.join(format!("base-{name}.ext4"));
    if path.is_file() {
        return Ok(path);
    }
    std::fs::create_dir_all(cache_dir)
        .map_err(|e| VmError::io(format!("creating {}", cache_dir.display()), e))?;
    let lock_path = cache_dir.join(format!(".lock-{name}"));
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| VmError::io(format!("creating {}", lock_path.display()), e))?;
    let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| VmError::io(format!("locking {}", lock_path.display()), e.into()))?;
    if path.is_file() {
        return Ok(path); // built while we waited
    }
    match layers {
        [] => {
            let empty = tempfile::tempdir_in(cache_dir)
                .map_err(|e| VmError::io("creating an empty root", e))?;
            make_ext4(empty.path(), &path)?;
        }
        [only] => make_ext4(only, &path)?,
        _ => {
            let mnt = tempfile::Builder::new()
                .prefix(".view-")
                .tempdir_in(cache_dir)
                .map_err(|e| VmError::io("creating a mount point", e))?;
            let lowerdir: Vec<String> = layers.iter().map(|l| l.display().to_string()).collect();
            let data = format!("lowerdir={}", lowerdir.join(":"));
            nix::mount::mount(
                Some("overlay"),
                mnt.path(),
                Some("overlay"),
                nix::mount::MsFlags::MS_RDONLY,
                Some(data.as_str()),
            )
            .map_err(|e| VmError::io(format!("mounting the layers of {key}"), e.into()))?;
            let made = make_ext4(mnt.path(), &path);
            let _ = nix::mount::umount2(mnt.path(), nix::mount::MntFlags::MNT_DETACH);
            made?;
        }
    }
    Ok(path)
}

/// An ext4 image of the tree at `source` at `path` (`mkfs.ext4 -d`, no journal),
/// written to a temp file and renamed.
fn make_ext4(source: &Path, path: &Path) -> Result<(), VmError> {
    let (_, bytes, entries) = fingerprint(source)?;
    let cache_dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(cache_dir)
        .map_err(|e| VmError::io(format!("creating {}", cache_dir.display()), e))?;
    // Data, a block per entry for metadata, and room for the command to write.
    let mib = (bytes + entries * 4096) / (1 << 20) + bytes / (5 << 20) + 64;
    let tmp = tempfile::Builder::new()
        .prefix(".base-")
        .tempfile_in(cache_dir)
        .map_err(|e| VmError::io(format!("creating a file in {}", cache_dir.display()), e))?;
    run_tool(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "berth-root", "-O", "^has_journal", "-d"])
            .arg(source)
            .arg(tmp.path())
            .arg(format!("{mib}M")),
        &format!("mkfs.ext4 -d {}", source.display()),
    )?;
    tmp.persist(path)
        .map_err(|e| VmError::io(format!("renaming to {}", path.display()), e.error))?;
    Ok(())
}

/// A qcow2 overlay at `overlay` whose backing file is the raw `base`.
pub fn create_overlay(base: &Path, overlay: &Path) -> Result<(), VmError> {
    run_tool(
        Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(base)
            .arg(overlay),
        &format!("qemu-img create {}", overlay.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_changes_with_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"1").unwrap();
        let (h1, bytes, entries) = fingerprint(dir.path()).unwrap();
        assert_eq!((bytes, entries), (1, 1));
        assert_eq!(fingerprint(dir.path()).unwrap().0, h1);
        std::fs::write(dir.path().join("a"), b"12").unwrap();
        assert_ne!(fingerprint(dir.path()).unwrap().0, h1);
    }
}
