//! Python apps in `serve`: PasteDeploy factories written in Python, found in a Python
//! environment and run by a CPython interpreter embedded in each worker.
//!
//! Three parts, used by different processes. [`env`] finds the environment a deployment's
//! Python eggs come from (`--python`, `$VIRTUAL_ENV`, or `python3` on `PATH`) by running its
//! interpreter, never by starting one in the calling process. [`listing`] reads that
//! environment's entry points in a short-lived child (`serve python-eggs`), so the supervisor
//! resolves and checks plans without ever initializing Python (a fork of a live interpreter
//! would copy its threads and locks); [`eggs`] turns the listing into an egg source for the
//! loader. In a worker, [`interp`] starts the interpreter with the environment's settings and
//! [`host`] runs the plan's Python segments as WSGI apps behind hyper.

pub mod child;
pub mod eggs;
pub mod env;
pub mod host;
pub mod interp;
pub mod listing;

/// The `MAJOR.MINOR` version of the Python this build links.
pub const BUILT_FOR: &str = env!("SERVE_PYTHON_VERSION");
