//! `berth pull REF`. On a terminal, one status line redrawn in place (blobs done,
//! bytes so far); otherwise one line per blob (config and layers) as it completes.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Result;
use berth_engine::Engine;
use berth_image::Digest;

use crate::cli::PullArgs;

#[derive(Default)]
struct State {
    blobs: BTreeMap<Digest, (u64, u64)>,
    drawn: Option<Instant>,
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

pub fn run(engine: &Engine, args: &PullArgs) -> Result<i32> {
    let reference = Engine::parse_reference(&args.reference)?;
    let terminal = std::io::stderr().is_terminal();
    let state = Mutex::new(State::default());
    let progress = |digest: &Digest, got: u64, total: u64| {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        let first_done = got >= total && s.blobs.get(digest).is_none_or(|(g, t)| g < t);
        s.blobs.insert(digest.clone(), (got, total));
        if !terminal {
            if first_done {
                eprintln!("{}: done ({total} bytes)", digest.short());
            }
            return;
        }
        let due = s
            .drawn
            .is_none_or(|t| t.elapsed() > Duration::from_millis(100));
        if due || first_done {
            let done = s.blobs.values().filter(|(g, t)| g >= t).count();
            let (got, total) = s
                .blobs
                .values()
                .fold((0, 0), |(a, b), (g, t)| (a + g, b + t));
            eprint!(
                "\r\x1b[Kpulling {reference}: {done}/{} blobs, {:.1}/{:.1} MB",
                s.blobs.len(),
                mb(got),
                mb(total)
            );
            let _ = std::io::stderr().flush();
            s.drawn = Some(Instant::now());
        }
    };
    let pulled = engine.pull(&reference, &progress);
    if terminal {
        eprintln!();
    }
    let pulled = pulled?;
    println!("{} {}", pulled.reference, pulled.manifest_digest);
    Ok(0)
}
