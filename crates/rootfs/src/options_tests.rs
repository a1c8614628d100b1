use nix::mount::MsFlags as F;

use super::*;

fn flags_of(option: &str) -> (MsFlags, MsFlags) {
    let parsed = MountOptions::parse(&[option]);
    (parsed.flags, parsed.cleared)
}

#[test]
fn every_set_flag_option() {
    let cases = [
        ("ro", F::MS_RDONLY),
        ("nosuid", F::MS_NOSUID),
        ("nodev", F::MS_NODEV),
        ("noexec", F::MS_NOEXEC),
        ("sync", F::MS_SYNCHRONOUS),
        ("dirsync", F::MS_DIRSYNC),
        ("remount", F::MS_REMOUNT),
        ("mand", F::MS_MANDLOCK),
        ("noatime", F::MS_NOATIME),
        ("nodiratime", F::MS_NODIRATIME),
        ("relatime", F::MS_RELATIME),
        ("strictatime", F::MS_STRICTATIME),
        ("silent", F::MS_SILENT),
        ("iversion", F::MS_I_VERSION),
        ("lazytime", F::MS_LAZYTIME),
        ("nosymfollow", F::from_bits_retain(libc::MS_NOSYMFOLLOW)),
        ("bind", F::MS_BIND),
        ("rbind", F::MS_BIND | F::MS_REC),
    ];
    for (option, flag) in cases {
        assert_eq!(flags_of(option), (flag, F::empty()), "option {option}");
    }
}

#[test]
fn every_clear_flag_option() {
    let cases = [
        ("rw", F::MS_RDONLY),
        ("suid", F::MS_NOSUID),
        ("dev", F::MS_NODEV),
        ("exec", F::MS_NOEXEC),
        ("async", F::MS_SYNCHRONOUS),
        ("nomand", F::MS_MANDLOCK),
        ("atime", F::MS_NOATIME),
        ("diratime", F::MS_NODIRATIME),
        ("norelatime", F::MS_RELATIME),
        ("nostrictatime", F::MS_STRICTATIME),
        ("loud", F::MS_SILENT),
        ("noiversion", F::MS_I_VERSION),
        ("nolazytime", F::MS_LAZYTIME),
        ("symfollow", F::from_bits_retain(libc::MS_NOSYMFOLLOW)),
    ];
    for (option, flag) in cases {
        assert_eq!(flags_of(option), (F::empty(), flag), "option {option}");
    }
}

#[test]
fn later_options_override_earlier_ones() {
    assert_eq!(flags_of("ro").0, F::MS_RDONLY);
    let parsed = MountOptions::parse(&["ro", "rw"]);
    assert_eq!(parsed.flags, F::empty());
    assert_eq!(parsed.cleared, F::MS_RDONLY);
    let parsed = MountOptions::parse(&["rw", "ro"]);
    assert_eq!(parsed.flags, F::MS_RDONLY);
    assert_eq!(parsed.cleared, F::empty());
}

#[test]
fn every_propagation_option() {
    let cases = [
        ("private", F::MS_PRIVATE),
        ("rprivate", F::MS_PRIVATE | F::MS_REC),
        ("shared", F::MS_SHARED),
        ("rshared", F::MS_SHARED | F::MS_REC),
        ("slave", F::MS_SLAVE),
        ("rslave", F::MS_SLAVE | F::MS_REC),
        ("unbindable", F::MS_UNBINDABLE),
        ("runbindable", F::MS_UNBINDABLE | F::MS_REC),
    ];
    for (option, flag) in cases {
        let parsed = MountOptions::parse(&[option]);
        assert_eq!(parsed.propagation, vec![flag], "option {option}");
        assert_eq!(parsed.flags, F::empty(), "option {option}");
        assert_eq!(rootfs_propagation(option), Some(flag));
    }
    assert_eq!(rootfs_propagation("bogus"), None);
}

#[test]
fn propagation_keeps_order() {
    let parsed = MountOptions::parse(&["rprivate", "shared"]);
    assert_eq!(
        parsed.propagation,
        vec![F::MS_PRIVATE | F::MS_REC, F::MS_SHARED]
    );
}

#[test]
fn every_recursive_attribute() {
    let atime = libc::MOUNT_ATTR__ATIME;
    let cases = [
        ("rro", libc::MOUNT_ATTR_RDONLY, 0),
        ("rrw", 0, libc::MOUNT_ATTR_RDONLY),
        ("rnosuid", libc::MOUNT_ATTR_NOSUID, 0),
        ("rsuid", 0, libc::MOUNT_ATTR_NOSUID),
        ("rnodev", libc::MOUNT_ATTR_NODEV, 0),
        ("rdev", 0, libc::MOUNT_ATTR_NODEV),
        ("rnoexec", libc::MOUNT_ATTR_NOEXEC, 0),
        ("rexec", 0, libc::MOUNT_ATTR_NOEXEC),
        ("rnodiratime", libc::MOUNT_ATTR_NODIRATIME, 0),
        ("rdiratime", 0, libc::MOUNT_ATTR_NODIRATIME),
        ("rrelatime", libc::MOUNT_ATTR_RELATIME, atime),
        ("rnorelatime", 0, libc::MOUNT_ATTR_RELATIME),
        ("rnoatime", libc::MOUNT_ATTR_NOATIME, atime),
        ("ratime", 0, libc::MOUNT_ATTR_NOATIME),
        ("rstrictatime", libc::MOUNT_ATTR_STRICTATIME, atime),
        ("rnostrictatime", 0, libc::MOUNT_ATTR_STRICTATIME),
        ("rnosymfollow", libc::MOUNT_ATTR_NOSYMFOLLOW, 0),
        ("rsymfollow", 0, libc::MOUNT_ATTR_NOSYMFOLLOW),
    ];
    for (option, set, clr) in cases {
        let parsed = MountOptions::parse(&[option]);
        assert_eq!(parsed.rec_attr, RecAttr { set, clr }, "option {option}");
        assert_eq!(parsed.flags, F::empty(), "option {option}");
        assert!(parsed.data.is_empty(), "option {option}");
    }
}

#[test]
fn recursive_attributes_combine() {
    let parsed = MountOptions::parse(&["rro", "rnosuid", "rrw"]);
    assert_eq!(
        parsed.rec_attr,
        RecAttr {
            set: libc::MOUNT_ATTR_NOSUID,
            clr: libc::MOUNT_ATTR_RDONLY
        }
    );
    assert!(!parsed.rec_attr.is_empty());
    assert!(MountOptions::parse(&["ro"]).rec_attr.is_empty());
}

#[test]
fn extensions_and_data() {
    let parsed = MountOptions::parse(&["nosuid", "mode=755", "tmpcopyup", "size=65536k"]);
    assert!(parsed.tmpcopyup);
    assert_eq!(parsed.data(), Some("mode=755,size=65536k".to_owned()));
    assert_eq!(parsed.flags, F::MS_NOSUID);
    assert_eq!(
        MountOptions::parse(&["idmap"]).idmap.as_deref(),
        Some("idmap")
    );
    assert_eq!(
        MountOptions::parse(&["ridmap"]).idmap.as_deref(),
        Some("ridmap")
    );
    assert_eq!(MountOptions::parse(&["defaults"]), MountOptions::default());
    assert_eq!(MountOptions::parse::<&str>(&[]).data(), None);
}

#[test]
fn bind_remount_is_needed_only_for_extra_flags() {
    assert!(!MountOptions::parse(&["rbind"]).needs_bind_remount());
    assert!(!MountOptions::parse(&["bind", "rprivate"]).needs_bind_remount());
    assert!(MountOptions::parse(&["rbind", "ro"]).needs_bind_remount());
    assert!(MountOptions::parse(&["bind", "nosuid"]).needs_bind_remount());
    assert!(!MountOptions::parse(&["ro"]).needs_bind_remount());
}

#[test]
fn flag_names_lists_set_flags() {
    assert_eq!(
        flag_names(F::MS_RDONLY | F::MS_NOSUID | F::MS_BIND),
        "ro,nosuid,bind"
    );
    assert_eq!(flag_names(F::empty()), "");
}
