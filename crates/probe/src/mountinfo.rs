//! Parsing of `/proc/self/mountinfo` (proc(5)).
//!
//! ```text
//! 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//! (1)(2)(3)   (4)   (5)      (6)      (7)   (8) (9)   (10)         (11)
//! ```

use serde::Serialize;

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountInfo {
    pub id: u32,
    pub parent_id: u32,
    pub major: u32,
    pub minor: u32,
    /// Root of the mount within its filesystem (`/` unless a bind mount of a subtree).
    pub root: String,
    pub mount_point: String,
    /// Per-mount options (`rw`, `nosuid`, `nodev`, `noexec`, `relatime`, ...).
    pub mount_options: Vec<String>,
    /// The raw optional fields (`shared:N`, `master:N`, `propagate_from:N`, `unbindable`).
    pub optional_fields: Vec<String>,
    /// `shared`, `slave`, `shared+slave`, `unbindable` or `private` (no tag).
    pub propagation: String,
    pub fstype: String,
    pub source: String,
    /// Per-superblock options (`mode=755`, `size=65536k`, ...).
    pub super_options: Vec<String>,
}

/// Parses the whole file; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(parse_line).collect()
}

/// Parses one line; `None` if it is malformed.
pub fn parse_line(line: &str) -> Option<MountInfo> {
    let mut fields = line.split(' ');
    let id = fields.next()?.parse().ok()?;
    let parent_id = fields.next()?.parse().ok()?;
    let (major, minor) = fields.next()?.split_once(':')?;
    let root = unescape(fields.next()?);
    let mount_point = unescape(fields.next()?);
    let mount_options = split_options(fields.next()?);
    let mut optional_fields = Vec::new();
    loop {
        match fields.next()? {
            "-" => break,
            f => optional_fields.push(f.to_owned()),
        }
    }
    let fstype = unescape(fields.next()?);
    let source = unescape(fields.next()?);
    let super_options = fields.next().map(split_options).unwrap_or_default();
    Some(MountInfo {
        id,
        parent_id,
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
        root,
        mount_point,
        mount_options,
        propagation: propagation(&optional_fields),
        optional_fields,
        fstype,
        source,
        super_options,
    })
}

fn split_options(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|o| !o.is_empty())
        .map(unescape)
        .collect()
}

fn propagation(optional: &[String]) -> String {
    let has = |p: &str| optional.iter().any(|f| f.starts_with(p));
    let kind = match (has("shared:"), has("master:"), has("unbindable")) {
        (_, _, true) => "unbindable",
        (true, true, _) => "shared+slave",
        (true, false, _) => "shared",
        (false, true, _) => "slave",
        (false, false, _) => "private",
    };
    kind.to_owned()
}

/// Undoes the kernel's octal escapes (`\040` for space, `\011`, `\012`, `\134`).
pub fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                let v = d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                out.push(v as u8);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_man_page_example() {
        let m = parse_line(
            "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue",
        )
        .unwrap();
        assert_eq!((m.id, m.parent_id, m.major, m.minor), (36, 35, 98, 0));
        assert_eq!(m.root, "/mnt1");
        assert_eq!(m.mount_point, "/mnt2");
        assert_eq!(m.mount_options, ["rw", "noatime"]);
        assert_eq!(m.optional_fields, ["master:1"]);
        assert_eq!(m.propagation, "slave");
        assert_eq!(m.fstype, "ext3");
        assert_eq!(m.source, "/dev/root");
        assert_eq!(m.super_options, ["rw", "errors=continue"]);
    }

    #[test]
    fn handles_no_and_many_optional_fields() {
        let private = parse_line("1 0 0:5 / /dev rw - devtmpfs udev rw,mode=755").unwrap();
        assert!(private.optional_fields.is_empty());
        assert_eq!(private.propagation, "private");
        let both = parse_line("2 1 0:6 / /x rw shared:3 master:4 - tmpfs t rw").unwrap();
        assert_eq!(both.optional_fields, ["shared:3", "master:4"]);
        assert_eq!(both.propagation, "shared+slave");
        let unb = parse_line("3 1 0:6 / /y rw unbindable - tmpfs t rw").unwrap();
        assert_eq!(unb.propagation, "unbindable");
    }

    #[test]
    fn unescapes_paths() {
        let m =
            parse_line(r"4 1 0:7 /a\040b /mnt/with\040space\134x rw - tmpfs none\011x rw").unwrap();
        assert_eq!(m.root, "/a b");
        assert_eq!(m.mount_point, r"/mnt/with space\x");
        assert_eq!(m.source, "none\tx");
        assert_eq!(unescape(r"\12"), r"\12");
        assert_eq!(unescape(r"end\"), r"end\");
    }

    #[test]
    fn skips_malformed_lines() {
        let text = "garbage\n5 1 0:8 / /proc rw,nosuid - proc proc rw\n6 1 0:8 / /z rw tmpfs\n";
        let mounts = parse(text);
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].mount_point, "/proc");
        assert_eq!(mounts[0].mount_options, ["rw", "nosuid"]);
    }
}
