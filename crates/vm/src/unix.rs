//! Unix sockets whose paths may be longer than a socket address holds (108 bytes):
//! reached through `/proc/self/fd/N/NAME`, N an open fd of their directory.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// Longest path used as is; longer ones go through the directory's fd.
const MAX_DIRECT: usize = 100;

fn through_fd<T>(path: &Path, op: impl FnOnce(&Path) -> std::io::Result<T>) -> std::io::Result<T> {
    if path.as_os_str().len() <= MAX_DIRECT {
        return op(path);
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return op(path);
    };
    let dir = File::open(dir)?;
    let short = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name);
    op(&short)
}

/// Connects to the socket at `path`.
pub fn connect(path: &Path) -> std::io::Result<UnixStream> {
    through_fd(path, |p| UnixStream::connect(p))
}

/// Listens on a new socket at `path`.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    through_fd(path, |p| UnixListener::bind(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_work() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("d".repeat(120));
        std::fs::create_dir(&deep).unwrap();
        let path = deep.join("s.sock");
        let listener = bind(&path).unwrap();
        assert!(path.exists());
        let _client = connect(&path).unwrap();
        listener.accept().unwrap();
    }
}
