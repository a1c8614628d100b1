//! Runs a command in a micro-VM, for trying berth-vm by hand and for benchmarks:
//!
//! ```text
//! BERTH_GUEST_AGENT=path/to/static/berth-guest-agent \
//!     cargo run -p berth-vm --example vm-run -- ROOTFS_DIR COMMAND [ARGS...]
//! ```
//!
//! The command's stdout and stderr are copied to ours; the exit code is the command's
//! (128 + N if killed by signal N). `BERTH_VM_TIMING=1` prints how long each phase took.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use berth_vm::{ExitStatus, RunRequest, Vm, VmConfig};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: vm-run ROOTFS_DIR COMMAND [ARGS...]");
        return ExitCode::from(2);
    }
    let timing = std::env::var_os("BERTH_VM_TIMING").is_some();
    let t0 = Instant::now();
    let phase = |name: &str, since: Instant| {
        if timing {
            eprintln!("vm-run: {name}: {:?}", since.elapsed());
        }
    };
    let vm = match Vm::new(VmConfig::default()) {
        Ok(vm) => vm,
        Err(e) => {
            eprintln!("vm-run: {e}");
            return ExitCode::from(125);
        }
    };
    let mut request = RunRequest::new(args[1..].iter().cloned());
    request.env = vec!["PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into()];
    phase("Vm::new (kernel, initramfs)", t0);
    let t1 = Instant::now();
    let running = match vm.start(Path::new(&args[0]), request) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vm-run: {e}");
            return ExitCode::from(125);
        }
    };
    phase("start (base image, overlay, boot to agent ready)", t1);
    let t2 = Instant::now();
    let result = running.wait();
    phase("wait (run, power off, reap)", t2);
    phase("total", t0);
    match result {
        Ok(out) => {
            let _ = std::io::stdout().write_all(&out.stdout);
            let _ = std::io::stderr().write_all(&out.stderr);
            let code = match out.status {
                ExitStatus::Code(c) => c,
                ExitStatus::Signal(s) => 128 + s,
            };
            ExitCode::from(code.clamp(0, 255) as u8)
        }
        Err(e) => {
            eprintln!("vm-run: {e}");
            ExitCode::from(125)
        }
    }
}
