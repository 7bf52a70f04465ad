//! `serve#static` (an app serving a directory, by tower-http's `ServeDir`) and `serve#compress`
//! (a filter compressing responses by `Accept-Encoding`, by tower-http).
//!
//! `serve#static` keys: `root` (the directory; relative to the config file's directory, so
//! `root = static` and `root = %(here)s/static` agree), `index` (bool, default true: serve
//! `index.html` for a directory), `precompressed` (bool, default false: serve `FILE.gz`,
//! `FILE.br`, `FILE.zst` beside a file when the client accepts them). Responses carry
//! `Last-Modified` and an `ETag`, answer `If-None-Match`/`If-Modified-Since` with `304` and
//! `Range` with `206`; no path (`..`, encoded or not) leaves the root.
//! `serve#compress` keys: `gzip`, `br`, `zstd` (bools, default true), `level` (`fastest`,
//! `default` or `best`), `min_size` (bytes below which nothing is compressed, default 32).

use crate::app::{app_fn, call, App, Filter, Mount};
use crate::body::Body;
use crate::conf::{ConfExt, EggError};
use crate::eggs::Eggs;
use deploy::plan::Conf;
use http::{header, HeaderValue, Request, Response, StatusCode};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::Arc;
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceBuilder};
use tower_http::compression::predicate::{DefaultPredicate, Predicate, SizeAbove};
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::services::ServeDir;

/// Registers `serve#static` and `serve#compress`.
pub fn register(eggs: &mut Eggs) {
    eggs.app("serve", "static", static_app)
        .filter("serve", "compress", compress_filter);
}

fn static_app(global: &Conf, local: &Conf) -> Result<App, EggError> {
    let root = local
        .get("root")
        .ok_or_else(|| EggError::key("root", "is required: the directory to serve"))?;
    let mut path = PathBuf::from(root.trim());
    if path.is_relative() {
        if let Some(here) = global.get("here") {
            path = PathBuf::from(here).join(path);
        }
    }
    if !path.is_dir() {
        return Err(EggError::key(
            "root",
            format!("{} is not a directory", path.display()),
        ));
    }
    let mut dir = ServeDir::new(&path).append_index_html_on_directories(local.flag("index", true)?);
    if local.flag("precompressed", false)? {
        dir = dir
            .precompressed_gzip()
            .precompressed_br()
            .precompressed_zstd();
    }
    let files = BoxCloneSyncService::new(
        ServiceBuilder::new()
            .map_response(|response: Response<_>| response.map(Body::new))
            .service(dir),
    );
    Ok(app_fn(move |req: Request<Body>| {
        let files = files.clone();
        async move {
            let script_name = Mount::of(&req).script_name;
            let if_none_match = req.headers().get(header::IF_NONE_MATCH).cloned();
            let if_range = req.headers().get(header::IF_RANGE).cloned();
            // Without its Range, for when If-Range says the client's copy is stale.
            let whole = if_range.is_some().then(|| {
                let mut copy = Request::new(Body::empty());
                *copy.method_mut() = req.method().clone();
                *copy.uri_mut() = req.uri().clone();
                *copy.headers_mut() = req.headers().clone();
                copy.headers_mut().remove(header::RANGE);
                copy.headers_mut().remove(header::IF_RANGE);
                copy
            });
            let mut response = call(&files, req).await;
            if let (Some(if_range), Some(whole)) = (&if_range, whole) {
                if response.status() == StatusCode::PARTIAL_CONTENT
                    && !if_range_matches(if_range, response.headers())
                {
                    response = call(&files, whole).await;
                }
            }
            // ServeDir redirects `dir` to `dir/` by the path it saw: put the mount back in front.
            if response.status().is_redirection() && !script_name.is_empty() {
                let location = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|l| l.to_str().ok());
                if let Some(fixed) = location
                    .filter(|l| l.starts_with('/'))
                    .map(|l| format!("{script_name}{l}"))
                {
                    if let Ok(value) = HeaderValue::from_str(&fixed) {
                        response.headers_mut().insert(header::LOCATION, value);
                    }
                }
            }
            with_etag(response, if_none_match)
        }
    }))
}

/// The entity tag of a file response: a hash of its modification time, its full size and its
/// encoding (strong, so that `If-Range` can use it).
fn etag_of(headers: &http::HeaderMap) -> Option<String> {
    let modified = headers.get(header::LAST_MODIFIED)?;
    let size = match headers
        .get(header::CONTENT_RANGE)
        .and_then(|r| r.to_str().ok())
    {
        Some(range) => range.rsplit('/').next()?.to_owned(),
        None => headers
            .get(header::CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .to_owned(),
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    modified.as_bytes().hash(&mut hasher);
    size.hash(&mut hasher);
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING) {
        encoding.as_bytes().hash(&mut hasher);
    }
    Some(format!("\"{:016x}\"", hasher.finish()))
}

/// Whether `If-Range` (an entity tag or a date) still describes the file (RFC 9110 §13.1.5).
fn if_range_matches(if_range: &HeaderValue, headers: &http::HeaderMap) -> bool {
    let Ok(value) = if_range.to_str() else {
        return false;
    };
    let value = value.trim();
    if value.starts_with('"') {
        etag_of(headers).is_some_and(|etag| etag == value)
    } else {
        headers
            .get(header::LAST_MODIFIED)
            .is_some_and(|m| m.as_bytes() == value.as_bytes())
    }
}

/// Adds the `ETag` to a file response, and turns it into `304 Not Modified` when the
/// request's `If-None-Match` names it.
fn with_etag(mut response: Response<Body>, if_none_match: Option<HeaderValue>) -> Response<Body> {
    if !(response.status() == StatusCode::OK || response.status() == StatusCode::PARTIAL_CONTENT) {
        return response;
    }
    let Some(etag) = etag_of(response.headers()) else {
        return response;
    };
    let matches = if_none_match
        .as_ref()
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim() == "*"
                || v.split(',')
                    .any(|tag| tag.trim().trim_start_matches("W/") == etag)
        });
    let Ok(value) = HeaderValue::from_str(&etag) else {
        return response;
    };
    if matches {
        let mut not_modified = Response::new(Body::empty());
        *not_modified.status_mut() = StatusCode::NOT_MODIFIED;
        for name in [header::LAST_MODIFIED, header::CACHE_CONTROL, header::VARY] {
            if let Some(v) = response.headers().get(&name) {
                not_modified.headers_mut().insert(name, v.clone());
            }
        }
        not_modified.headers_mut().insert(header::ETAG, value);
        return not_modified;
    }
    response.headers_mut().insert(header::ETAG, value);
    response
}

fn compress_filter(_global: &Conf, local: &Conf) -> Result<Filter, EggError> {
    let level = match local.text("level", "default") {
        "fastest" => CompressionLevel::Fastest,
        "default" => CompressionLevel::Default,
        "best" => CompressionLevel::Best,
        other => {
            return Err(EggError::key(
                "level",
                format!("'{other}' is not fastest, default or best"),
            ))
        }
    };
    let min_size = u64::try_from(local.int("min_size", 32)?)
        .map_err(|_| EggError::key("min_size", "must not be negative"))?;
    let layer = CompressionLayer::new()
        .gzip(local.flag("gzip", true)?)
        .br(local.flag("br", true)?)
        .zstd(local.flag("zstd", true)?)
        .no_deflate()
        .quality(level)
        .compress_when(DefaultPredicate::new().and(SizeAbove::new(min_size)));
    Ok(Arc::new(move |app: App| {
        BoxCloneSyncService::new(
            ServiceBuilder::new()
                .map_response(|response: Response<_>| response.map(Body::new))
                .service(layer.clone().layer(app)),
        )
    }))
}

#[cfg(test)]
mod tests {
    use crate::body::full;
    use crate::pipeline::tests::{build_err, pipeline, send};
    use http::Request;
    use std::io::Read;

    fn site() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("site/sub")).unwrap();
        std::fs::write(dir.path().join("site/index.html"), "<h1>home</h1>\n").unwrap();
        std::fs::write(dir.path().join("site/a.txt"), "0123456789").unwrap();
        std::fs::write(dir.path().join("site/a.txt.gz"), "not really gzip").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "outside").unwrap();
        dir
    }

    fn app(root: &std::path::Path, extra: &str) -> crate::app::App {
        pipeline(&format!(
            "[app:main]\nuse = egg:serve#static\nroot = {}\n{extra}",
            root.display()
        ))
    }

    async fn get(
        app: &crate::app::App,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, http::HeaderMap, String) {
        let mut req = Request::get(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        send(app, req.body(full("")).unwrap()).await
    }

    #[tokio::test]
    async fn files_indexes_ranges_and_etags() {
        let dir = site();
        let app = app(&dir.path().join("site"), "");
        let (status, headers, body) = get(&app, "/a.txt", &[]).await;
        assert_eq!((status, body.as_str()), (200, "0123456789"));
        assert!(headers.contains_key("last-modified"));
        let etag = headers["etag"].to_str().unwrap().to_owned();
        assert!(etag.starts_with('"'));
        assert_eq!(
            get(&app, "/a.txt", &[("if-none-match", &etag)]).await.0,
            304
        );
        assert_eq!(
            get(&app, "/a.txt", &[("if-none-match", "W/\"other\"")])
                .await
                .0,
            200
        );
        let (status, headers, body) = get(&app, "/a.txt", &[("range", "bytes=2-4")]).await;
        assert_eq!((status, body.as_str()), (206, "234"));
        assert_eq!(
            headers["etag"],
            etag.as_str(),
            "a range has the file's ETag"
        );
        let (status, _, body) = get(
            &app,
            "/a.txt",
            &[("range", "bytes=2-4"), ("if-range", &etag)],
        )
        .await;
        assert_eq!((status, body.as_str()), (206, "234"));
        let (status, _, body) = get(
            &app,
            "/a.txt",
            &[("range", "bytes=2-4"), ("if-range", "\"stale\"")],
        )
        .await;
        assert_eq!((status, body.as_str()), (200, "0123456789"));
        assert_eq!(get(&app, "/", &[]).await.2, "<h1>home</h1>\n");
        assert_eq!(get(&app, "/missing", &[]).await.0, 404);
    }

    #[tokio::test]
    async fn directory_redirects_keep_the_mount() {
        let dir = site();
        let ini = format!("[composite:main]\nuse = egg:Paste#urlmap\n/files = files\n[app:files]\nuse = egg:serve#static\nroot = {}\n", dir.path().join("site").display());
        let (status, headers, _) = get(&pipeline(&ini), "/files/sub", &[]).await;
        assert!((300..400).contains(&status), "{status}");
        assert_eq!(headers["location"], "/files/sub/");
    }

    #[tokio::test]
    async fn no_path_escapes_the_root() {
        let dir = site();
        let app = app(&dir.path().join("site"), "");
        for path in [
            "/../secret.txt",
            "/sub/../../secret.txt",
            "/%2e%2e/secret.txt",
            "/sub/%2E%2E/%2e%2e/secret.txt",
            "/..%2fsecret.txt",
            "/%2e%2e%2fsecret.txt",
        ] {
            let (status, _, body) = get(&app, path, &[]).await;
            assert_ne!(body, "outside", "{path} escaped the root");
            assert!(status == 404 || status == 400, "{path}: {status}");
        }
    }

    #[tokio::test]
    async fn precompressed_files() {
        let dir = site();
        let app = app(&dir.path().join("site"), "precompressed = true\n");
        let (_, headers, body) = get(&app, "/a.txt", &[("accept-encoding", "gzip")]).await;
        assert_eq!(headers["content-encoding"], "gzip");
        assert_eq!(body, "not really gzip");
    }

    #[test]
    fn a_missing_root_is_named() {
        let err = build_err("[app:main]\nuse = egg:serve#static\nroot = /nonexistent/dir\n");
        assert!(
            err.starts_with(
                "t.ini:3: [app:main] serve#static: root: /nonexistent/dir is not a directory"
            ),
            "{err}"
        );
    }

    #[tokio::test]
    async fn compress_by_accept_encoding() {
        let dir = site();
        let big = "hello hello hello ".repeat(200);
        std::fs::write(dir.path().join("site/big.txt"), &big).unwrap();
        let ini = format!("[app:files]\nuse = egg:serve#static\nroot = {}\n[filter:gz]\nuse = egg:serve#compress\nbr = false\n[pipeline:main]\npipeline = gz files\n", dir.path().join("site").display());
        let app = pipeline(&ini);
        let req = Request::get("/big.txt")
            .header("accept-encoding", "br, gzip")
            .body(full(""))
            .unwrap();
        let response = crate::app::call(&app, req).await;
        assert_eq!(response.headers()["content-encoding"], "gzip");
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        let mut text = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, big);
        let plain = get(&app, "/big.txt", &[]).await;
        assert!(plain.1.get("content-encoding").is_none());
        assert_eq!(plain.2, big);
    }
}
