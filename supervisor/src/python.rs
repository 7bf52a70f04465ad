//! Python apps, where `serve` meets the `serve-python` crate (with the `python` feature).
//!
//! The supervisor and `serve check` resolve Python eggs through a child that reads the
//! environment ([`registry`]); they never start Python themselves. A worker whose plan has
//! Python nodes starts the interpreter after its signal handlers are in place, configures
//! logging from the file as `pserve` does, starts its Python threads and loads each Python
//! segment with PasteDeploy ([`Worker::start`]). Without the feature, a plan that names
//! Python code fails to load with an error that says how to build serve with it.

use deploy::{Plan, Registry};
use std::path::Path;
use worker::eggs::Eggs;

/// The registry of `eggs`, followed by the Python environment's eggs when this build hosts
/// Python. The environment is read only if the loader asks for a name no built-in egg has.
pub fn registry(eggs: &Eggs, python: Option<&Path>) -> (Registry, Source) {
    imp::registry(eggs, python)
}

/// What the Python source learned while a plan loaded: the environment, if it was read.
#[derive(Debug, Clone, Default)]
pub struct Source {
    #[cfg(feature = "python")]
    eggs: Option<std::sync::Arc<serve_python::eggs::PythonEggs>>,
}

impl Source {
    /// Records the Python environment in `plan` when the plan has Python nodes.
    pub fn stamp(&self, plan: &mut Plan) {
        if plan.app.has_python() {
            plan.python = imp::executable(self);
        }
    }
}

/// Eggs for checking a plan in the supervisor: Python segments resolve (their names were
/// found in the environment's entry points) but are not loaded, since Python never starts here.
pub fn for_checking(eggs: &Eggs) -> Eggs {
    let mut eggs = eggs.clone();
    eggs.with_python(|_node| {
        Ok(worker::app::app_fn(|_req| async {
            worker::app::text(
                http::StatusCode::SERVICE_UNAVAILABLE,
                "a Python app is only loaded in a worker\n",
            )
        }))
    });
    eggs
}

/// `serve python-eggs`: prints the listing of `$SERVE_PYTHON`'s environment as JSON.
pub fn list_eggs() -> std::process::ExitCode {
    imp::list_eggs()
}

#[cfg(feature = "python")]
mod imp {
    use super::Source;
    use deploy::Registry;
    use serve_python::eggs::PythonEggs;
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;
    use std::sync::Arc;
    use worker::eggs::Eggs;

    pub(super) fn registry(eggs: &Eggs, python: Option<&Path>) -> (Registry, Source) {
        let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
        let source = Arc::new(PythonEggs::new(exe, python.map(Path::to_owned)));
        let registry = eggs.registry().with_source(source.clone());
        (registry, Source { eggs: Some(source) })
    }

    pub(super) fn executable(source: &Source) -> Option<PathBuf> {
        Some(source.eggs.as_ref()?.environment()?.executable.clone())
    }

    pub(super) fn list_eggs() -> ExitCode {
        match serve_python::listing::child() {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        }
    }
}

#[cfg(not(feature = "python"))]
mod imp {
    use super::Source;
    use deploy::Registry;
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;
    use worker::eggs::Eggs;

    pub(super) fn registry(eggs: &Eggs, _python: Option<&Path>) -> (Registry, Source) {
        (eggs.registry(), Source::default())
    }

    pub(super) fn executable(_source: &Source) -> Option<PathBuf> {
        None
    }

    pub(super) fn list_eggs() -> ExitCode {
        eprintln!("this serve was built without the `python` feature");
        ExitCode::FAILURE
    }
}

/// The Python side of a worker.
#[derive(Debug)]
pub struct Worker {
    #[cfg(feature = "python")]
    guard: serve_python::interp::SignalGuard,
    #[cfg(feature = "python")]
    host: serve_python::host::Host,
}

impl Worker {
    /// Starts Python in this worker and teaches `eggs` to load the plan's Python segments:
    /// none when the plan has no Python node. Call it after the signal handlers are set, on
    /// the thread that will stay the process's main thread, inside the tokio runtime.
    pub fn start(
        eggs: &mut Eggs,
        plan: &Plan,
        threads: usize,
        multiprocess: bool,
    ) -> Result<Option<Worker>, String> {
        if !plan.app.has_python() {
            return Ok(None);
        }
        Worker::start_python(eggs, plan, threads, multiprocess).map(Some)
    }

    #[cfg(feature = "python")]
    fn start_python(
        eggs: &mut Eggs,
        plan: &Plan,
        threads: usize,
        multiprocess: bool,
    ) -> Result<Worker, String> {
        use serve_python::host::{load_segment, setup_logging, Host, HostSettings};
        let guard = serve_python::interp::SignalGuard::take();
        let executable = plan
            .python
            .as_deref()
            .ok_or("the plan names Python code but no Python environment")?;
        serve_python::interp::initialize(executable).map_err(|e| e.to_string())?;
        if let Some(config) = plan.files.first() {
            setup_logging(config).map_err(|e| e.to_string())?;
        }
        let host = Host::start(
            HostSettings {
                threads,
                multiprocess,
                ..HostSettings::default()
            },
            tokio::runtime::Handle::current(),
        )
        .map_err(|e| format!("cannot start the Python threads: {e}"))?;
        let loader = host.clone();
        eggs.with_python(move |node| {
            load_segment(&loader, node).map_err(|e| worker::conf::EggError::new(e.message))
        });
        Ok(Worker { guard, host })
    }

    #[cfg(not(feature = "python"))]
    fn start_python(
        _eggs: &mut Eggs,
        _plan: &Plan,
        _threads: usize,
        _multiprocess: bool,
    ) -> Result<Worker, String> {
        Err(
            "the plan names Python code, and this serve was built without the `python` feature"
                .into(),
        )
    }

    /// The signal that the Python threads have more waiting than their queue holds.
    pub fn busy(&self) -> Option<worker::server::Busy> {
        #[cfg(feature = "python")]
        {
            let host = self.host.clone();
            Some(std::sync::Arc::new(move || host.busy()))
        }
        #[cfg(not(feature = "python"))]
        None
    }

    /// The source files of the Python modules the app imported.
    pub fn sources(&self) -> Vec<std::path::PathBuf> {
        #[cfg(feature = "python")]
        return serve_python::host::imported_sources();
        #[cfg(not(feature = "python"))]
        Vec::new()
    }

    /// The worker is leaving: the app's `atexit` functions run after a drain (`drained`), and
    /// Python's buffered output is flushed either way.
    pub fn finish(&self, drained: bool) {
        #[cfg(feature = "python")]
        serve_python::host::finish(drained);
        #[cfg(not(feature = "python"))]
        let _ = drained;
    }

    /// After the app is loaded: puts back any signal handler the app's import replaced.
    pub fn loaded(&self) {
        #[cfg(feature = "python")]
        self.guard.restore();
    }
}
