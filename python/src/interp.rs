//! Starting the embedded interpreter in a process that hosts Python code (a worker, or the
//! short-lived child that lists entry points), and guarding the process's signal handlers
//! against what the app's import does.
//!
//! The interpreter is configured as the environment's own `python` would be: its executable is
//! the environment's, so `pyvenv.cfg` and the standard library are found as they would be there,
//! and `site` adds the environment's packages. Python installs no signal handlers of its own
//! (`install_signal_handlers = 0`): the worker's handlers are set before Python starts, so
//! Python's `signal` module finds SIGINT taken and leaves it, and Ctrl-C never becomes a
//! `KeyboardInterrupt` inside a request.

use nix::libc;
use nix::sys::signal::Signal;
use pyo3::ffi;
use pyo3::prelude::*;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use thiserror::Error;

/// Why the interpreter did not start.
#[derive(Debug, Error)]
pub enum InitError {
    /// The path cannot be handed to C.
    #[error("the interpreter path {0} contains a NUL byte")]
    BadPath(String),
    /// Python refused its configuration, or failed while starting.
    #[error("Python did not start with {executable}: {message}")]
    Start { executable: String, message: String },
    /// The started interpreter is not the version this build embeds.
    #[error("the embedded Python is {found}, but this serve was built for Python {built}")]
    Version { found: String, built: String },
    /// Python was already started in this process.
    #[error("Python is already running in this process")]
    AlreadyRunning,
}

/// Starts Python as the environment's interpreter `executable` would start, and releases the GIL.
pub fn initialize(executable: &Path) -> Result<(), InitError> {
    let shown = executable.display().to_string();
    let path = CString::new(executable.as_os_str().as_bytes())
        .map_err(|_| InitError::BadPath(shown.clone()))?;
    // SAFETY: Py_IsInitialized may be called at any time.
    if unsafe { ffi::Py_IsInitialized() } != 0 {
        return Err(InitError::AlreadyRunning);
    }
    let failed = |status: ffi::PyStatus| {
        // SAFETY: a status returned by the config API; err_msg is null or a static C string.
        let message = unsafe {
            if status.err_msg.is_null() {
                "unknown error".to_owned()
            } else {
                std::ffi::CStr::from_ptr(status.err_msg)
                    .to_string_lossy()
                    .into_owned()
            }
        };
        InitError::Start {
            executable: shown.clone(),
            message,
        }
    };
    let mut config = std::mem::MaybeUninit::<ffi::PyConfig>::uninit();
    // SAFETY: PyConfig_InitPythonConfig fills the whole struct; every later call gets the
    // initialized struct, and PyConfig_Clear frees what the setters allocated on every path.
    unsafe {
        ffi::PyConfig_InitPythonConfig(config.as_mut_ptr());
        let config = config.assume_init_mut();
        config.install_signal_handlers = 0;
        config.parse_argv = 0;
        let status = ffi::PyConfig_SetBytesString(config, &mut config.executable, path.as_ptr());
        if ffi::PyStatus_Exception(status) != 0 {
            ffi::PyConfig_Clear(config);
            return Err(failed(status));
        }
        let status = ffi::Py_InitializeFromConfig(config);
        ffi::PyConfig_Clear(config);
        if ffi::PyStatus_Exception(status) != 0 {
            return Err(failed(status));
        }
        // The starting thread holds the GIL; every later use takes it with Python::attach.
        ffi::PyEval_SaveThread();
    }
    let found = Python::attach(|py| {
        let info = py.version_info();
        format!("{}.{}", info.major, info.minor)
    });
    if found != crate::BUILT_FOR {
        return Err(InitError::Version {
            found,
            built: crate::BUILT_FOR.to_owned(),
        });
    }
    Ok(())
}

/// The signals a worker handles itself.
const OWN_SIGNALS: [Signal; 5] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
];

/// The handlers of the worker's signals, taken before Python code runs.
pub struct SignalGuard {
    saved: Vec<(Signal, libc::sigaction)>,
}

impl std::fmt::Debug for SignalGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.saved.iter().map(|(signal, _)| signal))
            .finish()
    }
}

impl SignalGuard {
    /// Notes the current handlers of the worker's signals.
    pub fn take() -> SignalGuard {
        let saved = OWN_SIGNALS
            .iter()
            .filter_map(|&signal| current(signal).map(|action| (signal, action)))
            .collect();
        SignalGuard { saved }
    }

    /// Puts back every handler that Python code replaced (an app that calls `signal.signal` at
    /// import), with a warning naming the signal: the worker must still drain on TERM.
    pub fn restore(&self) -> Vec<Signal> {
        let mut replaced = Vec::new();
        for (signal, action) in &self.saved {
            let Some(now) = current(*signal) else {
                continue;
            };
            if now.sa_sigaction != action.sa_sigaction {
                tracing::warn!(
                    "the Python app replaced the handler of {signal}; serve put its own back (the worker must still drain on TERM and stop on INT)"
                );
                // SAFETY: installs the exact action this process had before; no old action
                // is asked for.
                unsafe { libc::sigaction(*signal as libc::c_int, action, std::ptr::null_mut()) };
                replaced.push(*signal);
            }
        }
        replaced
    }
}

/// The action of `signal` now (read only: a null new action changes nothing).
fn current(signal: Signal) -> Option<libc::sigaction> {
    let mut old = std::mem::MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a null `act` only reads the current action into `old`, which is large enough.
    let rc = unsafe { libc::sigaction(signal as libc::c_int, std::ptr::null(), old.as_mut_ptr()) };
    // SAFETY: sigaction filled `old` when it returned 0 (and it was zeroed before).
    (rc == 0).then(|| unsafe { old.assume_init() })
}
