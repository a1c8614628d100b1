//! `berth logs [-f] [--tail N] [-t] NAME`: stdout entries to stdout, stderr
//! entries to stderr.

use std::io::Write;

use anyhow::Result;
use berth_engine::{Engine, LogEntry, LogStream, LogsOptions};

use crate::cli::LogsArgs;

pub fn run(engine: &Engine, args: &LogsArgs) -> Result<i32> {
    let opts = LogsOptions {
        follow: args.follow,
        tail: args.tail,
    };
    let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
    engine.logs(&args.container, opts, &mut |e: &LogEntry| {
        let mut out: Box<dyn Write> = match e.stream {
            LogStream::Stdout => Box::new(stdout.lock()),
            LogStream::Stderr => Box::new(stderr.lock()),
        };
        if args.timestamps {
            write!(out, "{} ", e.time)?;
        }
        out.write_all(e.log.as_bytes())?;
        out.flush()
    })?;
    Ok(0)
}
