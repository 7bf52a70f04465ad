//! `wsgi.file_wrapper`: a file an app returns is sent by the worker, not by Python.
//!
//! `environ['wsgi.file_wrapper'](filelike, blksize)` gives an iterable that reads `filelike`
//! in blocks (PEP 3333's fallback, used for anything that is not a regular file). When an app
//! returns it unchanged and `filelike` is a regular file (it has a `fileno()`), the worker
//! duplicates the descriptor and reads the rest of the file on the runtime's blocking pool,
//! from the file's current position, while the Python thread goes on to the next request. The
//! app's `close()` is called at once, as the response no longer needs the Python object.

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{BorrowedFd, OwnedFd};
use tokio::sync::mpsc;
use worker::body::BoxError;

/// Bytes read per block when sending a file.
const BLOCK: usize = 64 * 1024;

/// The `wsgi.file_wrapper` callable's result.
#[pyclass(module = "serve")]
pub(crate) struct FileWrapper {
    filelike: Py<PyAny>,
    blksize: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, blksize=8192))]
    fn new(filelike: Py<PyAny>, blksize: usize) -> Self {
        FileWrapper {
            filelike,
            blksize: blksize.max(1),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next block, read by Python (when the worker does not send the file itself).
    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let block = self
            .filelike
            .bind(py)
            .call_method1("read", (self.blksize,))?;
        let empty = block
            .cast::<PyBytes>()
            .is_ok_and(|b| b.as_bytes().is_empty());
        Ok((!empty).then_some(block))
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(close) = self.filelike.bind(py).getattr_opt("close")? {
            close.call0()?;
        }
        Ok(())
    }
}

/// A regular file to send, positioned where the app left it.
pub(crate) struct OpenFile {
    file: File,
    /// Bytes from the position to the end.
    pub(crate) remaining: u64,
}

impl FileWrapper {
    /// The file behind the wrapper, when it is a regular file with a descriptor.
    pub(crate) fn regular_file(&self, py: Python<'_>) -> Option<OpenFile> {
        let filelike = self.filelike.bind(py);
        // Python may hold bytes it read ahead: flush its view by asking where it is.
        let position: u64 = filelike.call_method0("tell").ok()?.extract().ok()?;
        let fd: i32 = filelike.call_method0("fileno").ok()?.extract().ok()?;
        // SAFETY: the descriptor belongs to the Python file object, which is alive for this
        // call; it is only duplicated here, never closed.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let owned: OwnedFd = borrowed.try_clone_to_owned().ok()?;
        let mut file = File::from(owned);
        let meta = file.metadata().ok()?;
        if !meta.is_file() {
            return None;
        }
        file.seek(SeekFrom::Start(position)).ok()?;
        Some(OpenFile {
            file,
            remaining: meta.len().saturating_sub(position),
        })
    }
}

impl OpenFile {
    /// Streams the file into `chunks` from the blocking pool, up to what it held when sent.
    pub(crate) fn send(
        self,
        runtime: &tokio::runtime::Handle,
        chunks: mpsc::Sender<Result<Bytes, BoxError>>,
    ) {
        let OpenFile {
            mut file,
            mut remaining,
        } = self;
        runtime.spawn_blocking(move || {
            let mut buffer = vec![0u8; BLOCK];
            while remaining > 0 {
                let want = usize::try_from(remaining).unwrap_or(BLOCK).min(BLOCK);
                match file.read(&mut buffer[..want]) {
                    Ok(0) => break,
                    Ok(n) => {
                        remaining -= n as u64;
                        let chunk = Bytes::copy_from_slice(&buffer[..n]);
                        if chunks.blocking_send(Ok(chunk)).is_err() {
                            return; // the client went away
                        }
                    }
                    Err(e) => {
                        let _ = chunks.blocking_send(Err(e.into()));
                        return;
                    }
                }
            }
        });
    }
}
