//! Decoding of the capability masks printed in `/proc/self/status` (`CapEff:` and friends).

use serde::Serialize;

/// Capability names indexed by bit number, as the OCI config spells them.
const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// One capability set: the raw mask and the names of its bits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapSet {
    /// The mask as the kernel prints it: 16 hex digits.
    pub hex: String,
    /// `CAP_*` names of the set bits, lowest bit first; unknown bits are `CAP_<bit>`.
    pub names: Vec<String>,
}

/// Name of capability bit `bit`.
pub fn name(bit: u32) -> String {
    NAMES
        .get(bit as usize)
        .map_or_else(|| format!("CAP_{bit}"), |n| (*n).to_owned())
}

/// Decodes a mask such as `000001fffeffffff`; `None` if it is not hex.
pub fn decode(hex: &str) -> Option<CapSet> {
    let hex = hex.trim();
    let mask = u64::from_str_radix(hex, 16).ok()?;
    let names = (0..64).filter(|b| mask & (1 << b) != 0).map(name).collect();
    Some(CapSet {
        hex: format!("{mask:016x}"),
        names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_empty_mask() {
        let set = decode("0000000000000000").unwrap();
        assert_eq!(set.hex, "0000000000000000");
        assert!(set.names.is_empty());
    }

    #[test]
    fn decodes_docker_default_set() {
        // The runc/docker default: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID
        // SETPCAP NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP.
        let set = decode("00000000a80425fb").unwrap();
        assert_eq!(
            set.names,
            [
                "CAP_CHOWN",
                "CAP_DAC_OVERRIDE",
                "CAP_FOWNER",
                "CAP_FSETID",
                "CAP_KILL",
                "CAP_SETGID",
                "CAP_SETUID",
                "CAP_SETPCAP",
                "CAP_NET_BIND_SERVICE",
                "CAP_NET_RAW",
                "CAP_SYS_CHROOT",
                "CAP_MKNOD",
                "CAP_AUDIT_WRITE",
                "CAP_SETFCAP",
            ]
        );
    }

    #[test]
    fn decodes_full_set_and_unknown_bits() {
        let set = decode("000001ffffffffff").unwrap();
        assert_eq!(set.names.len(), 41);
        assert_eq!(set.names[40], "CAP_CHECKPOINT_RESTORE");
        let set = decode("0000060000000000").unwrap();
        assert_eq!(set.names, ["CAP_41", "CAP_42"]);
    }

    #[test]
    fn normalises_and_rejects() {
        assert_eq!(decode(" 1\n").unwrap().hex, "0000000000000001");
        assert!(decode("xyz").is_none());
    }
}
