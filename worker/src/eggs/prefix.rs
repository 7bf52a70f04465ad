//! `egg:PasteDeploy#prefix`: PasteDeploy's `PrefixMiddleware`, for apps behind a reverse proxy
//! (spec §2.21).
//!
//! `prefix` (trailing `/` removed) becomes the script name and is taken off the front of the
//! path; with `translate_forwarded_server` (default true) the proxy's `X-Forwarded-Server`,
//! `-Host`, `-For`, `-Scheme` and `-Proto` headers (first value of a list) replace the host,
//! client address and scheme the app sees, and are removed; `force_port` and `scheme` override
//! the port and scheme. As in PasteDeploy, the prefix is taken off any path that starts with it
//! (`/appx` under `/app` becomes `x`), and the script name is replaced, not extended.

use super::Eggs;
use crate::app::{app_fn, call, App, Mount};
use crate::body::Body;
use crate::conf::{ConfExt, EggError};
use crate::server::RemoteAddr;
use deploy::plan::Conf;
use deploy::registry::Protocol;
use http::{header, HeaderName, HeaderValue, Request};
use std::sync::Arc;

/// The request's scheme as the app should see it (WSGI's `wsgi.url_scheme`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlScheme(pub String);

#[derive(Debug)]
struct Prefix {
    prefix: String,
    translate: bool,
    force_port: Option<String>,
    scheme: Option<String>,
}

/// Removes header `name` and returns the first item of its comma-separated value.
fn take_first(req: &mut Request<Body>, name: &'static str) -> Option<String> {
    let value = req.headers_mut().remove(HeaderName::from_static(name))?;
    let text = value.to_str().ok()?;
    Some(text.split(',').next().unwrap_or("").to_owned())
}

impl Prefix {
    fn apply(&self, req: &mut Request<Body>) {
        let mount = Mount::of(req);
        let mut path = mount
            .path_info
            .strip_prefix(self.prefix.as_str())
            .unwrap_or(&mount.path_info)
            .to_owned();
        if path.is_empty() {
            path = "/".to_owned();
        }
        Mount {
            script_name: self.prefix.clone(),
            path_info: path,
        }
        .apply(req);
        if self.translate {
            let server = take_first(req, "x-forwarded-server");
            let host = take_first(req, "x-forwarded-host").or(server);
            if let Some(value) = host.and_then(|h| HeaderValue::from_str(&h).ok()) {
                req.headers_mut().insert(header::HOST, value);
            }
            if let Some(addr) = take_first(req, "x-forwarded-for") {
                let local = req.extensions().get::<RemoteAddr>().and_then(|a| a.local);
                req.extensions_mut().insert(RemoteAddr {
                    local,
                    ..RemoteAddr::new(addr)
                });
            }
            let scheme = req
                .headers_mut()
                .remove("x-forwarded-scheme")
                .or_else(|| req.headers_mut().remove("x-forwarded-proto"));
            if let Some(scheme) = scheme.and_then(|s| s.to_str().ok().map(str::to_owned)) {
                req.extensions_mut().insert(UrlScheme(scheme));
            }
        }
        if let Some(port) = &self.force_port {
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("")
                .split(':')
                .next()
                .unwrap_or("")
                .to_owned();
            let host = if port.is_empty() {
                host
            } else {
                format!("{host}:{port}")
            };
            if let Ok(value) = HeaderValue::from_str(&host) {
                req.headers_mut().insert(header::HOST, value);
            }
        }
        if let Some(scheme) = &self.scheme {
            req.extensions_mut().insert(UrlScheme(scheme.clone()));
        }
    }
}

fn build(app: App, _global: &Conf, local: &Conf) -> Result<App, EggError> {
    let prefix = Arc::new(Prefix {
        prefix: local.text("prefix", "/").trim_end_matches('/').to_owned(),
        translate: local.flag("translate_forwarded_server", true)?,
        force_port: local.get("force_port").cloned(),
        scheme: local.get("scheme").cloned(),
    });
    Ok(app_fn(move |mut req: Request<Body>| {
        let (app, prefix) = (app.clone(), Arc::clone(&prefix));
        async move {
            prefix.apply(&mut req);
            call(&app, req).await
        }
    }))
}

/// Registers `PasteDeploy#prefix` and its Python name.
pub fn register(eggs: &mut Eggs) {
    eggs.filter_app("PasteDeploy", "prefix", build).symbol(
        "paste.deploy.config:make_prefix_middleware",
        Protocol::FilterAppFactory,
        "PasteDeploy",
        "prefix",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::full;

    fn prefix(pairs: &[(&str, &str)]) -> Prefix {
        let local: Conf = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Prefix {
            prefix: local.text("prefix", "/").trim_end_matches('/').to_owned(),
            translate: local.flag("translate_forwarded_server", true).unwrap(),
            force_port: local.get("force_port").cloned(),
            scheme: local.get("scheme").cloned(),
        }
    }

    fn request(path: &str, headers: &[(&str, &str)]) -> Request<Body> {
        let mut builder = Request::get(path).header("host", "inner:8000");
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        builder.body(full("")).unwrap()
    }

    #[test]
    fn paths_as_pastedeploy_rewrites_them() {
        let p = prefix(&[("prefix", "/app/")]);
        for (path, want) in [
            ("/app/x/y", "/x/y"),
            ("/app", "/"),
            ("/other", "/other"),
            ("/appx", "x"),
        ] {
            let mut req = request(path, &[]);
            p.apply(&mut req);
            assert_eq!(
                Mount::of(&req),
                Mount {
                    script_name: "/app".into(),
                    path_info: want.into()
                },
                "{path}"
            );
        }
    }

    #[test]
    fn forwarded_headers() {
        let p = prefix(&[]);
        let mut req = request(
            "/",
            &[
                ("x-forwarded-host", "example.com, proxy"),
                ("x-forwarded-for", "203.0.113.9, 10.0.0.1"),
                ("x-forwarded-proto", "https"),
            ],
        );
        p.apply(&mut req);
        assert_eq!(req.headers()["host"], "example.com");
        assert_eq!(
            req.extensions().get::<RemoteAddr>(),
            Some(&RemoteAddr::new("203.0.113.9"))
        );
        assert_eq!(
            req.extensions().get::<UrlScheme>(),
            Some(&UrlScheme("https".into()))
        );
        assert!(req.headers().get("x-forwarded-host").is_none());
        let off = prefix(&[
            ("translate_forwarded_server", "false"),
            ("force_port", "8443"),
            ("scheme", "https"),
        ]);
        let mut req = request("/", &[("x-forwarded-host", "example.com")]);
        off.apply(&mut req);
        assert_eq!(req.headers()["host"], "inner:8443");
        assert_eq!(
            req.extensions().get::<UrlScheme>(),
            Some(&UrlScheme("https".into()))
        );
    }
}
