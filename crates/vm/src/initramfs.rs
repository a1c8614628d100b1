//! The initramfs: `/init` (the static guest agent), the modules it loads and their list.

use std::io::Write;
use std::path::{Path, PathBuf};

use berth_guest_agent::protocol::{MODULE_LIST, NET_MODULE_LIST, SHARE_MODULE_LIST};

use crate::cpio::CpioWriter;
use crate::kernel::{Kernel, GUEST_MODULES, NET_MODULES, SHARE_MODULES};
use crate::VmError;

/// FNV-1a, for cache keys (stable across builds, unlike `DefaultHasher`).
pub(crate) fn fnv1a(h: u64, bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}
pub(crate) const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// The end of a signed module (`MODULE_SIG_STRING`).
const SIG_MARKER: &[u8] = b"~Module signature appended~\n";

/// `ko` without its appended signature, if it has one. The guest kernel does not
/// enforce signatures (it only notes the taint); checking them (SHA-256 and RSA over
/// every module) is a good part of the module loading time under TCG, and the
/// initramfs is built by the host from the kernel's own modules.
pub fn strip_signature(ko: &[u8]) -> &[u8] {
    let Some(body) = ko.strip_suffix(SIG_MARKER) else {
        return ko;
    };
    // struct module_signature: 8 bytes of ids and lengths, then sig_len (be32).
    let Some(info_at) = body.len().checked_sub(12) else {
        return ko;
    };
    let sig_len = u32::from_be_bytes(body[info_at + 8..info_at + 12].try_into().unwrap());
    match info_at.checked_sub(sig_len as usize) {
        Some(end) => &body[..end],
        None => ko,
    }
}

/// The archive for `agent`, the boot `modules`, and the `share_modules` and
/// `net_modules` loaded on demand (`.ko` names and contents, each in load order).
pub fn build(
    agent: &[u8],
    modules: &[(String, Vec<u8>)],
    share_modules: &[(String, Vec<u8>)],
    net_modules: &[(String, Vec<u8>)],
) -> std::io::Result<Vec<u8>> {
    let mut w = CpioWriter::new(Vec::new());
    for dir in ["dev", "proc", "sys", "newroot", "lib", "lib/modules"] {
        w.dir(dir, 0o755)?;
    }
    // The kernel opens /dev/console for init's stdio before devtmpfs is mounted.
    w.char_dev("dev/console", 0o600, 5, 1)?;
    w.file("init", 0o755, agent)?;
    for (list_path, modules) in [
        (MODULE_LIST, modules),
        (SHARE_MODULE_LIST, share_modules),
        (NET_MODULE_LIST, net_modules),
    ] {
        let mut list = String::new();
        for (name, data) in modules {
            let path = format!("lib/modules/{name}");
            w.file(&path, 0o644, data)?;
            list.push_str(&format!("/{path}\n"));
        }
        w.file(list_path.trim_start_matches('/'), 0o644, list.as_bytes())?;
    }
    w.finish()
}

/// What makes an archive, beyond the agent and the kernel: bump when [`build`] or the
/// module lists change.
const FORMAT: &str = "berth-initramfs-4 (signatures, BTF and ORC stripped, 9p and net on demand)";

/// Sections a module loads without: its BTF (type information for BPF, which the
/// kernel parses at every load — costly under TCG) and its ORC unwind tables (the
/// unwinder then falls back to frame guessing in stack traces), with their
/// relocations. objcopy (binutils) removes them; without it the module stays whole.
const SLIM_SECTIONS: &[&str] = &[".BTF", ".orc_unwind", ".orc_unwind_ip"];

/// `ko` without [`SLIM_SECTIONS`], or as it is if objcopy fails or is missing.
fn slim(ko: Vec<u8>) -> Vec<u8> {
    let attempt = || -> std::io::Result<Option<Vec<u8>>> {
        let dir = tempfile::tempdir()?;
        let (input, output) = (dir.path().join("in.ko"), dir.path().join("out.ko"));
        std::fs::write(&input, &ko)?;
        let mut cmd = std::process::Command::new("objcopy");
        for section in SLIM_SECTIONS {
            cmd.arg(format!("--remove-section={section}"));
        }
        let status = cmd
            .arg(&input)
            .arg(&output)
            .stderr(std::process::Stdio::null())
            .status()?;
        status.success().then(|| std::fs::read(&output)).transpose()
    };
    match attempt() {
        Ok(Some(slim)) => slim,
        _ => ko,
    }
}

/// The initramfs for `kernel` and `agent` in `cache_dir`, built if not there yet (written
/// to a temp file and renamed). Named by a hash of the agent, the kernel's release and
/// modules directory, the module lists and [`FORMAT`]: a kernel cache holds one release
/// and does not change, so a cached archive is found without walking its modules (a
/// few thousand files).
pub fn cached(kernel: &Kernel, agent: &Path, cache_dir: &Path) -> Result<PathBuf, VmError> {
    let agent_bytes =
        std::fs::read(agent).map_err(|e| VmError::io(format!("reading {}", agent.display()), e))?;
    let mut key = fnv1a(FNV_START, &agent_bytes);
    key = fnv1a(key, kernel.version.as_bytes());
    key = fnv1a(key, kernel.modules_dir.as_os_str().as_encoded_bytes());
    let lists = GUEST_MODULES.iter().chain(&["|"]).chain(SHARE_MODULES);
    for name in lists.chain(&["|"]).chain(NET_MODULES) {
        key = fnv1a(fnv1a(key, name.as_bytes()), b",");
    }
    key = fnv1a(key, FORMAT.as_bytes());
    let path = cache_dir.join(format!("initramfs-{key:016x}.cpio"));
    if path.is_file() {
        return Ok(path);
    }
    let boot = kernel.module_files(GUEST_MODULES)?;
    let share: Vec<PathBuf> = kernel
        .module_files(SHARE_MODULES)?
        .into_iter()
        .filter(|p| !boot.contains(p))
        .collect();
    let read = |paths: &[PathBuf]| -> Result<Vec<(String, Vec<u8>)>, VmError> {
        paths
            .iter()
            .map(|path| {
                let data = std::fs::read(path)
                    .map_err(|e| VmError::io(format!("reading {}", path.display()), e))?;
                let data = slim(strip_signature(&data).to_vec());
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                Ok((name.into_owned(), data))
            })
            .collect()
    };
    let net: Vec<PathBuf> = kernel
        .module_files(NET_MODULES)?
        .into_iter()
        .filter(|p| !boot.contains(p))
        .collect();
    let (modules, share_modules, net_modules) = (read(&boot)?, read(&share)?, read(&net)?);
    std::fs::create_dir_all(cache_dir)
        .map_err(|e| VmError::io(format!("creating {}", cache_dir.display()), e))?;
    let data = build(&agent_bytes, &modules, &share_modules, &net_modules)
        .map_err(|e| VmError::io("writing the initramfs", e))?;
    let mut tmp = tempfile::NamedTempFile::new_in(cache_dir)
        .map_err(|e| VmError::io(format!("creating a file in {}", cache_dir.display()), e))?;
    tmp.write_all(&data)
        .map_err(|e| VmError::io("writing the initramfs", e))?;
    tmp.persist(&path)
        .map_err(|e| VmError::io(format!("renaming to {}", path.display()), e.error))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_lists_modules_in_order() {
        let mods = vec![
            ("b.ko".to_owned(), b"B".to_vec()),
            ("a.ko".to_owned(), b"A".to_vec()),
        ];
        let share = vec![("c.ko".to_owned(), b"C".to_vec())];
        let net = vec![("d.ko".to_owned(), b"D".to_vec())];
        let out = build(b"\x7fELF", &mods, &share, &net).unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("/lib/modules/b.ko\n/lib/modules/a.ko\n"));
        assert!(text.contains("lib/modules/berth-9p.list\0"));
        assert!(text.contains("/lib/modules/c.ko\n"));
        assert!(text.contains("lib/modules/berth-net.list\0"));
        assert!(text.contains("/lib/modules/d.ko\n"));
        assert!(text.contains("init\0"));
        assert!(out.len().is_multiple_of(4));
        assert!(text.contains("TRAILER!!!"));
    }

    #[test]
    fn slim_drops_btf_and_orc_or_keeps_what_it_cannot_read() {
        assert_eq!(slim(b"not an ELF file".to_vec()), b"not an ELF file");
        let Ok(kernel) = crate::Kernel::locate(None) else {
            eprintln!("SKIP (part): no kernel cache to take a module from");
            return;
        };
        let Some(ko) = kernel
            .module_files(&["crc16"])
            .ok()
            .and_then(|f| std::fs::read(f.first()?).ok())
        else {
            panic!("the kernel cache has no crc16 module");
        };
        let ko = strip_signature(&ko).to_vec();
        let slimmed = slim(ko.clone());
        let has = |data: &[u8], name: &[u8]| data.windows(name.len()).any(|w| w == name);
        assert!(has(&ko, b".orc_unwind_ip\0"));
        assert!(!has(&slimmed, b".orc_unwind_ip\0") && !has(&slimmed, b".BTF\0"));
        assert!(slimmed.len() < ko.len());
    }

    #[test]
    fn signatures_are_stripped() {
        let mut ko = b"\x7fELF body".to_vec();
        let plain = ko.clone();
        ko.extend_from_slice(b"SIGNATURE");
        ko.extend_from_slice(&[0, 0, 2, 0, 0, 0, 0, 0]);
        ko.extend_from_slice(&9u32.to_be_bytes());
        ko.extend_from_slice(SIG_MARKER);
        assert_eq!(strip_signature(&ko), plain);
        assert_eq!(strip_signature(&plain), plain);
        assert_eq!(strip_signature(SIG_MARKER), SIG_MARKER);
    }

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a(FNV_START, b""), FNV_START);
        assert_eq!(fnv1a(FNV_START, b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
