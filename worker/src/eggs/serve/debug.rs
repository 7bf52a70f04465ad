//! `serve#health` and `serve#echo`: apps for operating a deployment.
//!
//! `health` answers `200` with JSON naming the process (`pid`), its worker generation and
//! number, and its uptime, for load balancers and `systemctl status`-style checks. `echo`
//! answers with a plain-text dump of the request as the app received it (method, target, version,
//! mount, client address, headers, and up to `max_body` bytes of body, default 64k), for
//! debugging a pipeline.

use crate::app::{app_fn, Mount};
use crate::body::{full, Body};
use crate::conf::EggError;
use crate::eggs::Eggs;
use crate::server::RemoteAddr;
use deploy::plan::Conf;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use std::fmt::Write;

/// Registers `serve#health` and `serve#echo`.
pub fn register(eggs: &mut Eggs) {
    eggs.app("serve", "health", |_, _| {
        Ok(app_fn(|_req| async {
            let id = crate::identity::get();
            let json = format!(
                "{{\"status\":\"ok\",\"pid\":{},\"generation\":{},\"worker\":{},\"uptime_seconds\":{:.3}}}\n",
                std::process::id(),
                id.generation,
                id.worker,
                id.started.elapsed().as_secs_f64()
            );
            let mut response = Response::new(full(json));
            response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }))
    })
    .app("serve", "echo", |_, local: &Conf| {
        let max_body = match local.get("max_body") {
            Some(text) => super::parse_size(text)
                .ok_or_else(|| EggError::key("max_body", format!("'{text}' is not a size (like 64k)")))?,
            None => 64 * 1024,
        };
        let max_body = usize::try_from(max_body).unwrap_or(usize::MAX);
        Ok(app_fn(move |req| echo(req, max_body)))
    });
}

async fn echo(req: Request<Body>, max_body: usize) -> Response<Body> {
    let mount = Mount::of(&req);
    let mut out = String::new();
    let _ = writeln!(out, "{} {} {:?}", req.method(), req.uri(), req.version());
    let _ = writeln!(out, "script_name: {:?}", mount.script_name);
    let _ = writeln!(out, "path_info: {:?}", mount.path_info);
    if let Some(addr) = req.extensions().get::<RemoteAddr>() {
        let _ = writeln!(out, "remote_addr: {}", addr.addr);
    }
    for (name, value) in req.headers() {
        let _ = writeln!(out, "{name}: {}", String::from_utf8_lossy(value.as_bytes()));
    }
    match Limited::new(req.into_body(), max_body).collect().await {
        Ok(body) => {
            let bytes = body.to_bytes();
            let _ = write!(out, "\n{}", String::from_utf8_lossy(&bytes));
        }
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return crate::app::text(StatusCode::PAYLOAD_TOO_LARGE, "413 Payload Too Large\n")
        }
        Err(_) => {
            return crate::app::text(
                StatusCode::BAD_REQUEST,
                "400 Bad Request\nthe request body could not be read\n",
            )
        }
    }
    crate::app::text(StatusCode::OK, out)
}

#[cfg(test)]
mod tests {
    use crate::body::full;
    use crate::pipeline::tests::{get, pipeline, send};
    use http::Request;

    #[tokio::test]
    async fn health_is_json() {
        let (status, headers, body) =
            get(&pipeline("[app:main]\nuse = egg:serve#health\n"), "/").await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], "application/json");
        assert!(
            body.starts_with(&format!(
                "{{\"status\":\"ok\",\"pid\":{},\"generation\":0,\"worker\":0,\"uptime_seconds\":",
                std::process::id()
            )),
            "{body}"
        );
    }

    #[tokio::test]
    async fn echo_dumps_the_request_as_the_app_sees_it() {
        let app = pipeline("[composite:main]\nuse = egg:Paste#urlmap\n/dbg = echo\n[app:echo]\nuse = egg:serve#echo\nmax_body = 10\n");
        let req = Request::post("/dbg/x?y=1")
            .header("x-test", "yes")
            .body(full("hello"))
            .unwrap();
        let (status, _, body) = send(&app, req).await;
        assert_eq!(status, 200);
        assert!(
            body.starts_with("POST /x?y=1 HTTP/1.1\nscript_name: \"/dbg\"\npath_info: \"/x\"\n"),
            "{body}"
        );
        assert!(
            body.contains("x-test: yes\n") && body.ends_with("\nhello"),
            "{body}"
        );
        let big = Request::post("/dbg")
            .body(full("more than ten bytes"))
            .unwrap();
        assert_eq!(send(&app, big).await.0, 413);
    }

    #[test]
    fn a_bad_size_names_the_key() {
        let err = crate::pipeline::tests::build_err(
            "[app:main]\nuse = egg:serve#echo\nmax_body = lots\n",
        );
        assert!(
            err.starts_with("t.ini:3: [app:main] serve#echo: max_body: 'lots' is not a size"),
            "{err}"
        );
    }
}
