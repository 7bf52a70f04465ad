//! Shared helpers of the deploy crate's integration tests: registries of test eggs and
//! temporary fixture directories.
#![allow(dead_code, clippy::unwrap_used)]

use deploy::plan::Conf;
use deploy::registry::{ChildFinder, EggTable, Protocol, Registry};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `app.N` keys: the FakeApp `remote_addr` composite.
pub fn app_dot_children(local: &Conf, _global: &Conf) -> Result<Vec<String>, String> {
    Ok(local
        .iter()
        .filter(|(k, _)| k.starts_with("app."))
        .map(|(_, v)| v.clone())
        .collect())
}

/// Paste's urlmap loading order, without its key validation (as the oracle mirrors it).
pub fn urlmap_children(local: &Conf, global: &Conf) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    match local
        .get("not_found_app")
        .or_else(|| global.get("not_found_app"))
    {
        Some(nf) if !nf.is_empty() => names.push(nf.clone()),
        _ => {}
    }
    names.extend(
        local
            .iter()
            .filter(|(k, _)| *k != "not_found_app")
            .map(|(_, v)| v.clone()),
    );
    Ok(names)
}

/// Paste's cascade: `app*` keys, loaded in file order.
pub fn cascade_children(local: &Conf, _global: &Conf) -> Result<Vec<String>, String> {
    Ok(local
        .iter()
        .filter(|(k, _)| k.starts_with("app"))
        .map(|(_, v)| v.clone())
        .collect())
}

/// The directory of the differential oracle.
pub fn differential_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/differential")
}

/// The egg table described by the oracle's `eggs.json` (FakeApp, ExpApp and the built-in
/// names), so Rust and Python see the same eggs.
pub fn manifest_table() -> EggTable {
    let text = std::fs::read_to_string(differential_dir().join("eggs.json")).unwrap();
    let entries: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    let mut table = EggTable::new();
    for e in entries {
        let protocol = Protocol::from_group(e["group"].as_str().unwrap()).unwrap();
        let children: Option<ChildFinder> = match e["children"].as_str() {
            None => None,
            Some("app_dot") => Some(app_dot_children),
            Some("urlmap") => Some(urlmap_children),
            Some("cascade") => Some(cascade_children),
            Some(other) => panic!("unknown children rule {other}"),
        };
        table.register_composite(
            e["dist"].as_str().unwrap(),
            protocol,
            e["name"].as_str().unwrap(),
            children,
        );
    }
    table
}

/// A registry of [`test_table`].
pub fn test_registry() -> Registry {
    Registry::new().with_source(Arc::new(test_table()))
}

/// The manifest's eggs, plus the Python names of FakeApp's factories that PasteDeploy's
/// `test_func.ini` and `test_config_included.ini` use.
pub fn test_table() -> EggTable {
    let mut table = manifest_table();
    table
        .register_symbol(
            "fakeapp.apps:make_basic_app",
            Protocol::AppFactory,
            "FakeApp",
            "basic_app",
        )
        .register_symbol(
            "fakeapp.apps:make_basic_app2",
            Protocol::AppFactory,
            "FakeApp",
            "other",
        )
        .register_symbol(
            "fakeapp.apps:make_remote_addr",
            Protocol::CompositFactory,
            "FakeApp",
            "remote_addr",
        )
        .register_symbol(
            "fakeapp.configapps:SimpleApp.make_app",
            Protocol::AppFactory,
            "FakeApp",
            "configed",
        )
        .register_symbol(
            "fakeapp.apps:make_cap_filter",
            Protocol::FilterFactory,
            "FakeApp",
            "caps",
        )
        .register_symbol(
            "fakeapp.apps:CapFilter",
            Protocol::FilterAppFactory,
            "FakeApp",
            "caps2",
        );
    table
}

/// A temporary directory holding `files` (name, text); sub-directories are created.
pub fn fixture(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// `conf!{"a" => "1", ...}`.
#[macro_export]
macro_rules! conf {
    ($($k:expr => $v:expr),* $(,)?) => {{
        let mut c = deploy::plan::Conf::new();
        $(c.insert(String::from($k), String::from($v));)*
        c
    }};
}

/// PasteDeploy's `tests/` layout: `T/sample_configs/*.ini`, copied from the corpus (which
/// holds them verbatim). Returns the temporary `T`.
pub fn pastedeploy_tests_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("sample_configs");
    std::fs::create_dir_all(&samples).unwrap();
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    for entry in std::fs::read_dir(corpus).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if let Some(original) = name.strip_prefix("pastedeploy--") {
            std::fs::copy(&path, samples.join(original)).unwrap();
        }
    }
    dir
}

/// The `DIST#NAME` of a node.
pub fn egg(node: &deploy::Node) -> String {
    node.factory().egg.to_string()
}

/// The app a filter node wraps.
pub fn inner(node: &deploy::Node) -> &deploy::Node {
    match node {
        deploy::Node::Filter { app, .. } => app,
        other => panic!("not a filter: {other:?}"),
    }
}

/// The apps of a composite node.
pub fn apps(node: &deploy::Node) -> &indexmap::IndexMap<String, deploy::Node> {
    match node {
        deploy::Node::Composite { apps, .. } => apps,
        other => panic!("not a composite: {other:?}"),
    }
}

/// A path as the string PasteDeploy puts in global_conf.
pub fn s(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}
