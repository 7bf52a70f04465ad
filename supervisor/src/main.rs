//! `serve`: runs the web application a PasteDeploy deployment file describes.
//!
//! This binary will be the supervisor of worker processes. Today it checks configs
//! (`serve check`) and serves one in a single process (`serve CONFIG_URI`).

mod check;
mod cli;
mod run;
mod tree;

use clap::Parser;
use cli::{Cli, Command, Target};
use deploy::{load, Plan, Request};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check(check)) => check::run(&check),
        None => {
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_target(false)
                .init();
            run::run(&cli.target, &cli.overrides)
        }
    }
}

/// Loads the plan that `serve [OPTIONS] CONFIG_URI [VAR=VALUE ...]` names.
fn resolve(target: &Target) -> Result<Plan, String> {
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
    load(&worker::eggs::registry(), &request).map_err(|e| e.to_string())
}

/// Prints an error as `error: PATH:LINE: message` and returns the failure status.
fn report(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}
