//! Filters on headers: `serve#headers` (set, add or default response headers), `serve#cors`
//! (cross-origin resource sharing, by tower-http) and `serve#request_id` (an id per request, by
//! tower-http).
//!
//! `serve#headers` keys: `set.NAME = VALUE` replaces the header, `add.NAME = VALUE` appends one
//! more, `default.NAME = VALUE` sets it only when the app did not.
//! `serve#cors` keys: `allow_origin` (`*` or origins separated by spaces; default `*`),
//! `allow_methods` (default `GET HEAD POST PUT PATCH DELETE`), `allow_headers` (`*` or names),
//! `expose_headers`, `allow_credentials` (bool, not with `*`), `max_age` (seconds).
//! `serve#request_id` keys: `header` (default `x-request-id`). A request without the header gets
//! a fresh id; the response carries the request's id.

use crate::app::{App, Filter};
use crate::body::Body;
use crate::conf::{ConfExt, EggError};
use crate::eggs::Eggs;
use deploy::plan::Conf;
use http::{HeaderName, HeaderValue, Method, Request};
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tower::util::BoxCloneSyncService;
use tower::Layer;
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::set_header::SetResponseHeaderLayer;

/// Registers `serve#headers`, `serve#cors` and `serve#request_id`.
pub fn register(eggs: &mut Eggs) {
    eggs.filter("serve", "headers", headers_filter)
        .filter("serve", "cors", cors_filter)
        .filter("serve", "request_id", request_id_filter);
}

fn header_name(key: &str, name: &str) -> Result<HeaderName, EggError> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| EggError::key(key, format!("'{name}' is not a header name")))
}

fn header_value(key: &str, value: &str) -> Result<HeaderValue, EggError> {
    HeaderValue::from_str(value)
        .map_err(|_| EggError::key(key, format!("'{value}' is not a valid header value")))
}

#[derive(Clone, Copy)]
enum Mode {
    Set,
    Add,
    Default,
}

fn headers_filter(_global: &Conf, local: &Conf) -> Result<Filter, EggError> {
    let mut rules = Vec::new();
    for (key, value) in local {
        let (mode, name) = if let Some(name) = key.strip_prefix("set.") {
            (Mode::Set, name)
        } else if let Some(name) = key.strip_prefix("add.") {
            (Mode::Add, name)
        } else if let Some(name) = key.strip_prefix("default.") {
            (Mode::Default, name)
        } else {
            return Err(EggError::key(
                key,
                "keys are set.NAME, add.NAME or default.NAME",
            ));
        };
        rules.push((mode, header_name(key, name)?, header_value(key, value)?));
    }
    let rules = Arc::new(rules);
    Ok(Arc::new(move |app: App| {
        rules.iter().fold(app, |app, (mode, name, value)| {
            let layer = match mode {
                Mode::Set => SetResponseHeaderLayer::overriding(name.clone(), value.clone()),
                Mode::Add => SetResponseHeaderLayer::appending(name.clone(), value.clone()),
                Mode::Default => {
                    SetResponseHeaderLayer::if_not_present(name.clone(), value.clone())
                }
            };
            BoxCloneSyncService::new(layer.layer(app))
        })
    }))
}

fn list(local: &Conf, key: &str, default: &str) -> Vec<String> {
    local
        .text(key, default)
        .split_whitespace()
        .map(|s| s.trim_end_matches(',').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

fn cors_filter(_global: &Conf, local: &Conf) -> Result<Filter, EggError> {
    let origins = list(local, "allow_origin", "*");
    let credentials = local.flag("allow_credentials", false)?;
    let mut layer = CorsLayer::new();
    layer = if origins == ["*"] {
        if credentials {
            return Err(EggError::key(
                "allow_credentials",
                "cannot be true with allow_origin = * (browsers refuse it); list the origins",
            ));
        }
        layer.allow_origin(AllowOrigin::any())
    } else {
        let values = origins
            .iter()
            .map(|o| header_value("allow_origin", o))
            .collect::<Result<Vec<_>, _>>()?;
        layer.allow_origin(AllowOrigin::list(values))
    };
    let methods = list(local, "allow_methods", "GET HEAD POST PUT PATCH DELETE")
        .iter()
        .map(|m| {
            Method::from_bytes(m.as_bytes())
                .map_err(|_| EggError::key("allow_methods", format!("'{m}' is not a method")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    layer = layer.allow_methods(methods);
    let headers = list(local, "allow_headers", "");
    if headers == ["*"] {
        if credentials {
            return Err(EggError::key(
                "allow_credentials",
                "cannot be true with allow_headers = *",
            ));
        }
        layer = layer.allow_headers(AllowHeaders::any());
    } else if !headers.is_empty() {
        let names = headers
            .iter()
            .map(|h| header_name("allow_headers", h))
            .collect::<Result<Vec<_>, _>>()?;
        layer = layer.allow_headers(names);
    }
    let expose = list(local, "expose_headers", "");
    if !expose.is_empty() {
        let names = expose
            .iter()
            .map(|h| header_name("expose_headers", h))
            .collect::<Result<Vec<_>, _>>()?;
        layer = layer.expose_headers(names);
    }
    if credentials {
        layer = layer.allow_credentials(true);
    }
    if local.contains_key("max_age") {
        let seconds = local.int("max_age", 0)?;
        let seconds =
            u64::try_from(seconds).map_err(|_| EggError::key("max_age", "must not be negative"))?;
        layer = layer.max_age(Duration::from_secs(seconds));
    }
    Ok(Arc::new(move |app: App| {
        BoxCloneSyncService::new(layer.clone().layer(app))
    }))
}

/// Request ids: a random per-process prefix and a counter, in hex.
#[derive(Clone)]
struct Ids {
    prefix: u64,
    next: Arc<AtomicU64>,
}

impl MakeRequestId for Ids {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{:016x}{n:08x}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

fn request_id_filter(_global: &Conf, local: &Conf) -> Result<Filter, EggError> {
    let header = header_name("header", local.text("header", "x-request-id"))?;
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let ids = Ids {
        prefix: hasher.finish(),
        next: Arc::new(AtomicU64::new(0)),
    };
    Ok(Arc::new(move |app: App| {
        let propagated = PropagateRequestIdLayer::new(header.clone()).layer(app);
        let set = SetRequestIdLayer::new(header.clone(), ids.clone()).layer(propagated);
        // A client's id is kept only if it is a sane token: 1 to 128 visible ASCII characters.
        let header = header.clone();
        BoxCloneSyncService::new(
            tower::ServiceBuilder::new()
                .map_request(move |mut req: Request<Body>| {
                    let sane = req.headers().get(&header).is_some_and(|v| {
                        (1..=128).contains(&v.len())
                            && v.as_bytes().iter().all(|b| b.is_ascii_graphic())
                    });
                    if !sane {
                        req.headers_mut().remove(&header);
                    }
                    req
                })
                .service(set),
        )
    }))
}

#[cfg(test)]
mod tests {
    use crate::body::full;
    use crate::pipeline::tests::{build_err, pipeline, send};
    use http::Request;

    const APP: &str = "[app:hello]\nuse = egg:minimal\n";

    #[tokio::test]
    async fn headers_set_add_and_default() {
        let ini = format!("{APP}[filter:h]\nuse = egg:serve#headers\nset.Content-Type = text/x-test\nadd.Link = </a>\nadd.Link = x\ndefault.Cache-Control = no-cache\n[pipeline:main]\npipeline = h hello\n");
        // Duplicate keys are refused by the INI dialect itself.
        assert!(build_err(&ini).contains("already exists"));
        let ini = format!("{APP}[filter:h]\nuse = egg:serve#headers\nset.Content-Type = text/x-test\nadd.Link = </a>\ndefault.Cache-Control = no-cache\n[pipeline:main]\npipeline = h hello\n");
        let (_, headers, body) =
            send(&pipeline(&ini), Request::get("/").body(full("")).unwrap()).await;
        assert_eq!(headers["content-type"], "text/x-test");
        assert_eq!(headers["link"], "</a>");
        assert_eq!(headers["cache-control"], "no-cache");
        assert_eq!(body, "Hello world!\n");
        assert!(build_err(&format!("{APP}[filter:h]\nuse = egg:serve#headers\nX-Frame = DENY\n[pipeline:main]\npipeline = h hello\n")).contains("X-Frame: keys are set.NAME"));
    }

    #[tokio::test]
    async fn cors_preflight_and_simple_requests() {
        let ini = format!("{APP}[filter:cors]\nuse = egg:serve#cors\nallow_origin = https://a.example https://b.example\nallow_credentials = true\nmax_age = 600\n[pipeline:main]\npipeline = cors hello\n");
        let app = pipeline(&ini);
        let preflight = Request::options("/")
            .header("origin", "https://a.example")
            .header("access-control-request-method", "PUT")
            .body(full(""))
            .unwrap();
        let (status, headers, _) = send(&app, preflight).await;
        assert_eq!(status, 200);
        assert_eq!(headers["access-control-allow-origin"], "https://a.example");
        assert_eq!(headers["access-control-allow-credentials"], "true");
        assert_eq!(headers["access-control-max-age"], "600");
        let other = Request::get("/")
            .header("origin", "https://evil.example")
            .body(full(""))
            .unwrap();
        let (_, headers, body) = send(&app, other).await;
        assert!(headers.get("access-control-allow-origin").is_none());
        assert_eq!(body, "Hello world!\n");
        let bad = format!("{APP}[filter:cors]\nuse = egg:serve#cors\nallow_credentials = true\n[pipeline:main]\npipeline = cors hello\n");
        assert!(build_err(&bad).contains("allow_credentials: cannot be true with allow_origin = *"));
    }

    #[tokio::test]
    async fn request_ids_are_made_or_kept() {
        let ini = format!("{APP}[filter:rid]\nuse = egg:serve#request_id\n[pipeline:main]\npipeline = rid hello\n");
        let app = pipeline(&ini);
        let a = send(&app, Request::get("/").body(full("")).unwrap())
            .await
            .1["x-request-id"]
            .clone();
        let b = send(&app, Request::get("/").body(full("")).unwrap())
            .await
            .1["x-request-id"]
            .clone();
        assert_ne!(a, b);
        assert_eq!(a.len(), 24);
        let kept = send(
            &app,
            Request::get("/")
                .header("x-request-id", "abc")
                .body(full(""))
                .unwrap(),
        )
        .await;
        assert_eq!(kept.1["x-request-id"], "abc");
        for bad in ["", "a b", &"x".repeat(200)] {
            let req = Request::get("/")
                .header("x-request-id", bad)
                .body(full(""))
                .unwrap();
            let replaced = send(&app, req).await;
            assert_eq!(replaced.1["x-request-id"].len(), 24, "{bad:?} was kept");
        }
    }
}
