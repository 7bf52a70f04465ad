//! The WSGI host of a worker: Python apps (PEP 3333) served from the worker's tokio runtime.
//!
//! A worker has `threads` dedicated Python threads (default 1). Each holds the GIL for its
//! life and lets go of it only while it waits for work. Requests reach them through a bounded
//! queue of [`Job`]s; while the queue is full, [`Host::busy`] says so and the worker stops
//! accepting, so its siblings take the connections. A response body streams back through a
//! bounded channel; when a slow client lets that channel fill, the app's iterator is parked
//! and re-queued once there is room, so no Python thread waits on a client. The request body
//! is pumped from hyper into `wsgi.input` the same way, through a bounded channel.

mod environ;
mod errors;
mod files;
mod input;
mod load;
mod respond;

pub use load::{finish, imported_sources, load_segment, setup_logging, LoadError};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use pyo3::prelude::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use worker::app::{app_fn, text, App};
use worker::body::{Body, BoxError};

/// Settings of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostSettings {
    /// Python threads running apps.
    pub threads: usize,
    /// Requests that may wait for a thread before the worker stops accepting.
    pub queue: usize,
    /// Whether other worker processes serve the same apps (`wsgi.multiprocess`).
    pub multiprocess: bool,
}

impl Default for HostSettings {
    fn default() -> Self {
        HostSettings {
            threads: 1,
            queue: 16,
            multiprocess: false,
        }
    }
}

/// Work for a Python thread.
enum Job {
    /// Call an app with a request.
    Call(Call),
    /// Go on iterating a response whose client has room again.
    Resume(respond::Streaming),
}

/// One request for a Python app.
struct Call {
    app: Arc<Py<PyAny>>,
    head: http::request::Parts,
    input: input::Feed,
    reply: oneshot::Sender<Response<Body>>,
}

/// What the Python threads and the services that feed them share.
pub(crate) struct Shared {
    jobs: mpsc::Sender<Job>,
    runtime: tokio::runtime::Handle,
    settings: HostSettings,
    waiting: AtomicUsize,
}

/// The Python threads of a worker and the queue in front of them.
#[derive(Clone)]
pub struct Host {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("settings", &self.shared.settings)
            .finish()
    }
}

impl Host {
    /// Starts the Python threads; responses are streamed on `runtime`.
    pub fn start(settings: HostSettings, runtime: tokio::runtime::Handle) -> std::io::Result<Host> {
        let (jobs, queue) = mpsc::channel(settings.queue.max(1));
        let shared = Arc::new(Shared {
            jobs,
            runtime,
            settings,
            waiting: AtomicUsize::new(0),
        });
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..settings.threads.max(1) {
            let (shared, queue) = (Arc::clone(&shared), Arc::clone(&queue));
            std::thread::Builder::new()
                .name(format!("python-{n}"))
                .spawn(move || run(&shared, &queue))?;
        }
        Ok(Host { shared })
    }

    /// Whether more requests wait for a Python thread than the queue holds.
    pub fn busy(&self) -> bool {
        self.shared.waiting.load(Ordering::Relaxed) >= self.shared.settings.queue
    }

    /// A Rust app that calls the WSGI app `wsgi`.
    pub fn app(&self, wsgi: Py<PyAny>) -> App {
        let shared = Arc::clone(&self.shared);
        let wsgi = Arc::new(wsgi);
        app_fn(move |req: Request<Body>| {
            let (shared, wsgi) = (Arc::clone(&shared), Arc::clone(&wsgi));
            async move { call(&shared, wsgi, req).await }
        })
    }
}

/// Queues one request and waits for its response head.
async fn call(shared: &Arc<Shared>, app: Arc<Py<PyAny>>, req: Request<Body>) -> Response<Body> {
    let (head, body) = req.into_parts();
    let input = input::Feed::start(body, &shared.runtime);
    let (reply, response) = oneshot::channel();
    let mut waiting = Waiting::count(&shared.waiting);
    let queued = shared
        .jobs
        .send(Job::Call(Call {
            app,
            head,
            input,
            reply,
        }))
        .await;
    if queued.is_err() {
        return unavailable();
    }
    // Queued: the Python thread that takes it counts it off.
    waiting.handed_over();
    response.await.unwrap_or_else(|_| {
        // The thread dropped the reply: the app failed in a way already logged.
        text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "500 Internal Server Error\n",
        )
    })
}

/// One request counted as waiting for a Python thread until it is queued; counted off again if
/// it never is (the client left while the queue was full, and the future was dropped).
struct Waiting<'a> {
    count: &'a AtomicUsize,
    queued: bool,
}

impl<'a> Waiting<'a> {
    fn count(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Waiting {
            count,
            queued: false,
        }
    }

    fn handed_over(&mut self) {
        self.queued = true;
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if !self.queued {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

fn unavailable() -> Response<Body> {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "503 Service Unavailable\nthe Python threads of this worker are gone\n",
    )
}

/// A Python thread: takes jobs until the queue closes.
fn run(shared: &Arc<Shared>, queue: &Mutex<mpsc::Receiver<Job>>) {
    Python::attach(|py| {
        // Logging's %(threadName)s says which thread, instead of "Dummy-1".
        let name = std::thread::current().name().unwrap_or("python").to_owned();
        let named = py
            .import("threading")
            .and_then(|t| t.call_method0("current_thread"))
            .and_then(|t| t.setattr("name", format!("serve-{name}")));
        if let Err(e) = named {
            respond::log_exception(py, &e, "naming the Python thread failed");
        }
    });
    Python::attach(|py| {
        let thread = match respond::PerThread::new(py) {
            Ok(thread) => thread,
            Err(e) => return respond::log_exception(py, &e, "a Python thread cannot start"),
        };
        loop {
            // Work already queued is taken without letting go of the GIL (not waiting for
            // the lock either: a sibling thread may hold it while it waits for work).
            let queued = queue.try_lock().ok().and_then(|mut q| q.try_recv().ok());
            let job = match queued {
                Some(job) => Some(job),
                None => py.detach(|| queue.lock().ok()?.blocking_recv()),
            };
            let Some(job) = job else { return };
            // A bug of ours that panics fails one request, not the thread (and with it every
            // request after it).
            let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match job {
                Job::Call(call) => {
                    shared.waiting.fetch_sub(1, Ordering::Relaxed);
                    respond::call(py, shared, call, &thread);
                }
                Job::Resume(streaming) => streaming.resume(py, shared),
            }));
            if let Err(panic) = done {
                tracing::error!(
                    panic = worker::app::panic_message(panic.as_ref()),
                    "the Python host panicked while serving a request"
                );
            }
        }
    });
}

/// A response body fed by a Python thread.
pub(crate) type Chunks = mpsc::Receiver<Result<Bytes, BoxError>>;

/// Chunks a response body can be ahead of its client.
pub(crate) const BODY_CHUNKS: usize = 8;

/// The body hyper reads from a channel of chunks.
pub(crate) struct ChannelBody {
    chunks: Chunks,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        self.chunks
            .poll_recv(cx)
            .map(|chunk| chunk.map(|chunk| chunk.map(http_body::Frame::data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyo3::types::PyDict;
    use std::time::{Duration, Instant};

    /// Python, started once for this test process as the `python3` on `PATH`.
    fn python() {
        static STARTED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
        STARTED.get_or_init(|| {
            let env = crate::env::find(None).expect("a python3 on PATH");
            crate::interp::initialize(&env.executable).expect("Python starts");
        });
    }

    /// A WSGI app that sleeps `seconds` before answering.
    fn sleepy(seconds: f64) -> Py<PyAny> {
        Python::attach(|py| {
            let scope = PyDict::new(py);
            let code = format!(
                "import time\ndef app(environ, start_response):\n    time.sleep({seconds})\n    start_response('200 OK', [])\n    return [b'slept']\n"
            );
            let code = std::ffi::CString::new(code).unwrap();
            py.run(&code, Some(&scope), None).unwrap();
            scope.get_item("app").unwrap().unwrap().unbind()
        })
    }

    /// A host of one Python thread and a queue of `queue`, on its own runtime, serving an app
    /// that sleeps `seconds`.
    fn sleepy_host(queue: usize, seconds: f64) -> (tokio::runtime::Runtime, Host, App) {
        python();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let settings = HostSettings {
            threads: 1,
            queue,
            multiprocess: false,
        };
        let host = Host::start(settings, runtime.handle().clone()).unwrap();
        let app = host.app(sleepy(seconds));
        (runtime, host, app)
    }

    /// One GET through `app`, on the current runtime; its status.
    fn spawn_get(app: &App) -> tokio::task::JoinHandle<StatusCode> {
        let app = app.clone();
        tokio::spawn(async move {
            let req = http::Request::get("/").body(Body::empty()).unwrap();
            worker::app::call(&app, req).await.status()
        })
    }

    /// Waits (with a deadline) until `condition` holds.
    async fn until(what: &str, condition: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !condition() {
            assert!(Instant::now() < deadline, "never {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[test]
    fn the_host_is_busy_while_more_requests_wait_than_its_queue_holds() {
        let (runtime, host, app) = sleepy_host(2, 0.2);
        runtime.block_on(async {
            assert!(!host.busy());
            // One runs, two wait: the queue is full.
            let calls: Vec<_> = (0..3).map(|_| spawn_get(&app)).collect();
            until("busy", || host.busy()).await;
            for call in calls {
                assert_eq!(call.await.unwrap(), StatusCode::OK);
            }
            assert!(!host.busy(), "still busy once every request was answered");
        });
    }

    #[test]
    fn a_request_dropped_while_it_waits_for_the_queue_is_counted_off() {
        let (runtime, host, app) = sleepy_host(1, 0.3);
        let waiting = || host.shared.waiting.load(Ordering::Relaxed);
        runtime.block_on(async {
            // The first runs, the second fills the queue, the third waits to be queued.
            let first = spawn_get(&app);
            let second = spawn_get(&app);
            let third = spawn_get(&app);
            until("two waiting beside the running one", || waiting() == 2).await;
            // Its client goes away: the future is dropped before it was queued.
            third.abort();
            assert_eq!(first.await.unwrap(), StatusCode::OK);
            assert_eq!(second.await.unwrap(), StatusCode::OK);
            assert!(
                !host.busy(),
                "a dropped request is still counted as waiting"
            );
        });
    }
}
