//! `serve`: runs the web application a PasteDeploy deployment file describes.
//!
//! The `serve` binary is [`main_with`] over the built-in eggs. A program that embeds `serve`
//! registers its own eggs (any tower service or axum `Router` as an app factory, any tower
//! `Layer` as a filter factory) on [`Eggs::builtin`] and calls [`main_with`]: it gets the whole
//! command line (`check`, serving, signals) with its eggs usable from deployment files:
//!
//! ```no_run
//! use serve::{app::from_service, Eggs};
//! fn main() -> std::process::ExitCode {
//!     let mut eggs = Eggs::builtin();
//!     eggs.app("myapp", "main", |_global, _local| {
//!         Ok(from_service(tower::service_fn(|_req| async {
//!             Ok::<_, std::convert::Infallible>(http::Response::new(serve::body::full("hi\n")))
//!         })))
//!     });
//!     serve::main_with(eggs)
//! }
//! ```

mod activation;
mod check;
mod cli;
mod control;
mod handoff;
mod python;
mod run;
mod sd;
mod sockets;
mod supervise;
mod tree;
mod upgrade;
mod watch;
mod worker_main;

use clap::Parser;
use cli::{Cli, Command, Target};
use deploy::{load, Plan, Request};
use std::process::ExitCode;

pub use deploy;
pub use worker::eggs::{Children, Eggs};
pub use worker::{app, body, conf, identity, pipeline, settings};

/// Runs the `serve` command line (from `std::env::args`) with `eggs`.
pub fn main_with(eggs: Eggs) -> ExitCode {
    // A worker (started by the supervisor as `serve worker`, everything else in its
    // environment) skips the command-line parser: its code is never paged into the workers.
    if std::env::args_os().nth(1).is_some_and(|a| a == "worker") && std::env::args_os().len() == 2 {
        init_logging();
        return worker_main::run(&eggs);
    }
    // The child that reads a Python environment's entry points for the supervisor.
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == "python-eggs")
    {
        return python::list_eggs();
    }
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check(check)) => check::run(&check, &eggs),
        Some(Command::Reload(reload)) => control::run(&reload),
        Some(Command::Worker) => {
            init_logging();
            worker_main::run(&eggs)
        }
        None => {
            name_the_supervisor(&cli.target);
            init_logging();
            run::run(&cli.target, &cli.overrides, &eggs)
        }
    }
}

/// Makes `ps` show `serve: supervisor ARGS` by re-exec'ing this binary once with that
/// `argv[0]` (same PID); if that fails, runs on under the old name.
fn name_the_supervisor(target: &Target) {
    use std::os::unix::process::CommandExt;
    const NAMED: &str = "SERVE_SUPERVISOR_NAMED";
    if std::env::var_os(NAMED).is_some() || target.config_uri.is_none() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    // `ps` shows argv: `serve: supervisor [OPTIONS] deploy.ini`.
    let error = std::process::Command::new(exe)
        .arg0("serve: supervisor")
        .args(std::env::args_os().skip(1))
        .env(NAMED, "1")
        .exec();
    eprintln!("serve: cannot rename the process ({error}); continuing");
}

/// Standard error that never fails: a log line that cannot be written (stderr closed, its
/// reader gone) is dropped instead of bringing the process down.
struct Stderr;

impl std::io::Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// Logs go to stderr, in colour on a terminal.
fn init_logging() {
    tracing_subscriber::fmt()
        .with_writer(|| Stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

/// Loads the plan that `serve [OPTIONS] CONFIG_URI [VAR=VALUE ...]` names.
fn resolve(target: &Target, eggs: &Eggs) -> Result<Plan, String> {
    let Some(config_uri) = target.config_uri.clone() else {
        return Err(
            "You must give a config file (serve [OPTIONS] CONFIG_URI; see serve --help)".into(),
        );
    };
    let request = Request {
        config_uri,
        app_name: target.app_name.clone(),
        server_name: target.server_name.clone(),
        vars: target.vars.clone(),
    };
    let (registry, python) = python::registry(eggs, target.python.as_deref());
    let mut plan = load(&registry, &request).map_err(|e| e.to_string())?;
    python.stamp(&mut plan);
    Ok(plan)
}

/// Prints an error as `error: PATH:LINE: message` and returns the failure status.
fn report(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}
