//! `wsgi.input`: the request body, streamed from hyper while the app reads it.
//!
//! A task on the runtime pumps the body's data frames into a bounded channel; the app's reads
//! wait on that channel with the GIL released. `read`, `readline` (the newline kept, as
//! `io.BufferedReader` does), `readlines` and iteration behave as on a file, and the stream
//! ends where the body ends, so `wsgi.input_terminated` holds even for chunked bodies.

use super::Chunks;
use http_body_util::BodyExt;
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tokio::sync::{mpsc, oneshot};
use worker::body::Body;

/// Body chunks read ahead of the app.
const AHEAD: usize = 4;

/// The request body on its way to a Python thread.
pub(crate) struct Feed {
    chunks: Option<Chunks>,
    /// Ends the pump (sent or dropped): once the response is complete, a body the app did not
    /// read is let go of, so hyper can finish the connection's request without waiting for
    /// Python to free the environ.
    pub(crate) stop: Option<oneshot::Sender<()>>,
}

impl Feed {
    /// Starts pumping `body` (nothing to pump when it is already complete and empty).
    pub(crate) fn start(body: Body, runtime: &tokio::runtime::Handle) -> Feed {
        if http_body::Body::is_end_stream(&body) {
            return Feed {
                chunks: None,
                stop: None,
            };
        }
        let (sender, chunks) = mpsc::channel(AHEAD);
        let (stop, mut stopped) = oneshot::channel::<()>();
        runtime.spawn(async move {
            let mut body = body;
            loop {
                let frame = tokio::select! {
                    _ = &mut stopped => return,
                    frame = body.frame() => frame,
                };
                let item = match frame {
                    None => return,
                    Some(Ok(frame)) => match frame.into_data() {
                        Ok(data) if data.is_empty() => continue,
                        Ok(data) => Ok(data),
                        Err(_trailers) => continue,
                    },
                    Some(Err(e)) => Err(e),
                };
                let failed = item.is_err();
                let sent = tokio::select! {
                    _ = &mut stopped => return,
                    sent = sender.send(item) => sent,
                };
                if sent.is_err() || failed {
                    return; // the app is done with the request, or the body broke
                }
            }
        });
        Feed {
            chunks: Some(chunks),
            stop: Some(stop),
        }
    }
}

/// The `wsgi.input` object.
#[pyclass(module = "serve")]
pub(crate) struct Input {
    chunks: Option<Chunks>,
    buffer: Vec<u8>,
    start: usize,
}

impl Feed {
    /// Whether the request has no body at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.chunks.is_none()
    }
}

impl Input {
    /// The input of a request without a body.
    pub(crate) fn empty() -> Input {
        Input::new(Feed {
            chunks: None,
            stop: None,
        })
    }

    pub(crate) fn new(feed: Feed) -> Input {
        Input {
            chunks: feed.chunks,
            buffer: Vec::new(),
            start: 0,
        }
    }

    fn available(&self) -> usize {
        self.buffer.len() - self.start
    }

    /// Waits for the next chunk; false at the end of the body.
    fn fill(&mut self, py: Python<'_>) -> PyResult<bool> {
        let Some(chunks) = self.chunks.as_mut() else {
            return Ok(false);
        };
        match py.detach(|| chunks.blocking_recv()) {
            Some(Ok(data)) => {
                if self.start > 0 {
                    self.buffer.drain(..self.start);
                    self.start = 0;
                }
                self.buffer.extend_from_slice(&data);
                Ok(true)
            }
            Some(Err(e)) => {
                self.chunks = None;
                Err(PyOSError::new_err(format!(
                    "reading the request body failed: {e}"
                )))
            }
            None => {
                self.chunks = None;
                Ok(false)
            }
        }
    }

    fn take<'py>(&mut self, py: Python<'py>, n: usize) -> Bound<'py, PyBytes> {
        let n = n.min(self.available());
        let bytes = PyBytes::new(py, &self.buffer[self.start..self.start + n]);
        self.start += n;
        bytes
    }

    fn line<'py>(
        &mut self,
        py: Python<'py>,
        limit: Option<usize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut searched = 0;
        loop {
            let window = &self.buffer[self.start..];
            if let Some(i) = window[searched..].iter().position(|&b| b == b'\n') {
                let end = searched + i + 1;
                return Ok(self.take(py, limit.map_or(end, |l| l.min(end))));
            }
            if limit.is_some_and(|l| window.len() >= l) {
                return Ok(self.take(py, limit.unwrap_or(0)));
            }
            searched = window.len();
            if !self.fill(py)? {
                let all = self.available();
                return Ok(self.take(py, all));
            }
        }
    }
}

/// A size argument: `None` or negative means everything.
fn limit(size: Option<isize>) -> Option<usize> {
    size.and_then(|s| usize::try_from(s).ok())
}

#[pymethods]
impl Input {
    /// Up to `size` bytes, or the rest of the body.
    #[pyo3(signature = (size=None))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let wanted = limit(size);
        while wanted.map_or(true, |w| self.available() < w) {
            if !self.fill(py)? {
                break;
            }
        }
        let n = wanted.unwrap_or(usize::MAX);
        Ok(self.take(py, n))
    }

    /// The next line, with its newline, or at most `size` bytes of it.
    #[pyo3(signature = (size=None))]
    fn readline<'py>(
        &mut self,
        py: Python<'py>,
        size: Option<isize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        self.line(py, limit(size))
    }

    /// The remaining lines, or lines until their total size reaches `hint`.
    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(
        &mut self,
        py: Python<'py>,
        hint: Option<isize>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let hint = limit(hint).filter(|&h| h > 0);
        let mut lines = Vec::new();
        let mut total = 0;
        loop {
            let line = self.line(py, None)?;
            if line.as_bytes().is_empty() {
                return Ok(lines);
            }
            total += line.as_bytes().len();
            lines.push(line);
            if hint.is_some_and(|h| total >= h) {
                return Ok(lines);
            }
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = self.line(py, None)?;
        Ok((!line.as_bytes().is_empty()).then_some(line))
    }
}
