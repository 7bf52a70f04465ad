//! One connection: hyper serving the app on it, the request checks that come before any app,
//! and the watchdog that closes a connection with no request in flight.
//!
//! hyper times a slow HTTP/1 request head, but not a client that sends nothing before the
//! protocol is known, nor an idle HTTP/2 connection; either would hold one of the worker's
//! connection slots forever. The watchdog closes any connection that has had no request in
//! flight for the idle timeout (the shorter of `header_timeout` and `keepalive`), gracefully, so
//! a request that arrives meanwhile is still answered.

use super::{log_end, reached, Phase, RemoteAddr, Shared};
use crate::app::{call, text};
use crate::body::{Body, BoxError};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode, Uri, Version};
use http_body::Frame;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};

/// The request target as the client sent it, before any mount rewrote the URI (for logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalUri(pub Uri);

/// What is happening on one connection.
#[derive(Debug, Default)]
struct Activity {
    started: AtomicU64,
    in_flight: AtomicUsize,
}

/// Serves one connection until it ends, the drain closes it, or it idles too long.
pub(crate) async fn serve_connection<S>(shared: Arc<Shared>, stream: S, peer: Option<RemoteAddr>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::default());
    let service = {
        let (shared, activity) = (Arc::clone(&shared), Arc::clone(&activity));
        hyper::service::service_fn(move |req: Request<Incoming>| {
            activity.started.fetch_add(1, Ordering::Relaxed);
            activity.in_flight.fetch_add(1, Ordering::Relaxed);
            shared.requests.fetch_add(1, Ordering::Relaxed);
            let guard = InFlight(Arc::clone(&activity));
            let (shared, peer) = (Arc::clone(&shared), peer.clone());
            async move {
                let version = req.version();
                let mut response = answer(&shared, req, peer).await;
                if *shared.phase.borrow() != Phase::Serving && version <= Version::HTTP_11 {
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                // hyper takes the guard itself as the body: no second box per response.
                Ok::<_, Infallible>(response.map(|body| Guarded {
                    inner: body,
                    _in_flight: guard,
                }))
            }
        })
    };
    let connection = shared
        .builder
        .serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut phase = shared.phase.clone();
    tokio::select! {
        result = connection.as_mut() => return log_end(result),
        _ = reached(&mut phase, |p| p == Phase::Closing) => {}
        _ = idle(&activity, shared.idle_timeout) => {}
    }
    connection.as_mut().graceful_shutdown();
    log_end(connection.await);
}

/// Returns once the connection has had no request in flight for `timeout`.
async fn idle(activity: &Activity, timeout: std::time::Duration) {
    loop {
        let seen = activity.started.load(Ordering::Relaxed);
        tokio::time::sleep(timeout).await;
        if activity.in_flight.load(Ordering::Relaxed) == 0
            && activity.started.load(Ordering::Relaxed) == seen
        {
            return;
        }
    }
}

/// The checks no app should have to make, then the app.
async fn answer(
    shared: &Shared,
    req: Request<Incoming>,
    peer: Option<RemoteAddr>,
) -> Response<Body> {
    if req.version() == Version::HTTP_11 && !req.headers().contains_key(header::HOST) {
        return text(
            StatusCode::BAD_REQUEST,
            "400 Bad Request\nHTTP/1.1 requests need a Host header\n",
        );
    }
    if req.method() == Method::CONNECT {
        let mut response = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "405 Method Not Allowed\nthis server does not tunnel\n",
        );
        response.headers_mut().insert(
            header::ALLOW,
            HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
        );
        return response;
    }
    let mut req = req.map(Body::new);
    let original = OriginalUri(req.uri().clone());
    req.extensions_mut().insert(original);
    if let Some(peer) = peer {
        req.extensions_mut().insert(peer);
    }
    call(&shared.app, req).await
}

/// Counts a request as in flight until its response body is done or dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that ends its request's in-flight count and turns a panic while producing
/// the body into a logged error (the connection is then closed, as the status is already sent).
struct Guarded {
    inner: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let inner = &mut self.inner;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll_frame(cx))) {
            Ok(polled) => polled,
            Err(panic) => {
                tracing::error!(
                    panic = crate::app::panic_message(panic.as_ref()),
                    "an app panicked while producing a response body; closing the connection"
                );
                Poll::Ready(Some(Err("the response body panicked".into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
