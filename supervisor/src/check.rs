//! `serve check`: loads deployment files and builds their pipelines without serving them, and
//! prints each pipeline, as a tree or as JSON, or the error with its file and line.

use crate::cli::Check;
use crate::tree;
use deploy::{load, Plan, Request};
use std::process::ExitCode;
use worker::eggs::Eggs;

/// Runs `serve check`; the status is a failure if any file is invalid.
pub fn run(check: &Check, eggs: &Eggs) -> ExitCode {
    let (configs, vars) = check.split_args();
    if configs.is_empty() {
        return crate::report("You must give a config file (serve check [OPTIONS] CONFIG_URI...; see serve check --help)");
    }
    let (registry, python) = crate::python::registry(eggs, check.python.as_deref());
    let eggs = &crate::python::for_checking(eggs);
    let several = configs.len() > 1;
    let mut status = ExitCode::SUCCESS;
    for config_uri in configs {
        let request = Request {
            config_uri: config_uri.clone(),
            app_name: check.app_name.clone(),
            server_name: check.server_name.clone(),
            vars: vars.clone(),
        };
        let checked = load(&registry, &request)
            .map_err(|e| e.to_string())
            .and_then(|mut plan| {
                python.stamp(&mut plan);
                // Build what a worker would build, so bad egg settings fail here too (like nginx -t).
                worker::pipeline::build(&plan.app, eggs).map_err(|e| e.to_string())?;
                worker::pipeline::build_server(plan.server.as_ref(), eggs)
                    .map_err(|e| e.to_string())?;
                Ok(plan)
            });
        match checked {
            Ok(plan) if check.json => println!("{}", json(&plan, several)),
            Ok(plan) => {
                print!("{}", tree::render(&plan));
                println!("{config_uri}: ok");
                if several {
                    println!();
                }
            }
            Err(e) => status = crate::report(&e),
        }
    }
    status
}

/// Loads what `serve [OPTIONS] CONFIG_URI` names and builds its pipeline and server settings,
/// as a worker would (`--check-config`).
pub fn validate(target: &crate::cli::Target, eggs: &Eggs) -> Result<Plan, String> {
    let plan = crate::resolve(target, eggs)?;
    let eggs = &crate::python::for_checking(eggs);
    worker::pipeline::build(&plan.app, eggs).map_err(|e| e.to_string())?;
    worker::pipeline::build_server(plan.server.as_ref(), eggs).map_err(|e| e.to_string())?;
    Ok(plan)
}

/// The `--json` form: `{"app": NODE, "server": NODE|null, "files": [...]}`, on one line when
/// several files are checked.
fn json(plan: &Plan, one_line: bool) -> String {
    let text = if one_line {
        serde_json::to_string(plan)
    } else {
        serde_json::to_string_pretty(plan)
    };
    text.unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
