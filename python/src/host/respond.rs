//! Calling a WSGI app and sending what it answers (PEP 3333's `start_response`, `write` and
//! result iterable).
//!
//! `start_response` only records the status and headers; they go out with the first non-empty
//! chunk of the body (or when the iterable ends), so an app may call it late, from inside a
//! generator, or again with `exc_info` until then. A list result is sent whole with a
//! `Content-Length`; any other iterable streams through a bounded channel. When the client
//! falls behind and the channel is full, the iterator is parked and queued again once there
//! is room, so no Python thread waits for a client. `close()` is called on every iterable that
//! has it, when it ends, fails, or its client goes away. An exception before the headers went
//! out is a logged `500`; after, the response is cut off (the client sees a broken body, not a
//! complete one).

use super::environ::{self, Context};
use super::errors::Errors;
use super::files::FileWrapper;
use super::input::Input;
use super::{Call, ChannelBody, Job, Shared, BODY_CHUNKS};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use pyo3::exceptions::{PyAssertionError, PyOSError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyIterator, PyList, PyString, PyTuple};
use std::sync::Arc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use worker::app::text;
use worker::body::{Body, BoxError};

type Sender = mpsc::Sender<Result<Bytes, BoxError>>;

/// The status and headers an app gave `start_response`.
struct Head {
    status: StatusCode,
    reason: Option<String>,
    headers: HeaderMap,
}

/// The response of one call, as far as it went.
#[pyclass(module = "serve")]
pub(crate) struct StartResponse {
    head: Option<Head>,
    /// Until the head is sent.
    reply: Option<oneshot::Sender<Response<Body>>>,
    /// Once the head went out with a streamed body.
    body: Option<Sender>,
    /// Stops the request body's pump once the response is complete.
    input_stop: Option<oneshot::Sender<()>>,
    runtime: tokio::runtime::Handle,
}

/// The client is gone: nothing more can be sent.
struct Gone;

impl StartResponse {
    fn new(
        reply: oneshot::Sender<Response<Body>>,
        input_stop: Option<oneshot::Sender<()>>,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        StartResponse {
            head: None,
            reply: Some(reply),
            body: None,
            input_stop,
            runtime,
        }
    }

    /// The response is complete (or failed): a request body nobody read is let go of.
    fn complete(&mut self) {
        self.input_stop = None;
    }

    fn sent(&self) -> bool {
        self.reply.is_none()
    }

    /// Sends the head with `body`; an error when the app gave no head.
    fn send_head(&mut self, body: Body) -> PyResult<Result<(), Gone>> {
        let Some(head) = self.head.take() else {
            return Err(PyRuntimeError::new_err(
                "the app returned its body without calling start_response",
            ));
        };
        let Some(reply) = self.reply.take() else {
            return Ok(Err(Gone));
        };
        let mut response = Response::new(body);
        *response.status_mut() = head.status;
        *response.headers_mut() = head.headers;
        if let Some(reason) = head.reason {
            if head.status.canonical_reason() != Some(reason.as_str()) {
                if let Ok(reason) = hyper::ext::ReasonPhrase::try_from(reason.into_bytes()) {
                    response.extensions_mut().insert(reason);
                }
            }
        }
        Ok(reply.send(response).map_err(|_| Gone))
    }

    /// Sends the head for a streamed body, once.
    fn stream(&mut self) -> PyResult<Result<Sender, Gone>> {
        if let Some(body) = &self.body {
            return Ok(Ok(body.clone()));
        }
        if self.sent() {
            return Ok(Err(Gone));
        }
        let (sender, chunks) = mpsc::channel(BODY_CHUNKS);
        if let Err(gone) = self.send_head(Body::new(ChannelBody { chunks }))? {
            return Ok(Err(gone));
        }
        self.body = Some(sender.clone());
        Ok(Ok(sender))
    }

    /// Ends the response after an exception: a `500` when nothing was sent yet, else a broken
    /// body.
    fn fail(&mut self) {
        self.complete();
        if let Some(reply) = self.reply.take() {
            let _ = reply.send(text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "500 Internal Server Error\n",
            ));
        } else if let Some(body) = self.body.take() {
            self.runtime.spawn(async move {
                let _ = body
                    .send(Err("the app failed while producing the body".into()))
                    .await;
            });
        }
    }
}

#[pymethods]
impl StartResponse {
    /// `start_response(status, response_headers, exc_info=None)`; returns `write`.
    #[pyo3(signature = (status, response_headers, exc_info=None))]
    fn __call__(
        slf: &Bound<'_, Self>,
        status: &str,
        response_headers: &Bound<'_, PyAny>,
        exc_info: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Write> {
        let exc_info = exc_info.filter(|e| !e.is_none());
        let mut this = slf.borrow_mut();
        if let Some(exc_info) = exc_info {
            if this.sent() {
                // PEP 3333: re-raise the app's exception once the headers are out.
                return Err(PyErr::from_value(exc_info.get_item(1)?));
            }
        } else if this.head.is_some() || this.sent() {
            return Err(PyAssertionError::new_err(
                "start_response was already called; call it again only with exc_info",
            ));
        }
        this.head = Some(head(status, response_headers)?);
        Ok(Write {
            start: slf.clone().unbind(),
        })
    }
}

/// Parses `start_response`'s status and headers.
fn head(status: &str, headers: &Bound<'_, PyAny>) -> PyResult<Head> {
    let (code, reason) = status.split_once(' ').unwrap_or((status, ""));
    let status = (code.len() == 3)
        .then(|| StatusCode::from_bytes(code.as_bytes()).ok())
        .flatten()
        .ok_or_else(|| {
            PyValueError::new_err(format!("invalid status {status:?}: want '200 OK'"))
        })?;
    let mut map = HeaderMap::new();
    for item in headers.try_iter()? {
        let item = item?;
        let pair = item.cast::<PyTuple>().map_err(|_| {
            PyTypeError::new_err("response headers must be a list of (name, value) tuples")
        })?;
        let text = |i: usize| -> PyResult<Bound<'_, PyString>> {
            pair.get_item(i)?
                .cast_into::<PyString>()
                .map_err(|_| PyTypeError::new_err("header names and values must be str"))
        };
        let (name, value) = (text(0)?, text(1)?);
        let (name, value) = (name.to_str()?, value.to_str()?);
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| PyValueError::new_err(format!("invalid header name {name:?}")))?;
        let value = if value.is_ascii() {
            HeaderValue::from_str(value)
        } else {
            HeaderValue::from_bytes(&latin1_bytes(value)?)
        }
        .map_err(|_| PyValueError::new_err(format!("invalid value for header {name}")))?;
        if is_hop_by_hop(&name) {
            tracing::debug!("dropped the hop-by-hop header {name} the app set");
            continue;
        }
        map.append(name, value);
    }
    Ok(Head {
        status,
        reason: (!reason.is_empty()).then(|| reason.to_owned()),
        headers: map,
    })
}

/// A native string as the bytes it stands for (PEP 3333: latin-1 only).
fn latin1_bytes(text: &str) -> PyResult<Vec<u8>> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| PyValueError::new_err(format!("header value {text:?} is not latin-1")))
}

/// Headers that belong to one connection, which the server manages (PEP 3333 forbids them).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "transfer-encoding" | "upgrade" | "te" | "trailer"
    )
}

/// The `write` callable `start_response` returns.
#[pyclass(module = "serve")]
pub(crate) struct Write {
    start: Py<StartResponse>,
}

#[pymethods]
impl Write {
    /// Sends `data` now (the head first, if it has not gone out); waits while the client is
    /// behind, as PEP 3333 asks.
    fn __call__(&self, py: Python<'_>, data: &Bound<'_, PyBytes>) -> PyResult<()> {
        let sender = self.start.bind(py).borrow_mut().stream()?;
        let Ok(sender) = sender else {
            return Err(PyOSError::new_err("the client went away"));
        };
        if data.as_bytes().is_empty() {
            return Ok(());
        }
        let data = Bytes::copy_from_slice(data.as_bytes());
        py.detach(|| sender.blocking_send(Ok(data)))
            .map_err(|_| PyOSError::new_err("the client went away"))
    }
}

/// What a Python thread makes once and hands every request: `wsgi.version` and
/// `wsgi.errors` (which only writes to the log).
pub(super) struct PerThread<'py> {
    version: Bound<'py, PyAny>,
    /// `wsgi.input` of every request without a body (it holds no state).
    no_body: Bound<'py, PyAny>,
    /// `SERVER_NAME` and `SERVER_PORT` of the last listener seen (a worker has few).
    server: environ::ServerCache<'py>,
    errors: Bound<'py, PyAny>,
    file_wrapper: Bound<'py, PyAny>,
}

impl<'py> PerThread<'py> {
    pub(super) fn new(py: Python<'py>) -> PyResult<Self> {
        Ok(PerThread {
            version: (1, 0).into_pyobject(py)?.into_any(),
            no_body: Bound::new(py, Input::empty())?.into_any(),
            server: std::cell::RefCell::new(None),
            errors: Bound::new(py, Errors::default())?.into_any(),
            file_wrapper: py.get_type::<FileWrapper>().into_any(),
        })
    }
}

/// Calls the app of `call` and sends its answer.
pub(super) fn call<'py>(
    py: Python<'py>,
    shared: &Arc<Shared>,
    call: Call,
    thread: &PerThread<'py>,
) {
    let Call {
        app,
        head,
        mut input,
        reply,
    } = call;
    let input_stop = input.stop.take();
    let start = match Py::new(
        py,
        StartResponse::new(reply, input_stop, shared.runtime.clone()),
    ) {
        Ok(start) => start,
        Err(e) => return log_exception(py, &e, "cannot call the app"),
    };
    let called = (|| {
        let context = Context {
            version: &thread.version,
            input: if input.is_empty() {
                thread.no_body.clone()
            } else {
                Bound::new(py, Input::new(input))?.into_any()
            },
            server: &thread.server,
            errors: &thread.errors,
            file_wrapper: &thread.file_wrapper,
            multithread: shared.settings.threads > 1,
            multiprocess: shared.settings.multiprocess,
        };
        let environ = environ::environ(py, &head, context)?;
        app.bind(py).call1((environ, start.clone_ref(py)))
    })();
    let iterable = match called {
        Ok(iterable) => iterable,
        Err(e) => {
            log_exception(py, &e, "the app raised");
            return start.bind(py).borrow_mut().fail();
        }
    };
    // Exactly a list: a subclass may have a close() that must be called.
    if let Ok(list) = iterable.cast_exact::<PyList>() {
        if start.bind(py).borrow().body.is_none() {
            return send_list(py, &start, list);
        }
    }
    if let Ok(wrapper) = iterable.cast::<FileWrapper>() {
        if send_file(py, shared, &start, &wrapper.borrow()) {
            return close(py, &iterable);
        }
    }
    Streaming::begin(py, shared, start, iterable);
}

/// A `wsgi.file_wrapper` answer over a regular file: the worker sends the rest of the file, and
/// the Python thread is free at once. False when the head is not ready or the file is not a
/// regular one (the wrapper is then iterated like any other body).
fn send_file(
    py: Python<'_>,
    shared: &Arc<Shared>,
    start: &Py<StartResponse>,
    wrapper: &FileWrapper,
) -> bool {
    let mut start = start.bind(py).borrow_mut();
    if start.sent() || start.body.is_some() {
        return false;
    }
    let Some(head) = start.head.as_mut() else {
        return false;
    };
    let Some(file) = wrapper.regular_file(py) else {
        return false;
    };
    if !head.headers.contains_key(http::header::CONTENT_LENGTH) {
        head.headers.insert(
            http::header::CONTENT_LENGTH,
            HeaderValue::from(file.remaining),
        );
    }
    match start.stream() {
        Ok(Ok(sender)) => file.send(&shared.runtime, sender),
        Ok(Err(Gone)) => {}
        Err(e) => log_exception(py, &e, "the app answered wrongly"),
    }
    // The file task holds the only sender: the body ends when the file does.
    start.body = None;
    start.complete();
    true
}

/// A list answer: the whole body at once, with a `Content-Length`.
fn send_list(py: Python<'_>, start: &Py<StartResponse>, list: &Bound<'_, PyList>) {
    let mut start = start.bind(py).borrow_mut();
    let mut body = Vec::new();
    for item in list.iter() {
        match item.cast::<PyBytes>() {
            Ok(bytes) => body.extend_from_slice(bytes.as_bytes()),
            Err(_) => {
                let e = PyTypeError::new_err(format!(
                    "the app's body holds a {}, not bytes",
                    type_name(&item)
                ));
                log_exception(py, &e, "the app answered wrongly");
                return start.fail();
            }
        }
    }
    if let Err(e) = start.send_head(Body::full(body)) {
        log_exception(py, &e, "the app answered wrongly");
        start.fail();
    }
    start.complete();
}

fn type_name(object: &Bound<'_, PyAny>) -> String {
    object
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

/// A response body being produced by an app's iterator.
pub(crate) struct Streaming {
    iterable: Py<PyAny>,
    iterator: Py<PyIterator>,
    start: Py<StartResponse>,
    /// A chunk the client had no room for yet.
    pending: Option<Bytes>,
    /// Room for `pending`, reserved while the stream was parked (none: the client left).
    permit: Option<mpsc::OwnedPermit<Result<Bytes, BoxError>>>,
}

impl Streaming {
    fn begin(
        py: Python<'_>,
        shared: &Arc<Shared>,
        start: Py<StartResponse>,
        iterable: Bound<'_, PyAny>,
    ) {
        let iterator = match iterable.try_iter() {
            Ok(iterator) => iterator.unbind(),
            Err(e) => {
                log_exception(py, &e, "the app's answer is not iterable");
                start.bind(py).borrow_mut().fail();
                return close(py, &iterable);
            }
        };
        Streaming {
            iterable: iterable.unbind(),
            iterator,
            start,
            pending: None,
            permit: None,
        }
        .run(py, shared);
    }

    /// Goes on after a park.
    pub(super) fn resume(mut self, py: Python<'_>, shared: &Arc<Shared>) {
        match (self.permit.take(), self.pending.take()) {
            (Some(permit), Some(chunk)) => {
                permit.send(Ok(chunk));
                self.run(py, shared);
            }
            // The client went away while the stream waited.
            _ => self.finish(py),
        }
    }

    fn run(mut self, py: Python<'_>, shared: &Arc<Shared>) {
        loop {
            if let Some(chunk) = self.pending.take() {
                let Some(sender) = self.start.bind(py).borrow().body.clone() else {
                    return self.finish(py);
                };
                match sender.try_send(Ok(chunk)) {
                    Ok(()) => {}
                    Err(TrySendError::Full(Ok(chunk))) => {
                        self.pending = Some(chunk);
                        return self.park(shared, sender);
                    }
                    Err(_) => return self.finish(py),
                }
            }
            let next = self.iterator.bind(py).clone().next();
            match next {
                None => return self.end(py),
                Some(Err(e)) => {
                    log_exception(py, &e, "the app raised while producing its body");
                    self.start.bind(py).borrow_mut().fail();
                    return self.finish(py);
                }
                Some(Ok(item)) => {
                    let Ok(bytes) = item.cast::<PyBytes>() else {
                        let e = PyTypeError::new_err(format!(
                            "the app's body yielded a {}, not bytes",
                            type_name(&item)
                        ));
                        log_exception(py, &e, "the app answered wrongly");
                        self.start.bind(py).borrow_mut().fail();
                        return self.finish(py);
                    };
                    if bytes.as_bytes().is_empty() {
                        continue;
                    }
                    let chunk = Bytes::copy_from_slice(bytes.as_bytes());
                    let streamed = self.start.bind(py).borrow_mut().stream();
                    match streamed {
                        Ok(Ok(_)) => self.pending = Some(chunk),
                        Ok(Err(Gone)) => return self.finish(py),
                        Err(e) => {
                            log_exception(py, &e, "the app answered wrongly");
                            self.start.bind(py).borrow_mut().fail();
                            return self.finish(py);
                        }
                    }
                }
            }
        }
    }

    /// Waits, off any Python thread, until the client has room, then queues the stream again.
    fn park(self, shared: &Arc<Shared>, sender: Sender) {
        let jobs = shared.jobs.clone();
        shared.runtime.spawn(async move {
            let mut this = self;
            this.permit = sender.reserve_owned().await.ok();
            // If the worker is shutting down the queue is gone; the stream is dropped.
            let _ = jobs.send(Job::Resume(this)).await;
        });
    }

    /// The iterator is exhausted: the head goes out now if no chunk carried it, and the body ends.
    fn end(self, py: Python<'_>) {
        {
            let mut start = self.start.bind(py).borrow_mut();
            if !start.sent() {
                if let Err(e) = start.send_head(Body::empty()) {
                    log_exception(py, &e, "the app answered wrongly");
                    start.fail();
                }
            }
            start.body = None;
        }
        self.finish(py);
    }

    fn finish(self, py: Python<'_>) {
        {
            let mut start = self.start.bind(py).borrow_mut();
            start.body = None;
            start.complete();
        }
        close(py, self.iterable.bind(py));
    }
}

/// Calls the iterable's `close()`, if it has one (PEP 3333: always, whatever happened).
fn close(py: Python<'_>, iterable: &Bound<'_, PyAny>) {
    match iterable.getattr_opt("close") {
        Ok(Some(close)) => {
            if let Err(e) = close.call0() {
                log_exception(py, &e, "the app's close() raised");
            }
        }
        Ok(None) => {}
        Err(e) => log_exception(py, &e, "the app's close attribute raised"),
    }
}

/// Logs an exception with its traceback.
pub(crate) fn log_exception(py: Python<'_>, error: &PyErr, what: &str) {
    let text = py
        .import("traceback")
        .and_then(|tb| tb.call_method1("format_exception", (error.value(py),)))
        .and_then(|lines| lines.extract::<Vec<String>>())
        .map(|lines| lines.concat())
        .unwrap_or_else(|_| error.to_string());
    tracing::error!("{what}: {}", text.trim_end());
}
