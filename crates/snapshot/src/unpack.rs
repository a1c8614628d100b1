//! Unpacking one image layer (a tar stream, gzip- or zstd-compressed or not) into a
//! directory, converting OCI whiteouts into overlayfs objects.
//!
//! The destination is the only place written. Every entry's parent is resolved
//! component by component from a directory fd of `dest` with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS)`, so a symlink unpacked earlier (`a -> /etc`) is never
//! followed: an entry below it (`a/passwd`) fails the whole layer. Symlinks themselves,
//! absolute ones included, are created as they are.
//!
//! Extended attributes come from PAX `SCHILY.xattr.*` records, except overlayfs's own
//! `trusted.overlay.*`, which are dropped (with a warning): only the opaque marker
//! sets one. Symlinks get no xattrs. Owners are set with lchown, then the mode (so
//! set-id bits survive), then xattrs, then the mtime (access times are left alone).
//!
//! Refused: entry paths and hard-link targets that are absolute or contain `..`,
//! writes (and hard-link targets) through a symlink, char and block devices (policy), GNU sparse files and
//! other exotic types, and layers beyond [`Limits`]. Skipped: aufs bookkeeping
//! (`.wh..wh.plnk`…). Not handled: PAX sub-second and over-range times (the header's
//! whole seconds are used).
//!
//! On error the layer is abandoned half-written: `dest` is left for the caller to
//! delete (with the snapshotter, `remove` the active snapshot it was unpacked into).

use std::cell::Cell;
use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{
    fchmod, fchmodat, fstatat, futimens, mkdirat, mknodat, utimensat, FchmodatFlags, Mode, SFlag,
    UtimensatFlags,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use tar::EntryType;

use crate::sys;

/// The OCI whiteout prefix: `dir/.wh.name` deletes `name` from the layers below.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The OCI opaque marker: `dir/.wh..wh..opq` hides everything below `dir`.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The namespace of overlayfs's own xattrs, never taken from a layer.
pub const OVERLAY_XATTR_PREFIX: &str = "trusted.overlay.";
/// The overlayfs xattr that makes a directory opaque.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Bounds on what one layer may expand to, against decompression bombs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most uncompressed tar bytes (headers and contents) read from the layer.
    pub max_bytes: u64,
    /// Most tar entries in the layer.
    pub max_entries: u64,
}

impl Default for Limits {
    /// 32 GiB and one million entries.
    fn default() -> Self {
        Self {
            max_bytes: 32 << 30,
            max_entries: 1_000_000,
        }
    }
}

/// What a successful unpack wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Tar entries read (metadata-only entries like PAX headers are not counted).
    pub entries: u64,
    /// Uncompressed tar bytes read.
    pub bytes: u64,
    /// Regular files created.
    pub files: u64,
    /// Directories created or updated.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Hard links created.
    pub hardlinks: u64,
    /// FIFOs created.
    pub fifos: u64,
    /// Whiteouts (overlay char devices 0:0) created.
    pub whiteouts: u64,
    /// Directories made opaque.
    pub opaques: u64,
}

/// The compression of a layer, told by its magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar stream.
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// zstd (`28 b5 2f fd`).
    Zstd,
}

/// Why a layer could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The destination directory could not be opened.
    #[error("opening unpack destination {path}")]
    OpenDest {
        /// The destination.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Errno,
    },
    /// Reading the compressed stream or a tar header failed.
    #[error("reading layer stream")]
    Read(#[source] io::Error),
    /// Reading one entry's contents failed.
    #[error("reading contents of entry {entry}")]
    ReadEntry {
        /// The entry's path in the archive.
        entry: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// An entry path is absolute, contains `..`, or is not valid.
    #[error("entry {entry}: path {path} escapes the layer (absolute or contains ..)")]
    UnsafePath {
        /// The entry's path in the archive.
        entry: PathBuf,
        /// The offending path (the entry's own or its link target).
        path: PathBuf,
    },
    /// An entry would be written through a symlink or a non-directory.
    #[error("entry {entry}: parent {parent} is a symlink or not a directory")]
    ThroughSymlink {
        /// The entry's path in the archive.
        entry: PathBuf,
        /// The parent component that is not a plain directory.
        parent: PathBuf,
    },
    /// Device nodes are refused by policy.
    #[error("entry {entry}: device nodes are not allowed in layers")]
    Device {
        /// The entry's path in the archive.
        entry: PathBuf,
    },
    /// A tar entry type this unpacker does not handle.
    #[error("entry {entry}: unsupported tar entry type {kind:?}")]
    Unsupported {
        /// The entry's path in the archive.
        entry: PathBuf,
        /// The tar type byte.
        kind: u8,
    },
    /// The layer expands beyond `Limits::max_bytes`.
    #[error("layer exceeds {max} uncompressed bytes")]
    TooLarge {
        /// The limit.
        max: u64,
    },
    /// The layer holds more than `Limits::max_entries` entries.
    #[error("layer exceeds {max} entries")]
    TooManyEntries {
        /// The limit.
        max: u64,
    },
    /// An existing non-empty directory stands where a non-directory goes.
    #[error("entry {entry}: would replace a non-empty directory")]
    ReplaceDir {
        /// The entry's path in the archive.
        entry: PathBuf,
    },
    /// A syscall creating or changing an entry failed.
    #[error("entry {entry}: {op}")]
    Write {
        /// The entry's path in the archive.
        entry: PathBuf,
        /// What was being done ("creating file", "lchown"…).
        op: &'static str,
        /// The cause.
        #[source]
        source: Errno,
    },
}

/// Tell the compression of a stream by its first bytes, without consuming them.
pub fn detect_compression<R: BufRead>(reader: &mut R) -> io::Result<Compression> {
    let head = reader.fill_buf()?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    })
}

/// Counts the uncompressed bytes and fails once more than `max` went through.
struct CountingReader<R> {
    inner: R,
    count: Rc<Cell<u64>>,
    max: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Never hand out more than one byte past the limit.
        let room = (self.max + 1).saturating_sub(self.count.get());
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        if want == 0 {
            return Err(io::Error::other("uncompressed size limit exceeded"));
        }
        let n = self.inner.read(&mut buf[..want])?;
        self.count.set(self.count.get() + n as u64);
        if self.count.get() > self.max {
            return Err(io::Error::other("uncompressed size limit exceeded"));
        }
        Ok(n)
    }
}

/// Unpack the layer read from `reader` into the existing directory `dest`.
///
/// gzip, zstd and plain tar are told apart by magic bytes. On error `dest` is left
/// half-written for the caller to remove; nothing outside it has been touched.
pub fn unpack_layer<R: Read>(
    reader: R,
    dest: &Path,
    limits: Limits,
) -> Result<UnpackStats, UnpackError> {
    let mut buffered = BufReader::with_capacity(128 << 10, reader);
    let compression = detect_compression(&mut buffered).map_err(UnpackError::Read)?;
    let stream: Box<dyn Read> = match compression {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(buffered).map_err(UnpackError::Read)?)
        }
    };
    let count = Rc::new(Cell::new(0));
    let counting = CountingReader {
        inner: stream,
        count: Rc::clone(&count),
        max: limits.max_bytes,
    };
    let root = nix::fcntl::open(
        dest,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|source| UnpackError::OpenDest {
        path: dest.to_owned(),
        source,
    })?;
    let mut unpacker = Unpacker {
        root,
        stats: UnpackStats::default(),
        dir_times: Vec::new(),
        last_parent: None,
        buf: vec![0; COPY_BUF],
    };
    let result = unpacker.run(counting, limits);
    let exceeded = count.get() > limits.max_bytes;
    match result {
        Err(_) if exceeded => Err(UnpackError::TooLarge {
            max: limits.max_bytes,
        }),
        Err(e) => Err(e),
        Ok(()) => {
            unpacker.stats.bytes = count.get();
            Ok(unpacker.stats)
        }
    }
}

/// One entry, decoded from its tar header.
struct Item {
    /// The entry's path as written in the archive (for messages).
    entry: PathBuf,
    /// Its normalised relative path.
    rel: PathBuf,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    xattrs: Vec<(String, Vec<u8>)>,
}

struct Unpacker {
    root: OwnedFd,
    stats: UnpackStats,
    /// Directories whose mtime is set once all entries are in.
    dir_times: Vec<(PathBuf, PathBuf, u64)>,
    /// The previous entry's parent directory (relative path and fd), reused when
    /// the next entry has the same parent, as consecutive entries mostly do. Safe:
    /// an entry only creates, replaces or removes a child of its own parent, so
    /// while entries share the parent nothing replaces it; an entry elsewhere
    /// resolves its parent afresh (no symlinks followed) and takes the slot.
    last_parent: Option<(PathBuf, OwnedFd)>,
    /// The copy buffer for file contents (few large writes, not many 8 KiB ones).
    buf: Vec<u8>,
}

/// Size of the buffer file contents are copied through.
const COPY_BUF: usize = 1 << 20;

impl Unpacker {
    fn run<R: Read>(&mut self, reader: R, limits: Limits) -> Result<(), UnpackError> {
        let mut archive = tar::Archive::new(reader);
        let entries = archive.entries().map_err(UnpackError::Read)?;
        for entry in entries {
            let mut entry = entry.map_err(UnpackError::Read)?;
            let kind = entry.header().entry_type();
            if matches!(
                kind,
                EntryType::XGlobalHeader
                    | EntryType::XHeader
                    | EntryType::GNULongName
                    | EntryType::GNULongLink
            ) {
                continue;
            }
            self.stats.entries += 1;
            if self.stats.entries > limits.max_entries {
                return Err(UnpackError::TooManyEntries {
                    max: limits.max_entries,
                });
            }
            let item = decode(&mut entry)?;
            self.apply(kind, item, &mut entry)?;
        }
        self.set_dir_times()
    }

    fn apply<R: Read>(
        &mut self,
        kind: EntryType,
        item: Item,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), UnpackError> {
        let Some(name) = item.rel.file_name().map(OsStr::to_owned) else {
            // The layer root itself ("./"): nothing to create.
            return Ok(());
        };
        if is_aufs_metadata(&item.rel) {
            tracing::debug!(entry = %item.entry.display(), "skipping aufs metadata");
            return Ok(());
        }
        let parent_rel = item.rel.parent().unwrap_or(Path::new("")).to_owned();
        let parent = match self.last_parent.take() {
            Some((rel, fd)) if rel == parent_rel => fd,
            _ => self.open_parent(&item.entry, &item.rel)?,
        };
        let pfd = parent.as_fd();
        let result = if let Some(hidden) = name.as_bytes().strip_prefix(WHITEOUT_PREFIX.as_bytes())
        {
            self.whiteout(pfd, &item, OsStr::from_bytes(hidden))
        } else {
            self.create(kind, pfd, &name, item, entry)
        };
        self.last_parent = Some((parent_rel, parent));
        result
    }

    fn create<R: Read>(
        &mut self,
        kind: EntryType,
        pfd: BorrowedFd<'_>,
        name: &OsStr,
        item: Item,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), UnpackError> {
        let name = name.to_owned();
        match kind {
            EntryType::Directory => self.dir(pfd, &name, item),
            EntryType::Regular | EntryType::Continuous => self.file(pfd, &name, &item, entry),
            EntryType::Symlink => self.symlink(pfd, &name, &item, entry),
            EntryType::Link => self.hardlink(pfd, &name, &item, entry),
            EntryType::Fifo => self.fifo(pfd, &name, &item),
            EntryType::Char | EntryType::Block => Err(UnpackError::Device { entry: item.entry }),
            other => Err(UnpackError::Unsupported {
                entry: item.entry,
                kind: other.as_byte(),
            }),
        }
    }

    /// Open the parent directory of `rel`, creating missing directories (mode 0755)
    /// and refusing symlinks and non-directories on the way.
    fn open_parent(&self, entry: &Path, rel: &Path) -> Result<OwnedFd, UnpackError> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        self.open_dir(entry, parent, true)
    }

    fn open_dir(&self, entry: &Path, dir: &Path, create: bool) -> Result<OwnedFd, UnpackError> {
        let mut current = sys::open_dir_beneath(self.root.as_fd(), OsStr::new("."))
            .map_err(|e| write_err(entry, "opening layer root", e))?;
        let mut walked = PathBuf::new();
        for component in dir.components() {
            let name = component.as_os_str();
            walked.push(name);
            let through = || UnpackError::ThroughSymlink {
                entry: entry.to_owned(),
                parent: walked.clone(),
            };
            current = match sys::open_dir_beneath(current.as_fd(), name) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if create => {
                    mkdirat(current.as_fd(), name, Mode::from_bits_truncate(0o755))
                        .map_err(|e| write_err(entry, "creating parent directory", e))?;
                    sys::open_dir_beneath(current.as_fd(), name).map_err(|_| through())?
                }
                Err(Errno::ELOOP | Errno::ENOTDIR | Errno::EXDEV) => return Err(through()),
                Err(e) => return Err(write_err(entry, "opening parent directory", e)),
            };
        }
        Ok(current)
    }

    fn whiteout(
        &mut self,
        pfd: BorrowedFd<'_>,
        item: &Item,
        hidden: &OsStr,
    ) -> Result<(), UnpackError> {
        if item.rel.file_name() == Some(OsStr::new(OPAQUE_MARKER)) {
            sys::fsetxattr(pfd, OVERLAY_OPAQUE_XATTR, b"y")
                .map_err(|e| write_err(&item.entry, "setting trusted.overlay.opaque", e))?;
            self.stats.opaques += 1;
            return Ok(());
        }
        if hidden.is_empty() || hidden == "." || hidden == ".." {
            return Err(UnpackError::UnsafePath {
                entry: item.entry.clone(),
                path: item.rel.clone(),
            });
        }
        clear(pfd, hidden, &item.entry)?;
        mknodat(pfd, hidden, SFlag::S_IFCHR, Mode::empty(), 0)
            .map_err(|e| write_err(&item.entry, "creating whiteout device", e))?;
        self.stats.whiteouts += 1;
        Ok(())
    }

    fn dir(&mut self, pfd: BorrowedFd<'_>, name: &OsStr, item: Item) -> Result<(), UnpackError> {
        match fstatat(pfd, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR => {}
            Ok(_) => {
                clear(pfd, name, &item.entry)?;
                mkdir(pfd, name, &item.entry)?;
            }
            Err(Errno::ENOENT) => mkdir(pfd, name, &item.entry)?,
            Err(e) => return Err(write_err(&item.entry, "inspecting existing entry", e)),
        }
        let fd = sys::open_dir_beneath(pfd, name)
            .map_err(|e| write_err(&item.entry, "opening directory", e))?;
        set_owner_mode_xattrs(fd.as_fd(), &item)?;
        self.stats.dirs += 1;
        self.dir_times.push((item.entry, item.rel, item.mtime));
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        pfd: BorrowedFd<'_>,
        name: &OsStr,
        item: &Item,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), UnpackError> {
        clear(pfd, name, &item.entry)?;
        let fd =
            sys::create_file(pfd, name).map_err(|e| write_err(&item.entry, "creating file", e))?;
        let mut file = std::fs::File::from(fd);
        let read_err = |source| UnpackError::ReadEntry {
            entry: item.entry.clone(),
            source,
        };
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_err(e)),
            };
            file.write_all(&self.buf[..n]).map_err(|e| {
                write_err(
                    &item.entry,
                    "writing file",
                    Errno::from_raw(e.raw_os_error().unwrap_or(0)),
                )
            })?;
        }
        set_owner_mode_xattrs(file.as_fd(), item)?;
        set_mtime(file.as_fd(), item)?;
        self.stats.files += 1;
        Ok(())
    }

    fn symlink<R: Read>(
        &mut self,
        pfd: BorrowedFd<'_>,
        name: &OsStr,
        item: &Item,
        entry: &tar::Entry<'_, R>,
    ) -> Result<(), UnpackError> {
        let target = link_name(entry, &item.entry)?;
        clear(pfd, name, &item.entry)?;
        symlinkat(target.as_os_str(), pfd, name)
            .map_err(|e| write_err(&item.entry, "creating symlink", e))?;
        fchownat(
            pfd,
            name,
            Some(uid(item.uid)),
            Some(gid(item.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| write_err(&item.entry, "lchown", e))?;
        let (atime, mtime) = times(item.mtime);
        utimensat(pfd, name, &atime, &mtime, UtimensatFlags::NoFollowSymlink)
            .map_err(|e| write_err(&item.entry, "setting symlink mtime", e))?;
        self.stats.symlinks += 1;
        Ok(())
    }

    fn hardlink<R: Read>(
        &mut self,
        pfd: BorrowedFd<'_>,
        name: &OsStr,
        item: &Item,
        entry: &tar::Entry<'_, R>,
    ) -> Result<(), UnpackError> {
        let target = link_name(entry, &item.entry)?;
        let target_rel = normalise(&target).ok_or_else(|| UnpackError::UnsafePath {
            entry: item.entry.clone(),
            path: target.clone(),
        })?;
        let Some(target_name) = target_rel.file_name() else {
            return Err(UnpackError::UnsafePath {
                entry: item.entry.clone(),
                path: target,
            });
        };
        let target_parent = self.open_dir(
            &item.entry,
            target_rel.parent().unwrap_or(Path::new("")),
            false,
        )?;
        if target_rel != item.rel {
            clear(pfd, name, &item.entry)?;
        }
        // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
        linkat(
            target_parent.as_fd(),
            target_name,
            pfd,
            name,
            AtFlags::empty(),
        )
        .map_err(|e| write_err(&item.entry, "creating hard link", e))?;
        self.stats.hardlinks += 1;
        Ok(())
    }

    fn fifo(&mut self, pfd: BorrowedFd<'_>, name: &OsStr, item: &Item) -> Result<(), UnpackError> {
        clear(pfd, name, &item.entry)?;
        mknodat(
            pfd,
            name,
            SFlag::S_IFIFO,
            Mode::from_bits_truncate(0o600),
            0,
        )
        .map_err(|e| write_err(&item.entry, "creating fifo", e))?;
        fchownat(
            pfd,
            name,
            Some(uid(item.uid)),
            Some(gid(item.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| write_err(&item.entry, "lchown", e))?;
        // The fifo was just created by us in a directory opened without following
        // symlinks, so following here reaches that fifo.
        fchmodat(
            pfd,
            name,
            Mode::from_bits_truncate(item.mode),
            FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| write_err(&item.entry, "chmod", e))?;
        let (atime, mtime) = times(item.mtime);
        utimensat(pfd, name, &atime, &mtime, UtimensatFlags::NoFollowSymlink)
            .map_err(|e| write_err(&item.entry, "setting fifo mtime", e))?;
        self.stats.fifos += 1;
        Ok(())
    }

    /// Directory mtimes last, deepest first, since creating entries changes them. A
    /// directory a later entry replaced (by a symlink, say) is skipped.
    fn set_dir_times(&mut self) -> Result<(), UnpackError> {
        let dirs = std::mem::take(&mut self.dir_times);
        for (entry, rel, mtime) in dirs.iter().rev() {
            let Ok(fd) = self.open_dir(entry, rel, false) else {
                continue;
            };
            let (atime, mtime) = times(*mtime);
            futimens(fd.as_fd(), &atime, &mtime)
                .map_err(|e| write_err(entry, "setting directory mtime", e))?;
        }
        Ok(())
    }
}

/// Decode an entry's header: its path (checked) and metadata.
fn decode<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Item, UnpackError> {
    let raw = entry.path().map_err(UnpackError::Read)?.into_owned();
    let rel = normalise(&raw).ok_or_else(|| UnpackError::UnsafePath {
        entry: raw.clone(),
        path: raw.clone(),
    })?;
    let header = entry.header();
    let mode = header.mode().map_err(UnpackError::Read)? & 0o7777;
    let mut uid = header.uid().map_err(UnpackError::Read)?;
    let mut gid = header.gid().map_err(UnpackError::Read)?;
    let mtime = header.mtime().map_err(UnpackError::Read)?;
    let mut xattrs = Vec::new();
    if let Some(pax) = entry.pax_extensions().map_err(UnpackError::Read)? {
        for ext in pax {
            let ext = ext.map_err(UnpackError::Read)?;
            let Ok(key) = ext.key() else { continue };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                if name.starts_with(OVERLAY_XATTR_PREFIX) {
                    // Only whiteouts may make overlay objects: a layer's own
                    // trusted.overlay.* (redirect, metacopy…) would steer overlayfs.
                    tracing::warn!(entry = %raw.display(), xattr = name, "dropping overlay xattr");
                    continue;
                }
                xattrs.push((name.to_owned(), ext.value_bytes().to_owned()));
            } else if key == "uid" {
                uid = parse_id(ext.value_bytes()).unwrap_or(uid);
            } else if key == "gid" {
                gid = parse_id(ext.value_bytes()).unwrap_or(gid);
            }
        }
    }
    Ok(Item {
        entry: raw,
        rel,
        mode,
        uid,
        gid,
        mtime,
        xattrs,
    })
}

/// Whether `rel` is, or lies below, an aufs bookkeeping name (`.wh..wh.plnk`…): every
/// `.wh..wh.` name but the opaque marker.
fn is_aufs_metadata(rel: &Path) -> bool {
    rel.iter()
        .any(|c| c.as_bytes().starts_with(b".wh..wh.") && c != OsStr::new(OPAQUE_MARKER))
}

fn parse_id(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// A relative path without `.` components, or `None` when `path` is absolute or
/// contains `..`.
pub(crate) fn normalise(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => out.push(name),
            Component::CurDir => {}
            Component::RootDir | Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn link_name<R: Read>(entry: &tar::Entry<'_, R>, name: &Path) -> Result<PathBuf, UnpackError> {
    match entry.link_name() {
        Ok(Some(target)) => Ok(target.into_owned()),
        Ok(None) => Err(UnpackError::UnsafePath {
            entry: name.to_owned(),
            path: PathBuf::new(),
        }),
        Err(source) => Err(UnpackError::ReadEntry {
            entry: name.to_owned(),
            source,
        }),
    }
}

fn mkdir(pfd: BorrowedFd<'_>, name: &OsStr, entry: &Path) -> Result<(), UnpackError> {
    mkdirat(pfd, name, Mode::from_bits_truncate(0o700))
        .map_err(|e| write_err(entry, "creating directory", e))
}

/// Remove whatever non-directory (or empty directory) stands at `name`, so that a
/// later entry replaces an earlier one as tar does; never follows a symlink.
fn clear(pfd: BorrowedFd<'_>, name: &OsStr, entry: &Path) -> Result<(), UnpackError> {
    match unlinkat(pfd, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::EISDIR) => match unlinkat(pfd, name, UnlinkatFlags::RemoveDir) {
            Ok(()) => Ok(()),
            Err(Errno::ENOTEMPTY | Errno::EEXIST) => Err(UnpackError::ReplaceDir {
                entry: entry.to_owned(),
            }),
            Err(e) => Err(write_err(entry, "removing existing directory", e)),
        },
        Err(e) => Err(write_err(entry, "removing existing entry", e)),
    }
}

/// Owner first (chown clears set-id bits), then mode, then xattrs.
fn set_owner_mode_xattrs(fd: BorrowedFd<'_>, item: &Item) -> Result<(), UnpackError> {
    fchown(fd, Some(uid(item.uid)), Some(gid(item.gid)))
        .map_err(|e| write_err(&item.entry, "lchown", e))?;
    fchmod(fd, Mode::from_bits_truncate(item.mode))
        .map_err(|e| write_err(&item.entry, "chmod", e))?;
    for (name, value) in &item.xattrs {
        sys::fsetxattr(fd, name, value).map_err(|e| write_err(&item.entry, "setting xattr", e))?;
    }
    Ok(())
}

fn set_mtime(fd: BorrowedFd<'_>, item: &Item) -> Result<(), UnpackError> {
    let (atime, mtime) = times(item.mtime);
    futimens(fd, &atime, &mtime).map_err(|e| write_err(&item.entry, "setting mtime", e))
}

fn times(mtime: u64) -> (TimeSpec, TimeSpec) {
    let secs = i64::try_from(mtime).unwrap_or(i64::MAX);
    (TimeSpec::UTIME_OMIT, TimeSpec::new(secs, 0))
}

/// Ids beyond 32 bits (only possible through PAX) become nobody.
const NOBODY: u32 = 65534;

fn uid(id: u64) -> Uid {
    Uid::from_raw(u32::try_from(id).unwrap_or(NOBODY))
}

fn gid(id: u64) -> Gid {
    Gid::from_raw(u32::try_from(id).unwrap_or(NOBODY))
}

fn write_err(entry: &Path, op: &'static str, source: Errno) -> UnpackError {
    UnpackError::Write {
        entry: entry.to_owned(),
        op,
        source,
    }
}
