//! Making the WSGI app of a plan's Python segment, with PasteDeploy, in the running interpreter.
//!
//! The segment (a Python node and everything under it) goes to `host.py` as the plan's own
//! JSON; PasteDeploy's loaders find each factory and its `LoaderContext.create()` calls it, so
//! apps get the `global_conf` and `local_conf` PasteDeploy would give them.

use super::respond::log_exception;
use super::Host;
use deploy::Node;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyModule;
use std::path::Path;
use thiserror::Error;
use worker::app::App;

/// Why a Python segment could not be made.
#[derive(Debug, Error)]
#[error("{message}")]
pub struct LoadError {
    /// The exception, as `Type: message` (the traceback is in the log).
    pub message: String,
}

impl LoadError {
    fn from_py(py: Python<'_>, error: &PyErr, what: &str) -> Self {
        log_exception(py, error, what);
        LoadError {
            message: format!("{what}: {error}"),
        }
    }
}

/// `host.py`, imported once.
static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    MODULE
        .get_or_try_init(py, || {
            let code = std::ffi::CString::new(include_str!("host.py"))
                .map_err(|e| pyo3::exceptions::PyValueError::new_err(e.to_string()))?;
            Ok(PyModule::from_code(py, &code, c"serve/host.py", c"_serve_host")?.unbind())
        })
        .map(|module| module.bind(py))
}

/// The app of a Python segment of the plan, served by `host`'s threads.
pub fn load_segment(host: &Host, node: &Node) -> Result<App, LoadError> {
    let json = serde_json::to_string(node).map_err(|e| LoadError {
        message: format!("cannot hand the plan to Python: {e}"),
    })?;
    let section = node.factory().section.clone().unwrap_or_default();
    Python::attach(|py| {
        let what = format!("loading [{section}] in Python failed");
        let app = module(py)
            .and_then(|m| m.call_method1("build_json", (json,)))
            .map_err(|e| LoadError::from_py(py, &e, &what))?;
        if !app.is_callable() {
            return Err(LoadError {
                message: format!(
                    "{what}: the factory returned a {}, which is not a WSGI app",
                    app.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ),
            });
        }
        Ok(host.app(app.unbind()))
    })
}

/// The source files of the Python modules imported so far (not the standard library's): what
/// `--reload` watches besides the config files.
pub fn imported_sources() -> Vec<std::path::PathBuf> {
    Python::attach(|py| {
        module(py)
            .and_then(|m| m.call_method0("sources"))
            .and_then(|paths| paths.extract::<Vec<std::path::PathBuf>>())
            .unwrap_or_else(|e| {
                log_exception(py, &e, "listing the imported modules failed");
                Vec::new()
            })
    })
}

/// The worker is leaving: runs the app's `atexit` functions when it drained (not on a quick
/// stop), and flushes what Python still buffers for stdout and stderr.
pub fn finish(run_atexit: bool) {
    Python::attach(|py| {
        let code = if run_atexit {
            c"import atexit, sys\natexit._run_exitfuncs()\nsys.stdout.flush()\nsys.stderr.flush()\n"
        } else {
            c"import sys\nsys.stdout.flush()\nsys.stderr.flush()\n"
        };
        if let Err(e) = py.run(code, None, None) {
            log_exception(py, &e, "Python's exit functions failed");
        }
    });
}

/// Configures Python's `logging` from the file's `[loggers]` sections, as `pserve` does; true
/// when it had them.
pub fn setup_logging(config: &Path) -> Result<bool, LoadError> {
    Python::attach(|py| {
        module(py)
            .and_then(|m| m.call_method1("setup_logging", (config,)))
            .and_then(|done| done.extract::<bool>())
            .map_err(|e| {
                LoadError::from_py(
                    py,
                    &e,
                    &format!("configuring logging from {} failed", config.display()),
                )
            })
    })
}
