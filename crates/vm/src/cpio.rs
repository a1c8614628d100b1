//! A writer for the cpio "newc" format the kernel unpacks as an initramfs.

use std::io::{self, Write};

const TRAILER: &str = "TRAILER!!!";
/// File type bits of `st_mode`.
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;

/// Writes newc entries to `W`; [`CpioWriter::finish`] adds the trailer.
pub struct CpioWriter<W: Write> {
    out: W,
    ino: u32,
    written: u64,
}

impl<W: Write> CpioWriter<W> {
    /// A writer appending to `out`.
    pub fn new(out: W) -> Self {
        Self {
            out,
            ino: 1,
            written: 0,
        }
    }

    /// A directory (`path` without a leading slash, e.g. `lib/modules`).
    pub fn dir(&mut self, path: &str, perm: u32) -> io::Result<()> {
        self.entry(path, S_IFDIR | perm, (0, 0), &[])
    }

    /// A regular file with `data`.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        self.entry(path, S_IFREG | perm, (0, 0), data)
    }

    /// A character device node.
    pub fn char_dev(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        self.entry(path, S_IFCHR | perm, (major, minor), &[])
    }

    /// Writes the trailer and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.ino = 0;
        self.entry(TRAILER, 0, (0, 0), &[])?;
        Ok(self.out)
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) -> io::Result<()> {
        let size = u32::try_from(data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "cpio entry over 4 GiB"))?;
        let nlink = if mode & S_IFDIR != 0 { 2 } else { 1 };
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime: fixed, so the archive is reproducible
            size,
            0, // dev major
            0, // dev minor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        self.ino += 1;
        let mut header = String::with_capacity(110);
        header.push_str("070701");
        for f in fields {
            header.push_str(&format!("{f:08x}"));
        }
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(data)?;
        self.pad()
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.written += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0u8; 3][..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(entry: &[u8], i: usize) -> u32 {
        let s = std::str::from_utf8(&entry[6 + 8 * i..14 + 8 * i]).unwrap();
        u32::from_str_radix(s, 16).unwrap()
    }

    #[test]
    fn file_entry_layout_and_alignment() {
        let mut w = CpioWriter::new(Vec::new());
        w.file("init", 0o755, b"hello").unwrap();
        let out = w.finish().unwrap();
        assert_eq!(&out[..6], b"070701");
        assert_eq!(field(&out, 1), S_IFREG | 0o755);
        assert_eq!(field(&out, 6), 5); // filesize
        assert_eq!(field(&out, 11), 5); // namesize with NUL
                                        // header 110 + "init\0" = 115 → padded to 116, then data, padded to 124
        assert_eq!(&out[110..115], b"init\0");
        assert_eq!(&out[116..121], b"hello");
        assert_eq!(&out[121..124], &[0, 0, 0]);
        assert_eq!(&out[124..130], b"070701");
        assert_eq!(out.len() % 4, 0);
        let trailer = &out[124..];
        assert_eq!(&trailer[110..110 + TRAILER.len()], TRAILER.as_bytes());
    }

    #[test]
    fn dirs_and_devices() {
        let mut w = CpioWriter::new(Vec::new());
        w.dir("dev", 0o755).unwrap();
        w.char_dev("dev/console", 0o600, 5, 1).unwrap();
        let out = w.finish().unwrap();
        assert_eq!(field(&out, 1), S_IFDIR | 0o755);
        assert_eq!(field(&out, 4), 2);
        let pos = out.windows(6).skip(1).position(|w| w == b"070701").unwrap() + 1;
        let dev_entry = &out[pos..];
        assert_eq!(field(dev_entry, 1), S_IFCHR | 0o600);
        assert_eq!((field(dev_entry, 9), field(dev_entry, 10)), (5, 1));
    }

    #[test]
    fn names_padded_for_every_length() {
        for len in 1..9 {
            let name = "x".repeat(len);
            let mut w = CpioWriter::new(Vec::new());
            w.file(&name, 0o644, b"ab").unwrap();
            let out = w.finish().unwrap();
            let data_at = (110 + len + 1).div_ceil(4) * 4;
            assert_eq!(&out[data_at..data_at + 2], b"ab", "name length {len}");
            assert_eq!(out.len() % 4, 0);
        }
    }
}
