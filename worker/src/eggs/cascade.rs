//! `egg:Paste#cascade`: tries apps in turn until one answers with a status not in `catch`
//! (default `404`), as Paste's `Cascade` does (spec §3.3). Keys `app*` name the apps, tried in
//! key order; the last app's answer is final. The request body is read once and replayed to
//! each app.

use super::{Children, Eggs};
use crate::app::{app_fn, call, App};
use crate::body::{full, Body};
use crate::conf::EggError;
use deploy::converters::asint;
use deploy::plan::Conf;
use deploy::registry::Protocol;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use std::sync::Arc;

/// The apps a cascade section loads, in file order as Paste loads them (it tries them in key
/// order); every key but `catch` must start with `app`, and `catch` must be a list of status
/// codes.
pub fn children(local: &Conf, _global: &Conf) -> Result<Vec<String>, String> {
    catch_codes(local)?;
    Ok(apps(local)?.into_iter().map(|(_, v)| v.clone()).collect())
}

/// The `app*` keys and their values, in file order.
fn apps(local: &Conf) -> Result<Vec<(&String, &String)>, String> {
    let mut apps: Vec<(&String, &String)> = Vec::new();
    for (key, value) in local {
        if key == "catch" {
            continue;
        }
        if !key.starts_with("app") {
            return Err(format!(
                "Bad configuration key '{key}' (='{value}'); all configuration keys must start with 'app'"
            ));
        }
        apps.push((key, value));
    }
    if apps.is_empty() {
        return Err("a cascade needs at least one app* key".into());
    }
    Ok(apps)
}

fn catch_codes(local: &Conf) -> Result<Vec<u16>, String> {
    local
        .get("catch")
        .map_or("404", String::as_str)
        .split_whitespace()
        .map(|code| {
            let n = asint(code).map_err(|e| format!("catch: {e}"))?;
            u16::try_from(n).map_err(|_| format!("catch: {n} is not a status code"))
        })
        .collect()
}

fn build(children: &Children, _global: &Conf, local: &Conf) -> Result<App, EggError> {
    let catch = Arc::new(catch_codes(local).map_err(|e| EggError::key("catch", e))?);
    let mut keyed = apps(local).map_err(EggError::new)?;
    keyed.sort();
    let apps: Arc<Vec<App>> = Arc::new(
        keyed
            .into_iter()
            .map(|(_, name)| children.get_app(name))
            .collect::<Result<_, _>>()?,
    );
    Ok(app_fn(move |req: Request<Body>| {
        let (apps, catch) = (Arc::clone(&apps), Arc::clone(&catch));
        async move {
            let (parts, body) = req.into_parts();
            let body = match body.collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => {
                    return crate::app::text(
                        StatusCode::BAD_REQUEST,
                        "400 Bad Request\nthe request body could not be read\n",
                    )
                }
            };
            let (last, first) = apps.split_last().expect("a cascade has at least one app");
            for app in first {
                let mut copy = Request::new(full(body.clone()));
                *copy.method_mut() = parts.method.clone();
                *copy.uri_mut() = parts.uri.clone();
                *copy.version_mut() = parts.version;
                *copy.headers_mut() = parts.headers.clone();
                *copy.extensions_mut() = parts.extensions.clone();
                let response = call(app, copy).await;
                if !catch.contains(&response.status().as_u16()) {
                    return response;
                }
            }
            call(last, Request::from_parts(parts, full(body))).await
        }
    }))
}

/// Registers `Paste#cascade` and its Python name.
pub fn register(eggs: &mut Eggs) {
    eggs.composite("Paste", "cascade", children, build).symbol(
        "paste.cascade:make_cascade",
        Protocol::CompositeFactory,
        "Paste",
        "cascade",
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::tests::{conf, get, pipeline};

    #[test]
    fn apps_load_in_file_order() {
        let local = conf(&[("app2", "b"), ("app1", "a"), ("catch", "404 403")]);
        assert_eq!(children(&local, &Conf::new()).unwrap(), ["b", "a"]);
    }

    #[test]
    fn other_keys_and_bad_codes_are_errors() {
        assert!(children(&conf(&[("x", "a")]), &Conf::new()).is_err());
        assert!(children(&conf(&[("app1", "a"), ("catch", "40x")]), &Conf::new()).is_err());
        assert!(children(&conf(&[("catch", "404")]), &Conf::new()).is_err());
    }

    #[tokio::test]
    async fn falls_through_404s_to_the_next_app() {
        let ini = "[composite:main]\nuse = egg:Paste#cascade\napp2 = hello\napp1 = empty\n\
                   [composite:empty]\nuse = egg:Paste#urlmap\n/only = hello\n\
                   [app:hello]\nuse = egg:minimal\n";
        let app = pipeline(ini);
        let (status, _, body) = get(&app, "/anything").await;
        assert_eq!((status, body.as_str()), (200, "Hello world!\n"));
        let ini = ini.replace("app2 = hello", "app2 = empty");
        assert_eq!(get(&pipeline(&ini), "/anything").await.0, 404);
    }
}
