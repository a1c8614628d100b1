//! The two binaries every rootfs gets: busybox and the static berth-probe.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Path of the static berth-probe, built once per test process (see the module docs).
pub fn probe() -> &'static Path {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| match std::env::var_os("BERTH_PROBE") {
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "BERTH_PROBE={} does not exist", p.display());
            p
        }
        None => build_probe(),
    })
}

/// Workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn build_probe() -> PathBuf {
    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    // A target dir of its own: the crt-static RUSTFLAGS would otherwise invalidate the
    // normal build, and the outer `cargo test` may hold the main target dir's lock.
    let target_dir = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) => PathBuf::from(d).join("probe"),
        None => workspace_root().join("target/probe"),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(&cargo)
        .current_dir(workspace_root())
        .args([
            "build",
            "--quiet",
            "-p",
            "berth-probe",
            "--release",
            "--target",
        ])
        .arg(&triple)
        .arg("--target-dir")
        .arg(&target_dir)
        // --target keeps these flags off build scripts and proc macros (serde_derive).
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .unwrap_or_else(|e| panic!("running {cargo:?} to build berth-probe: {e}"));
    assert!(
        out.status.success(),
        "building the static berth-probe failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let path = target_dir.join(triple).join("release/berth-probe");
    assert!(
        path.is_file(),
        "berth-probe not found at {}",
        path.display()
    );
    path
}

/// Path of the static busybox copied into every rootfs (`BERTH_BUSYBOX` overrides).
pub fn busybox() -> &'static Path {
    static BUSYBOX: OnceLock<PathBuf> = OnceLock::new();
    BUSYBOX.get_or_init(|| {
        let p = std::env::var_os("BERTH_BUSYBOX")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/bin/busybox"));
        assert!(
            p.is_file(),
            "{} missing: install busybox-static (scripts/install-deps.sh)",
            p.display()
        );
        p
    })
}

/// Names of all busybox applets (`busybox --list`), each linked as /bin/NAME.
pub fn applets() -> &'static [String] {
    static APPLETS: OnceLock<Vec<String>> = OnceLock::new();
    APPLETS.get_or_init(|| {
        let out = Command::new(busybox())
            .arg("--list")
            .output()
            .expect("running busybox --list");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|a| !a.is_empty() && !a.contains('/') && *a != "busybox")
            .map(str::to_owned)
            .collect()
    })
}

/// Whether the ELF file at `path` has no program interpreter (is statically linked).
pub fn is_static_elf(path: &Path) -> bool {
    const PT_INTERP: u32 = 3;
    let Ok(data) = std::fs::read(path) else {
        return false;
    };
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 {
        return false; // not a 64-bit ELF
    }
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(data[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).all(|i| {
        let o = phoff + i * phentsize;
        data.get(o..o + 4)
            .is_some_and(|t| u32::from_le_bytes(t.try_into().unwrap()) != PT_INTERP)
    })
}
