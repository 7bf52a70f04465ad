//! `serve CONFIG_URI`: the supervisor, with the command line's settings laid over the server
//! section's.

use crate::cli::{Overrides, Target};
use std::process::ExitCode;
use std::time::Duration;
use worker::eggs::Eggs;
use worker::settings::{ListenAddr, ServerSettings, DEFAULT_PORT};

/// Runs the supervisor; the exit status says whether it started and stopped cleanly.
pub fn run(target: &Target, overrides: &Overrides, eggs: &Eggs) -> ExitCode {
    if overrides.check_config {
        return match crate::check::validate(target, eggs) {
            Ok(_) => ExitCode::SUCCESS,
            Err(message) => crate::report(&message),
        };
    }
    match crate::supervise::supervise(target, overrides, eggs) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => crate::report(&message),
    }
}

/// Lays the command line's settings over the server section's.
pub(crate) fn apply(settings: &mut ServerSettings, overrides: &Overrides) -> Result<(), String> {
    if !overrides.bind.is_empty() {
        settings.listen = overrides
            .bind
            .iter()
            .map(|b| ListenAddr::parse(b, DEFAULT_PORT).map_err(|e| format!("--bind {e}")))
            .collect::<Result<_, _>>()?;
    }
    if let Some(threads) = overrides.threads {
        if threads == 0 {
            return Err("--threads must be at least 1".into());
        }
        settings.threads = threads;
    }
    if let Some(seconds) = overrides.graceful_timeout {
        settings.graceful_timeout = Duration::try_from_secs_f64(seconds)
            .map_err(|_| format!("--graceful-timeout {seconds}: not a number of seconds"))?;
    }
    Ok(())
}
