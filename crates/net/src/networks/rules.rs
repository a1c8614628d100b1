//! The one nftables table, `inet berth`: rendered from the active networks and
//! applied whole, skipped when unchanged in this boot and network namespace.

use super::*;

impl Networks {
    /// Replaces `inet berth` with the rules of the networks that have containers;
    /// skipped when the same ruleset was applied last (unless `force`).
    pub(super) fn apply_rules(&self, force: bool) -> Result<(), NetError> {
        match self.rules_to_apply(force)? {
            Some(script) => {
                sys::nft_apply(&script)?;
                write_transient(&self.dir.join(".nft"), cached(&script).as_bytes())
            }
            None => Ok(()),
        }
    }

    /// The script for `nft -f -` if it differs from the last one applied (or
    /// `force`); the cache is removed until it is applied.
    pub(super) fn rules_to_apply(&self, force: bool) -> Result<Option<String>, NetError> {
        let mut active = Vec::new();
        for c in self.configs()? {
            let leases = self.leases(&c.name)?;
            // An empty network whose link is still there (its grace period) keeps
            // its rules, so that the next container changes nothing.
            if !leases.leases.is_empty() || sys::link_exists(&c.interface) {
                active.push((c, leases));
            }
        }
        let script = nft::render(&active);
        let cache = self.dir.join(".nft");
        if !force && fs::read_to_string(&cache).is_ok_and(|s| s == cached(&script)) {
            return Ok(None);
        }
        let _ = fs::remove_file(&cache);
        Ok(Some(script))
    }
}

/// What `.nft` holds for `script`: the script applied in this boot's, this network
/// namespace's kernel (a reboot or another namespace has none of it).
fn cached(script: &str) -> String {
    use std::os::unix::fs::MetadataExt;
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let netns = fs::metadata("/proc/self/ns/net").map_or(0, |m| m.ino());
    format!("# boot {} netns {netns}\n{script}", boot.trim())
}
