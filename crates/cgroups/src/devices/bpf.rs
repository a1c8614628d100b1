//! The cgroup v2 device controller: a BPF_PROG_TYPE_CGROUP_DEVICE program generated from
//! the device rules, loaded and attached with the raw bpf(2) syscall.
//!
//! The program reads `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`
//! (access_type = access << 16 | type) and checks the rules from last to first; the first
//! match returns its verdict (1 allow, 0 deny), nothing matching denies.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;

use super::{DeviceKind, DeviceRule};
use crate::error::{errno_of, CgroupError};

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpfInsn {
    pub code: u8,
    /// dst_reg in the low nibble, src_reg in the high nibble.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcodes used (from linux/bpf_common.h and linux/bpf.h).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X (32-bit)
const ALU_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const ALU_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const ALU64_MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JMP_JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JMP_JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

// BPF_DEVCG_DEV_*.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

// Registers: r1 ctx, r2 access_type, r3 type, r4 access, r5 major, r6 minor, r0 scratch.
const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> BpfInsn {
    BpfInsn {
        code,
        regs: dst | (src << 4),
        off,
        imm,
    }
}

/// Generate the filter program for `rules` (see [`super::effective_rules`]).
pub fn device_filter(rules: &[DeviceRule]) -> Vec<BpfInsn> {
    let mut p = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU_MOV_X, 3, 2, 0, 0),
        insn(ALU_AND_K, 3, 0, 0, 0xffff),
        insn(ALU_MOV_X, 4, 2, 0, 0),
        insn(ALU_RSH_K, 4, 0, 0, 16),
        insn(LDX_MEM_W, 5, 1, 4, 0),
        insn(LDX_MEM_W, 6, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        let (block, unconditional) = rule_block(r);
        p.extend(block);
        // The verifier rejects unreachable code: a rule matching every access ends it.
        if unconditional {
            return p;
        }
    }
    p.push(insn(ALU64_MOV_K, 0, 0, 0, 0));
    p.push(insn(JMP_EXIT, 0, 0, 0, 0));
    p
}

/// Instructions for one rule; every failed check jumps past the end of the block. The
/// flag is true when the rule has no check at all (it matches every access).
fn rule_block(r: &DeviceRule) -> (Vec<BpfInsn>, bool) {
    // Conditional jumps get their offset fixed up once the block length is known.
    let mut b: Vec<BpfInsn> = Vec::with_capacity(8);
    let mut jumps = Vec::new();
    match r.kind {
        DeviceKind::All => {}
        DeviceKind::Char => {
            jumps.push(b.len());
            b.push(insn(JMP_JNE_K, 3, 0, 0, DEV_CHAR));
        }
        DeviceKind::Block => {
            jumps.push(b.len());
            b.push(insn(JMP_JNE_K, 3, 0, 0, DEV_BLOCK));
        }
    }
    let all = super::ACC_ALL;
    if r.allow && r.access != all {
        // Every requested bit must be granted: (access & ~granted) == 0.
        b.push(insn(ALU_MOV_X, 0, 4, 0, 0));
        b.push(insn(ALU_AND_K, 0, 0, 0, i32::from(!r.access & all)));
        jumps.push(b.len());
        b.push(insn(JMP_JNE_K, 0, 0, 0, 0));
    } else if !r.allow && r.access != all {
        // Any requested bit denied: (access & denied) != 0.
        b.push(insn(ALU_MOV_X, 0, 4, 0, 0));
        b.push(insn(ALU_AND_K, 0, 0, 0, i32::from(r.access)));
        jumps.push(b.len());
        b.push(insn(JMP_JEQ_K, 0, 0, 0, 0));
    }
    if let Some(major) = r.major {
        jumps.push(b.len());
        b.push(insn(JMP_JNE_K, 5, 0, 0, major as i32));
    }
    if let Some(minor) = r.minor {
        jumps.push(b.len());
        b.push(insn(JMP_JNE_K, 6, 0, 0, minor as i32));
    }
    b.push(insn(ALU64_MOV_K, 0, 0, 0, i32::from(r.allow)));
    b.push(insn(JMP_EXIT, 0, 0, 0, 0));
    let len = b.len();
    let unconditional = jumps.is_empty();
    for j in jumps {
        // Offsets count from the instruction after the jump.
        b[j].off = (len - j - 1) as i16;
    }
    (b, unconditional)
}

/// Loads and attaches device filter programs: the narrow seam between the v2 manager and
/// the kernel, so that fakes can record the programs instead.
pub trait DeviceFilterAttacher: Send + Sync + std::fmt::Debug {
    /// Replace the device filter of the cgroup at `cgroup_dir` with `program`.
    fn attach(&self, cgroup_dir: &Path, program: &[BpfInsn]) -> Result<(), CgroupError>;
}

/// The real kernel.
#[derive(Debug, Default, Clone, Copy)]
pub struct KernelAttacher;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;

/// The BPF_PROG_LOAD part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The BPF_PROG_ATTACH part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

fn load(program: &[BpfInsn], log: &mut [u8]) -> Result<OwnedFd, Errno> {
    static LICENSE: &[u8] = b"Apache\0";
    let mut name = [0u8; 16];
    name[..12].copy_from_slice(b"berth_device");
    let attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: program.len() as u32,
        insns: program.as_ptr() as u64,
        license: LICENSE.as_ptr() as u64,
        log_level: u32::from(!log.is_empty()),
        log_size: log.len() as u32,
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        prog_name: name,
        ..Default::default()
    };
    // SAFETY: `attr` is a properly laid out prefix of `union bpf_attr` for BPF_PROG_LOAD
    // and its size is passed; the instruction array, the NUL-terminated license and the
    // log buffer (with its length) all outlive the call. The kernel only reads the
    // instructions and license and writes at most `log_size` bytes to the log buffer.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &attr as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>(),
        )
    };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: on success bpf(BPF_PROG_LOAD) returns a new file descriptor that nothing
    // else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

impl DeviceFilterAttacher for KernelAttacher {
    fn attach(&self, cgroup_dir: &Path, program: &[BpfInsn]) -> Result<(), CgroupError> {
        let prog = match load(program, &mut []) {
            Ok(fd) => fd,
            Err(errno) => {
                // Load again with the verifier log to say why.
                let mut log = vec![0u8; 64 * 1024];
                let _ = load(program, &mut log);
                let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
                return Err(CgroupError::BpfLoad {
                    errno,
                    log: String::from_utf8_lossy(&log[..end]).into_owned(),
                });
            }
        };
        let dir = File::open(cgroup_dir).map_err(|e| CgroupError::BpfAttach {
            path: cgroup_dir.to_path_buf(),
            errno: errno_of(&e),
        })?;
        // No BPF_F_ALLOW_OVERRIDE or BPF_F_ALLOW_MULTI: attaching again replaces our own
        // program, and nothing below the container's cgroup can loosen it.
        let attr = ProgAttachAttr {
            target_fd: dir.as_raw_fd() as u32,
            attach_bpf_fd: prog.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            attach_flags: 0,
            replace_bpf_fd: 0,
        };
        // SAFETY: `attr` is a properly laid out prefix of `union bpf_attr` for
        // BPF_PROG_ATTACH and its size is passed; both descriptors are open for the
        // duration of the call. The kernel only reads `attr`.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_ATTACH,
                &attr as *const ProgAttachAttr,
                std::mem::size_of::<ProgAttachAttr>(),
            )
        };
        if rc < 0 {
            return Err(CgroupError::BpfAttach {
                path: cgroup_dir.to_path_buf(),
                errno: Errno::last(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{allows, effective_rules, ACC_MKNOD, ACC_READ, ACC_WRITE};
    use super::*;
    use oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxDeviceType};

    /// A tiny interpreter for the opcodes the generator emits.
    fn run(p: &[BpfInsn], typ: u32, access: u32, major: u32, minor: u32) -> u64 {
        let ctx = [(access << 16) | typ, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = p[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            let imm = i.imm as i64 as u64;
            pc += 1;
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(src, 1, "loads only from ctx");
                    r[dst] = u64::from(ctx[(i.off / 4) as usize]);
                }
                ALU_MOV_X => r[dst] = r[src] & 0xffff_ffff,
                ALU_AND_K => r[dst] = (r[dst] & imm) & 0xffff_ffff,
                ALU_RSH_K => r[dst] = (r[dst] & 0xffff_ffff) >> imm,
                ALU64_MOV_K => r[dst] = imm,
                JMP_JNE_K => {
                    if r[dst] != imm {
                        pc = (pc as i64 + i64::from(i.off)) as usize;
                    }
                }
                JMP_JEQ_K => {
                    if r[dst] == imm {
                        pc = (pc as i64 + i64::from(i.off)) as usize;
                    }
                }
                JMP_EXIT => return r[0],
                c => panic!("unexpected opcode {c:#x}"),
            }
        }
    }

    #[test]
    fn program_matches_rule_semantics() {
        let spec = [
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::C)
                .major(10)
                .minor(200)
                .access("rw")
                .build()
                .unwrap(),
            LinuxDeviceCgroupBuilder::default()
                .allow(false)
                .typ(LinuxDeviceType::C)
                .major(10)
                .minor(200)
                .access("w")
                .build()
                .unwrap(),
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::B)
                .major(8)
                .access("r")
                .build()
                .unwrap(),
        ];
        let rules = effective_rules(&spec);
        let prog = device_filter(&rules);
        for (kind, typ) in [(DeviceKind::Char, 2), (DeviceKind::Block, 1)] {
            for major in [1, 5, 8, 10, 136, 250] {
                for minor in [0, 1, 3, 5, 9, 11, 200] {
                    for access in 1..=7u8 {
                        let want = allows(&rules, kind, major, minor, access);
                        let got = run(&prog, typ, u32::from(access), major, minor);
                        assert_eq!(
                            got,
                            u64::from(want),
                            "{kind:?} {major}:{minor} access {access}"
                        );
                    }
                }
            }
        }
        assert_eq!(run(&prog, 2, u32::from(ACC_READ | ACC_WRITE), 1, 3), 1);
        assert_eq!(run(&prog, 1, u32::from(ACC_READ), 8, 1), 1);
        assert_eq!(run(&prog, 1, u32::from(ACC_WRITE), 8, 1), 0);
        assert_eq!(run(&prog, 2, u32::from(ACC_MKNOD), 99, 1), 1);
    }

    #[test]
    fn allow_all_program() {
        let all = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .access("rwm")
            .build()
            .unwrap();
        let rules = effective_rules(&[all]);
        let prog = device_filter(&rules);
        // Nothing after the default rules and the allow-all one is reachable.
        let defaults: usize = rules[2..].iter().map(|r| rule_block(r).0.len()).sum();
        assert_eq!(prog.len(), 7 + defaults + 2);
        assert_eq!(run(&prog, 1, 6, 8, 0), 1);
        assert_eq!(run(&prog, 2, 7, 4, 64), 1);
    }
}
