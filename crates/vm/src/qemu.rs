//! The QEMU command line for a microvm, and the choice of accelerator.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use berth_guest_agent::protocol::{CONTROL_PORT, STDERR_PORT, STDIN_PORT, STDOUT_PORT};

/// How QEMU runs the guest's CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation through /dev/kvm.
    Kvm,
    /// QEMU's binary translator: slow but works everywhere.
    Tcg,
}

impl Accel {
    /// `$BERTH_VM_ACCEL` (`kvm` or `tcg`) if set, else KVM when the CPU has vmx/svm and
    /// /dev/kvm opens read-write, else TCG. (A paravirtual /dev/kvm without vmx/svm, as
    /// on some cloud hosts, cannot boot stock kernels: it gets TCG.)
    pub fn detect() -> Self {
        if let Some(accel) = std::env::var("BERTH_VM_ACCEL")
            .ok()
            .and_then(|a| a.parse().ok())
        {
            return accel;
        }
        let cpu_flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let has_vt = cpu_flags
            .lines()
            .filter(|l| l.starts_with("flags"))
            .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
        let kvm_opens = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        if has_vt && kvm_opens {
            Self::Kvm
        } else {
            Self::Tcg
        }
    }

    /// `kvm` or `tcg`, as QEMU's `-accel` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Kvm => "kvm",
            Self::Tcg => "tcg",
        }
    }
}

/// A one-line notice when VMs will run under TCG because KVM is not usable (none
/// when KVM works or `$BERTH_VM_ACCEL` chose).
pub fn accel_notice() -> Option<&'static str> {
    (std::env::var_os("BERTH_VM_ACCEL").is_none() && Accel::detect() == Accel::Tcg).then_some(
        "berth: KVM is not usable here (no vmx/svm, or no /dev/kvm): the VM runs under \
         TCG, slowly (--accel to choose)",
    )
}

impl std::str::FromStr for Accel {
    type Err = String;

    /// Parses `kvm` or `tcg` (for a `--accel` option).
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "kvm" => Ok(Self::Kvm),
            "tcg" => Ok(Self::Tcg),
            other => Err(format!(
                "unknown accelerator {other:?} (expected kvm or tcg)"
            )),
        }
    }
}

/// The host's TSC frequency in kHz as the kernel measured it (`cpu MHz` of the first
/// CPU), or 2 GHz: passed as `tsc_early_khz` so the guest does not hang calibrating.
pub fn tsc_khz() -> u64 {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("cpu MHz")?
                    .split(':')
                    .nth(1)?
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
        })
        .map(|mhz| (mhz * 1000.0) as u64)
        .filter(|&k| k > 0)
        .unwrap_or(2_000_000)
}

/// Everything one VM's command line depends on.
#[derive(Debug, Clone)]
pub struct QemuArgs {
    /// Accelerator.
    pub accel: Accel,
    /// PVH-bootable kernel.
    pub kernel: PathBuf,
    /// Initramfs.
    pub initrd: PathBuf,
    /// Root disk (qcow2).
    pub disk: PathBuf,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Virtual CPUs.
    pub cpus: u32,
    /// The VM's directory: stdout/stderr and console files live here. QEMU runs with
    /// it as its working directory and the sockets are named relative to it, so that
    /// their paths stay under the 108 bytes a unix socket address holds.
    pub dir: PathBuf,
    /// Host directories shared with the guest over virtio-9p.
    pub shares: Vec<Share>,
    /// The command's stdout and stderr go to unix sockets (`stdout.sock`,
    /// `stderr.sock`) the host reads live, instead of files; its stdin (`-i`) comes
    /// from `stdin.sock`.
    pub live_output: bool,
    /// A virtio-net device on a tap QEMU inherits open.
    pub net: Option<NetDevice>,
}

/// A virtio-net device backed by a tap whose fd QEMU inherits (`-netdev tap,fd=N`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetDevice {
    /// The tap's fd number in QEMU.
    pub fd: i32,
    /// The guest's MAC address.
    pub mac: String,
}

/// A host directory the guest mounts over virtio-9p (tag = `mount_tag`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// The host directory.
    pub source: PathBuf,
    /// The 9p mount tag the guest mounts by.
    pub tag: String,
    /// QEMU refuses writes.
    pub readonly: bool,
}

/// Names (relative to the VM's directory) of the sockets QEMU listens on.
pub const CONTROL_SOCKET: &str = "control.sock";
/// QMP.
pub const QMP_SOCKET: &str = "qmp.sock";
/// The command's stdout with `live_output`.
pub const STDOUT_SOCKET: &str = "stdout.sock";
/// The command's stderr with `live_output`.
pub const STDERR_SOCKET: &str = "stderr.sock";
/// The command's stdin with `live_output`: closing the connection is its end of file.
pub const STDIN_SOCKET: &str = "stdin.sock";

/// Files in the VM's directory.
pub fn control_socket(dir: &Path) -> PathBuf {
    dir.join(CONTROL_SOCKET)
}
/// QMP socket in the VM's directory.
pub fn qmp_socket(dir: &Path) -> PathBuf {
    dir.join(QMP_SOCKET)
}
/// File receiving the command's stdout.
pub fn stdout_file(dir: &Path) -> PathBuf {
    dir.join("stdout")
}
/// File receiving the command's stderr.
pub fn stderr_file(dir: &Path) -> PathBuf {
    dir.join("stderr")
}
/// File receiving the guest's serial console (kernel messages).
pub fn console_file(dir: &Path) -> PathBuf {
    dir.join("console.log")
}

impl QemuArgs {
    /// The kernel command line: console on the serial port, quiet, a guest panic ends
    /// QEMU (with `-no-reboot`), the agent as init. ACPI stays on: microvm describes its
    /// virtio-mmio devices there.
    /// `$BERTH_VM_APPEND` is added at the end (for debugging: `ignore_loglevel`…).
    pub fn cmdline(&self) -> String {
        let mut line = format!(
            "console=ttyS0 quiet panic=-1 rdinit=/init tsc_early_khz={} \
             8250.nr_uarts=1 i8042.noaux i8042.nokbd",
            tsc_khz()
        );
        if let Ok(extra) = std::env::var("BERTH_VM_APPEND") {
            line.push(' ');
            line.push_str(&extra);
        }
        line
    }

    /// Arguments after `qemu-system-x86_64`.
    pub fn to_args(&self) -> Vec<OsString> {
        let d = &self.dir;
        let p = |p: PathBuf| p.display().to_string();
        let mut a: Vec<String> = vec![
            "-machine".into(),
            "microvm,mem-merge=on".into(),
            "-accel".into(),
            match self.accel {
                // The translation cache is 1 GiB by default: bounded, it fits the
                // VM's cgroup.
                Accel::Tcg => "tcg,tb-size=128".into(),
                Accel::Kvm => "kvm".into(),
            },
            "-nodefaults".into(),
            "-no-user-config".into(),
            "-nographic".into(),
            "-no-reboot".into(),
            "-m".into(),
            self.memory_mib.to_string(),
            "-smp".into(),
            self.cpus.max(1).to_string(),
            "-kernel".into(),
            p(self.kernel.clone()),
            "-initrd".into(),
            p(self.initrd.clone()),
            "-append".into(),
            self.cmdline(),
            "-serial".into(),
            format!("file:{}", p(console_file(d))),
            "-device".into(),
            // Port 0 is reserved (a console's): control, stdout, stderr, stdin.
            "virtio-serial-device,max_ports=5".into(),
            "-chardev".into(),
            format!("socket,id=ctl,path={CONTROL_SOCKET},server=on,wait=off"),
            "-device".into(),
            format!("virtserialport,chardev=ctl,name={CONTROL_PORT}"),
        ];
        let outputs = [
            ("out", STDOUT_PORT, STDOUT_SOCKET, stdout_file(d)),
            ("err", STDERR_PORT, STDERR_SOCKET, stderr_file(d)),
        ];
        for (id, port, socket, file) in outputs {
            a.push("-chardev".into());
            a.push(if self.live_output {
                format!("socket,id={id},path={socket},server=on,wait=off")
            } else {
                format!("file,id={id},path={}", p(file))
            });
            a.push("-device".into());
            a.push(format!("virtserialport,chardev={id},name={port}"));
        }
        if self.live_output {
            a.push("-chardev".into());
            a.push(format!(
                "socket,id=in,path={STDIN_SOCKET},server=on,wait=off"
            ));
            a.push("-device".into());
            a.push(format!("virtserialport,chardev=in,name={STDIN_PORT}"));
        }
        a.extend([
            "-drive".into(),
            format!(
                "id=root,file={},format=qcow2,if=none,cache=unsafe",
                p(self.disk.clone())
            ),
            "-device".into(),
            "virtio-blk-device,drive=root".into(),
            "-qmp".into(),
            format!("unix:{QMP_SOCKET},server=on,wait=off"),
        ]);
        for (i, share) in self.shares.iter().enumerate() {
            a.push("-fsdev".into());
            a.push(format!(
                "local,id=fs{i},path={},security_model=none{}",
                p(share.source.clone()).replace(',', ",,"),
                if share.readonly { ",readonly=on" } else { "" }
            ));
            a.push("-device".into());
            a.push(format!(
                "virtio-9p-device,fsdev=fs{i},mount_tag={}",
                share.tag
            ));
        }
        if let Some(net) = &self.net {
            a.push("-netdev".into());
            a.push(format!("tap,id=net0,fd={}", net.fd));
            a.push("-device".into());
            a.push(format!("virtio-net-device,netdev=net0,mac={}", net.mac));
        }
        if self.accel == Accel::Kvm {
            a.extend(["-cpu".into(), "host".into()]);
        }
        a.into_iter().map(OsString::from).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_has_the_microvm_devices() {
        let args = QemuArgs {
            accel: Accel::Tcg,
            kernel: "/k/vmlinux".into(),
            initrd: "/c/initramfs".into(),
            disk: "/run/vm/root.qcow2".into(),
            memory_mib: 256,
            cpus: 2,
            dir: "/run/vm".into(),
            shares: vec![Share {
                source: "/srv/data".into(),
                tag: "berth0".into(),
                readonly: true,
            }],
            live_output: true,
            net: Some(NetDevice {
                fd: 3,
                mac: "02:b5:0a:00:00:02".into(),
            }),
        };
        let line: Vec<String> = args
            .to_args()
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        let joined = line.join(" ");
        assert!(joined.contains("-machine microvm,mem-merge=on -accel tcg"));
        assert!(joined.contains("-no-reboot"));
        assert!(joined.contains("virtserialport,chardev=ctl,name=berth.control"));
        assert!(joined.contains("socket,id=ctl,path=control.sock,server=on,wait=off"));
        assert!(joined.contains("socket,id=out,path=stdout.sock,server=on,wait=off"));
        assert!(joined.contains(
            "socket,id=in,path=stdin.sock,server=on,wait=off \
             -device virtserialport,chardev=in,name=berth.stdin"
        ));
        assert!(joined.contains("virtio-blk-device,drive=root"));
        assert!(joined.contains("-qmp unix:qmp.sock,server=on,wait=off"));
        assert!(joined.contains("-smp 2"));
        assert!(joined.contains(
            "-netdev tap,id=net0,fd=3 -device virtio-net-device,netdev=net0,mac=02:b5:0a:00:00:02"
        ));
        assert!(joined.contains(
            "-fsdev local,id=fs0,path=/srv/data,security_model=none,readonly=on \
             -device virtio-9p-device,fsdev=fs0,mount_tag=berth0"
        ));
        let cmdline = &line[line.iter().position(|a| a == "-append").unwrap() + 1];
        assert!(cmdline.contains("panic=-1") && cmdline.contains("tsc_early_khz="));
        assert!(!cmdline.contains("acpi=off"));
        assert!(!joined.contains("-cpu host"));
    }

    #[test]
    fn accel_parses() {
        assert_eq!("kvm".parse::<Accel>(), Ok(Accel::Kvm));
        assert_eq!("tcg".parse::<Accel>(), Ok(Accel::Tcg));
        assert!("hvf".parse::<Accel>().is_err());
    }

    #[test]
    fn tsc_is_positive() {
        assert!(tsc_khz() > 0);
    }
}
