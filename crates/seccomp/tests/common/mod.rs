//! Running a test body in a fresh process, so a loaded filter (or a death by
//! SIGSYS) stays there. The child is this same test binary, re-run with only
//! that test, told by an environment variable to run the body.

#![allow(dead_code)]

use std::ffi::CStr;
use std::process::{Command, Output};

use oci_spec::runtime::LinuxSeccomp;

const CHILD_ENV: &str = "BERTH_SECCOMP_TEST_CHILD";

/// In the parent: re-runs test `name` in a child and returns how it ended.
/// In that child: runs `body` and exits 0 if it returned Ok, else prints the
/// error and exits 1; never returns.
pub fn in_child(name: &str, body: impl FnOnce() -> Result<(), String>) -> Output {
    if std::env::var(CHILD_ENV).as_deref() == Ok(name) {
        let code = match body() {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("child {name}: {e}");
                1
            }
        };
        // SAFETY: _exit ends the process at once; nothing in this process
        // needs its destructors or atexit handlers to run.
        unsafe { libc::_exit(code) }
    }
    Command::new(std::env::current_exe().expect("test binary path"))
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD_ENV, name)
        .output()
        .expect("re-running the test binary")
}

/// Asserts the child exited 0, showing its stderr otherwise.
pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "child failed: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn profile(v: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(v).expect("valid linux.seccomp JSON")
}

pub fn set_no_new_privs() -> Result<(), String> {
    // SAFETY: prctl with PR_SET_NO_NEW_PRIVS takes plain integers.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if rc != 0 {
        return Err(format!("no_new_privs: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

pub fn no_new_privs() -> bool {
    // SAFETY: prctl with PR_GET_NO_NEW_PRIVS takes plain integers.
    unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1 }
}

/// The errno of the last libc call.
pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Calls syscall `nr` with `args`: its return value or its errno.
pub fn sys(nr: libc::c_long, args: [u64; 4]) -> Result<i64, i32> {
    // SAFETY: the tests only pass syscalls whose arguments are integers or
    // pointers to live NUL-terminated strings, or that fail before using them.
    let rc = unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3]) };
    if rc < 0 {
        Err(errno())
    } else {
        Ok(rc)
    }
}

/// mkdirat(AT_FDCWD, path, 0700).
pub fn mkdirat(path: &CStr) -> Result<i64, i32> {
    sys(
        libc::SYS_mkdirat,
        [libc::AT_FDCWD as u64, path.as_ptr() as u64, 0o700, 0],
    )
}

/// Expects `got` to be the errno `want`.
pub fn expect_errno(what: &str, got: Result<i64, i32>, want: i32) -> Result<(), String> {
    match got {
        Err(e) if e == want => Ok(()),
        other => Err(format!("{what}: want errno {want}, got {other:?}")),
    }
}

/// Expects `got` to have succeeded.
pub fn expect_ok(what: &str, got: Result<i64, i32>) -> Result<i64, String> {
    got.map_err(|e| format!("{what}: want success, got errno {e}"))
}
