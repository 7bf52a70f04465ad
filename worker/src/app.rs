//! What a pipeline is made of: apps, filters, and what apps can learn about where they are
//! mounted.
//!
//! An [`App`] is a tower service from `Request<Body>` to `Response<Body>` that never fails:
//! whatever goes wrong becomes a response, because an error that reaches hyper drops the
//! connection. It is boxed, cloneable and `Sync`, so one pipeline is shared by every connection
//! of a worker. A [`Filter`] turns an app into an app; `pipeline = f1 f2 app` is `f1(f2(app))`.

use crate::body::{full, Body};
use http::{header, HeaderValue, Request, Response, StatusCode};
use std::convert::Infallible;
use std::sync::Arc;
use tower::util::BoxCloneSyncService;
use tower::ServiceExt;

/// An application: a service that answers every request.
pub type App = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

/// A filter: wraps an app in another.
pub type Filter = Arc<dyn Fn(App) -> App + Send + Sync>;

/// An app from an async function of the request.
pub fn app_fn<F, Fut>(f: F) -> App
where
    F: Fn(Request<Body>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Body>> + Send + 'static,
{
    BoxCloneSyncService::new(tower::service_fn(move |req| {
        let fut = f(req);
        async move { Ok::<_, Infallible>(fut.await) }
    }))
}

/// An app from any tower service that never fails and answers with any body of `Bytes`
/// frames: an axum `Router`, a `tower::service_fn`, a tower-http service...
pub fn from_service<S, B>(service: S) -> App
where
    S: tower::Service<Request<Body>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<crate::body::BoxError>,
{
    BoxCloneSyncService::new(
        tower::ServiceBuilder::new()
            .map_response(|response: Response<B>| response.map(Body::new))
            .service(service),
    )
}

/// A filter from a tower `Layer` whose services never fail.
pub fn from_layer<L, B>(layer: L) -> Filter
where
    L: tower::Layer<App> + Send + Sync + 'static,
    L::Service: tower::Service<Request<Body>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    <L::Service as tower::Service<Request<Body>>>::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<crate::body::BoxError>,
{
    Arc::new(move |app: App| from_service(layer.layer(app)))
}

/// Calls an app once (apps are always ready and never fail).
pub fn call(
    app: &App,
    req: Request<Body>,
) -> impl std::future::Future<Output = Response<Body>> + Send + 'static {
    let response = app.clone().oneshot(req);
    async move {
        match response.await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    }
}

/// Where a request was routed: WSGI's `SCRIPT_NAME` (the prefix the mount consumed) and
/// `PATH_INFO` (what is left). Composites that mount apps under a prefix (`Paste#urlmap`,
/// `PasteDeploy#prefix`) keep it in the request's extensions; the request URI's path is
/// rewritten to `PATH_INFO` as well (`/` when it is empty), so Rust routers see the rest only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mount {
    /// The part of the path consumed by mounts, e.g. `/api`; empty at the root.
    pub script_name: String,
    /// The rest of the path, which may be empty.
    pub path_info: String,
}

impl Mount {
    /// The request's mount: the one a composite set, or the root and the URI's path,
    /// percent-decoded as WSGI's `PATH_INFO` is.
    pub fn of<B>(req: &Request<B>) -> Mount {
        req.extensions()
            .get::<Mount>()
            .cloned()
            .unwrap_or_else(|| Mount {
                script_name: String::new(),
                path_info: deploy::uri::percent_decode(req.uri().path(), false),
            })
    }

    /// Stores the mount in the request and makes the URI's path `path_info` (encoded again).
    pub fn apply<B>(self, req: &mut Request<B>) {
        let encoded = encode_path(&self.path_info);
        let path = if encoded.is_empty() { "/" } else { &encoded };
        let path_and_query = match req.uri().query() {
            Some(query) => format!("{path}?{query}"),
            None => path.to_owned(),
        };
        let mut parts = req.uri().clone().into_parts();
        if let Ok(pq) = path_and_query.parse() {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = http::Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
        req.extensions_mut().insert(self);
    }
}

/// Percent-encodes what may not stand in a URI path (RFC 3986 `pchar` and `/` stay).
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        let keep = byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&byte);
        if keep {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The message a panic carried (`panic!("...")` gives a `&str` or a `String`).
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("(no message)")
}

/// A plain-text response.
pub fn text(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<Body> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
