//! Mount option parsing: the spec's fstab-style strings turned into mount(2) flags,
//! propagation changes, recursive attributes (mount_setattr) and the data string.

use nix::mount::MsFlags;

/// Attributes applied recursively with mount_setattr(2) ("rro", "rnosuid", ...).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecAttr {
    /// MOUNT_ATTR_* bits to set.
    pub set: u64,
    /// MOUNT_ATTR_* bits to clear.
    pub clr: u64,
}

impl RecAttr {
    pub fn is_empty(&self) -> bool {
        self.set == 0 && self.clr == 0
    }
}

/// Every option of one `mounts` entry, sorted by what will be done with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountOptions {
    /// Flags passed to mount(2) (includes MS_BIND / MS_REC for bind and rbind).
    pub flags: MsFlags,
    /// Flags an option explicitly turned off ("rw", "suid", "dev", ...).
    pub cleared: MsFlags,
    /// Propagation changes, applied in order after the mount.
    pub propagation: Vec<MsFlags>,
    /// Recursive attributes applied after the mount.
    pub rec_attr: RecAttr,
    /// Options unknown to the kernel flags, joined as the data string.
    pub data: Vec<String>,
    /// Copy the destination's existing content into the new tmpfs.
    pub tmpcopyup: bool,
    /// "idmap" or "ridmap" was given.
    pub idmap: Option<String>,
}

impl Default for MountOptions {
    fn default() -> Self {
        Self {
            flags: MsFlags::empty(),
            cleared: MsFlags::empty(),
            propagation: Vec::new(),
            rec_attr: RecAttr::default(),
            data: Vec::new(),
            tmpcopyup: false,
            idmap: None,
        }
    }
}

impl MountOptions {
    /// Parse the options of one mount entry, later options overriding earlier ones.
    pub fn parse<S: AsRef<str>>(options: &[S]) -> Self {
        let mut parsed = Self::default();
        for option in options {
            parsed.apply(option.as_ref());
        }
        parsed
    }

    /// The data string for mount(2), `None` when there is none.
    pub fn data(&self) -> Option<String> {
        (!self.data.is_empty()).then(|| self.data.join(","))
    }

    /// A bind ("bind" or "rbind") mount.
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    /// A bind mount needs a second remount call to apply its other flags.
    pub fn needs_bind_remount(&self) -> bool {
        let ignored = MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT;
        self.is_bind() && !(self.flags - ignored).is_empty()
    }

    fn apply(&mut self, option: &str) {
        if let Some((set, flag)) = flag_option(option) {
            if set {
                self.flags |= flag;
                self.cleared -= flag;
            } else {
                self.flags -= flag;
                self.cleared |= flag;
            }
        } else if let Some(flag) = propagation_option(option) {
            self.propagation.push(flag);
        } else if let Some((clear, attr)) = rec_attr_option(option) {
            self.add_rec_attr(clear, attr);
        } else {
            self.apply_extension(option);
        }
    }

    fn add_rec_attr(&mut self, clear: bool, attr: u64) {
        if clear {
            self.rec_attr.clr |= attr;
            self.rec_attr.set &= !attr;
            return;
        }
        self.rec_attr.set |= attr;
        // mount_setattr(2): an access-time mode must also clear MOUNT_ATTR__ATIME.
        if attr & libc::MOUNT_ATTR__ATIME == attr {
            self.rec_attr.clr |= libc::MOUNT_ATTR__ATIME;
        } else {
            self.rec_attr.clr &= !attr;
        }
    }

    fn apply_extension(&mut self, option: &str) {
        match option {
            "tmpcopyup" => self.tmpcopyup = true,
            "idmap" | "ridmap" => self.idmap = Some(option.to_owned()),
            "" | "defaults" => {}
            _ => self.data.push(option.to_owned()),
        }
    }
}

/// A kernel flag option: (true = set, false = clear) and the flag.
fn flag_option(option: &str) -> Option<(bool, MsFlags)> {
    use MsFlags as F;
    let flag = match option {
        "ro" => (true, F::MS_RDONLY),
        "rw" => (false, F::MS_RDONLY),
        "nosuid" => (true, F::MS_NOSUID),
        "suid" => (false, F::MS_NOSUID),
        "nodev" => (true, F::MS_NODEV),
        "dev" => (false, F::MS_NODEV),
        "noexec" => (true, F::MS_NOEXEC),
        "exec" => (false, F::MS_NOEXEC),
        "sync" => (true, F::MS_SYNCHRONOUS),
        "async" => (false, F::MS_SYNCHRONOUS),
        "dirsync" => (true, F::MS_DIRSYNC),
        "remount" => (true, F::MS_REMOUNT),
        "mand" => (true, F::MS_MANDLOCK),
        "nomand" => (false, F::MS_MANDLOCK),
        "noatime" => (true, F::MS_NOATIME),
        "atime" => (false, F::MS_NOATIME),
        "nodiratime" => (true, F::MS_NODIRATIME),
        "diratime" => (false, F::MS_NODIRATIME),
        "relatime" => (true, F::MS_RELATIME),
        "norelatime" => (false, F::MS_RELATIME),
        "strictatime" => (true, F::MS_STRICTATIME),
        "nostrictatime" => (false, F::MS_STRICTATIME),
        "silent" => (true, F::MS_SILENT),
        "loud" => (false, F::MS_SILENT),
        "iversion" => (true, F::MS_I_VERSION),
        "noiversion" => (false, F::MS_I_VERSION),
        "lazytime" => (true, F::MS_LAZYTIME),
        "nolazytime" => (false, F::MS_LAZYTIME),
        "nosymfollow" => (true, F::from_bits_retain(libc::MS_NOSYMFOLLOW)),
        "symfollow" => (false, F::from_bits_retain(libc::MS_NOSYMFOLLOW)),
        "bind" => (true, F::MS_BIND),
        "rbind" => (true, F::MS_BIND | F::MS_REC),
        _ => return None,
    };
    Some(flag)
}

/// A propagation option ("rslave", "private", ...) as mount(2) flags.
pub(crate) fn propagation_option(option: &str) -> Option<MsFlags> {
    use MsFlags as F;
    let flag = match option {
        "private" => F::MS_PRIVATE,
        "rprivate" => F::MS_PRIVATE | F::MS_REC,
        "shared" => F::MS_SHARED,
        "rshared" => F::MS_SHARED | F::MS_REC,
        "slave" => F::MS_SLAVE,
        "rslave" => F::MS_SLAVE | F::MS_REC,
        "unbindable" => F::MS_UNBINDABLE,
        "runbindable" => F::MS_UNBINDABLE | F::MS_REC,
        _ => return None,
    };
    Some(flag)
}

/// A recursive attribute option: (true = clear, false = set) and the MOUNT_ATTR_* bit.
fn rec_attr_option(option: &str) -> Option<(bool, u64)> {
    let attr = match option {
        "rro" => (false, libc::MOUNT_ATTR_RDONLY),
        "rrw" => (true, libc::MOUNT_ATTR_RDONLY),
        "rnosuid" => (false, libc::MOUNT_ATTR_NOSUID),
        "rsuid" => (true, libc::MOUNT_ATTR_NOSUID),
        "rnodev" => (false, libc::MOUNT_ATTR_NODEV),
        "rdev" => (true, libc::MOUNT_ATTR_NODEV),
        "rnoexec" => (false, libc::MOUNT_ATTR_NOEXEC),
        "rexec" => (true, libc::MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (false, libc::MOUNT_ATTR_NODIRATIME),
        "rdiratime" => (true, libc::MOUNT_ATTR_NODIRATIME),
        "rrelatime" => (false, libc::MOUNT_ATTR_RELATIME),
        "rnorelatime" => (true, libc::MOUNT_ATTR_RELATIME),
        "rnoatime" => (false, libc::MOUNT_ATTR_NOATIME),
        "ratime" => (true, libc::MOUNT_ATTR_NOATIME),
        "rstrictatime" => (false, libc::MOUNT_ATTR_STRICTATIME),
        "rnostrictatime" => (true, libc::MOUNT_ATTR_STRICTATIME),
        "rnosymfollow" => (false, libc::MOUNT_ATTR_NOSYMFOLLOW),
        "rsymfollow" => (true, libc::MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    };
    Some(attr)
}

/// Human-readable names of the set flags, for error messages ("ro,nosuid").
pub(crate) fn flag_names(flags: MsFlags) -> String {
    use MsFlags as F;
    let names = [
        (F::MS_RDONLY, "ro"),
        (F::MS_NOSUID, "nosuid"),
        (F::MS_NODEV, "nodev"),
        (F::MS_NOEXEC, "noexec"),
        (F::MS_SYNCHRONOUS, "sync"),
        (F::MS_REMOUNT, "remount"),
        (F::MS_MANDLOCK, "mand"),
        (F::MS_DIRSYNC, "dirsync"),
        (F::MS_NOATIME, "noatime"),
        (F::MS_NODIRATIME, "nodiratime"),
        (F::MS_BIND, "bind"),
        (F::MS_REC, "rec"),
        (F::MS_RELATIME, "relatime"),
        (F::MS_STRICTATIME, "strictatime"),
    ];
    let set: Vec<&str> = names
        .iter()
        .filter(|(flag, _)| flags.contains(*flag))
        .map(|(_, name)| *name)
        .collect();
    set.join(",")
}

/// Parse `linux.rootfsPropagation`.
pub(crate) fn rootfs_propagation(value: &str) -> Option<MsFlags> {
    propagation_option(value)
}

#[cfg(test)]
#[path = "options_tests.rs"]
mod tests;
