//! Building a running pipeline from a plan: each node's factory is called with its
//! `global_conf` and `local_conf`, inner nodes first, and the result is one [`App`].
//!
//! This is the only step between a plan and serving; tests call it without any socket. The
//! built app is wrapped so that a panic inside any app becomes a logged `500`, never a dead
//! connection or worker.

use crate::app::{text, App};
use crate::body::Body;
use crate::conf::EggError;
use crate::eggs::{Children, Eggs, Factory};
use crate::settings::ServerSettings;
use deploy::plan::{Factory as PlanFactory, Node, ServerNode};
use deploy::{Location, Runtime};
use http::{Response, StatusCode};
use indexmap::IndexMap;
use std::any::Any;
use std::fmt;
use thiserror::Error;
use tower::util::BoxCloneSyncService;
use tower_http::catch_panic::CatchPanicLayer;

/// A factory that refused its settings, or an egg the plan names that this build lacks.
#[derive(Debug, Error)]
pub struct BuildError {
    /// The key at fault, else the section.
    pub at: Option<Location>,
    /// The section the factory was configured in.
    pub section: Option<String>,
    /// `DIST#NAME`.
    pub egg: String,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(at) = &self.at {
            write!(f, "{at}: ")?;
        }
        if let Some(section) = &self.section {
            write!(f, "[{section}] ")?;
        }
        write!(f, "{}: {}", self.egg, self.message)
    }
}

impl BuildError {
    fn new(factory: &PlanFactory, error: EggError) -> Self {
        let at = error
            .key
            .as_deref()
            .and_then(|key| factory.key_location(key))
            .cloned()
            .or_else(|| section_location(factory));
        BuildError {
            at,
            section: factory.section.clone(),
            egg: factory.egg.to_string(),
            message: error.to_string(),
        }
    }
}

fn section_location(factory: &PlanFactory) -> Option<Location> {
    let file = factory.file.as_ref()?;
    Some(Location::new(
        &std::sync::Arc::from(file.as_path()),
        factory.line?,
    ))
}

fn code<'e>(eggs: &'e Eggs, factory: &PlanFactory) -> Result<&'e Factory, BuildError> {
    eggs.factory(&factory.egg.dist, factory.protocol, &factory.egg.name)
        .ok_or_else(|| {
            BuildError::new(
                factory,
                EggError::new(format!(
                    "this build has no {} named {}",
                    factory.protocol, factory.egg
                )),
            )
        })
}

fn mismatch(factory: &PlanFactory, expected: &str) -> BuildError {
    BuildError::new(
        factory,
        EggError::new(format!(
            "is registered as a {}, not as {expected}",
            factory.protocol
        )),
    )
}

/// Builds the app a plan node describes, without the panic guard.
fn build_node(node: &Node, eggs: &Eggs) -> Result<App, BuildError> {
    let factory = node.factory();
    if factory.runtime == Runtime::Python {
        let Some(python) = eggs.python() else {
            return Err(BuildError::new(
                factory,
                EggError::new(
                    "is Python code, and this worker hosts no Python (serve needs the `python` feature)",
                ),
            ));
        };
        if let Some((_, rust)) = node.rust_under_python() {
            return Err(BuildError::new(
                factory,
                EggError::new(format!(
                    "cannot wrap the Rust {} {}: Python filters and composites wrap Python apps only",
                    rust.section.as_deref().unwrap_or("app"),
                    rust.egg
                )),
            ));
        }
        return python(node).map_err(|e| BuildError::new(factory, e));
    }
    match node {
        Node::App(factory) => match code(eggs, factory)? {
            Factory::App(make) => make(&factory.global_conf, &factory.local_conf)
                .map(guard)
                .map_err(|e| BuildError::new(factory, e)),
            _ => Err(mismatch(factory, "an app")),
        },
        Node::Composite { factory, apps } => {
            let built = apps
                .iter()
                .map(|(name, node)| Ok((name.clone(), build_node(node, eggs)?)))
                .collect::<Result<IndexMap<_, _>, BuildError>>()?;
            match code(eggs, factory)? {
                Factory::Composite(make) => make(
                    &Children::new(built),
                    &factory.global_conf,
                    &factory.local_conf,
                )
                .map_err(|e| BuildError::new(factory, e)),
                _ => Err(mismatch(factory, "a composite")),
            }
        }
        Node::Filter { factory, app } => {
            let inner = build_node(app, eggs)?;
            match code(eggs, factory)? {
                Factory::Filter(make) => {
                    let filter = make(&factory.global_conf, &factory.local_conf)
                        .map_err(|e| BuildError::new(factory, e))?;
                    Ok(filter(inner))
                }
                Factory::FilterApp(make) => make(inner, &factory.global_conf, &factory.local_conf)
                    .map_err(|e| BuildError::new(factory, e)),
                _ => Err(mismatch(factory, "a filter")),
            }
        }
    }
}

/// Builds the app of a plan, guarded so that a panic in it answers `500`. Each app at the
/// bottom of the pipeline is guarded too, so the filters above it (the access log) see that
/// `500` like any other answer.
pub fn build(node: &Node, eggs: &Eggs) -> Result<App, BuildError> {
    Ok(guard(build_node(node, eggs)?))
}

/// `app`, answering `500` (and logging) where it would panic.
fn guard(app: App) -> App {
    BoxCloneSyncService::new(
        tower::ServiceBuilder::new()
            .map_response(|response: Response<_>| response.map(Body::new))
            .layer(CatchPanicLayer::custom(panic_response))
            .service(app),
    )
}

/// The settings of a plan's server section (the defaults when there is none).
pub fn build_server(node: Option<&ServerNode>, eggs: &Eggs) -> Result<ServerSettings, BuildError> {
    let Some(node) = node else {
        return Ok(ServerSettings::default());
    };
    let factory = &node.factory;
    match code(eggs, factory)? {
        Factory::Server(make) => {
            make(&factory.global_conf, &factory.local_conf).map_err(|e| BuildError::new(factory, e))
        }
        _ => Err(mismatch(factory, "a server")),
    }
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    tracing::error!(
        panic = crate::app::panic_message(panic.as_ref()),
        "an app panicked while handling a request; answered 500"
    );
    text(
        StatusCode::INTERNAL_SERVER_ERROR,
        "500 Internal Server Error\n",
    )
}

#[cfg(test)]
pub(crate) mod tests {
    //! Helpers for egg tests: a pipeline from INI text, and one request through it.
    use super::*;
    use crate::body::full;
    use http::{HeaderMap, Request};
    use http_body_util::BodyExt;

    /// Loads `ini` (written to `t.ini` in a fresh directory) with `eggs`; errors have paths
    /// relative to that directory.
    fn plan_with(eggs: &Eggs, ini: &str) -> Result<deploy::Plan, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.ini"), ini).unwrap();
        let request = deploy::Request {
            config_uri: dir.path().join("t.ini").to_string_lossy().into_owned(),
            ..deploy::Request::default()
        };
        deploy::load(&eggs.registry(), &request).map_err(|e| {
            e.to_string()
                .replace(&format!("{}/", dir.path().display()), "")
        })
    }

    /// The pipeline `[...:main]` of `ini` describes, built with `eggs`.
    pub fn pipeline_with(eggs: &Eggs, ini: &str) -> App {
        build(&plan_with(eggs, ini).unwrap().app, eggs).unwrap()
    }

    /// The pipeline `[...:main]` of `ini` describes.
    pub fn pipeline(ini: &str) -> App {
        pipeline_with(&Eggs::builtin(), ini)
    }

    /// The error loading or building `ini` gives, with paths relative to its directory.
    pub fn build_err(ini: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.ini"), ini).unwrap();
        let request = deploy::Request {
            config_uri: dir.path().join("t.ini").to_string_lossy().into_owned(),
            ..deploy::Request::default()
        };
        let text = match deploy::load(&Eggs::builtin().registry(), &request) {
            Err(e) => e.to_string(),
            Ok(plan) => match build(&plan.app, &Eggs::builtin()) {
                Err(e) => e.to_string(),
                Ok(_) => panic!("built"),
            },
        };
        text.replace(&format!("{}/", dir.path().display()), "")
    }

    /// Sends `req` through `app`; the status, headers and body.
    pub async fn send(app: &App, req: Request<Body>) -> (u16, HeaderMap, String) {
        let response = crate::app::call(app, req).await;
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (
            parts.status.as_u16(),
            parts.headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    /// A configuration from pairs.
    pub fn conf(pairs: &[(&str, &str)]) -> deploy::plan::Conf {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// A GET of `uri`.
    pub async fn get(app: &App, uri: &str) -> (u16, HeaderMap, String) {
        send(app, Request::get(uri).body(full("")).unwrap()).await
    }

    #[tokio::test]
    async fn a_panicking_app_answers_500() {
        let mut eggs = Eggs::builtin();
        eggs.app("test", "panics", |_, _| {
            Ok(crate::app::app_fn(|_req| async { panic!("boom") }))
        });
        let plan = plan_with(&eggs, "[app:main]\nuse = egg:minimal\n").unwrap();
        let mut node = plan.app.clone();
        if let Node::App(f) = &mut node {
            f.egg.dist = "test".into();
            f.egg.name = "panics".into();
        }
        let app = build(&node, &eggs).unwrap();
        let (status, _, body) = get(&app, "/").await;
        assert_eq!(status, 500);
        assert_eq!(body, "500 Internal Server Error\n");
        // The app still answers afterwards.
        assert_eq!(get(&app, "/").await.0, 500);
    }
}
