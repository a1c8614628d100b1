//! Real-kernel tests of `unpack_layer`, with layers built here with the `tar` crate.
//! They need root (lchown, whiteout devices, trusted.* xattrs) and skip loudly
//! otherwise.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use berth_snapshot::{lgetxattr, unpack_layer, Limits, UnpackError};
use tar::{EntryType, Header};

fn is_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("SKIP: unpack tests need root");
    false
}

/// A layer under construction; paths and link names are written raw, unchecked, so
/// that hostile archives can be built.
struct Layer(tar::Builder<Vec<u8>>);

impl Layer {
    fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }

    fn header(kind: EntryType, path: &str, mode: u32) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        let name = &mut h.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(0);
        h
    }

    fn append(mut self, mut h: Header, data: &[u8]) -> Self {
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn dir(self, path: &str, mode: u32) -> Self {
        self.append(Self::header(EntryType::Directory, path, mode), b"")
    }

    fn file(self, path: &str, data: &[u8], mode: u32) -> Self {
        self.append(Self::header(EntryType::Regular, path, mode), data)
    }

    fn owned_file(self, path: &str, data: &[u8], uid: u64, gid: u64) -> Self {
        let mut h = Self::header(EntryType::Regular, path, 0o640);
        h.set_uid(uid);
        h.set_gid(gid);
        self.append(h, data)
    }

    fn link(self, kind: EntryType, path: &str, target: &str) -> Self {
        let mut h = Self::header(kind, path, 0o777);
        let link = &mut h.as_old_mut().linkname;
        link[..target.len()].copy_from_slice(target.as_bytes());
        self.append(h, b"")
    }

    fn symlink(self, path: &str, target: &str) -> Self {
        self.link(EntryType::Symlink, path, target)
    }

    fn hardlink(self, path: &str, target: &str) -> Self {
        self.link(EntryType::Link, path, target)
    }

    fn node(self, kind: EntryType, path: &str) -> Self {
        self.append(Self::header(kind, path, 0o644), b"")
    }

    /// A file `path` containing `x`, with one PAX xattr.
    fn xattr_file(mut self, path: &str, key: &str, value: &[u8]) -> Self {
        let pax = [(format!("SCHILY.xattr.{key}"), value)];
        self.0
            .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), *v)))
            .unwrap();
        self.file(path, b"x", 0o644)
    }

    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 1).unwrap()
}

fn unpack(bytes: &[u8], dest: &Path) -> Result<berth_snapshot::UnpackStats, UnpackError> {
    unpack_layer(bytes, dest, Limits::default())
}

fn normal_layer() -> Vec<u8> {
    Layer::new()
        .dir("bin/", 0o755)
        .file("bin/busybox", b"#!busybox", 0o4755)
        .symlink("bin/sh", "busybox")
        .symlink("bin/abs", "/bin/busybox")
        .hardlink("bin/ls", "bin/busybox")
        .dir("./etc", 0o750)
        .owned_file("etc/shadow", b"root:*", 1000, 42)
        .file("deep/er/file", b"no parent entries", 0o600)
        .node(EntryType::Fifo, "run/fifo")
        .xattr_file("etc/xattr", "user.berth", b"yes")
        .bytes()
}

fn check_normal(dest: &Path) {
    let busybox = fs::symlink_metadata(dest.join("bin/busybox")).unwrap();
    assert_eq!(busybox.mode() & 0o7777, 0o4755);
    assert_eq!(busybox.mtime(), 1_600_000_000);
    assert_eq!(busybox.nlink(), 2);
    assert_eq!(fs::read(dest.join("bin/ls")).unwrap(), b"#!busybox");
    assert_eq!(
        fs::read_link(dest.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        fs::read_link(dest.join("bin/abs")).unwrap(),
        Path::new("/bin/busybox")
    );
    let etc = fs::metadata(dest.join("etc")).unwrap();
    assert_eq!(etc.mode() & 0o7777, 0o750);
    assert_eq!(etc.mtime(), 1_600_000_000);
    let shadow = fs::metadata(dest.join("etc/shadow")).unwrap();
    assert_eq!((shadow.uid(), shadow.gid()), (1000, 42));
    assert_eq!(
        fs::read(dest.join("deep/er/file")).unwrap(),
        b"no parent entries"
    );
    let fifo = fs::symlink_metadata(dest.join("run/fifo")).unwrap();
    assert!(fifo.file_type().is_fifo());
    assert_eq!(fifo.permissions().mode() & 0o777, 0o644);
    assert_eq!(
        lgetxattr(&dest.join("etc/xattr"), "user.berth").unwrap(),
        Some(b"yes".to_vec())
    );
}

#[test]
fn unpacks_plain_gzip_and_zstd_layers() {
    if !is_root() {
        return;
    }
    let plain = normal_layer();
    for (label, bytes) in [
        ("plain", plain.clone()),
        ("gzip", gzip(&plain)),
        ("zstd", zstd(&plain)),
    ] {
        let dest = tempfile::tempdir().unwrap();
        let stats = unpack(&bytes, dest.path()).unwrap_or_else(|e| panic!("{label}: {e:?}"));
        assert_eq!(stats.files, 4, "{label}");
        assert_eq!(stats.symlinks, 2, "{label}");
        assert_eq!(stats.hardlinks, 1, "{label}");
        assert_eq!(stats.fifos, 1, "{label}");
        assert!(
            stats.bytes > 0 && stats.bytes <= plain.len() as u64,
            "{label}"
        );
        check_normal(dest.path());
    }
}

#[test]
fn whiteouts_become_overlay_objects() {
    if !is_root() {
        return;
    }
    let layer = Layer::new()
        .dir("etc/", 0o755)
        .file("etc/.wh.motd", b"", 0o644)
        .dir("var/cache/", 0o755)
        .file("var/cache/.wh..wh..opq", b"", 0o644)
        .file("var/cache/new", b"n", 0o644)
        .dir(".wh..wh.plnk", 0o700)
        .file(".wh..wh.plnk/1.2", b"aufs", 0o644)
        .bytes();
    let dest = tempfile::tempdir().unwrap();
    let stats = unpack(&layer, dest.path()).unwrap();
    assert_eq!((stats.whiteouts, stats.opaques), (1, 1));
    let wh = fs::symlink_metadata(dest.path().join("etc/motd")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    assert!(!dest.path().join("etc/.wh.motd").exists());
    assert_eq!(
        lgetxattr(&dest.path().join("var/cache"), "trusted.overlay.opaque").unwrap(),
        Some(b"y".to_vec())
    );
    assert!(!dest.path().join("var/cache/.wh..wh..opq").exists());
    assert!(dest.path().join("var/cache/new").exists());
    let top: Vec<_> = fs::read_dir(dest.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(top.len(), 2, "aufs metadata unpacked: {top:?}");
}

/// Unpack a hostile layer next to a sentinel host directory: the layer must fail, and
/// the sentinel stay empty.
fn assert_rejected(layer: impl Fn(&str) -> Vec<u8>, check: impl Fn(&UnpackError) -> bool) {
    let sandbox = tempfile::tempdir().unwrap();
    let host = sandbox.path().join("host");
    let dest = sandbox.path().join("a/b/dest");
    fs::create_dir_all(&host).unwrap();
    fs::create_dir_all(&dest).unwrap();
    let bytes = layer(host.to_str().unwrap());
    let err = unpack(&bytes, &dest).expect_err("hostile layer was accepted");
    assert!(check(&err), "unexpected error: {err} ({err:?})");
    let leaked: Vec<_> = fs::read_dir(&host).unwrap().collect();
    assert!(leaked.is_empty(), "written outside dest: {leaked:?}");
    for name in ["x", "f", "passwd"] {
        assert!(!sandbox.path().join(name).exists(), "{name} leaked");
        assert!(
            !sandbox.path().join("a").join(name).exists(),
            "{name} leaked"
        );
    }
}

fn unsafe_path(e: &UnpackError) -> bool {
    matches!(e, UnpackError::UnsafePath { .. })
}

fn through_symlink(e: &UnpackError) -> bool {
    matches!(e, UnpackError::ThroughSymlink { .. })
}

#[test]
fn rejects_parent_and_absolute_paths() {
    if !is_root() {
        return;
    }
    assert_rejected(
        |_| Layer::new().file("../x", b"x", 0o644).bytes(),
        unsafe_path,
    );
    assert_rejected(
        |_| Layer::new().file("ok/../../x", b"x", 0o644).bytes(),
        unsafe_path,
    );
    assert_rejected(
        |host| Layer::new().file(&format!("{host}/x"), b"x", 0o644).bytes(),
        unsafe_path,
    );
    assert_rejected(
        |_| Layer::new().file("/etc/x", b"x", 0o644).bytes(),
        unsafe_path,
    );
}

#[test]
fn rejects_writes_through_symlinks() {
    if !is_root() {
        return;
    }
    assert_rejected(
        |host| {
            Layer::new()
                .symlink("a", host)
                .file("a/f", b"x", 0o644)
                .bytes()
        },
        through_symlink,
    );
    assert_rejected(
        |_| {
            Layer::new()
                .symlink("a", "../../..")
                .file("a/f", b"x", 0o644)
                .bytes()
        },
        through_symlink,
    );
    assert_rejected(
        |_| {
            Layer::new()
                .dir("d", 0o755)
                .symlink("d/up", "../../../../host")
                .dir("d/up/sub", 0o755)
                .bytes()
        },
        through_symlink,
    );
    assert_rejected(
        |host| {
            Layer::new()
                .symlink("a", host)
                .file("a/.wh.f", b"", 0o644)
                .bytes()
        },
        through_symlink,
    );
    assert_rejected(
        |host| {
            Layer::new()
                .symlink("a", host)
                .file("a/.wh..wh..opq", b"", 0o644)
                .bytes()
        },
        through_symlink,
    );
}

#[test]
fn replaces_a_symlink_instead_of_writing_through_it() {
    if !is_root() {
        return;
    }
    let sandbox = tempfile::tempdir().unwrap();
    let host = sandbox.path().join("host");
    let dest = sandbox.path().join("dest");
    fs::create_dir_all(&host).unwrap();
    fs::create_dir_all(&dest).unwrap();
    let target = format!("{}/f", host.display());
    let layer = Layer::new()
        .symlink("f", &target)
        .file("f", b"mine", 0o644)
        .symlink("d", host.to_str().unwrap())
        .dir("d", 0o755)
        .symlink("p", &target)
        .node(EntryType::Fifo, "p")
        .symlink("s", &target)
        .hardlink("h", "s")
        .bytes();
    unpack(&layer, &dest).unwrap();
    assert_eq!(fs::read_dir(&host).unwrap().count(), 0);
    assert!(fs::symlink_metadata(dest.join("f")).unwrap().is_file());
    assert!(fs::symlink_metadata(dest.join("d")).unwrap().is_dir());
    assert!(fs::symlink_metadata(dest.join("p"))
        .unwrap()
        .file_type()
        .is_fifo());
}

#[test]
fn drops_overlay_xattrs_from_the_layer() {
    if !is_root() {
        return;
    }
    let layer = Layer::new()
        .xattr_file("f", "trusted.overlay.redirect", b"/etc")
        .bytes();
    let dest = tempfile::tempdir().unwrap();
    unpack(&layer, dest.path()).unwrap();
    let got = lgetxattr(&dest.path().join("f"), "trusted.overlay.redirect").unwrap();
    assert_eq!(got, None);
}

#[test]
fn rejects_hardlinks_outside_dest() {
    if !is_root() {
        return;
    }
    assert_rejected(
        |_| Layer::new().hardlink("p", "/etc/passwd").bytes(),
        unsafe_path,
    );
    assert_rejected(
        |_| Layer::new().hardlink("p", "../../x").bytes(),
        unsafe_path,
    );
    // Through a symlink to the host: the target's parent is never followed.
    assert_rejected(
        |host| {
            fs::write(Path::new(host).join("../secret"), b"secret").unwrap();
            Layer::new()
                .symlink("s", &format!("{host}/.."))
                .hardlink("p", "s/secret")
                .bytes()
        },
        through_symlink,
    );
}

#[test]
fn rejects_device_nodes() {
    if !is_root() {
        return;
    }
    for kind in [EntryType::Char, EntryType::Block] {
        assert_rejected(
            |_| Layer::new().node(kind, "dev/sda").bytes(),
            |e| matches!(e, UnpackError::Device { entry } if entry == Path::new("dev/sda")),
        );
    }
}

#[test]
fn error_messages_name_the_entry() {
    let dest = tempfile::tempdir().unwrap();
    let err = unpack(&Layer::new().file("../x", b"", 0o644).bytes(), dest.path())
        .expect_err("accepted ../x");
    assert_eq!(
        err.to_string(),
        "entry ../x: path ../x escapes the layer (absolute or contains ..)"
    );
}

/// A stream of `len` zero bytes.
fn zeros(len: u64) -> impl Read {
    io::repeat(0).take(len)
}

#[test]
fn stops_a_gzip_bomb() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bomb_path = dir.path().join("bomb.tar.gz");
    {
        let file = fs::File::create(&bomb_path).unwrap();
        let enc = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        let mut builder = tar::Builder::new(enc);
        let mut h = Header::new_gnu();
        h.set_path("zeros").unwrap();
        h.set_size(200 << 20);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        builder.append(&h, zeros(200 << 20)).unwrap();
        builder.into_inner().unwrap().finish().unwrap();
    }
    assert!(fs::metadata(&bomb_path).unwrap().len() < 2 << 20);
    let dest = dir.path().join("dest");
    fs::create_dir(&dest).unwrap();
    let limits = Limits {
        max_bytes: 10 << 20,
        max_entries: 100,
    };
    let err = unpack_layer(fs::File::open(&bomb_path).unwrap(), &dest, limits).unwrap_err();
    assert!(
        matches!(err, UnpackError::TooLarge { max } if max == 10 << 20),
        "{err:?}"
    );
    let written = fs::metadata(dest.join("zeros"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(written <= 10 << 20);
}

#[test]
fn stops_too_many_entries() {
    if !is_root() {
        return;
    }
    let mut layer = Layer::new();
    for i in 0..20 {
        layer = layer.file(&format!("f{i}"), b"", 0o644);
    }
    let dest = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_bytes: 1 << 20,
        max_entries: 10,
    };
    let err = unpack_layer(layer.bytes().as_slice(), dest.path(), limits).unwrap_err();
    assert!(
        matches!(err, UnpackError::TooManyEntries { max: 10 }),
        "{err:?}"
    );
}
