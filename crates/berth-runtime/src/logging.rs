//! Logging to stderr or --log FILE, as text or as runc's JSON lines
//! (`{"level":"error","msg":"…","time":"…"}`, which containerd's shim parses).

use std::fmt;
use std::fs::OpenOptions;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::cli::{Global, LogFormat};

/// Set up logging; true when a log file receives the log (so main logs errors to it).
pub fn init(g: &Global) -> bool {
    let level = if g.debug { Level::DEBUG } else { Level::WARN };
    let file = g.log.as_ref().and_then(|p| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .map_err(|e| eprintln!("berth-runtime: opening log file {}: {e}", p.display()))
            .ok()
    });
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false);
    // Errors are printed to stderr by main; the subscriber writes to the log file, or
    // else warnings (and with --debug, debug messages) to stderr.
    let to_file = file.is_some();
    match (file, g.log_format) {
        (Some(f), LogFormat::Json) => builder
            .event_format(RuncJson)
            .with_writer(Mutex::new(f))
            .init(),
        (Some(f), LogFormat::Text) => builder.with_ansi(false).with_writer(Mutex::new(f)).init(),
        // Warnings (e.g. a failing poststart hook) go to stderr, as runc's do.
        (None, _) => builder.with_writer(std::io::stderr).init(),
    }
    to_file
}

/// One JSON object per line with runc's field names.
struct RuncJson;

#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.add(field, value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.add(field, format!("{value:?}"));
    }
}

impl Message {
    fn add(&mut self, field: &Field, value: String) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        if field.name() == "message" {
            self.0.push_str(&value);
        } else {
            self.0.push_str(&format!("{}={value}", field.name()));
        }
    }
}

impl<S, N> FormatEvent<S, N> for RuncJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut msg = Message::default();
        event.record(&mut msg);
        let line = serde_json::json!({
            "level": event.metadata().level().as_str().to_ascii_lowercase(),
            "msg": msg.0,
            "time": berth_container::state::now_rfc3339(),
        });
        writeln!(w, "{line}")
    }
}
