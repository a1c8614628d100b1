//! Logging to stderr or --log FILE, as text or JSON (containerd reads the JSON form).

use std::fs::OpenOptions;
use std::sync::Mutex;

use tracing_subscriber::fmt;

use crate::cli::{Global, LogFormat};

/// Sets up logging; returns whether messages go to a `--log` file (else to stderr).
pub fn init(g: &Global) -> bool {
    let level = if g.debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::WARN
    };
    let file = g.log.as_ref().and_then(|p| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map_err(|e| eprintln!("berth-runtime: opening log file {}: {e}", p.display()))
            .ok()
    });
    let builder = fmt().with_max_level(level).with_target(false);
    // Without --log, warnings (a failing poststart or poststop hook, ...) go to stderr;
    // main prints errors there itself.
    let to_file = file.is_some();
    match (file, g.log_format) {
        (Some(f), LogFormat::Json) => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(Mutex::new(f))
            .init(),
        (Some(f), LogFormat::Text) => builder.with_ansi(false).with_writer(Mutex::new(f)).init(),
        (None, _) => builder.with_ansi(false).with_writer(std::io::stderr).init(),
    }
    to_file
}
