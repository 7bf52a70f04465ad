//! `serve worker`: the process the supervisor starts for each worker slot.
//!
//! It takes over what the supervisor handed it (see [`crate::handoff`]), builds the pipeline
//! from the plan, serves on the inherited listeners, says `ready` on its status socket, and then
//! a `heartbeat` every second from its runtime (so a blocked runtime stops the heartbeats and
//! the supervisor replaces the worker). TERM drains and exits 0; INT and QUIT exit at once;
//! USR1 reopens log files; EOF on the status socket (the supervisor is gone) exits at once.

use crate::handoff;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{signal, SignalKind};
use worker::eggs::Eggs;
use worker::server::Server;

/// How often a worker says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// How long idle keep-alive connections may stay once a drain starts.
const LINGER: Duration = Duration::from_secs(1);

/// Runs a worker; the status is what the supervisor sees when it reaps it.
pub fn run(eggs: &Eggs) -> ExitCode {
    let mut handed = match handoff::take() {
        Ok(handed) => handed,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    worker::identity::set(handed.generation, handed.number);
    let mut settings = match worker::pipeline::build_server(handed.plan.server.as_ref(), eggs) {
        Ok(settings) => settings,
        Err(e) => return failed(&mut handed.status, &e.to_string()),
    };
    if let Some(threads) = handed.threads {
        settings.threads = threads;
    }
    if let Some(timeout) = handed.graceful_timeout {
        settings.graceful_timeout = timeout;
    }
    // A Python worker's `threads` are Python threads; its I/O needs one runtime thread.
    let runtime = if settings.threads > 1 && !handed.plan.app.has_python() {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(settings.threads)
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = writeln!(handed.status, "failed cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(serve(handed, eggs, settings))
}

/// Tells the supervisor the worker could not start.
fn failed(status: &mut std::os::unix::net::UnixStream, reason: &str) -> ExitCode {
    let _ = writeln!(status, "failed {}", reason.replace('\n', " "));
    ExitCode::FAILURE
}

async fn serve(
    mut handed: handoff::Handed,
    eggs: &Eggs,
    settings: worker::settings::ServerSettings,
) -> ExitCode {
    // The handlers first: Python, started next, then finds SIGINT taken and leaves it alone.
    let signals = (|| {
        Ok::<_, std::io::Error>((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
            signal(SignalKind::quit())?,
            signal(SignalKind::user_defined1())?,
        ))
    })();
    let mut eggs = eggs.clone();
    let python = match crate::python::Worker::start(
        &mut eggs,
        &handed.plan,
        settings.threads,
        handed.workers > 1,
    ) {
        Ok(python) => python,
        Err(e) => return failed(&mut handed.status, &e),
    };
    let app = match worker::pipeline::build(&handed.plan.app, &eggs) {
        Ok(app) => app,
        Err(e) => return failed(&mut handed.status, &e.to_string()),
    };
    if let Some(python) = &python {
        python.loaded();
    }
    let status = handed
        .status
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UnixStream::from_std(handed.status));
    let (Ok((mut terminate, mut interrupt, mut quit, mut reopen)), Ok(status)) = (signals, status)
    else {
        return ExitCode::FAILURE;
    };
    let (mut from_supervisor, mut to_supervisor) = status.into_split();
    let share =
        handed.share.and_then(
            |(fd, slot)| match worker::server::balance::Table::open(fd) {
                Ok(table) => Some(worker::server::Share { table, slot }),
                Err(e) => {
                    tracing::warn!("no connection spreading: {e}");
                    None
                }
            },
        );
    let options = worker::server::Options {
        share,
        busy: python.as_ref().and_then(crate::python::Worker::busy),
    };
    let server = match Server::start_with(handed.listeners, app, &settings, options) {
        Ok(server) => server,
        Err(e) => {
            let _ = to_supervisor
                .write_all(format!("failed cannot serve: {e}\n").as_bytes())
                .await;
            return ExitCode::FAILURE;
        }
    };
    // The Python modules the app imported, for `--reload`.
    let sources = python.as_ref().map(crate::python::Worker::sources);
    for path in sources.iter().flatten().filter_map(|p| p.to_str()) {
        if !path.contains('\n') {
            let line = format!("source {path}\n");
            let _ = to_supervisor.write_all(line.as_bytes()).await;
        }
    }
    if to_supervisor.write_all(b"ready\n").await.is_err() {
        return ExitCode::FAILURE;
    }
    let number = handed.number;
    // Python's exit: `atexit` functions after a drain, buffered output flushed always.
    let leave = |drained: bool| {
        if let Some(python) = &python {
            python.finish(drained);
        }
        ExitCode::SUCCESS
    };
    let mut beat = tokio::time::interval(HEARTBEAT);
    let mut scratch = [0u8; 64];
    loop {
        tokio::select! {
            _ = beat.tick() => {
                let line = format!("heartbeat {}\n", server.requests());
                if to_supervisor.write_all(line.as_bytes()).await.is_err() {
                    return ExitCode::FAILURE;
                }
            }
            read = from_supervisor.read(&mut scratch) => {
                if matches!(read, Ok(0) | Err(_)) {
                    // The supervisor is gone.
                    return ExitCode::FAILURE;
                }
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => return leave(false),
            _ = quit.recv() => return leave(false),
            _ = reopen.recv() => {
                for (path, error) in worker::eggs::serve::accesslog::reopen_all() {
                    tracing::error!("cannot reopen {}: {error}", path.display());
                }
                tracing::info!("worker {number}: log files reopened");
            }
        }
    }
    // Only once no connection more is accepted: the supervisor announces a reload when every
    // older worker has said so.
    server.stop_accepting().await;
    let _ = to_supervisor.write_all(b"retiring\n").await;
    let report = tokio::select! {
        report = server.drain(LINGER, settings.graceful_timeout) => report,
        // A second signal does not wait for the drain.
        _ = interrupt.recv() => return leave(false),
        _ = quit.recv() => return leave(false),
    };
    if report.abandoned > 0 {
        tracing::warn!(
            "graceful_timeout passed with {} connections open",
            report.abandoned
        );
    }
    leave(true)
}
