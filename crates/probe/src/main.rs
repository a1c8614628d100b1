//! berth-probe: runs inside test containers and reports what it sees as JSON on stdout.
//!
//! Built as a fully static binary (the test rootfs holds only busybox):
//! `RUSTFLAGS="-C target-feature=+crt-static" cargo build -p berth-probe --release
//! --target x86_64-unknown-linux-gnu` (the integration-test harness does this itself).

mod actions;
mod caps;
mod mountinfo;
mod report;
mod sys;

use std::process::ExitCode;

const USAGE: &str = "\
usage: berth-probe [report] [--pretty] [--sysctl NAME]... [--stat PATH]... [--read PATH]...
                   [--write PATH]... [--write-data PATH DATA]...
       berth-probe exit N | kill-self SIG | sleep SECS | print TEXT...
       berth-probe trap SIG... | open-exe PID | count FILE
       berth-probe fork-bomb N [--hold] | alloc MIB [SECS]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("berth-probe: {msg}");
            ExitCode::from(2)
        }
    }
}

fn dispatch(args: &[String]) -> Result<(), String> {
    let (cmd, rest) = match args.split_first() {
        Some((c, rest)) if !c.starts_with("--") => (c.as_str(), rest),
        _ => ("report", args),
    };
    let arg = |i: usize| {
        rest.get(i)
            .map(String::as_str)
            .ok_or_else(|| format!("{cmd}: missing argument\n{USAGE}"))
    };
    let number = |i: usize| -> Result<f64, String> {
        arg(i)?
            .parse()
            .map_err(|_| format!("{cmd}: not a number: {}", rest[i]))
    };
    let signal = |s: &str| sys::parse_signal(s).ok_or_else(|| format!("unknown signal {s}"));
    let io = |r: std::io::Result<()>| r.map_err(|e| format!("{cmd}: {e}"));
    match cmd {
        "report" => io(report::run(&parse_report(rest)?)),
        "exit" => std::process::exit(number(0)? as i32),
        "kill-self" => actions::kill_self(signal(arg(0)?)?),
        "sleep" => actions::sleep(number(0)?),
        "print" => {
            println!("{}", rest.join(" "));
            Ok(())
        }
        "trap" => {
            let sigs = rest
                .iter()
                .map(|s| signal(s))
                .collect::<Result<Vec<_>, _>>()?;
            io(actions::trap(&sigs))
        }
        "open-exe" => io(actions::open_exe(arg(0)?)),
        "count" => io(actions::count(arg(0)?)),
        "fork-bomb" => io(actions::fork_bomb(
            number(0)? as u32,
            rest.iter().any(|a| a == "--hold"),
        )),
        "alloc" => io(actions::alloc(number(0)? as usize, number(1).ok())),
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other}\n{USAGE}")),
    }
}

fn parse_report(args: &[String]) -> Result<report::Request, String> {
    let mut req = report::Request::default();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--pretty" => req.pretty = true,
            "--sysctl" => req.sysctls.push(value()?),
            "--stat" => req.stats.push(value()?),
            "--read" => req.reads.push(value()?),
            "--write" => req.writes.push((value()?, String::new())),
            "--write-data" => {
                let path = value()?;
                req.writes.push((path, value()?));
            }
            other => return Err(format!("report: unknown flag {other}\n{USAGE}")),
        }
    }
    Ok(req)
}
