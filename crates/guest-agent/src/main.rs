//! `/init` of berth's micro-VMs (PID 1): prepares the guest, serves one run request on
//! the control port, reports how the command ended and powers off. See the library docs
//! for the protocol. Every failure is reported on the control port when it is open, and
//! logged on the console (the first serial port) in any case; the guest then powers off.

mod boot;
mod command;
mod error;
mod net;
mod ports;

use std::io::{BufRead, BufReader, Write};

use berth_guest_agent::protocol::{
    GuestMessage, HostMessage, CONTROL_PORT, STDERR_PORT, STDIN_PORT, STDOUT_PORT,
};

use crate::error::AgentError;

fn main() {
    if let Err(e) = boot::early_mounts().and_then(|()| boot::load_modules()) {
        log(&format!("berth-guest-agent: {e}"));
        boot::power_off();
    }
    let mut control = match ports::open(CONTROL_PORT) {
        Ok(f) => f,
        Err(e) => {
            log(&format!("berth-guest-agent: {e}"));
            boot::power_off();
        }
    };
    let report = match serve(&control) {
        Ok(status) => GuestMessage::Exited(status),
        Err(e) => {
            log(&format!("berth-guest-agent: {e}"));
            GuestMessage::Error(e.to_string())
        }
    };
    let _ = control.write_all(report.to_line().as_bytes());
    let _ = control.flush();
    boot::power_off();
}

/// Says Ready, takes the run request, runs it and returns how it ended.
fn serve(control: &std::fs::File) -> Result<berth_guest_agent::ExitStatus, AgentError> {
    let mut writer = control;
    writer
        .write_all(GuestMessage::Ready.to_line().as_bytes())
        .map_err(|source| AgentError::Control { source })?;
    let mut reader = BufReader::new(
        control
            .try_clone()
            .map_err(|source| AgentError::Control { source })?,
    );
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|source| AgentError::Control { source })?;
    let request = match serde_json::from_str::<HostMessage>(&line) {
        Ok(HostMessage::Run(r)) => r,
        Ok(other) => return Err(AgentError::Protocol(format!("expected run, got {other:?}"))),
        Err(e) => {
            return Err(AgentError::Protocol(format!(
                "parsing the run request: {e}"
            )))
        }
    };
    if let Some(name) = &request.hostname {
        nix::unistd::sethostname(name).map_err(|source| AgentError::Sys {
            what: "setting the hostname".into(),
            source,
        })?;
    }
    if let Some(network) = &request.network {
        net::configure(network)?;
    }
    boot::mount_root()?;
    boot::mount_extra(&request.mounts)?;
    boot::write_files(&request.files)?;
    if request.readonly_root {
        boot::root_readonly()?;
    }
    let stdin = if request.stdin {
        Some(ports::open(STDIN_PORT)?)
    } else {
        None
    };
    let stdout = ports::open(STDOUT_PORT)?;
    let stderr = ports::open(STDERR_PORT)?;
    let spawned = command::spawn(&request, stdin, stdout, stderr)?;
    let pid = spawned.pid;
    writer
        .write_all(
            GuestMessage::Started { pid: pid.as_raw() }
                .to_line()
                .as_bytes(),
        )
        .map_err(|source| AgentError::Control { source })?;
    command::serve_messages(reader, pid, spawned.pty.as_ref().map(|p| p.master()));
    let status = command::wait(pid)?;
    // Exited ends the VM: the pty's last output must be on its way first.
    if let Some(pty) = spawned.pty {
        pty.finish();
    }
    Ok(status)
}

/// Writes a line on the console (stderr, the kernel's /dev/console).
fn log(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}
