//! A minimal QMP client over QEMU's unix socket: one command at a time, events skipped.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::VmError;

/// A QMP connection, past the capabilities negotiation.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

fn err(what: &str, e: impl std::fmt::Display) -> VmError {
    VmError::Qmp(format!("{what}: {e}"))
}

impl Qmp {
    /// Connects to the socket at `path` and negotiates capabilities.
    pub fn connect(path: &Path) -> Result<Self, VmError> {
        let stream = crate::unix::connect(path).map_err(|e| err("connecting", e))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| err("setting a timeout", e))?;
        let writer = stream
            .try_clone()
            .map_err(|e| err("cloning the socket", e))?;
        let mut qmp = Self {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(err("unexpected greeting", greeting));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    fn read_message(&mut self) -> Result<Value, VmError> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|e| err("reading", e))?;
        if n == 0 {
            return Err(err("reading", "connection closed"));
        }
        serde_json::from_str(&line).map_err(|e| err("parsing a reply", e))
    }

    /// Runs `command` with `arguments` and returns its `return` value.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, VmError> {
        let mut msg = json!({ "execute": command });
        if let Some(args) = arguments {
            msg["arguments"] = args;
        }
        let mut line = msg.to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|e| err(&format!("sending {command}"), e))?;
        loop {
            let reply = self.read_message()?;
            if let Some(ret) = reply.get("return") {
                return Ok(ret.clone());
            }
            if let Some(e) = reply.get("error") {
                return Err(err(command, e));
            }
            // An asynchronous event: skip it.
        }
    }

    /// The VM's run state (`running`, `paused`, `shutdown`…).
    pub fn status(&mut self) -> Result<String, VmError> {
        let ret = self.execute("query-status", None)?;
        ret.get("status")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| err("query-status", ret))
    }

    /// Asks QEMU to exit at once (the guest gets no say).
    pub fn quit(&mut self) -> Result<(), VmError> {
        match self.execute("quit", None) {
            // QEMU may close the socket before replying.
            Ok(_) => Ok(()),
            Err(VmError::Qmp(m)) if m.contains("connection closed") => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Presses the virtual power button (an ACPI event the guest may handle).
    pub fn powerdown(&mut self) -> Result<(), VmError> {
        self.execute("system_powerdown", None).map(drop)
    }
}
