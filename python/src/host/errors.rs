//! `wsgi.errors`: what an app writes there goes to the worker's log, a line at a time.

use pyo3::prelude::*;

/// The `wsgi.errors` object.
#[pyclass(module = "serve")]
#[derive(Default)]
pub(crate) struct Errors {
    pending: String,
}

impl Errors {
    fn emit(line: &str) {
        if !line.is_empty() {
            tracing::error!(target: "wsgi.errors", "{line}");
        }
    }
}

#[pymethods]
impl Errors {
    fn write(&mut self, text: &str) {
        self.pending.push_str(text);
        while let Some(end) = self.pending.find('\n') {
            Errors::emit(&self.pending[..end]);
            self.pending.drain(..=end);
        }
    }

    fn writelines(&mut self, lines: Vec<String>) {
        for line in lines {
            self.write(&line);
        }
    }

    fn flush(&mut self) {
        Errors::emit(&self.pending);
        self.pending.clear();
    }
}

impl Drop for Errors {
    fn drop(&mut self) {
        Errors::emit(&self.pending);
    }
}
