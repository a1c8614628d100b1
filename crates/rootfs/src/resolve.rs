//! Safe path resolution inside the rootfs: every lookup goes through
//! openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS) from a file descriptor of the rootfs,
//! so symlinks (absolute, `../..`, chains) are resolved as if the rootfs were `/`.
//! Missing components are created one by one inside the already resolved parent.

use std::ffi::OsString;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, readlink, readlinkat, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{mkdirat, Mode};

use crate::error::RootfsError;
use crate::sys::fd_path;

/// How many times a lookup is retried when openat2 reports a concurrent rename.
const EAGAIN_RETRIES: usize = 16;

/// How many dangling symlinks are followed while creating a path (as the kernel's
/// MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;

/// An open rootfs directory and its path in the current mount namespace.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    /// Open the rootfs directory (`/` after pivot_root).
    pub fn open(path: &Path) -> Result<Self, RootfsError> {
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd =
            nix::fcntl::open(path, flags, Mode::empty()).map_err(|errno| RootfsError::Resolve {
                path: path.to_owned(),
                errno,
            })?;
        Ok(Self {
            fd,
            path: path.to_owned(),
        })
    }

    /// Open an existing `dest` (O_PATH); `None` if it does not exist.
    pub fn open_existing(&self, dest: &Path) -> Result<Option<OwnedFd>, RootfsError> {
        match self.resolve(&clean(dest).iter().collect::<PathBuf>()) {
            Ok(fd) => self.verify(fd, dest).map(Some),
            Err(Errno::ENOENT) => Ok(None),
            Err(errno) => Err(RootfsError::Resolve {
                path: dest.to_owned(),
                errno,
            }),
        }
    }

    /// Open the directory `dest`, creating it and its missing parents (mode 0755).
    /// A dangling symlink on the way is followed, inside the rootfs, and its target
    /// created.
    pub fn mkdir_all(&self, dest: &Path) -> Result<OwnedFd, RootfsError> {
        self.mkdir_all_following(dest, MAX_SYMLINKS)
    }

    fn mkdir_all_following(&self, dest: &Path, links_left: usize) -> Result<OwnedFd, RootfsError> {
        let components = clean(dest);
        let mut current = self
            .resolve(Path::new(""))
            .map_err(|errno| resolve_err(dest, errno))?;
        for depth in 1..=components.len() {
            let prefix: PathBuf = components[..depth].iter().collect();
            current = match self.resolve(&prefix) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => {
                    match self.mkdir_in(&current, &components[depth - 1], &prefix)? {
                        Some(fd) => fd,
                        None => {
                            let link = self.dangling_target(
                                &current,
                                &components[depth - 1],
                                dest,
                                links_left,
                            )?;
                            let rest: PathBuf = components[depth..].iter().collect();
                            return self.mkdir_all_following(&link.join(rest), links_left - 1);
                        }
                    }
                }
                Err(errno) => return Err(resolve_err(dest, errno)),
            };
        }
        self.verify(current, dest)
    }

    /// Open the file `dest`, creating an empty file (and its parents) if missing.
    pub fn create_file(&self, dest: &Path) -> Result<OwnedFd, RootfsError> {
        self.create_file_following(dest, MAX_SYMLINKS)
    }

    fn create_file_following(
        &self,
        dest: &Path,
        links_left: usize,
    ) -> Result<OwnedFd, RootfsError> {
        if let Some(fd) = self.open_existing(dest)? {
            return Ok(fd);
        }
        let (parent, name) = self.parent_of(dest)?;
        let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_NOFOLLOW;
        let mode = Mode::from_bits_truncate(0o644);
        match openat(&parent, name.as_os_str(), flags | OFlag::O_CLOEXEC, mode) {
            Ok(_) => {}
            Err(Errno::EEXIST) => {
                if let Some(fd) = self.open_existing(dest)? {
                    return Ok(fd);
                }
                let link = self.dangling_target(&parent, &name, dest, links_left)?;
                return self.create_file_following(&link, links_left - 1);
            }
            Err(errno) => {
                return Err(RootfsError::Create {
                    path: dest.to_owned(),
                    errno,
                })
            }
        }
        self.open_existing(dest)?
            .ok_or_else(|| resolve_err(dest, Errno::ENOENT))
    }

    /// The parent directory of `dest` (created if missing) and the last component.
    pub fn parent_of(&self, dest: &Path) -> Result<(OwnedFd, OsString), RootfsError> {
        let mut components = clean(dest);
        let name = components.pop().ok_or_else(|| RootfsError::InvalidSpec {
            field: format!("path {}", dest.display()),
            reason: "names the rootfs itself".into(),
        })?;
        let parent: PathBuf = Path::new("/").join(components.iter().collect::<PathBuf>());
        Ok((self.mkdir_all(&parent)?, name))
    }

    /// Create `name` in the resolved directory `parent`, then resolve `prefix` again;
    /// `None` when `name` is a dangling symlink.
    fn mkdir_in(
        &self,
        parent: &OwnedFd,
        name: &OsString,
        prefix: &Path,
    ) -> Result<Option<OwnedFd>, RootfsError> {
        let full = Path::new("/").join(prefix);
        match mkdirat(parent, name.as_os_str(), Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(errno) => return Err(RootfsError::Create { path: full, errno }),
        }
        match self.resolve(prefix) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::ENOENT) => Ok(None),
            Err(errno) => Err(resolve_err(&full, errno)),
        }
    }

    /// Where the dangling symlink `name` in `parent` points, as a path inside the rootfs.
    fn dangling_target(
        &self,
        parent: &OwnedFd,
        name: &OsString,
        dest: &Path,
        links_left: usize,
    ) -> Result<PathBuf, RootfsError> {
        if links_left == 0 {
            return Err(resolve_err(dest, Errno::ELOOP));
        }
        let target =
            readlinkat(parent, name.as_os_str()).map_err(|errno| resolve_err(dest, errno))?;
        let base = self.path_in_root(parent, dest)?;
        Ok(Path::new("/").join(clean(&base.join(target)).iter().collect::<PathBuf>()))
    }

    /// The path of the opened `fd` relative to the rootfs, as an absolute path.
    fn path_in_root(&self, fd: &OwnedFd, dest: &Path) -> Result<PathBuf, RootfsError> {
        let real = readlink(&fd_path(fd.as_fd())).map_err(|errno| resolve_err(dest, errno))?;
        let relative =
            Path::new(&real)
                .strip_prefix(&self.path)
                .map_err(|_| RootfsError::Escape {
                    path: dest.to_owned(),
                })?;
        Ok(Path::new("/").join(relative))
    }

    /// openat2 of a relative, cleaned path with the rootfs as `/`.
    fn resolve(&self, relative: &Path) -> nix::Result<OwnedFd> {
        let path = if relative.as_os_str().is_empty() {
            Path::new(".")
        } else {
            relative
        };
        let how = OpenHow::new()
            .flags(OFlag::O_PATH | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        let mut result = openat2(self.fd.as_fd(), path, how);
        for _ in 0..EAGAIN_RETRIES {
            if !matches!(result, Err(Errno::EAGAIN)) {
                break;
            }
            result = openat2(self.fd.as_fd(), path, how);
        }
        result
    }

    /// Defence in depth: the kernel's view of the opened file must be inside the rootfs.
    fn verify(&self, fd: OwnedFd, dest: &Path) -> Result<OwnedFd, RootfsError> {
        let real = readlink(&fd_path(fd.as_fd())).map_err(|errno| resolve_err(dest, errno))?;
        if Path::new(&real).starts_with(&self.path) {
            Ok(fd)
        } else {
            Err(RootfsError::Escape {
                path: dest.to_owned(),
            })
        }
    }
}

fn resolve_err(path: &Path, errno: Errno) -> RootfsError {
    RootfsError::Resolve {
        path: path.to_owned(),
        errno,
    }
}

/// Lexically clean `path` as if it were absolute: the normal components left after
/// dropping `.` and applying `..` (never above `/`).
pub(crate) fn clean(path: &Path) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => out.push(name.to_owned()),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_stays_below_root() {
        let joined = |p: &str| clean(Path::new(p)).iter().collect::<PathBuf>();
        assert_eq!(joined("/a/b/../c"), PathBuf::from("a/c"));
        assert_eq!(joined("../../etc"), PathBuf::from("etc"));
        assert_eq!(joined("/./x//y/."), PathBuf::from("x/y"));
        assert!(clean(Path::new("/")).is_empty());
    }
}
