//! Filters loaded into the real kernel, each in a child process (see
//! `common::in_child`): the syscalls it then makes show what the filter does.

mod common;

use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;

use common::*;
use libseccomp::{ScmpNotifReq, ScmpNotifResp, ScmpNotifRespFlags, ScmpSyscall};
use serde_json::json;

fn load(v: serde_json::Value) -> Result<Option<std::os::fd::OwnedFd>, String> {
    let filter = berth_seccomp::compile(&profile(v)).map_err(|e| e.to_string())?;
    filter
        .load()
        .map_err(|e| format!("{e}: {:?}", std::error::Error::source(&e)))
}

/// A fresh path under /tmp that a blocked mkdirat must not create.
fn scratch() -> std::ffi::CString {
    let p = std::env::temp_dir().join(format!("berth-seccomp-{}", std::process::id()));
    std::ffi::CString::new(p.into_os_string().into_encoded_bytes()).unwrap()
}

#[test]
fn errno_rule_blocks_with_eperm_or_its_errno_ret() {
    let out = in_child("errno_rule_blocks_with_eperm_or_its_errno_ret", || {
        set_no_new_privs()?;
        load(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdirat"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
            ],
        }))?;
        expect_errno("mkdirat", mkdirat(&scratch()), libc::EPERM)?;
        expect_errno("getppid", sys(libc::SYS_getppid, [0; 4]), 38)?;
        expect_ok("getpid", sys(libc::SYS_getpid, [0; 4]))?;
        Ok(())
    });
    assert_ok(&out);
}

#[test]
fn default_errno_ret_applies_to_unlisted_syscalls() {
    let out = in_child("default_errno_ret_applies_to_unlisted_syscalls", || {
        set_no_new_privs()?;
        // Deny by default, allowing what the child does after loading:
        // the calls under test, allocating, writing an error, exiting.
        load(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 95,
            "syscalls": [{"names": ["getpid", "exit_group", "exit", "write", "brk", "mmap",
                "munmap", "mremap", "madvise", "futex", "rt_sigprocmask", "sigaltstack"],
                "action": "SCMP_ACT_ALLOW"}],
        }))?;
        expect_errno("getppid", sys(libc::SYS_getppid, [0; 4]), libc::EOPNOTSUPP)?;
        expect_errno("mkdirat", mkdirat(&scratch()), libc::EOPNOTSUPP)?;
        expect_ok("getpid", sys(libc::SYS_getpid, [0; 4]))?;
        Ok(())
    });
    assert_ok(&out);
}

#[test]
fn arg_conditions_select_the_calls() {
    let out = in_child("arg_conditions_select_the_calls", || {
        set_no_new_privs()?;
        load(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                // socket(AF_INET, ...) only.
                {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                 "args": [{"index": 0, "value": libc::AF_INET, "op": "SCMP_CMP_EQ"}]},
                // personality(0xffffffff) (the query) only.
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
                 "args": [{"index": 0, "value": 0xffffffffu64, "op": "SCMP_CMP_EQ"}]},
                // umask(m) when m & 07 == 07.
                {"names": ["umask"], "action": "SCMP_ACT_ERRNO",
                 "args": [{"index": 0, "value": 0o7, "valueTwo": 0o7,
                           "op": "SCMP_CMP_MASKED_EQ"}]},
                // getpgid(pid) when 5 < pid <= 10: two indexes, ANDed.
                {"names": ["getpgid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 3,
                 "args": [{"index": 0, "value": 5, "op": "SCMP_CMP_GT"},
                          {"index": 1, "value": 0, "op": "SCMP_CMP_EQ"}]},
            ],
        }))?;
        let sock = |family: i32| {
            sys(
                libc::SYS_socket,
                [family as u64, libc::SOCK_STREAM as u64, 0, 0],
            )
        };
        expect_errno("socket(AF_INET)", sock(libc::AF_INET), libc::EACCES)?;
        expect_ok("socket(AF_UNIX)", sock(libc::AF_UNIX))?;
        expect_errno(
            "personality(query)",
            sys(libc::SYS_personality, [0xffffffff, 0, 0, 0]),
            22,
        )?;
        expect_ok(
            "personality(PER_LINUX)",
            sys(libc::SYS_personality, [0, 0, 0, 0]),
        )?;
        expect_errno(
            "umask(027)",
            sys(libc::SYS_umask, [0o027, 0, 0, 0]),
            libc::EPERM,
        )?;
        expect_ok("umask(022)", sys(libc::SYS_umask, [0o022, 0, 0, 0]))?;
        expect_errno(
            "getpgid(1000000)",
            sys(libc::SYS_getpgid, [1_000_000, 0, 0, 0]),
            3,
        )?;
        expect_ok("getpgid(0)", sys(libc::SYS_getpgid, [0, 0, 0, 0]))?;
        Ok(())
    });
    assert_ok(&out);
}

#[test]
fn a_repeated_arg_index_ors_its_conditions() {
    let out = in_child("a_repeated_arg_index_ors_its_conditions", || {
        set_no_new_privs()?;
        load(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
                "args": [{"index": 0, "value": libc::AF_INET, "op": "SCMP_CMP_EQ"},
                         {"index": 0, "value": libc::AF_INET6, "op": "SCMP_CMP_EQ"}]}],
        }))?;
        let sock = |family: i32| {
            sys(
                libc::SYS_socket,
                [family as u64, libc::SOCK_DGRAM as u64, 0, 0],
            )
        };
        expect_errno("socket(AF_INET)", sock(libc::AF_INET), libc::EACCES)?;
        expect_errno("socket(AF_INET6)", sock(libc::AF_INET6), libc::EACCES)?;
        expect_ok("socket(AF_UNIX)", sock(libc::AF_UNIX))?;
        Ok(())
    });
    assert_ok(&out);
}

#[test]
fn kill_process_kills_with_sigsys() {
    let out = in_child("kill_process_kills_with_sigsys", || {
        set_no_new_privs()?;
        load(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_KILL_PROCESS"}],
        }))?;
        let _ = sys(libc::SYS_getppid, [0; 4]);
        Err("still alive after getppid".into())
    });
    assert_eq!(out.status.signal(), Some(libc::SIGSYS), "{out:?}");
}

#[test]
fn trap_raises_sigsys() {
    let out = in_child("trap_raises_sigsys", || {
        set_no_new_privs()?;
        load(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_TRAP"}],
        }))?;
        let _ = sys(libc::SYS_getppid, [0; 4]);
        Err("still alive after getppid".into())
    });
    assert_eq!(out.status.signal(), Some(libc::SIGSYS), "{out:?}");
}

#[test]
fn log_lets_the_call_through() {
    let out = in_child("log_lets_the_call_through", || {
        set_no_new_privs()?;
        load(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_LOG"],
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_LOG"}],
        }))?;
        expect_ok("getppid", sys(libc::SYS_getppid, [0; 4]))?;
        Ok(())
    });
    assert_ok(&out);
}

#[test]
fn notify_hands_calls_to_a_supervisor() {
    let out = in_child("notify_hands_calls_to_a_supervisor", || {
        set_no_new_privs()?;
        let fd = load(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/unused.sock",
            "syscalls": [{"names": ["mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
        }))?
        .ok_or("no notify fd")?;
        let raw = fd.as_raw_fd();
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() } as u32;
        let supervisor = std::thread::spawn(move || -> Result<(u32, ScmpSyscall), String> {
            let req = ScmpNotifReq::receive(raw).map_err(|e| format!("receive: {e}"))?;
            ScmpNotifResp::new_error(req.id, -libc::EXDEV, ScmpNotifRespFlags::empty())
                .respond(raw)
                .map_err(|e| format!("respond: {e}"))?;
            Ok((req.pid, req.data.syscall))
        });
        expect_errno("mkdirat", mkdirat(&scratch()), libc::EXDEV)?;
        let (pid, syscall) = supervisor.join().map_err(|_| "supervisor panicked")??;
        if pid != tid {
            return Err(format!("notification from pid {pid}"));
        }
        if syscall != ScmpSyscall::from_name("mkdirat").unwrap() {
            return Err(format!("notification for {syscall:?}"));
        }
        expect_ok("getpid", sys(libc::SYS_getpid, [0; 4]))?;
        Ok(())
    });
    assert_ok(&out);
}

#[test]
fn tsync_filters_threads_started_before_the_load() {
    let out = in_child("tsync_filters_threads_started_before_the_load", || {
        set_no_new_privs()?;
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || {
            go_rx.recv().unwrap();
            sys(libc::SYS_getppid, [0; 4])
        });
        load(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_TSYNC"],
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}],
        }))?;
        go_tx.send(()).unwrap();
        expect_errno(
            "getppid in the other thread",
            other.join().unwrap(),
            libc::EPERM,
        )
    });
    assert_ok(&out);
}

#[test]
fn load_leaves_no_new_privs_alone() {
    let out = in_child("load_leaves_no_new_privs_alone", || {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("not root: loading without no_new_privs needs CAP_SYS_ADMIN, skipped");
            return Ok(());
        }
        load(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}]}))?;
        if no_new_privs() {
            return Err("loading set no_new_privs".into());
        }
        expect_errno("getppid", sys(libc::SYS_getppid, [0; 4]), libc::EPERM)
    });
    assert_ok(&out);
}

#[test]
fn load_without_no_new_privs_or_cap_sys_admin_fails() {
    let out = in_child("load_without_no_new_privs_or_cap_sys_admin_fails", || {
        // SAFETY: setuid has no memory-safety preconditions.
        if unsafe { libc::getuid() } == 0 && unsafe { libc::setuid(65534) } != 0 {
            return Err(format!("setuid: {}", std::io::Error::last_os_error()));
        }
        let filter = berth_seccomp::compile(&profile(json!({"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["getppid"], "action": "SCMP_ACT_ERRNO"}]})))
        .map_err(|e| e.to_string())?;
        match filter.load() {
            Err(e) if e.to_string() == "loading the seccomp filter" => Ok(()),
            other => Err(format!("want a load error, got {other:?}")),
        }
    });
    assert_ok(&out);
}
