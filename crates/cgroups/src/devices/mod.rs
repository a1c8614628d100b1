//! Device access rules: v1 writes them to devices.deny/devices.allow, v2 compiles them
//! into an eBPF program ([`bpf`]).
//!
//! The effective rule list is always: deny everything, then the spec's rules in order,
//! then the devices every container gets (/dev/null, /dev/zero, ..., like runc). The
//! last rule matching an access decides.

pub mod bpf;

use std::fmt;
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::CgroupError;
use crate::fsutil;

/// Device kinds a rule can match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    All,
    Char,
    Block,
}

/// Access bits, as in the BPF_DEVCG_ACC_* constants.
pub const ACC_MKNOD: u8 = 1;
/// Read access.
pub const ACC_READ: u8 = 2;
/// Write access.
pub const ACC_WRITE: u8 = 4;
const ACC_ALL: u8 = ACC_MKNOD | ACC_READ | ACC_WRITE;

/// One normalised device rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    pub kind: DeviceKind,
    /// `None` is any major.
    pub major: Option<u32>,
    /// `None` is any minor.
    pub minor: Option<u32>,
    /// ACC_* bits.
    pub access: u8,
}

impl DeviceRule {
    const fn new(allow: bool, kind: DeviceKind, major: Option<u32>, minor: Option<u32>) -> Self {
        Self {
            allow,
            kind,
            major,
            minor,
            access: ACC_ALL,
        }
    }

    /// Convert an OCI rule; FIFO rules are dropped (the devices controller does not see
    /// FIFOs). A missing access means "rwm".
    pub fn from_oci(r: &LinuxDeviceCgroup) -> Option<Self> {
        let kind = match r.typ().unwrap_or_default() {
            LinuxDeviceType::A => DeviceKind::All,
            LinuxDeviceType::C | LinuxDeviceType::U => DeviceKind::Char,
            LinuxDeviceType::B => DeviceKind::Block,
            LinuxDeviceType::P => return None,
        };
        let num = |v: Option<i64>| v.filter(|v| *v >= 0).and_then(|v| u32::try_from(v).ok());
        let access = match r.access().as_deref() {
            None | Some("") => ACC_ALL,
            Some(a) => a.chars().fold(0, |acc, c| {
                acc | match c {
                    'r' => ACC_READ,
                    'w' => ACC_WRITE,
                    'm' => ACC_MKNOD,
                    _ => 0,
                }
            }),
        };
        Some(Self {
            allow: r.allow(),
            kind,
            major: num(r.major()),
            minor: num(r.minor()),
            access,
        })
    }
}

/// The v1 devices.allow/deny syntax: "c 1:3 rwm", "a *:* rwm".
impl fmt::Display for DeviceRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            DeviceKind::All => 'a',
            DeviceKind::Char => 'c',
            DeviceKind::Block => 'b',
        };
        let num = |v: Option<u32>| v.map_or("*".to_string(), |v| v.to_string());
        let mut access = String::new();
        for (bit, c) in [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')] {
            if self.access & bit != 0 {
                access.push(c);
            }
        }
        write!(f, "{kind} {}:{} {access}", num(self.major), num(self.minor))
    }
}

/// Devices every container may use (runc's AllowedDevices).
pub const DEFAULT_ALLOWED: [DeviceRule; 11] = {
    use DeviceKind::{Block, Char};
    let mknod_char = DeviceRule {
        access: ACC_MKNOD,
        ..DeviceRule::new(true, Char, None, None)
    };
    let mknod_block = DeviceRule {
        access: ACC_MKNOD,
        ..DeviceRule::new(true, Block, None, None)
    };
    [
        mknod_char,
        mknod_block,
        DeviceRule::new(true, Char, Some(1), Some(3)), // /dev/null
        DeviceRule::new(true, Char, Some(1), Some(5)), // /dev/zero
        DeviceRule::new(true, Char, Some(1), Some(7)), // /dev/full
        DeviceRule::new(true, Char, Some(1), Some(8)), // /dev/random
        DeviceRule::new(true, Char, Some(1), Some(9)), // /dev/urandom
        DeviceRule::new(true, Char, Some(5), Some(0)), // /dev/tty
        DeviceRule::new(true, Char, Some(5), Some(1)), // /dev/console
        DeviceRule::new(true, Char, Some(5), Some(2)), // /dev/ptmx
        DeviceRule::new(true, Char, Some(136), None),  // /dev/pts/*
    ]
};

/// Deny everything, then `rules`, then [`DEFAULT_ALLOWED`].
pub fn effective_rules(rules: &[LinuxDeviceCgroup]) -> Vec<DeviceRule> {
    let mut out = Vec::with_capacity(rules.len() + DEFAULT_ALLOWED.len() + 1);
    out.push(DeviceRule::new(false, DeviceKind::All, None, None));
    out.extend(rules.iter().filter_map(DeviceRule::from_oci));
    out.extend(DEFAULT_ALLOWED);
    out
}

/// Program a v1 devices cgroup: start from deny-all, then write each rule to
/// devices.allow or devices.deny in order.
pub fn apply_v1(dir: &Path, rules: &[DeviceRule]) -> Result<(), CgroupError> {
    v1_writes(rules)
        .into_iter()
        .try_for_each(|(file, line)| fsutil::write_in(dir, file, &line))
}

/// The (file, line) writes that program a v1 devices cgroup with `rules`.
pub fn v1_writes(rules: &[DeviceRule]) -> Vec<(&'static str, String)> {
    let mut w = vec![("devices.deny", "a".to_string())];
    for r in rules {
        let file = if r.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        w.push((file, r.to_string()));
    }
    w
}

/// Whether the rules allow `access` to a device, with the same semantics the BPF
/// program has (the last matching rule decides, default deny). Used in tests and for
/// reasoning about the v1 and v2 behaviours side by side.
pub fn allows(rules: &[DeviceRule], kind: DeviceKind, major: u32, minor: u32, access: u8) -> bool {
    rules
        .iter()
        .rev()
        .find(|r| r.matches(kind, major, minor, access))
        .is_some_and(|r| r.allow)
}

impl DeviceRule {
    /// An allow rule matches when it grants every requested bit; a deny rule matches when
    /// it denies any requested bit.
    pub fn matches(&self, kind: DeviceKind, major: u32, minor: u32, access: u8) -> bool {
        (self.kind == DeviceKind::All || self.kind == kind)
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
            && if self.allow {
                access & !self.access == 0
            } else {
                access & self.access != 0
            }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    fn oci(
        allow: bool,
        typ: LinuxDeviceType,
        major: i64,
        minor: i64,
        access: &str,
    ) -> LinuxDeviceCgroup {
        LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .major(major)
            .minor(minor)
            .access(access)
            .build()
            .unwrap()
    }

    #[test]
    fn rule_syntax() {
        let r = DeviceRule::from_oci(&oci(true, LinuxDeviceType::C, 10, 200, "rwm")).unwrap();
        assert_eq!(r.to_string(), "c 10:200 rwm");
        let all =
            DeviceRule::from_oci(&LinuxDeviceCgroupBuilder::default().build().unwrap()).unwrap();
        assert_eq!(all.to_string(), "a *:* rwm");
        assert!(!all.allow);
        let fifo = oci(true, LinuxDeviceType::P, 1, 1, "r");
        assert!(DeviceRule::from_oci(&fifo).is_none());
        let wild = oci(true, LinuxDeviceType::B, 8, -1, "mr");
        assert_eq!(DeviceRule::from_oci(&wild).unwrap().to_string(), "b 8:* rm");
    }

    #[test]
    fn v1_write_sequence() {
        let rules = effective_rules(&[
            oci(true, LinuxDeviceType::C, 10, 200, "rwm"),
            oci(false, LinuxDeviceType::B, 8, -1, "w"),
        ]);
        let w = v1_writes(&rules);
        let lines: Vec<String> = w.iter().map(|(f, l)| format!("{f}: {l}")).collect();
        assert_eq!(
            lines,
            [
                "devices.deny: a",
                "devices.deny: a *:* rwm",
                "devices.allow: c 10:200 rwm",
                "devices.deny: b 8:* w",
                "devices.allow: c *:* m",
                "devices.allow: b *:* m",
                "devices.allow: c 1:3 rwm",
                "devices.allow: c 1:5 rwm",
                "devices.allow: c 1:7 rwm",
                "devices.allow: c 1:8 rwm",
                "devices.allow: c 1:9 rwm",
                "devices.allow: c 5:0 rwm",
                "devices.allow: c 5:1 rwm",
                "devices.allow: c 5:2 rwm",
                "devices.allow: c 136:* rwm",
            ]
        );
    }

    #[test]
    fn semantics() {
        let rules = effective_rules(&[
            oci(true, LinuxDeviceType::C, 10, 200, "rw"),
            oci(false, LinuxDeviceType::C, 10, 200, "w"),
        ]);
        use DeviceKind::*;
        assert!(allows(&rules, Char, 1, 3, ACC_READ | ACC_WRITE));
        assert!(allows(&rules, Char, 136, 4, ACC_READ));
        assert!(allows(&rules, Block, 8, 0, ACC_MKNOD));
        assert!(!allows(&rules, Block, 8, 0, ACC_READ));
        assert!(allows(&rules, Char, 10, 200, ACC_READ));
        assert!(!allows(&rules, Char, 10, 200, ACC_WRITE));
        assert!(!allows(&rules, Char, 10, 200, ACC_READ | ACC_WRITE));
        assert!(!allows(&rules, Char, 1, 11, ACC_READ));
    }
}
