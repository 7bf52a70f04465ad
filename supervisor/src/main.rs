//! `serve`: runs the web application a PasteDeploy deployment file describes.
//!
//! This binary is the supervisor. Today it loads and checks the config (`serve check`, and the
//! same validation before serving); the worker processes that serve HTTP come with the worker
//! and supervisor issues.

mod check;
mod cli;
mod tree;

use clap::Parser;
use cli::{Cli, Command, Target};
use deploy::{load, Plan, Request};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Check(check)) => check::run(&check),
        None => match resolve(&cli.target) {
            Ok(plan) => {
                print!("{}", tree::render(&plan));
                eprintln!(
                    "serve: the config is valid, but this build does not serve HTTP yet \
                     (the worker is the next issue); `serve check` validates files meanwhile"
                );
                ExitCode::SUCCESS
            }
            Err(e) => report(&e),
        },
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
