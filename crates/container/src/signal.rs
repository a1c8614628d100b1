//! Signal names and numbers as `kill` accepts them.

use nix::sys::signal::Signal;

use crate::error::ContainerError;

/// Parse "9", "KILL", "SIGKILL", "sigterm", or a real-time "RTMIN+3".
pub fn parse(text: &str) -> Result<i32, ContainerError> {
    let bad = || ContainerError::BadSignal(text.to_string());
    if let Ok(n) = text.parse::<i32>() {
        return if (1..=libc::SIGRTMAX()).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    for (prefix, base) in [("RTMIN", libc::SIGRTMIN()), ("RTMAX", libc::SIGRTMAX())] {
        if let Some(rest) = name.strip_prefix(prefix) {
            let off: i32 = if rest.is_empty() {
                0
            } else {
                rest.parse().map_err(|_| bad())?
            };
            let n = base + off;
            let valid = (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&n);
            return if valid { Ok(n) } else { Err(bad()) };
        }
    }
    format!("SIG{name}")
        .parse::<Signal>()
        .map(|s| s as i32)
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_numbers() {
        assert_eq!(parse("9").unwrap(), 9);
        assert_eq!(parse("KILL").unwrap(), 9);
        assert_eq!(parse("SIGTERM").unwrap(), 15);
        assert_eq!(parse("sigusr1").unwrap(), libc::SIGUSR1);
        assert_eq!(parse("RTMIN+2").unwrap(), libc::SIGRTMIN() + 2);
        for bad in ["0", "99", "SIGFOO", "", "RTMAX+1"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
