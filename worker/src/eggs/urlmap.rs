//! `egg:Paste#urlmap`: mounts apps at path prefixes (and domains), as Paste's `urlmap` does
//! (spec §3).
//!
//! Each key of the section is a mount (`/api`, `domain example.com /app`,
//! `domain example.com port 8080 /`), each value the app to mount there; `not_found_app`
//! (from the section, else `[DEFAULT]`) answers what no mount matches, else a `404` page. The
//! longest matching prefix wins, on `/` boundaries (`/foo` serves `/foo` and `/foo/x`, never
//! `/foox`), domain mounts before the others; runs of `/` are collapsed. The matched prefix
//! moves from the path into the request's [`Mount`] (`SCRIPT_NAME`), the rest stays
//! (`PATH_INFO`).

use super::{Children, Eggs};
use crate::app::{app_fn, call, App, Mount};
use crate::body::{full, Body};
use crate::conf::EggError;
use deploy::plan::Conf;
use deploy::registry::Protocol;
use http::{header, HeaderValue, Request, Response, StatusCode};
use std::sync::Arc;

/// A mount key after `parse_path_expression` and `normalize_url`: an optional `host[:port]`
/// and a path with runs of `/` collapsed and no trailing `/` (the root is `""`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountKey {
    /// `domain HOST [port PORT]`, as written (Paste does not lower-case it).
    pub domain: Option<String>,
    /// The normalised path prefix.
    pub path: String,
}

/// Paste's `parse_path_expression` followed by `URLMap.normalize_url`.
pub fn parse_mount(expression: &str) -> Result<MountKey, String> {
    let mut domain: Option<&str> = None;
    let mut port: Option<&str> = None;
    let mut path: Option<&str> = None;
    let mut parts = expression.split_whitespace();
    while let Some(part) = parts.next() {
        match part {
            "domain" => {
                let value = parts
                    .next()
                    .ok_or("'domain' must be followed with a domain name")?;
                if domain.is_some() {
                    return Err("'domain' given twice".into());
                }
                domain = Some(value);
            }
            "port" => {
                let value = parts
                    .next()
                    .ok_or("'port' must be followed with a port number")?;
                if port.is_some() {
                    return Err("'port' given twice".into());
                }
                port = Some(value);
            }
            other => {
                if let Some(have) = path {
                    return Err(format!(
                        "more than one path given (have '{have}', got '{other}')"
                    ));
                }
                path = Some(other);
            }
        }
    }
    if port.is_some() && domain.is_none() {
        return Err("If you give a port, you must also give a domain".into());
    }
    let path = path.unwrap_or("");
    if domain.is_none() && !path.is_empty() && !path.starts_with('/') {
        return Err(format!(
            "URL fragments must start with / or http:// (you gave '{path}')"
        ));
    }
    let host = domain.map(|d| match port {
        Some(p) => format!("{d}:{p}"),
        None => d.to_owned(),
    });
    Ok(MountKey {
        domain: host,
        path: normalize_path(path, true),
    })
}

/// Collapses runs of `/` into one and, with `trim`, removes a trailing `/`.
pub fn normalize_path(path: &str, trim: bool) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    if trim {
        while out.ends_with('/') {
            out.pop();
        }
    }
    out
}

/// The apps a urlmap section loads: `not_found_app` (from the section, else from
/// global_conf), then each mount's app.
pub fn children(local: &Conf, global: &Conf) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let not_found = local
        .get("not_found_app")
        .or_else(|| global.get("not_found_app"));
    if let Some(app) = not_found.filter(|a| !a.is_empty()) {
        names.push(app.clone());
    }
    for (key, app) in local {
        if key == "not_found_app" {
            continue;
        }
        parse_mount(key).map_err(|e| format!("mount key '{key}': {e}"))?;
        names.push(app.clone());
    }
    Ok(names)
}

/// A built map: mounts in matching order.
struct UrlMap {
    mounts: Vec<(MountKey, App)>,
    not_found: Option<App>,
}

impl UrlMap {
    fn new(mut entries: Vec<(MountKey, App)>, not_found: Option<App>) -> UrlMap {
        // Paste's sort_apps: domain mounts first (by domain), then the rest; longer paths first.
        entries.sort_by(|(a, _), (b, _)| {
            let key = |m: &MountKey| {
                (
                    m.domain.clone().unwrap_or_else(|| "\u{ff}".into()),
                    std::cmp::Reverse(m.path.len()),
                    m.path.clone(),
                )
            };
            key(a).cmp(&key(b))
        });
        UrlMap {
            mounts: entries,
            not_found,
        }
    }

    fn route(&self, req: &Request<Body>) -> Option<(&App, Mount)> {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri().authority().map(|a| a.as_str()))
            .unwrap_or("")
            .to_lowercase();
        let (host, port) = match host.split_once(':') {
            Some((h, p)) => (h.to_owned(), p.to_owned()),
            None => {
                let https = req.uri().scheme_str() == Some("https")
                    || req
                        .extensions()
                        .get::<crate::eggs::prefix::UrlScheme>()
                        .is_some_and(|s| s.0 == "https");
                (host.clone(), if https { "443" } else { "80" }.to_owned())
            }
        };
        let host_port = format!("{host}:{port}");
        let mount = Mount::of(req);
        let path = normalize_path(&mount.path_info, false);
        for (key, app) in &self.mounts {
            if let Some(domain) = &key.domain {
                if *domain != host && *domain != host_port {
                    continue;
                }
            }
            let rest = path.strip_prefix(key.path.as_str());
            if let Some(rest) = rest.filter(|r| r.is_empty() || r.starts_with('/')) {
                return Some((
                    app,
                    Mount {
                        script_name: format!("{}{}", mount.script_name, key.path),
                        path_info: rest.to_owned(),
                    },
                ));
            }
        }
        None
    }

    /// Paste's default `not_found_app`: `HTTPNotFound` with the map in an HTML comment.
    fn not_found(&self, req: &Request<Body>) -> Response<Body> {
        let mount = Mount::of(req);
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        let defined: Vec<String> = self
            .mounts
            .iter()
            .map(|(m, _)| {
                format!(
                    "({}, {})",
                    m.domain.as_deref().map_or("None".to_owned(), py_repr),
                    py_repr(&m.path)
                )
            })
            .collect();
        let extra = format!(
            "defined apps: {}\nSCRIPT_NAME: {}\nPATH_INFO: {}\nHTTP_HOST: {}",
            defined.join(",\n  "),
            py_repr(&html_escape(&mount.script_name)),
            py_repr(&html_escape(&mount.path_info)),
            py_repr(&html_escape(host)),
        );
        let accept = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .unwrap_or("");
        not_found_page(&mount.path_info, &html_escape(&extra), accept)
    }
}

/// Paste's `HTTPNotFound(detail, comment=comment)` rendered for `accept`.
pub fn not_found_page(detail: &str, comment: &str, accept: &str) -> Response<Body> {
    const EXPLANATION: &str = "The resource could not be found.";
    let (content_type, body) = if accept.contains("html") || accept.contains("*/*") {
        let body = format!(
            "{}\r\n<br/>{}\r\n<!-- {} -->",
            html_escape(EXPLANATION),
            html_escape(detail),
            comment.replace("->", "-&gt;"),
        );
        (
            "text/html; charset=utf8",
            format!(
                "<html>\r\n  <head><title>Not Found</title></head>\r\n  <body>\r\n    <h1>Not Found</h1>\r\n    <p>{body}</p>\r\n    <hr noshade>\r\n    <div align=\"right\">WSGI Server</div>\r\n  </body>\r\n</html>\r\n"
            ),
        )
    } else {
        (
            "text/plain; charset=utf8",
            format!("404 Not Found\r\n{EXPLANATION}\r\n{detail}\r\n\r\n"),
        )
    };
    let mut response = Response::new(full(body));
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// Python's `html.escape(s, quote=True)`.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// Python's `repr()` of a string.
fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::new();
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

fn build(children: &Children, global: &Conf, local: &Conf) -> Result<App, EggError> {
    let not_found = local
        .get("not_found_app")
        .or_else(|| global.get("not_found_app"));
    let not_found = match not_found.filter(|n| !n.is_empty()) {
        Some(name) => Some(children.get_app(name)?),
        None => None,
    };
    let mut entries: Vec<(MountKey, App)> = Vec::new();
    for (key, name) in local {
        if key == "not_found_app" {
            continue;
        }
        let mount = parse_mount(key).map_err(|e| EggError::key(key, e))?;
        // A later key that normalises alike replaces the earlier one.
        entries.retain(|(m, _)| *m != mount);
        entries.push((mount, children.get_app(name)?));
    }
    let map = Arc::new(UrlMap::new(entries, not_found));
    Ok(app_fn(move |mut req: Request<Body>| {
        let map = Arc::clone(&map);
        async move {
            let routed = map.route(&req).map(|(app, mount)| (app.clone(), mount));
            match routed {
                Some((app, mount)) => {
                    mount.apply(&mut req);
                    call(&app, req).await
                }
                None => match &map.not_found {
                    Some(app) => call(app, req).await,
                    None => map.not_found(&req),
                },
            }
        }
    }))
}

/// Registers `Paste#urlmap` and its Python name.
pub fn register(eggs: &mut Eggs) {
    eggs.composite("Paste", "urlmap", children, build).symbol(
        "paste.urlmap:urlmap_factory",
        Protocol::CompositeFactory,
        "Paste",
        "urlmap",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::tests::send;

    fn mount(domain: Option<&str>, path: &str) -> MountKey {
        MountKey {
            domain: domain.map(str::to_owned),
            path: path.to_owned(),
        }
    }

    #[test]
    fn scenario_5_3_d51_path_expressions() {
        assert_eq!(parse_mount("domain a.com"), Ok(mount(Some("a.com"), "")));
        assert_eq!(
            parse_mount("domain a.com port 81 /x"),
            Ok(mount(Some("a.com:81"), "/x"))
        );
        assert_eq!(
            parse_mount("port 81 /x"),
            Err("If you give a port, you must also give a domain".into())
        );
        assert!(parse_mount("/a /b")
            .unwrap_err()
            .starts_with("more than one path given"));
        assert_eq!(
            parse_mount("domain a domain b"),
            Err("'domain' given twice".into())
        );
        assert_eq!(
            parse_mount("domain"),
            Err("'domain' must be followed with a domain name".into())
        );
    }

    #[test]
    fn scenario_5_3_d50_keys_must_start_with_a_slash() {
        assert_eq!(
            parse_mount("foo"),
            Err("URL fragments must start with / or http:// (you gave 'foo')".into())
        );
        assert_eq!(parse_mount("/foo/bar/"), Ok(mount(None, "/foo/bar")));
        assert_eq!(parse_mount("/"), Ok(mount(None, "")));
        assert_eq!(parse_mount("//a//b"), Ok(mount(None, "/a/b")));
    }

    #[test]
    fn children_start_with_the_not_found_app() {
        let local: Conf = [("/", "root"), ("not_found_app", "nf"), ("/foo", "foo")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(
            children(&local, &Conf::new()).unwrap(),
            ["nf", "root", "foo"]
        );
        let global: Conf = [("not_found_app".to_owned(), "g".to_owned())]
            .into_iter()
            .collect();
        let local: Conf = [("/".to_owned(), "root".to_owned())].into_iter().collect();
        assert_eq!(children(&local, &global).unwrap(), ["g", "root"]);
    }

    /// A test egg that answers `NAME|SCRIPT_NAME|PATH_INFO`.
    fn eggs() -> Eggs {
        let mut eggs = Eggs::builtin();
        eggs.app("test", "where", |_, local| {
            let name = local.get("name").cloned().unwrap_or_default();
            Ok(app_fn(move |req| {
                let name = name.clone();
                async move {
                    let m = Mount::of(&req);
                    crate::app::text(
                        StatusCode::OK,
                        format!("{name}|{}|{}", m.script_name, m.path_info),
                    )
                }
            }))
        });
        eggs
    }

    fn app(ini: &str) -> App {
        crate::pipeline::tests::pipeline_with(&eggs(), ini)
    }

    const D47: &str = "[composite:main]\nuse = egg:Paste#urlmap\n/ = root\n/foo = foo\n/foo/bar/ = foobar\n/f = f\n\
domain example.com /foo = dfoo\ndomain example.com port 8080 / = dport\n\
[app:root]\nuse = egg:test#where\nname = root\n[app:foo]\nuse = egg:test#where\nname = foo\n\
[app:foobar]\nuse = egg:test#where\nname = foobar\n[app:f]\nuse = egg:test#where\nname = f\n\
[app:dfoo]\nuse = egg:test#where\nname = dfoo\n[app:dport]\nuse = egg:test#where\nname = dport\n";

    async fn at(app: &App, path: &str, host: &str, script_name: Option<&str>) -> String {
        let mut req = Request::get(if path.is_empty() { "/" } else { path })
            .header("host", host)
            .body(full(""))
            .unwrap();
        if path.is_empty() || script_name.is_some() {
            Mount {
                script_name: script_name.unwrap_or("").into(),
                path_info: path.into(),
            }
            .apply(&mut req);
        }
        send(app, req).await.2
    }

    #[tokio::test]
    async fn scenario_5_3_d47_matching_table() {
        let app = app(D47);
        let table = [
            ("/", "localhost", "root||/"),
            ("", "localhost", "root||"),
            ("/blah", "localhost", "root||/blah"),
            ("/foo", "localhost", "foo|/foo|"),
            ("/foo/", "localhost", "foo|/foo|/"),
            ("/foox", "localhost", "root||/foox"),
            ("/foo/bar", "localhost", "foobar|/foo/bar|"),
            ("/foo/bar/baz", "localhost", "foobar|/foo/bar|/baz"),
            ("/f/z", "localhost", "f|/f|/z"),
            ("//foo//bar", "localhost", "foobar|/foo/bar|"),
            ("/foo/x", "example.com", "dfoo|/foo|/x"),
            ("/foo/x", "EXAMPLE.COM:80", "dfoo|/foo|/x"),
            ("/zzz", "example.com", "root||/zzz"),
            ("/zzz", "example.com:8080", "dport||/zzz"),
            ("/foo/x", "example.com:8080", "dfoo|/foo|/x"),
            ("/zzz", "other.com", "root||/zzz"),
        ];
        for (path, host, want) in table {
            assert_eq!(at(&app, path, host, None).await, want, "{path} on {host}");
        }
    }

    #[tokio::test]
    async fn paths_are_matched_decoded_as_wsgi_path_info_is() {
        let app = app(D47);
        assert_eq!(
            at(&app, "/%66oo/x%20y", "localhost", None).await,
            "foo|/foo|/x y"
        );
        let mut eggs = eggs();
        eggs.app("test", "uri", |_, _| {
            Ok(app_fn(|req: Request<Body>| async move {
                crate::app::text(StatusCode::OK, req.uri().to_string())
            }))
        });
        let ini =
            "[composite:main]\nuse = egg:Paste#urlmap\n/foo = u\n[app:u]\nuse = egg:test#uri\n";
        let app = crate::pipeline::tests::pipeline_with(&eggs, ini);
        let req = Request::get("/foo/x%20y/%25?q=1")
            .header("host", "h")
            .body(full(""))
            .unwrap();
        assert_eq!(send(&app, req).await.2, "/x%20y/%25?q=1");
    }

    #[tokio::test]
    async fn scenario_5_3_d49_script_name_is_kept_as_a_prefix() {
        let app = app(D47);
        assert_eq!(
            at(&app, "/foo/a", "localhost", Some("/mount")).await,
            "foo|/mount/foo|/a"
        );
    }

    #[tokio::test]
    async fn scenario_5_3_d48_default_404_bodies() {
        let app = app(
            "[composite:main]\nuse = egg:Paste#urlmap\n/foo = foo\n[app:foo]\nuse = egg:minimal\n",
        );
        let req = |accept: &str| {
            Request::get("/nope")
                .header("host", "h<x>")
                .header("accept", accept)
                .body(full(""))
                .unwrap()
        };
        let (status, headers, body) = send(&app, req("text/plain")).await;
        assert_eq!(status, 404);
        assert_eq!(headers["content-type"], "text/plain; charset=utf8");
        assert_eq!(
            body,
            "404 Not Found\r\nThe resource could not be found.\r\n/nope\r\n\r\n"
        );
        let (_, headers, body) = send(&app, req("text/html")).await;
        assert_eq!(headers["content-type"], "text/html; charset=utf8");
        assert!(
            body.starts_with("<html>\r\n  <head><title>Not Found</title></head>"),
            "{body}"
        );
        assert!(body.contains("<p>The resource could not be found.\r\n<br/>/nope\r\n<!-- defined apps: (None, &#x27;/foo&#x27;)\nSCRIPT_NAME: &#x27;&#x27;\nPATH_INFO: &#x27;/nope&#x27;\nHTTP_HOST: &#x27;h&amp;lt;x&amp;gt;&#x27; --></p>"), "{body}");
    }

    #[tokio::test]
    async fn scenario_5_3_d50_later_equal_keys_win_and_domains_keep_their_case() {
        let app = app("[composite:main]\nuse = egg:Paste#urlmap\n/foo = a\n/foo/ = b\ndomain Example.com /x = a\n\
[app:a]\nuse = egg:test#where\nname = a\n[app:b]\nuse = egg:test#where\nname = b\n");
        assert_eq!(at(&app, "/foo/z", "localhost", None).await, "b|/foo|/z");
        assert_eq!(
            send(
                &app,
                Request::get("/x")
                    .header("host", "example.com")
                    .body(full(""))
                    .unwrap()
            )
            .await
            .0,
            404
        );
    }

    #[tokio::test]
    async fn not_found_app_from_the_section_or_default() {
        let ini =
            "[DEFAULT]\nnot_found_app = nf\n[composite:main]\nuse = egg:Paste#urlmap\n/foo = nf\n\
[app:nf]\nuse = egg:test#where\nname = nf\n";
        assert_eq!(
            at(&app(ini), "/elsewhere", "localhost", None).await,
            "nf||/elsewhere"
        );
    }
}
