//! `berth pull REF`. On a terminal, one indicatif bar per blob (bytes, rate);
//! otherwise one plain line per blob (config and layers) as it completes, e.g.
//! `sha256:0123456789ab done 1.2 MB`. The library stays UI-free: all it gives is
//! the image crate's `Progress` callback.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;
use berth_engine::Engine;
use berth_image::Digest;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::PullArgs;

/// Turns the image crate's progress callbacks into bars or lines.
enum Reporter {
    /// Plain lines; the set holds blobs already reported done.
    Lines(Mutex<HashMap<Digest, bool>>),
    /// One bar per blob.
    Bars {
        multi: MultiProgress,
        bars: Mutex<HashMap<Digest, ProgressBar>>,
        style: ProgressStyle,
    },
}

/// `284 B`, `12.3 kB`, `1.2 MB`, `3.4 GB`.
fn size(bytes: u64) -> String {
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{:.1} kB", bytes as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", bytes as f64 / 1e6),
        _ => format!("{:.1} GB", bytes as f64 / 1e9),
    }
}

impl Reporter {
    fn new(terminal: bool) -> Self {
        if !terminal {
            return Self::Lines(Mutex::default());
        }
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        Self::Bars {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10)),
            bars: Mutex::default(),
            style,
        }
    }

    fn update(&self, digest: &Digest, done: u64, total: u64) {
        match self {
            Self::Lines(seen) => {
                let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
                let reported = seen.entry(digest.clone()).or_insert(false);
                if done >= total && !*reported {
                    *reported = true;
                    eprintln!("{} done {}", digest.short(), size(total));
                }
            }
            Self::Bars { multi, bars, style } => {
                let mut bars = bars.lock().unwrap_or_else(|e| e.into_inner());
                let bar = bars.entry(digest.clone()).or_insert_with(|| {
                    let bar = multi.add(ProgressBar::new(total).with_style(style.clone()));
                    bar.set_prefix(digest.short());
                    bar.enable_steady_tick(Duration::from_millis(200));
                    bar
                });
                bar.set_position(done);
                if done >= total && !bar.is_finished() {
                    bar.finish_with_message("done");
                }
            }
        }
    }

    fn finish(&self) {
        if let Self::Bars { bars, .. } = self {
            let bars = bars.lock().unwrap_or_else(|e| e.into_inner());
            for bar in bars.values().filter(|b| !b.is_finished()) {
                bar.abandon_with_message("failed");
            }
        }
    }
}

pub fn run(engine: &Engine, args: &PullArgs) -> Result<i32> {
    let reference = Engine::parse_reference(&args.reference)?;
    let reporter = Reporter::new(std::io::stderr().is_terminal());
    let progress = |digest: &Digest, done: u64, total: u64| reporter.update(digest, done, total);
    let pulled = engine.pull(&reference, &progress);
    reporter.finish();
    let pulled = pulled?;
    println!("{} {}", pulled.reference, pulled.manifest_digest);
    Ok(0)
}
