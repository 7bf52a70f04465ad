//! What a Python environment offers PasteDeploy, read without importing any app: its
//! distributions, their entry points in the `paste.*` groups, and its top-level modules.
//!
//! The reading happens in a short-lived child, `serve python-eggs`, that starts the embedded
//! interpreter as the environment's (so it also proves that a worker's interpreter will start)
//! and prints the [`Listing`] as JSON. The supervisor and `serve check` call [`read`]; Python
//! never runs in their own process.

use crate::env::Environment;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Command;
use thiserror::Error;

/// The environment variable that hands the child the interpreter to start as.
pub const PYTHON_VAR: &str = "SERVE_PYTHON";

/// The subcommand of `serve` that prints a listing.
pub const SUBCOMMAND: &str = "python-eggs";

/// One entry point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    /// The distribution's name as its metadata spells it.
    pub dist: String,
    /// The group (`paste.app_factory`, ...).
    pub group: String,
    /// The entry point's name.
    pub name: String,
    /// What it points at, `module:attr`.
    pub value: String,
}

/// What an environment offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// The interpreter, as the embedded Python sees itself (`sys.executable`).
    pub executable: PathBuf,
    /// `MAJOR.MINOR` of the embedded Python.
    pub version: String,
    /// Every installed distribution.
    pub distributions: Vec<String>,
    /// The entry points in PasteDeploy's groups.
    pub entry_points: Vec<Listed>,
    /// Every top-level module on `sys.path`, for `call:module:attr` and
    /// `paste.app_factory = module:attr`.
    pub modules: Vec<String>,
    /// PasteDeploy's version, when it is installed (workers load Python apps with it).
    pub pastedeploy: Option<String>,
}

/// Why an environment could not be read.
#[derive(Debug, Error)]
pub enum ListingError {
    /// The child did not start.
    #[error("running {exe} {SUBCOMMAND} failed: {source}")]
    Spawn {
        exe: PathBuf,
        source: std::io::Error,
    },
    /// The child failed.
    #[error("reading the Python environment {python} failed: {message}")]
    Child { python: PathBuf, message: String },
}

/// The Python the child runs: every distribution, the `paste.*` entry points, the modules.
const LIST: &str = r#"
import json, pkgutil, sys
import importlib.metadata as md
groups = {'paste.app_factory', 'paste.composite_factory', 'paste.composit_factory',
          'paste.filter_factory', 'paste.filter_app_factory', 'paste.server_factory',
          'paste.server_runner'}
seen, dists, entry_points = set(), [], []
for dist in md.distributions():
    name = dist.metadata['Name']
    if not name:
        continue
    key = name.lower().replace('-', '_').replace('.', '_')
    if key in seen:
        continue  # importlib.metadata.distribution(name) finds the first one too
    seen.add(key)
    dists.append(name)
    for ep in dist.entry_points:
        if ep.group in groups:
            entry_points.append({'dist': name, 'group': ep.group, 'name': ep.name, 'value': ep.value})
modules = sorted({m.name for m in pkgutil.iter_modules()} | set(sys.builtin_module_names))
try:
    pastedeploy = md.version('PasteDeploy')
except md.PackageNotFoundError:
    pastedeploy = None
result = json.dumps({
    'executable': sys.executable,
    'version': '%d.%d' % sys.version_info[:2],
    'distributions': dists,
    'entry_points': entry_points,
    'modules': modules,
    'pastedeploy': pastedeploy,
})
"#;

/// Reads `env` through the child `serve_exe python-eggs`.
pub fn read(serve_exe: &Path, env: &Environment) -> Result<Listing, ListingError> {
    let output = crate::child::output(
        Command::new(serve_exe)
            .arg(SUBCOMMAND)
            .env(PYTHON_VAR, &env.executable),
        crate::child::DEADLINE,
    )
    .map_err(|source| ListingError::Spawn {
        exe: serve_exe.to_owned(),
        source,
    })?;
    let child = |message: String| ListingError::Child {
        python: env.executable.clone(),
        message,
    };
    if !output.status.success() {
        return Err(child(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|e| child(format!("unexpected answer: {e}")))
}

/// The child's work: starts Python as `$SERVE_PYTHON` and returns the listing as JSON.
pub fn child() -> Result<String, String> {
    let python =
        std::env::var_os(PYTHON_VAR).ok_or_else(|| format!("{PYTHON_VAR} names no interpreter"))?;
    crate::interp::initialize(Path::new(&python)).map_err(|e| e.to_string())?;
    list().map_err(|e| format!("listing the entry points failed: {e}"))
}

/// Runs [`LIST`] in the running interpreter.
pub(crate) fn list() -> pyo3::PyResult<String> {
    use pyo3::prelude::*;
    use pyo3::types::PyDict;
    Python::attach(|py| {
        let scope = PyDict::new(py);
        let code = std::ffi::CString::new(LIST).expect("no NUL in the script");
        py.run(&code, Some(&scope), Some(&scope))?;
        scope
            .get_item("result")?
            .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("no result"))?
            .extract()
    })
}
