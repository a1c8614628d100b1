//! What `berth-runtime features` reports under `linux.seccomp`.

use libseccomp::{ScmpSyscall, ScmpVersion};
use oci_spec::runtime::{Arch, LinuxSeccompFilterFlag, Seccomp, SeccompBuilder};

use crate::filter::waitkill_supported;
use crate::mapping::{self, ALL_ACTIONS, ALL_ARCHES, ALL_OPERATORS};

/// Every filter flag the runtime-spec names, which this crate knows.
const KNOWN_FLAGS: [LinuxSeccompFilterFlag; 4] = [
    LinuxSeccompFilterFlag::SeccompFilterFlagTsync,
    LinuxSeccompFilterFlag::SeccompFilterFlagLog,
    LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow,
    LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv,
];

/// The `linux.seccomp` object of the runtime-spec features document: every
/// action and operator, the architectures this libseccomp knows, and the
/// flags known vs. supported by this libseccomp and kernel.
pub fn features() -> Seccomp {
    SeccompBuilder::default()
        .enabled(true)
        .actions(ALL_ACTIONS.to_vec())
        .operators(
            ALL_OPERATORS
                .iter()
                .map(|o| o.to_string())
                .collect::<Vec<_>>(),
        )
        .archs(supported_arches())
        .known_flags(
            KNOWN_FLAGS
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>(),
        )
        .supported_flags(
            KNOWN_FLAGS
                .iter()
                .filter(|f| flag_supported(**f))
                .map(|f| f.to_string())
                .collect::<Vec<_>>(),
        )
        .build()
        .expect("every field of the seccomp features is set")
}

/// Architectures libseccomp can resolve syscalls for (e.g. 2.5 lacks
/// loongarch64, m68k and sh).
fn supported_arches() -> Vec<Arch> {
    ALL_ARCHES
        .iter()
        .copied()
        .filter(|a| *a != Arch::ScmpArchNative)
        .filter(|a| ScmpSyscall::from_name_by_arch("read", mapping::arch(*a)).is_ok())
        .collect()
}

/// Whether this libseccomp and kernel can apply `flag`, by libseccomp's API
/// level (which it derives from what the kernel supports), as runc decides.
pub(crate) fn flag_supported(flag: LinuxSeccompFilterFlag) -> bool {
    let api = |level, version: (u32, u32, u32)| {
        libseccomp::check_api(level, ScmpVersion::from(version)).unwrap_or(false)
    };
    match flag {
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync => api(2, (2, 2, 0)),
        LinuxSeccompFilterFlag::SeccompFilterFlagLog => api(3, (2, 4, 0)),
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => api(4, (2, 5, 0)),
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => waitkill_supported(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn features_list_every_action_operator_and_known_flag() {
        let f = serde_json::to_value(features()).unwrap();
        assert_eq!(f["enabled"], json!(true));
        assert_eq!(
            f["actions"],
            json!([
                "SCMP_ACT_KILL",
                "SCMP_ACT_KILL_PROCESS",
                "SCMP_ACT_KILL_THREAD",
                "SCMP_ACT_TRAP",
                "SCMP_ACT_ERRNO",
                "SCMP_ACT_TRACE",
                "SCMP_ACT_ALLOW",
                "SCMP_ACT_LOG",
                "SCMP_ACT_NOTIFY"
            ])
        );
        assert_eq!(
            f["operators"],
            json!([
                "SCMP_CMP_NE",
                "SCMP_CMP_LT",
                "SCMP_CMP_LE",
                "SCMP_CMP_EQ",
                "SCMP_CMP_GE",
                "SCMP_CMP_GT",
                "SCMP_CMP_MASKED_EQ"
            ])
        );
        assert_eq!(
            f["knownFlags"],
            json!([
                "SECCOMP_FILTER_FLAG_TSYNC",
                "SECCOMP_FILTER_FLAG_LOG",
                "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"
            ])
        );
    }

    #[test]
    fn supported_flags_and_archs_are_what_this_libseccomp_and_kernel_do() {
        let f = serde_json::to_value(features()).unwrap();
        let supported = f["supportedFlags"].as_array().unwrap();
        assert!(
            supported.contains(&json!("SECCOMP_FILTER_FLAG_TSYNC")),
            "{f}"
        );
        assert_eq!(
            supported.contains(&json!("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")),
            waitkill_supported()
        );
        let archs = f["archs"].as_array().unwrap();
        for a in [
            "SCMP_ARCH_X86_64",
            "SCMP_ARCH_X86",
            "SCMP_ARCH_X32",
            "SCMP_ARCH_AARCH64",
        ] {
            assert!(archs.contains(&json!(a)), "{a} in {f}");
        }
        assert!(!archs.contains(&json!("SCMP_ARCH_NATIVE")));
    }
}
