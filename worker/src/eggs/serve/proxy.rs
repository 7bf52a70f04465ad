//! `serve#proxy`: a reverse proxy to one upstream HTTP server, with hyper's client.
//!
//! Bodies stream both ways (nothing is buffered whole). The request keeps its method, headers
//! (less hop-by-hop ones) and body; its path is the mount's `PATH_INFO` appended to the
//! upstream URL's path. `X-Forwarded-For` (the client appended), `X-Forwarded-Proto` and
//! `X-Forwarded-Host` tell the upstream who asked. An upstream that cannot be reached answers
//! `502 Bad Gateway`; one that does not send its response head within `timeout` answers
//! `504 Gateway Timeout`.
//!
//! Keys: `upstream` (required: `http://HOST:PORT[/PATH]`), `timeout` (seconds, default 30),
//! `preserve_host` (bool, default false: send the client's `Host` instead of the upstream's),
//! `forwarded` (bool, default true: add the `X-Forwarded-*` headers).

use crate::app::{app_fn, text, App, Mount};
use crate::body::Body;
use crate::conf::{ConfExt, EggError};
use crate::eggs::Eggs;
use crate::server::RemoteAddr;
use deploy::plan::Conf;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::sync::Arc;
use std::time::Duration;

/// Registers `serve#proxy`.
pub fn register(eggs: &mut Eggs) {
    eggs.app("serve", "proxy", proxy_app);
}

struct Upstream {
    scheme_authority: String,
    base_path: String,
    authority: HeaderValue,
    timeout: Duration,
    preserve_host: bool,
    forwarded: bool,
    client: Client<HttpConnector, Body>,
}

fn proxy_app(_global: &Conf, local: &Conf) -> Result<App, EggError> {
    let text_url = local
        .get("upstream")
        .ok_or_else(|| EggError::key("upstream", "is required: http://HOST:PORT[/PATH]"))?;
    let uri: Uri = text_url
        .trim()
        .parse()
        .map_err(|e| EggError::key("upstream", format!("'{text_url}' is not a URL: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(EggError::key(
            "upstream",
            format!("'{text_url}': only http:// upstreams are supported"),
        ));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| EggError::key("upstream", format!("'{text_url}' has no host")))?;
    let timeout: f64 = local
        .text("timeout", "30")
        .trim()
        .parse()
        .ok()
        .filter(|t: &f64| *t > 0.0 && t.is_finite())
        .ok_or_else(|| EggError::key("timeout", "must be a positive number of seconds"))?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(Duration::from_secs_f64(timeout)));
    let upstream = Arc::new(Upstream {
        scheme_authority: format!("http://{authority}"),
        base_path: uri.path().trim_end_matches('/').to_owned(),
        authority: HeaderValue::from_str(authority.as_str())
            .map_err(|_| EggError::key("upstream", "bad host"))?,
        timeout: Duration::from_secs_f64(timeout),
        preserve_host: local.flag("preserve_host", false)?,
        forwarded: local.flag("forwarded", true)?,
        client: Client::builder(TokioExecutor::new()).build(connector),
    });
    Ok(app_fn(move |req| {
        let upstream = Arc::clone(&upstream);
        async move { upstream.forward(req).await }
    }))
}

/// Headers that describe one hop, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

impl Upstream {
    async fn forward(&self, req: Request<Body>) -> Response<Body> {
        let mount = Mount::of(&req);
        let (mut parts, body) = req.into_parts();
        let query = parts
            .uri
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        let path = if mount.path_info.is_empty() {
            "/"
        } else {
            &mount.path_info
        };
        let target = format!("{}{}{path}{query}", self.scheme_authority, self.base_path);
        let Ok(uri) = target.parse::<Uri>() else {
            return text(
                StatusCode::BAD_REQUEST,
                "400 Bad Request\nthe path cannot be forwarded\n",
            );
        };
        // HTTP/2 carries the host in the URI's authority, HTTP/1.1 in `Host`.
        let client_host = parts.headers.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        strip_hop_by_hop(&mut parts.headers);
        if self.forwarded {
            let client = parts
                .extensions
                .get::<RemoteAddr>()
                .map(|a| a.addr.to_string())
                .unwrap_or_default();
            let chain = match parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
            {
                Some(before) if !client.is_empty() => format!("{before}, {client}"),
                Some(before) => before.to_owned(),
                None => client,
            };
            if let Ok(value) = HeaderValue::from_str(&chain) {
                parts.headers.insert("x-forwarded-for", value);
            }
            let scheme = parts
                .extensions
                .get::<crate::eggs::prefix::UrlScheme>()
                .map_or("http", |s| s.0.as_str());
            if let Ok(value) = HeaderValue::from_str(scheme) {
                parts.headers.insert("x-forwarded-proto", value);
            }
            if let Some(host) = &client_host {
                parts.headers.insert("x-forwarded-host", host.clone());
            }
        }
        match (&client_host, self.preserve_host) {
            (Some(host), true) => parts.headers.insert(header::HOST, host.clone()),
            _ => parts.headers.insert(header::HOST, self.authority.clone()),
        };
        parts.uri = uri;
        parts.version = http::Version::HTTP_11;
        let request = Request::from_parts(parts, body);
        match tokio::time::timeout(self.timeout, self.client.request(request)).await {
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, Body::new(body))
            }
            Ok(Err(e)) if caused_by_body_limit(&e) => {
                text(StatusCode::PAYLOAD_TOO_LARGE, "413 Payload Too Large\n")
            }
            Ok(Err(e)) => {
                tracing::warn!(upstream = %self.scheme_authority, error = %e, "proxy: upstream failed");
                text(StatusCode::BAD_GATEWAY, "502 Bad Gateway\n")
            }

            Err(_) => {
                tracing::warn!(upstream = %self.scheme_authority, "proxy: upstream timed out");
                text(StatusCode::GATEWAY_TIMEOUT, "504 Gateway Timeout\n")
            }
        }
    }
}

/// Whether a client error comes from the request body exceeding `serve#limit`.
fn caused_by_body_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use crate::app::app_fn;
    use crate::body::{full, Body};
    use crate::pipeline::tests::{build_err, pipeline, send};
    use crate::server::listen::{bind, Bound};
    use crate::server::Server;
    use crate::settings::{ListenAddr, ServerSettings};
    use bytes::Bytes;
    use http::{Request, Response, StatusCode};
    use http_body_util::BodyExt;

    /// An upstream on a free port: `/big` streams 8 MiB in 64 KiB chunks, `/slow` never
    /// answers, anything else echoes method, path and the forwarded headers, then the body.
    async fn upstream() -> (Server, String) {
        let bound = bind(
            &ListenAddr::Tcp {
                host: "127.0.0.1".into(),
                port: 0,
            },
            16,
        )
        .unwrap();
        let addr = match &bound[0] {
            Bound::Tcp(l) => l.local_addr().unwrap().to_string(),
            Bound::Unix(_) => unreachable!(),
        };
        let app = app_fn(|req: Request<Body>| async move {
            match req.uri().path() {
                "/base/big" => Response::new(crate::body::chunks(
                    (0..128u8).map(|i| Bytes::from(vec![b'a' + i % 26; 64 * 1024])),
                )),
                "/base/slow" => {
                    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                    crate::app::text(StatusCode::OK, "never")
                }
                _ => {
                    let mut out = format!("{} {}\n", req.method(), req.uri());
                    for name in [
                        "host",
                        "x-forwarded-for",
                        "x-forwarded-proto",
                        "x-forwarded-host",
                        "connection",
                        "x-hop",
                    ] {
                        if let Some(v) = req.headers().get(name) {
                            out.push_str(&format!("{name}: {}\n", v.to_str().unwrap()));
                        }
                    }
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    out.push_str(&String::from_utf8_lossy(&body));
                    crate::app::text(StatusCode::OK, out)
                }
            }
        });
        (
            Server::start(bound, app, &ServerSettings::default()).unwrap(),
            addr,
        )
    }

    fn proxy(upstream: &str, extra: &str) -> crate::app::App {
        pipeline(&format!("[composite:main]\nuse = egg:Paste#urlmap\n/api = proxy\n[app:proxy]\nuse = egg:serve#proxy\nupstream = http://{upstream}/base\n{extra}"))
    }

    #[tokio::test]
    async fn forwards_path_headers_and_body() {
        let (_server, addr) = upstream().await;
        let app = proxy(&addr, "");
        let mut req = Request::post("/api/items?x=1")
            .header("host", "public.example")
            .header("connection", "x-hop")
            .header("x-hop", "drop me")
            .body(full("payload"))
            .unwrap();
        req.extensions_mut()
            .insert(crate::server::RemoteAddr::new("203.0.113.7"));
        let (status, _, body) = send(&app, req).await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            format!("POST /base/items?x=1\nhost: {addr}\nx-forwarded-for: 203.0.113.7\nx-forwarded-proto: http\nx-forwarded-host: public.example\npayload")
        );
    }

    #[tokio::test]
    async fn streams_a_large_body_through() {
        let (_server, addr) = upstream().await;
        let app = proxy(&addr, "");
        let response =
            crate::app::call(&app, Request::get("/api/big").body(full("")).unwrap()).await;
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let (mut total, mut frames) = (0usize, 0usize);
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            assert!(data.iter().all(|b| *b == data[0]));
            total += data.len();
            frames += 1;
        }
        assert_eq!(total, 8 * 1024 * 1024);
        assert!(frames > 1, "the body arrived in one piece: it was buffered");
    }

    #[tokio::test]
    async fn unreachable_and_slow_upstreams() {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closed = free.local_addr().unwrap().to_string();
        drop(free);
        let app = proxy(&closed, "");
        assert_eq!(
            send(&app, Request::get("/api/x").body(full("")).unwrap())
                .await
                .0,
            502
        );
        let (_server, addr) = upstream().await;
        let app = proxy(&addr, "timeout = 0.3\n");
        assert_eq!(
            send(&app, Request::get("/api/slow").body(full("")).unwrap())
                .await
                .0,
            504
        );
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_413_not_502() {
        let (_server, addr) = upstream().await;
        let ini = format!("[app:proxy]\nuse = egg:serve#proxy\nupstream = http://{addr}/base\n[filter:limit]\nuse = egg:serve#limit\nmax_body = 10\n[pipeline:main]\npipeline = limit proxy\n");
        let app = pipeline(&ini);
        // No Content-Length: the limit only shows while the body streams.
        let body = crate::body::chunks((0..10).map(|_| Bytes::from_static(b"0123456789")));
        let (status, _, _) = send(&app, Request::post("/x").body(body).unwrap()).await;
        assert_eq!(status, 413);
    }

    #[test]
    fn bad_upstreams_are_named() {
        let err = build_err("[app:main]\nuse = egg:serve#proxy\nupstream = https://x\n");
        assert!(
            err.contains("upstream: 'https://x': only http:// upstreams are supported"),
            "{err}"
        );
        assert!(build_err("[app:main]\nuse = egg:serve#proxy\n").contains("upstream: is required"));
    }
}
