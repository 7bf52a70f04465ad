//! `serve CONFIG_URI`: load the config, build the pipeline, bind the server section's
//! addresses and serve in this process until SIGTERM or SIGINT, then drain.
//!
//! This is the single-process mode that comes before the supervisor's worker generations: the
//! same pipeline and server, without fork, reload or respawn.

use crate::cli::{Overrides, Target};
use std::process::ExitCode;
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};
use worker::eggs::Eggs;
use worker::server::listen::{bind, Bound};
use worker::server::Server;
use worker::settings::{ListenAddr, ServerSettings, DEFAULT_PORT};

/// How long idle keep-alive connections may stay after a drain starts.
const LINGER: Duration = Duration::from_secs(1);

/// Runs the server; the exit status says whether it started and drained cleanly.
pub fn run(target: &Target, overrides: &Overrides, eggs: &Eggs) -> ExitCode {
    match serve(target, overrides, eggs) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => crate::report(&message),
    }
}

fn serve(target: &Target, overrides: &Overrides, eggs: &Eggs) -> Result<(), String> {
    let plan = crate::resolve(target, eggs)?;
    let app = worker::pipeline::build(&plan.app, eggs).map_err(|e| e.to_string())?;
    let mut settings =
        worker::pipeline::build_server(plan.server.as_ref(), eggs).map_err(|e| e.to_string())?;
    apply(&mut settings, overrides)?;
    if let Some(server) = &plan.server {
        for key in &settings.ignored {
            let at = server
                .factory
                .key_location(key)
                .map(|l| format!("{l}: "))
                .unwrap_or_default();
            tracing::warn!("{at}`{key}` is a setting of another server; serve ignores it");
        }
    }
    if settings.workers.is_some_and(|n| n > 1) {
        tracing::warn!("workers > 1: this build serves in one process (the supervisor comes next)");
    }
    let mut listeners: Vec<Bound> = Vec::new();
    for addr in &settings.listen {
        listeners.extend(bind(addr, settings.backlog).map_err(|e| e.to_string())?);
    }
    let sockets: Vec<std::path::PathBuf> = settings
        .listen
        .iter()
        .filter_map(|a| match a {
            ListenAddr::Unix(path) => Some(path.clone()),
            ListenAddr::Tcp { .. } => None,
        })
        .collect();
    let _remove_sockets = RemoveOnDrop(sockets);
    let runtime = if settings.threads > 1 {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(settings.threads)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    }
    .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let mut terminate = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        let mut interrupt = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
        let mut reopen = signal(SignalKind::user_defined1()).map_err(|e| e.to_string())?;
        let names: Vec<String> = listeners.iter().map(Bound::describe).collect();
        let server = Server::start(listeners, app, &settings).map_err(|e| e.to_string())?;
        for name in names {
            tracing::info!("listening on {name}");
        }
        loop {
            tokio::select! {
                _ = terminate.recv() => {
                    tracing::info!("SIGTERM: draining (up to {:?})", settings.graceful_timeout);
                    break;
                }
                _ = interrupt.recv() => {
                    tracing::info!("SIGINT: draining (up to {:?})", settings.graceful_timeout);
                    break;
                }
                _ = reopen.recv() => {
                    for (path, error) in worker::eggs::serve::accesslog::reopen_all() {
                        tracing::error!("cannot reopen {}: {error}", path.display());
                    }
                    tracing::info!("SIGUSR1: log files reopened");
                }
            }
        }
        let drain = server.drain(LINGER, settings.graceful_timeout);
        tokio::select! {
            report = drain => {
                if report.abandoned > 0 {
                    tracing::warn!("graceful_timeout passed with {} connections open; closing them", report.abandoned);
                }
                tracing::info!("served {} requests; exiting", report.requests);
                Ok(())
            }
            _ = terminate.recv() => Err("second SIGTERM: exiting without waiting".to_owned()),
            _ = interrupt.recv() => Err("second SIGINT: exiting without waiting".to_owned()),
        }
    })
}

/// Removes the unix socket files this process created when it exits.
struct RemoveOnDrop(Vec<std::path::PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Lays the command line's settings over the server section's.
fn apply(settings: &mut ServerSettings, overrides: &Overrides) -> Result<(), String> {
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
