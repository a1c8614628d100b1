//! Podman's default profile, as Podman resolves it for x86_64 and its default
//! capabilities (fixtures/podman-default-x86_64.json, made from Debian's
//! containers-common by fixtures/resolve_podman.py), compiles and loads.

mod common;

use common::*;

const PODMAN: &str = include_str!("fixtures/podman-default-x86_64.json");

fn podman() -> oci_spec::runtime::LinuxSeccomp {
    serde_json::from_str(PODMAN).expect("fixture is a valid linux.seccomp")
}

#[test]
fn podman_default_profile_compiles() {
    let filter = berth_seccomp::compile(&podman()).expect("podman's profile compiles");
    assert!(!filter.wants_notify_fd());
}

#[cfg(target_arch = "x86_64")]
#[test]
fn podman_default_profile_loads_and_filters() {
    let out = in_child("podman_default_profile_loads_and_filters", || {
        set_no_new_privs()?;
        berth_seccomp::compile(&podman())
            .map_err(|e| e.to_string())?
            .load()
            .map_err(|e| e.to_string())?;
        // Allowed.
        // SAFETY: utsname is plain old data; uname fills it.
        let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
        // SAFETY: `uts` is a valid, writable utsname.
        if unsafe { libc::uname(&mut uts) } != 0 {
            return Err(format!("uname: errno {}", errno()));
        }
        expect_ok("getpid", sys(libc::SYS_getpid, [0; 4]))?;
        let sock = |domain: i32, ty: i32, proto: u64| {
            sys(libc::SYS_socket, [domain as u64, ty as u64, proto, 0])
        };
        expect_ok("socket(AF_UNIX)", sock(libc::AF_UNIX, libc::SOCK_STREAM, 0))?;
        // personality: only the listed personas.
        expect_ok(
            "personality(query)",
            sys(libc::SYS_personality, [0xffffffff, 0, 0, 0]),
        )?;
        // Refused by an explicit rule: EPERM.
        expect_errno("kexec_load", sys(libc::SYS_kexec_load, [0; 4]), libc::EPERM)?;
        expect_errno("acct", sys(libc::SYS_acct, [0; 4]), libc::EPERM)?;
        // Without CAP_AUDIT_WRITE: audit netlink sockets get EINVAL.
        expect_errno(
            "socket(AF_NETLINK, NETLINK_AUDIT)",
            sock(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_AUDIT as u64),
            libc::EINVAL,
        )?;
        // Unlisted: the default action, ENOSYS (defaultErrnoRet 38).
        expect_errno("add_key", sys(libc::SYS_add_key, [0; 4]), libc::ENOSYS)?;
        expect_errno(
            "personality(READ_IMPLIES_EXEC)",
            sys(libc::SYS_personality, [0x0400000, 0, 0, 0]),
            libc::ENOSYS,
        )?;
        Ok(())
    });
    assert_ok(&out);
}
