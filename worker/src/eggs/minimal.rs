//! `egg:minimal`: the app and the middleware of the PasteDeploy tutorial the project grew from
//! ("WSGI and Paste Deploy: The Bare Necessities").
//!
//! The app answers `200`, `Content-Type: text/plain`, `Hello world!\n`, written in one of the
//! tutorial's three ways: a plain function (`simple_app`, the default), a body produced chunk by
//! chunk (`AppClass`, with `use_class = true`) or a service object (`AlternateAppClass`, with
//! `use_alt_class = true`). The filter is `SimpleMiddleware`: it prefixes every chunk of the
//! body with `prefix` and a space (`prefix`, default `Booyeah:`), streaming; a small body of
//! known size (the app's) is prefixed at once, so the response keeps its `Content-Length`.

use super::Eggs;
use crate::app::{app_fn, App, Filter};
use crate::body::Body;
use crate::conf::ConfExt;
use bytes::Bytes;
use deploy::registry::Protocol;
use http::{header, HeaderValue, Request, Response};
use http_body::{Body as _, Frame};
use http_body_util::BodyExt;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::util::BoxCloneSyncService;

const HELLO: &str = "Hello world!\n";

/// Registers `minimal#main` (app and filter) and their Python names.
pub fn register(eggs: &mut Eggs) {
    eggs.app("minimal", "main", |_global, local| {
        Ok(if local.flag("use_class", false)? {
            app_fn(|_req| async { hello(chunks([HELLO])) })
        } else if local.flag("use_alt_class", false)? {
            BoxCloneSyncService::new(AlternateApp)
        } else {
            app_fn(simple_app)
        })
    })
    .symbol("minimal:main", Protocol::AppFactory, "minimal", "main")
    .filter("minimal", "main", |_global, local| {
        let prefix = Bytes::from(format!("{} ", local.text("prefix", "Booyeah:")));
        let filter: Filter = Arc::new(move |app: App| prefix_lines(app, prefix.clone()));
        Ok(filter)
    })
    .symbol(
        "minimal:middleware",
        Protocol::FilterFactory,
        "minimal",
        "main",
    );
}

fn hello(body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// The tutorial's `simple_app`: the whole body at once.
async fn simple_app(_req: Request<Body>) -> Response<Body> {
    hello(crate::body::full(HELLO))
}

/// The tutorial's `AlternateAppClass`: an object that is called per request.
#[derive(Debug, Clone, Copy)]
struct AlternateApp;

impl tower::Service<Request<Body>> for AlternateApp {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<Body>) -> Self::Future {
        std::future::ready(Ok(hello(crate::body::full(HELLO))))
    }
}

/// A streaming body of `parts`, one chunk per frame.
fn chunks<I: IntoIterator<Item = &'static str>>(parts: I) -> Body {
    crate::body::chunks(parts.into_iter().map(|s| Bytes::from_static(s.as_bytes())))
}

/// Bodies up to this size, when their size is known, are prefixed whole.
const WHOLE: u64 = 64 * 1024;

/// `SimpleMiddleware`: every data chunk of the response gets `prefix` in front.
fn prefix_lines(app: App, prefix: Bytes) -> App {
    app_fn(move |req| {
        let app = app.clone();
        let prefix = prefix.clone();
        async move {
            let response = crate::app::call(&app, req).await;
            let (mut parts, body) = response.into_parts();
            parts.headers.remove(header::CONTENT_LENGTH);
            let body = if body.size_hint().exact().is_some_and(|n| n <= WHOLE) {
                prefix_whole(body, &prefix).await
            } else {
                Body::new(body.map_frame(move |frame| frame.map_data(|c| prefixed(&prefix, &c))))
            };
            Response::from_parts(parts, body)
        }
    })
}

fn prefixed(prefix: &[u8], chunk: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(prefix.len() + chunk.len());
    out.extend_from_slice(prefix);
    out.extend_from_slice(chunk);
    Bytes::from(out)
}

/// A small body read to its end and prefixed chunk by chunk: one full body (whose size
/// hyper sends as `Content-Length`), or, if it had trailers or failed, the same frames.
async fn prefix_whole(mut body: Body, prefix: &[u8]) -> Body {
    let size = usize::try_from(body.size_hint().lower()).unwrap_or(0);
    let mut whole = Vec::with_capacity(size + prefix.len());
    // What came from the first trailers or error on.
    let mut rest = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame.map(Frame::into_data) {
            Ok(Ok(chunk)) if rest.is_empty() => {
                whole.extend_from_slice(prefix);
                whole.extend_from_slice(&chunk);
            }
            Ok(Ok(chunk)) => rest.push(Ok(Frame::data(prefixed(prefix, &chunk)))),
            Ok(Err(trailers)) => rest.push(Ok(trailers)),
            Err(e) => rest.push(Err(e)),
        }
    }
    if rest.is_empty() {
        crate::body::full(whole)
    } else {
        crate::body::frames(std::iter::once(Ok(Frame::data(Bytes::from(whole)))).chain(rest))
    }
}

#[cfg(test)]
mod tests {
    use crate::pipeline::tests::{get, pipeline};
    use bytes::Bytes;
    use http_body::Frame;

    #[tokio::test]
    async fn the_three_ways_to_write_the_app_answer_alike() {
        for extra in ["", "use_class = true\n", "use_alt_class = true\n"] {
            let app = pipeline(&format!("[app:main]\nuse = egg:minimal\n{extra}"));
            let (status, headers, body) = get(&app, "/").await;
            assert_eq!(status, 200, "{extra}");
            assert_eq!(headers["content-type"], "text/plain");
            assert_eq!(body, "Hello world!\n");
        }
    }

    #[tokio::test]
    async fn the_middleware_prefixes_and_stacks() {
        let ini = "[app:hello]\nuse = egg:minimal\nuse_class = true\n\
                   [filter:yikes]\nuse = egg:minimal\nprefix = yikes:\n\
                   [filter:default]\nuse = egg:minimal\n\
                   [pipeline:main]\npipeline = default yikes yikes hello\n";
        let (_, headers, body) = get(&pipeline(ini), "/").await;
        assert_eq!(body, "Booyeah: yikes: yikes: Hello world!\n");
        assert!(!headers.contains_key("content-length"));
    }

    #[tokio::test]
    async fn a_small_whole_body_keeps_a_content_length() {
        let ini = "[app:hello]\nuse = egg:minimal\n\
                   [filter:yikes]\nuse = egg:minimal\nprefix = yikes:\n\
                   [pipeline:main]\npipeline = yikes yikes hello\n";
        let app = pipeline(ini);
        let (_, _, body) = get(&app, "/").await;
        assert_eq!(body, "yikes: yikes: Hello world!\n");
        // hyper sends an exact size as Content-Length (worker/tests/server.rs sees it).
        let request = http::Request::new(crate::body::Body::empty());
        let response = crate::app::call(&app, request).await;
        assert_eq!(
            http_body::Body::size_hint(response.body()).exact(),
            Some(27)
        );
    }

    #[tokio::test]
    async fn trailers_and_errors_of_a_whole_body_are_kept() {
        use http_body_util::BodyExt;
        let body = crate::body::frames([
            Ok(Frame::data(Bytes::from_static(b"a"))),
            Ok(Frame::trailers(http::HeaderMap::new())),
            Err("broken".into()),
        ]);
        let mut out = super::prefix_whole(body, b"> ").await;
        let first = out.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "> a");
        assert!(out.frame().await.unwrap().unwrap().is_trailers());
        assert!(out.frame().await.unwrap().is_err());
        assert!(out.frame().await.is_none());
    }

    #[tokio::test]
    async fn a_bad_flag_names_its_key() {
        let err =
            crate::pipeline::tests::build_err("[app:main]\nuse = egg:minimal\nuse_class = maybe\n");
        assert!(err.starts_with("t.ini:3: "), "{err}");
        assert!(
            err.contains("use_class: String is not true/false: \"maybe\""),
            "{err}"
        );
    }
}
