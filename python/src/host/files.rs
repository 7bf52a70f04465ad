//! `wsgi.file_wrapper`: a file an app returns is sent by the worker, not by Python.
//!
//! `environ['wsgi.file_wrapper'](filelike, blksize)` gives an iterable that reads `filelike`
//! in blocks (PEP 3333's fallback, used for anything that is not a regular file). When an app
//! returns it unchanged and `filelike` is a regular file (it has a `fileno()`), the worker
//! duplicates the descriptor and reads the rest of the file on the runtime's blocking pool (a
//! block at a time, at offsets of its own, sent as the client takes them), from the file's
//! current position, while the Python thread goes on to the next request. The
//! app's `close()` is called at once, as the response no longer needs the Python object.

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::fs::File;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
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

/// A regular file to send, from where the app left it.
pub(crate) struct OpenFile {
    file: File,
    /// Where to start reading.
    offset: u64,
    /// Bytes from there to the end.
    pub(crate) remaining: u64,
}

impl FileWrapper {
    /// The file behind the wrapper, when it is a regular file with a descriptor.
    pub(crate) fn regular_file(&self, py: Python<'_>) -> Option<OpenFile> {
        let filelike = self.filelike.bind(py);
        // Python may hold bytes it read ahead: its own position is the one that counts.
        let position: u64 = filelike.call_method0("tell").ok()?.extract().ok()?;
        let fd: i32 = filelike.call_method0("fileno").ok()?.extract().ok()?;
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` is not -1 (checked above), and it is only used for this call, to make
        // a duplicate: if it is not an open descriptor, the duplication fails with EBADF and
        // nothing is sent. The original stays the Python object's; it is never closed here.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let owned: OwnedFd = borrowed.try_clone_to_owned().ok()?;
        let file = File::from(owned);
        let meta = file.metadata().ok()?;
        if !meta.is_file() {
            return None;
        }
        Some(OpenFile {
            file,
            offset: position,
            remaining: meta.len().saturating_sub(position),
        })
    }
}

impl OpenFile {
    /// Streams the file into `chunks`: each block is read on the blocking pool at an offset
    /// of its own (the duplicate shares the app's file position, which it must not move),
    /// and sent from the runtime, so a slow client holds no thread.
    pub(crate) fn send(
        self,
        runtime: &tokio::runtime::Handle,
        chunks: mpsc::Sender<Result<Bytes, BoxError>>,
    ) {
        let OpenFile {
            file,
            mut offset,
            mut remaining,
        } = self;
        let file = std::sync::Arc::new(file);
        runtime.spawn(async move {
            while remaining > 0 {
                let want = usize::try_from(remaining).unwrap_or(BLOCK).min(BLOCK);
                let reading = std::sync::Arc::clone(&file);
                let read = tokio::task::spawn_blocking(move || {
                    let mut buffer = vec![0u8; want];
                    let n = reading.read_at(&mut buffer, offset)?;
                    buffer.truncate(n);
                    Ok::<_, std::io::Error>(buffer)
                })
                .await;
                let chunk = match read {
                    Ok(Ok(block)) if block.is_empty() => return,
                    Ok(Ok(block)) => block,
                    Ok(Err(e)) => {
                        let _ = chunks.send(Err(e.into())).await;
                        return;
                    }
                    Err(e) => {
                        let _ = chunks.send(Err(e.into())).await;
                        return;
                    }
                };
                offset += chunk.len() as u64;
                remaining -= chunk.len() as u64;
                if chunks.send(Ok(Bytes::from(chunk))).await.is_err() {
                    return; // the client went away
                }
            }
        });
    }
}
