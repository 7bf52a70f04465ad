//! Filters that bound requests: `serve#limit` (largest request body; `413` beyond it) and
//! `serve#timeout` (longest time an app may take to answer; a `504` then), both by tower-http.
//!
//! `serve#limit` keys: `max_body` (bytes, with an optional `k`/`m`/`g` suffix; default `1m`).
//! `serve#timeout` keys: `seconds` (default 30), `status` (the answer's status, default 504).

use crate::app::{App, Filter};
use crate::body::Body;
use crate::conf::{ConfExt, EggError};
use crate::eggs::Eggs;
use deploy::plan::Conf;
use http::{Request, Response, StatusCode};
use std::sync::Arc;
use std::time::Duration;
use tower::util::BoxCloneSyncService;
use tower::{Layer, ServiceBuilder};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// Registers `serve#limit` and `serve#timeout`.
pub fn register(eggs: &mut Eggs) {
    eggs.filter("serve", "limit", limit_filter)
        .filter("serve", "timeout", timeout_filter);
}

fn limit_filter(_global: &Conf, local: &Conf) -> Result<Filter, EggError> {
    let text = local.text("max_body", "1m");
    let max = super::parse_size(text)
        .ok_or_else(|| EggError::key("max_body", format!("'{text}' is not a size (like 10m)")))?;
    let max = usize::try_from(max).map_err(|_| EggError::key("max_body", "is too large"))?;
    Ok(Arc::new(move |app: App| {
        BoxCloneSyncService::new(
            ServiceBuilder::new()
                .map_response(|response: Response<_>| response.map(Body::new))
                .layer(RequestBodyLimitLayer::new(max))
                .map_request(|req: Request<_>| req.map(Body::new))
                .service(app),
        )
    }))
}

fn timeout_filter(_global: &Conf, local: &Conf) -> Result<Filter, EggError> {
    let seconds: f64 = local
        .text("seconds", "30")
        .trim()
        .parse()
        .ok()
        .filter(|s: &f64| *s > 0.0 && s.is_finite())
        .ok_or_else(|| EggError::key("seconds", "must be a positive number of seconds"))?;
    let status = u16::try_from(local.int("status", 504)?)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| EggError::key("status", "is not an HTTP status"))?;
    let timeout = Duration::from_secs_f64(seconds);
    Ok(Arc::new(move |app: App| {
        BoxCloneSyncService::new(TimeoutLayer::with_status_code(status, timeout).layer(app))
    }))
}

#[cfg(test)]
mod tests {
    use crate::body::full;
    use crate::pipeline::tests::{build_err, pipeline, send};
    use http::Request;

    #[tokio::test]
    async fn bodies_over_the_limit_get_413() {
        let ini = "[app:echo]\nuse = egg:serve#echo\n[filter:limit]\nuse = egg:serve#limit\nmax_body = 8\n[pipeline:main]\npipeline = limit echo\n";
        let app = pipeline(ini);
        assert_eq!(
            send(&app, Request::post("/").body(full("small")).unwrap())
                .await
                .0,
            200
        );
        let big = Request::post("/")
            .header("content-length", "20")
            .body(full("twenty bytes of body"))
            .unwrap();
        assert_eq!(send(&app, big).await.0, 413);
        assert!(build_err("[app:echo]\nuse = egg:serve#echo\n[filter:limit]\nuse = egg:serve#limit\nmax_body = big\n[pipeline:main]\npipeline = limit echo\n").contains("max_body: 'big' is not a size"));
    }

    #[tokio::test(start_paused = true)]
    async fn slow_apps_time_out() {
        let mut eggs = crate::eggs::Eggs::builtin();
        eggs.app("test", "slow", |_, _| {
            Ok(crate::app::app_fn(|_req| async {
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                crate::app::text(http::StatusCode::OK, "late")
            }))
        });
        let ini = "[app:slow]\nuse = egg:test#slow\n[filter:t]\nuse = egg:serve#timeout\nseconds = 0.5\n[pipeline:main]\npipeline = t slow\n";
        let app = crate::pipeline::tests::pipeline_with(&eggs, ini);
        assert_eq!(
            send(&app, Request::get("/").body(full("")).unwrap())
                .await
                .0,
            504
        );
    }
}
