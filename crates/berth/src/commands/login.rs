//! `berth login [-u USER] [--password-stdin] REGISTRY` and `berth logout REGISTRY`.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Context, Result};
use berth_engine::Engine;
use berth_image::Credentials;

use crate::cli::{LoginArgs, LogoutArgs};

fn read_line(prompt: &str) -> Result<String> {
    if !prompt.is_empty() {
        eprint!("{prompt}");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading standard input")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

pub fn login(engine: &Engine, args: &LoginArgs) -> Result<i32> {
    let terminal = std::io::stdin().is_terminal();
    let username = match &args.username {
        Some(u) => u.clone(),
        None if terminal && !args.password_stdin => read_line("Username: ")?,
        None => bail!("--username is needed when the password comes from standard input"),
    };
    let password = if args.password_stdin {
        read_line("")?
    } else if terminal {
        // No echo control without a tty crate: say so rather than surprise.
        read_line("Password (echoed; prefer --password-stdin): ")?
    } else {
        bail!("no password: use --password-stdin")
    };
    if username.is_empty() || password.is_empty() {
        bail!("empty user name or password");
    }
    let host = engine.login(&args.registry, Credentials { username, password })?;
    println!("Login Succeeded ({host})");
    Ok(0)
}

pub fn logout(engine: &Engine, args: &LogoutArgs) -> Result<i32> {
    if engine.logout(&args.registry)? {
        println!("Removed login credentials for {}", args.registry);
        Ok(0)
    } else {
        eprintln!("berth: not logged in to {}", args.registry);
        Ok(1)
    }
}
