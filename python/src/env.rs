//! Which Python environment a deployment's Python eggs come from, and whether this build can
//! host it.
//!
//! The environment is given by `--python PATH` (a virtualenv folder or an interpreter), else
//! `$VIRTUAL_ENV`, else the `python3` on `PATH`. Its interpreter is run once to learn the real
//! executable (a pyenv shim or a symlink is not where `pyvenv.cfg` and the standard library are
//! found), its version and its prefix. The embedded interpreter must be the same minor version:
//! extension modules and the standard library are built for one.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::process::Command;
use thiserror::Error;

/// A Python environment, as its interpreter describes itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Environment {
    /// `sys.executable`: the interpreter, inside the virtualenv when there is one.
    pub executable: PathBuf,
    /// `sys.prefix`: the virtualenv, or the installation.
    pub prefix: PathBuf,
    /// `MAJOR.MINOR`.
    pub version: String,
}

/// Why no usable environment was found.
#[derive(Debug, Error)]
pub enum FindError {
    /// The path names neither a virtualenv nor an interpreter.
    #[error("{0}: neither a virtualenv folder (with bin/python) nor a Python interpreter")]
    NotAnEnvironment(PathBuf),
    /// The interpreter could not be started.
    #[error("cannot run the Python interpreter {path}: {source}")]
    Run {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The interpreter ran and failed.
    #[error("the Python interpreter {path} failed: {stderr}")]
    Failed { path: PathBuf, stderr: String },
    /// The environment is another Python version than the one this build embeds.
    #[error("{path} is Python {found}, but this serve embeds Python {built}: use an environment of Python {built}, or build serve against this one (PYO3_PYTHON={path} cargo build --release --features python)")]
    VersionMismatch {
        path: PathBuf,
        found: String,
        built: String,
    },
}

/// What the interpreter is asked to print about itself.
const DESCRIBE: &str = "import json, sys; print(json.dumps({'executable': sys.executable, \
                        'prefix': sys.prefix, 'version': '%d.%d' % sys.version_info[:2]}))";

/// The interpreter that `--python PATH`, `$VIRTUAL_ENV` or `PATH` names (without running it).
pub fn interpreter(explicit: Option<&Path>) -> Result<PathBuf, FindError> {
    let venv_python = |dir: &Path| {
        ["bin/python", "bin/python3"]
            .iter()
            .map(|name| dir.join(name))
            .find(|path| path.is_file())
    };
    if let Some(path) = explicit {
        if path.is_dir() {
            return venv_python(path).ok_or_else(|| FindError::NotAnEnvironment(path.to_owned()));
        }
        if path.is_file() {
            return Ok(path.to_owned());
        }
        return Err(FindError::NotAnEnvironment(path.to_owned()));
    }
    if let Some(venv) = std::env::var_os("VIRTUAL_ENV").filter(|v| !v.is_empty()) {
        let venv = PathBuf::from(venv);
        return venv_python(&venv).ok_or(FindError::NotAnEnvironment(venv));
    }
    Ok(PathBuf::from("python3"))
}

/// Finds the environment and checks that this build can host it.
pub fn find(explicit: Option<&Path>) -> Result<Environment, FindError> {
    let path = interpreter(explicit)?;
    let output = crate::child::output(
        Command::new(&path).args(["-c", DESCRIBE]),
        crate::child::DEADLINE,
    )
    .map_err(|source| FindError::Run {
        path: path.clone(),
        source,
    })?;
    if !output.status.success() {
        return Err(FindError::Failed {
            path,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    let env: Environment =
        serde_json::from_slice(&output.stdout).map_err(|e| FindError::Failed {
            path: path.clone(),
            stderr: format!("unexpected answer ({e})"),
        })?;
    if env.version != crate::BUILT_FOR {
        return Err(FindError::VersionMismatch {
            path: env.executable,
            found: env.version,
            built: crate::BUILT_FOR.to_owned(),
        });
    }
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_without_an_interpreter_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let error = interpreter(Some(dir.path())).unwrap_err().to_string();
        assert!(error.contains("neither a virtualenv folder"), "{error}");
    }

    #[test]
    fn a_virtualenv_folder_names_its_interpreter() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/python"), "").unwrap();
        assert_eq!(
            interpreter(Some(dir.path())).unwrap(),
            dir.path().join("bin/python")
        );
    }

    #[test]
    fn the_python_on_path_describes_itself() {
        let env = find(Some(Path::new(&which_python()))).unwrap();
        assert_eq!(env.version, crate::BUILT_FOR);
        assert!(env.executable.is_absolute(), "{env:?}");
    }

    #[test]
    fn another_python_version_is_a_clear_error() {
        let fake = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python/fake-python27");
        let error = find(Some(&fake)).unwrap_err().to_string();
        assert!(
            error.contains("is Python 2.7, but this serve embeds Python"),
            "{error}"
        );
    }

    fn which_python() -> String {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }
}
