//! A detached container's log, `containers/<id>/ctr.log`: one JSON object a line,
//! like Docker's json-file driver:
//!
//! ```text
//! {"time":"2026-11-22T21:52:01.123456789Z","stream":"stdout","log":"hello\n"}
//! ```
//!
//! The monitor is the only writer ([`LogWriter`]); readers parse complete lines
//! ([`LogReader`]) and can follow the file while the container runs.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Which of the container's outputs a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line of `ctr.log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// RFC 3339 with nanoseconds, UTC.
    pub time: String,
    /// stdout or stderr.
    pub stream: LogStream,
    /// The output, with its newline (a line longer than the reader's buffer is
    /// split over several entries).
    pub log: String,
}

/// What `berth logs` was asked.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogsOptions {
    /// Keep reading until the container exits.
    pub follow: bool,
    /// Only the last N entries already written.
    pub tail: Option<usize>,
}

/// Appends entries to a log file; shared by the monitor's reader threads.
#[derive(Debug)]
pub struct LogWriter {
    file: File,
}

impl LogWriter {
    /// Opens (creating) `path` for appending.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self { file })
    }

    /// Writes one entry for `bytes` of `stream`, timestamped now.
    pub fn write(&mut self, stream: LogStream, bytes: &[u8]) -> io::Result<()> {
        let entry = LogEntry {
            time: berth_container::state::now_rfc3339(),
            stream,
            log: String::from_utf8_lossy(bytes).into_owned(),
        };
        let mut line = serde_json::to_vec(&entry).map_err(io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)
    }
}

/// Reads complete entries from a log file, remembering where it stopped.
#[derive(Debug)]
pub struct LogReader {
    file: Option<File>,
    partial: Vec<u8>,
}

impl LogReader {
    /// A reader of `path`; a missing file reads as empty until it appears.
    pub fn new() -> Self {
        Self {
            file: None,
            partial: Vec::new(),
        }
    }

    /// The entries written since the last call. Malformed lines are skipped.
    pub fn read_new(&mut self, path: &Path) -> io::Result<Vec<LogEntry>> {
        if self.file.is_none() {
            match File::open(path) {
                Ok(f) => self.file = Some(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        }
        let Some(file) = self.file.as_mut() else {
            return Ok(Vec::new());
        };
        file.read_to_end(&mut self.partial)?;
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return Ok(Vec::new());
        };
        let rest = self.partial.split_off(end + 1);
        let complete = std::mem::replace(&mut self.partial, rest);
        Ok(complete
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .filter_map(|l| serde_json::from_slice(l).ok())
            .collect())
    }
}

impl Default for LogReader {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_entries_read_back_in_order_and_partial_lines_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctr.log");
        let mut reader = LogReader::new();
        assert!(reader.read_new(&path).unwrap().is_empty());
        let mut w = LogWriter::open(&path).unwrap();
        w.write(LogStream::Stdout, b"one\n").unwrap();
        w.write(LogStream::Stderr, b"two \xff\n").unwrap();
        let got = reader.read_new(&path).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].stream, LogStream::Stdout);
        assert_eq!(got[0].log, "one\n");
        assert_eq!(got[1].stream, LogStream::Stderr);
        assert_eq!(got[1].log, "two \u{fffd}\n");
        assert!(got[0].time.ends_with('Z') && got[0].time.contains('T'));
        // Half a line is held back until the rest is written.
        let mut raw = OpenOptions::new().append(true).open(&path).unwrap();
        raw.write_all(br#"{"time":"t","stream":"stdout","#).unwrap();
        assert!(reader.read_new(&path).unwrap().is_empty());
        raw.write_all(b"\"log\":\"three\\n\"}\n").unwrap();
        let got = reader.read_new(&path).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].log, "three\n");
    }
}
