//! Small helpers over cgroupfs files: every failure names the file and the value.

use std::collections::BTreeMap;
use std::fs;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::Duration;

use nix::errno::Errno;

use crate::error::{errno_of, CgroupError};

/// Write `value` to an existing cgroup file (one write(2), no O_CREAT; O_TRUNC so that
/// plain files in fake trees hold the last value, as cgroupfs files do).
pub(crate) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    let err = |e: std::io::Error| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        errno: errno_of(&e),
    };
    let mut f = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(err)?;
    f.write_all(value.as_bytes()).map_err(err)
}

/// Write `value` to `dir/file`.
pub(crate) fn write_in(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    write(&dir.join(file), value)
}

pub(crate) fn read(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|e| CgroupError::Read {
        path: path.to_path_buf(),
        errno: errno_of(&e),
    })
}

/// Like [`read`], but a missing file is `None`.
pub(crate) fn read_opt(path: &Path) -> Result<Option<String>, CgroupError> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CgroupError::Read {
            path: path.to_path_buf(),
            errno: errno_of(&e),
        }),
    }
}

fn parse_err(path: &Path, reason: String) -> CgroupError {
    CgroupError::Parse {
        path: path.to_path_buf(),
        reason,
    }
}

/// Parse a single number; "max" is `u64::MAX`.
pub(crate) fn parse_u64(path: &Path, text: &str) -> Result<u64, CgroupError> {
    let t = text.trim();
    if t == "max" {
        return Ok(u64::MAX);
    }
    t.parse::<u64>()
        .map_err(|_| parse_err(path, format!("expected a number, found {t:?}")))
}

/// Read a file holding one number ("max" is `u64::MAX`); a missing file is `None`.
pub(crate) fn read_u64_opt(path: &Path) -> Result<Option<u64>, CgroupError> {
    read_opt(path)?.map(|t| parse_u64(path, &t)).transpose()
}

/// Read a file holding one signed number.
pub(crate) fn read_i64(path: &Path) -> Result<i64, CgroupError> {
    let t = read(path)?;
    let t = t.trim();
    if t == "max" {
        return Ok(i64::MAX);
    }
    t.parse::<i64>()
        .map_err(|_| parse_err(path, format!("expected a number, found {t:?}")))
}

/// Parse "key value" lines (memory.stat, cpu.stat, memory.events ...). Lines whose value
/// is not a number are skipped.
pub fn parse_flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let k = it.next()?;
            let v = it.next()?.parse::<u64>().ok()?;
            Some((k.to_string(), v))
        })
        .collect()
}

/// Read a flat-keyed file; a missing file is `None`.
pub(crate) fn read_flat_keyed_opt(
    path: &Path,
) -> Result<Option<BTreeMap<String, u64>>, CgroupError> {
    Ok(read_opt(path)?.map(|t| parse_flat_keyed(&t)))
}

/// mkdir -p, mapping the error.
pub(crate) fn mkdir_p(path: &Path) -> Result<(), CgroupError> {
    fs::create_dir_all(path).map_err(|e| CgroupError::Create {
        path: path.to_path_buf(),
        errno: errno_of(&e),
    })
}

/// mkdir one level; an existing directory is fine. Returns true if it was created.
pub(crate) fn mkdir_one(path: &Path) -> Result<bool, CgroupError> {
    match fs::create_dir(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(CgroupError::Create {
            path: path.to_path_buf(),
            errno: errno_of(&e),
        }),
    }
}

/// Remove a cgroup directory and any sub-cgroups, deepest first. A missing directory is
/// fine; EBUSY (processes still exiting) is retried for about half a second.
pub(crate) fn rmdir_tree(path: &Path) -> Result<(), CgroupError> {
    let entries = match fs::read_dir(path) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(CgroupError::Remove {
                path: path.to_path_buf(),
                errno: errno_of(&e),
            })
        }
    };
    let subdirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .collect();
    for d in subdirs {
        rmdir_tree(&d)?;
    }
    rmdir_retry(path)
}

fn rmdir_retry(path: &Path) -> Result<(), CgroupError> {
    const DELAYS_MS: [u64; 10] = [1, 2, 4, 8, 16, 32, 64, 100, 100, 150];
    let mut attempt = 0;
    loop {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if errno_of(&e) == Errno::EBUSY && attempt < DELAYS_MS.len() => {
                sleep(Duration::from_millis(DELAYS_MS[attempt]));
                attempt += 1;
            }
            Err(e) => {
                return Err(CgroupError::Remove {
                    path: path.to_path_buf(),
                    errno: errno_of(&e),
                })
            }
        }
    }
}

/// Pids listed in a cgroup.procs file.
pub(crate) fn read_pids(path: &Path) -> Result<Vec<i32>, CgroupError> {
    let text = read(path)?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.trim()
                .parse::<i32>()
                .map_err(|_| parse_err(path, format!("expected a pid, found {l:?}")))
        })
        .collect()
}
