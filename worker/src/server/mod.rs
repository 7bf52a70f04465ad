//! The HTTP server of a worker: hyper (HTTP/1.1 with keep-alive, and HTTP/2 with prior
//! knowledge) on the listeners it is given, in front of one [`App`].
//!
//! Every connection has a header-read timeout and a header-size limit, so a slow or oversized
//! request is answered with a 4xx or closed without holding the worker; a worker serves at most
//! `max_connections` at once and stops accepting beyond that, leaving new connections queued
//! on the shared socket for its siblings. [`Server::drain`] retires the server without failing
//! a request: it stops accepting, answers the next request on each keep-alive connection with
//! `Connection: close`, lets idle connections linger briefly (so a request already on its way
//! is answered, not reset), then closes them, and waits for in-flight requests up to a
//! deadline.

pub mod balance;
mod conn;
pub mod listen;

pub use conn::OriginalUri;

use crate::app::App;
use crate::settings::ServerSettings;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use listen::Bound;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tokio_util::task::TaskTracker;

/// The client's address as the app should see it (WSGI's `REMOTE_ADDR` and `REMOTE_PORT`),
/// with the server address the connection came to (`SERVER_NAME`, `SERVER_PORT`); the server
/// sets it from the connection, `PasteDeploy#prefix` from `X-Forwarded-For`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteAddr {
    /// The client's address, as text.
    pub addr: Arc<str>,
    /// The client's port, when the peer of the connection is the client.
    pub port: Option<u16>,
    /// The address of the listener that accepted the connection.
    pub local: Option<std::net::SocketAddr>,
}

impl RemoteAddr {
    /// A client address with no port and no listener address.
    pub fn new(addr: impl Into<Arc<str>>) -> Self {
        RemoteAddr {
            addr: addr.into(),
            port: None,
            local: None,
        }
    }
}

/// Where the server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Accepting and serving.
    Serving,
    /// Not accepting; every response closes its connection.
    Draining,
    /// Idle connections are closed; busy ones close after their response.
    Closing,
}

/// What a drain achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// Connections still open when the deadline passed (they are dropped).
    pub abandoned: usize,
    /// Requests served over the server's life.
    pub requests: u64,
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    phase: watch::Sender<Phase>,
    balancing: Option<Arc<Share>>,
    connections: TaskTracker,
    listeners: TaskTracker,
    requests: Arc<AtomicU64>,
}

/// Per-connection settings shared by all connections.
pub(crate) struct Shared {
    app: App,
    builder: auto::Builder<TokioExecutor>,
    phase: watch::Receiver<Phase>,
    requests: Arc<AtomicU64>,
    /// How long a connection may sit without a request in flight before it is closed.
    idle_timeout: Duration,
    /// The app's busy signal, checked before each accept.
    busy: Option<Busy>,
}

/// This worker's place in the table of connection counts its siblings share.
#[derive(Debug)]
pub struct Share {
    /// The table.
    pub table: balance::Table,
    /// This worker's slot.
    pub slot: usize,
}

impl Share {
    /// A connection opened (`true`) or ended; no effect once withdrawn.
    fn count(&self, opened: bool) {
        self.table.adjust(self.slot, opened);
    }

    /// The drain started: a worker that no longer accepts takes no part.
    fn withdraw(&self) {
        self.table.clear(self.slot);
    }

    /// Whether this worker should let a sibling take the next connection.
    fn over_share(&self) -> bool {
        self.table.over_share(self.slot)
    }
}

/// Says whether the app cannot take more work now (its queue is full): the server accepts no
/// connection meanwhile, leaving them to its siblings on the shared socket.
pub type Busy = Arc<dyn Fn() -> bool + Send + Sync>;

/// How a server takes part beside its siblings.
#[derive(Default)]
pub struct Options {
    /// The spreading of connections over the workers that share the listeners.
    pub share: Option<Share>,
    /// The app's busy signal.
    pub busy: Option<Busy>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("share", &self.share)
            .field("busy", &self.busy.is_some())
            .finish()
    }
}

impl Server {
    /// Starts serving `app` on `listeners` (on the current tokio runtime).
    pub fn start(listeners: Vec<Bound>, app: App, settings: &ServerSettings) -> io::Result<Server> {
        Server::start_with(listeners, app, settings, Options::default())
    }

    /// [`Server::start`], taking part in the spreading of connections over the workers that
    /// share `listeners` when given a [`Share`].
    pub fn start_sharing(
        listeners: Vec<Bound>,
        app: App,
        settings: &ServerSettings,
        share: Option<Share>,
    ) -> io::Result<Server> {
        let options = Options {
            share,
            ..Options::default()
        };
        Server::start_with(listeners, app, settings, options)
    }

    /// [`Server::start`] with the [`Options`] of a worker among siblings.
    pub fn start_with(
        listeners: Vec<Bound>,
        app: App,
        settings: &ServerSettings,
        options: Options,
    ) -> io::Result<Server> {
        let Options { share, busy } = options;
        let (phase, phase_rx) = watch::channel(Phase::Serving);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(settings.head_timeout())
            .max_buf_size(settings.max_header_size)
            .keep_alive(!settings.keepalive.is_zero());
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(settings.max_header_size).unwrap_or(u32::MAX));
        let requests = Arc::new(AtomicU64::new(0));
        let shared = Arc::new(Shared {
            app,
            builder,
            phase: phase_rx,
            requests: Arc::clone(&requests),
            idle_timeout: settings.head_timeout(),
            busy,
        });
        let connections = TaskTracker::new();
        let accepting = TaskTracker::new();
        let permits = Arc::new(Semaphore::new(settings.max_connections));
        let balancing = share.map(|share| {
            share.table.set(share.slot, 0);
            Arc::new(share)
        });
        for bound in listeners {
            let listener = match bound {
                Bound::Tcp(listener) => {
                    listener.set_nonblocking(true)?;
                    Listener::Tcp(tokio::net::TcpListener::from_std(listener)?)
                }
                Bound::Unix(listener) => {
                    listener.set_nonblocking(true)?;
                    Listener::Unix(tokio::net::UnixListener::from_std(listener)?)
                }
            };
            accepting.spawn(accept_loop(
                Arc::clone(&shared),
                Arc::clone(&permits),
                balancing.clone(),
                connections.clone(),
                listener,
            ));
        }
        accepting.close();
        Ok(Server {
            phase,
            balancing,
            connections,
            listeners: accepting,
            requests,
        })
    }

    /// Requests served so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Stops accepting; returns once no listener of this server will accept another
    /// connection. [`Server::drain`] does this too; a worker calls it first so that it can
    /// tell its supervisor that it no longer accepts.
    pub async fn stop_accepting(&self) {
        let _ = self.phase.send(Phase::Draining);
        if let Some(b) = &self.balancing {
            b.withdraw();
        }
        self.listeners.wait().await;
    }

    /// Stops accepting at once, lets in-flight requests finish and keep-alive connections
    /// close after their next response; after `linger`, closes idle connections. The returned
    /// future ends when every connection is gone or `deadline` (from now) has passed.
    pub fn drain(
        self,
        linger: Duration,
        deadline: Duration,
    ) -> impl std::future::Future<Output = DrainReport> {
        let give_up = tokio::time::Instant::now() + deadline;
        let _ = self.phase.send(Phase::Draining);
        if let Some(b) = &self.balancing {
            b.withdraw();
        }
        async move {
            self.listeners.wait().await;
            self.connections.close();
            let _ = tokio::time::timeout_at(
                give_up.min(tokio::time::Instant::now() + linger),
                self.connections.wait(),
            )
            .await;
            let _ = self.phase.send(Phase::Closing);
            let _ = tokio::time::timeout_at(give_up, self.connections.wait()).await;
            DrainReport {
                abandoned: self.connections.len(),
                requests: self.requests(),
            }
        }
    }
}

/// A listener of either kind.
enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

/// An accepted connection of either kind.
enum Accepted {
    Tcp(tokio::net::TcpStream, RemoteAddr),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &Listener, local: Option<std::net::SocketAddr>) -> io::Result<Accepted> {
    match listener {
        Listener::Tcp(l) => {
            let (stream, peer) = l.accept().await?;
            let _ = stream.set_nodelay(true);
            Ok(Accepted::Tcp(
                stream,
                RemoteAddr {
                    addr: Arc::from(peer.ip().to_string()),
                    port: Some(peer.port()),
                    local,
                },
            ))
        }
        Listener::Unix(l) => Ok(Accepted::Unix(l.accept().await?.0)),
    }
}

/// Accepts connections until the drain starts, each holding a permit of `permits`.
async fn accept_loop(
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    balancing: Option<Arc<Share>>,
    connections: TaskTracker,
    listener: Listener,
) {
    let mut phase = shared.phase.clone();
    let local = match &listener {
        Listener::Tcp(l) => l.local_addr().ok(),
        Listener::Unix(_) => None,
    };
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            _ = reached(&mut phase, |p| p != Phase::Serving) => return,
        };
        // A busy app takes no connection; siblings may take them meanwhile.
        while shared.busy.as_ref().is_some_and(|busy| busy()) {
            tokio::select! {
                () = tokio::time::sleep(balance::DEFER) => {}
                _ = reached(&mut phase, |p| p != Phase::Serving) => return,
            }
        }
        // Over its share: a sibling may take the next connection meanwhile.
        if balancing.as_ref().is_some_and(|b| b.over_share()) {
            tokio::select! {
                () = tokio::time::sleep(balance::DEFER) => {}
                _ = reached(&mut phase, |p| p != Phase::Serving) => return,
            }
        }
        let accepted = tokio::select! {
            // The drain first: once it started, no connection more is taken.
            biased;
            _ = reached(&mut phase, |p| p != Phase::Serving) => return,
            accepted = accept(&listener, local) => accepted,
        };
        let shared = Arc::clone(&shared);
        let ended = balancing.clone();
        let end = move || {
            drop(permit);
            if let Some(b) = ended {
                b.count(false);
            }
        };
        if let (Some(b), Ok(_)) = (&balancing, &accepted) {
            b.count(true);
        }
        match accepted {
            Ok(Accepted::Tcp(stream, peer)) => {
                connections.spawn(async move {
                    conn::serve_connection(shared, stream, Some(peer)).await;
                    end();
                });
            }
            Ok(Accepted::Unix(stream)) => {
                connections.spawn(async move {
                    conn::serve_connection(shared, stream, None).await;
                    end();
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Waits until the phase satisfies `want` (or the server is gone).
pub(crate) async fn reached(phase: &mut watch::Receiver<Phase>, want: fn(Phase) -> bool) {
    let _ = phase.wait_for(|p| want(*p)).await;
}

pub(crate) fn log_end(result: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
