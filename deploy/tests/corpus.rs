//! The loader on real deployment files of public projects (`tests/corpus`, see SOURCES.md):
//! OpenStack's api-paste.ini files, Pyramid, Pylons, TurboGears and CKAN projects, and
//! PasteDeploy's own samples. Their eggs are the projects' own Python packages, so a permissive
//! egg source stands in for them: any distribution, any app/filter/server entry point, any
//! `module:attr`, with the composites called `*urlmap_factory`/`root_app_factory` loading
//! their mounts as Paste's urlmap does.
#![allow(clippy::unwrap_used)]

mod common;

use deploy::plan::Conf;
use deploy::registry::{EggSource, EntryPoint, Protocol, Registry, Runtime};
use deploy::{load, Node, Request};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Stands in for every Python distribution of the corpus.
#[derive(Debug)]
struct AnyPythonPackage;

impl EggSource for AnyPythonPackage {
    fn distribution(&self, name: &str) -> Option<String> {
        Some(name.to_owned())
    }
    fn distributions(&self) -> Vec<String> {
        Vec::new()
    }
    fn entry_point(&self, dist: &str, protocol: Protocol, name: &str) -> Option<EntryPoint> {
        matches!(
            protocol,
            Protocol::AppFactory | Protocol::FilterFactory | Protocol::ServerFactory
        )
        .then(|| EntryPoint {
            dist: dist.to_owned(),
            protocol,
            name: name.to_owned(),
            children: None,
            runtime: Runtime::Python,
        })
    }
    fn entry_point_names(&self, _dist: &str, _protocol: Protocol) -> Vec<String> {
        Vec::new()
    }
    fn symbol(&self, target: &str, protocol: Protocol) -> Option<EntryPoint> {
        let urlmap = target.ends_with("urlmap_factory") || target.ends_with("root_app_factory");
        Some(EntryPoint {
            dist: "python".to_owned(),
            protocol,
            name: target.to_owned(),
            children: (urlmap && protocol.is_composite()).then_some(common::urlmap_children as _),
            runtime: Runtime::Python,
        })
    }
}

fn registry() -> Registry {
    Registry::new()
        .with_source(Arc::new(common::test_table()))
        .with_source(Arc::new(AnyPythonPackage))
}

/// The corpus laid out as the projects have it: `PROJECT--NAME.ini` becomes `PROJECT/NAME`
/// (so `use = config:development.ini` finds its sibling).
fn corpus() -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")).unwrap()
    {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap();
        let Some((project, file)) = name.split_once("--") else {
            continue;
        };
        let file = file
            .strip_suffix(".conf.ini")
            .map_or(file.to_owned(), |f| format!("{f}.conf"));
        let file = if file.ends_with(".ini") || file.ends_with(".conf") {
            file
        } else {
            format!("{file}.ini")
        };
        let target = dir.path().join(project).join(&file);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&path, &target).unwrap();
        files.push(target);
    }
    files.sort();
    (dir, files)
}

fn chain(node: &Node) -> Vec<String> {
    let mut out = vec![node.factory().egg.to_string()];
    let mut node = node;
    while let Node::Filter { app, .. } = node {
        out.push(app.factory().egg.to_string());
        node = app;
    }
    out
}

/// What loading one file (and app) must give.
enum Expect {
    /// The pipeline from the outermost filter to the app, as eggs.
    Chain(&'static [&'static str]),
    /// A composite with these mounts' apps resolved.
    Composite(&'static [&'static str]),
    /// An error containing this text.
    Error(&'static str),
}

use Expect::*;

const CASES: &[(&str, Option<&str>, &[&str], Expect)] = &[
    (
        "nova/api-paste.ini",
        Some("osapi_compute"),
        &[],
        Composite(&["/", "/v2", "/v2.1", "/v2/+", "/v2.1/+"]),
    ),
    (
        "nova/api-paste.ini",
        Some("metadata"),
        &[],
        Composite(&["/"]),
    ),
    (
        "nova/api-paste-2013.ini",
        Some("osapi_compute"),
        &[],
        Composite(&["/", "/v1.1", "/v2"]),
    ),
    (
        "nova/api-paste-2013.ini",
        Some("ec2"),
        &[],
        Composite(&["/services/Cloud"]),
    ),
    (
        "keystone/keystone-paste.ini",
        None,
        &[],
        Composite(&["/v2.0", "/v3", "/"]),
    ),
    (
        "keystone/keystone-paste.ini",
        Some("admin"),
        &[],
        Composite(&["/v2.0", "/v3", "/"]),
    ),
    (
        "keystone/keystone-paste-2014.ini",
        None,
        &[],
        Composite(&["/v2.0", "/v3", "/"]),
    ),
    (
        "glance/glance-api-paste.ini",
        Some("glance-api"),
        &[],
        Composite(&["/", "/healthcheck"]),
    ),
    (
        "glance/glance-api-paste.ini",
        Some("glance-api-keystone+caching"),
        &[],
        Composite(&["/", "/healthcheck"]),
    ),
    (
        "cinder/api-paste.ini",
        Some("osapi_volume"),
        &[],
        Composite(&["/", "/healthcheck", "/v3"]),
    ),
    (
        "neutron/api-paste.ini",
        Some("neutron"),
        &[],
        Composite(&["/", "/healthcheck", "/v2.0"]),
    ),
    (
        "heat/api-paste.ini",
        Some("heat-api"),
        &[],
        Composite(&["/", "/healthcheck"]),
    ),
    (
        "heat/api-paste.ini",
        Some("heat-api-cfn"),
        &[],
        Composite(&["/", "/healthcheck"]),
    ),
    (
        "swift/proxy-server.conf",
        None,
        &[],
        Chain(&[
            "swift#catch_errors",
            "swift#gatekeeper",
            "swift#healthcheck",
            "swift#proxy_logging",
            "swift#memcache",
            "swift#listing_formats",
            "swift#container_sync",
            "swift#bulk",
            "swift#tempurl",
            "swift#ratelimit",
            "swift#tempauth",
            "swift#copy",
            "swift#container_quotas",
            "swift#account_quotas",
            "swift#slo",
            "swift#dlo",
            "swift#versioned_writes",
            "swift#symlink",
            "swift#proxy_logging",
            "swift#proxy",
        ]),
    ),
    (
        "swift/saio-proxy-server.conf",
        None,
        &[],
        Chain(&[
            "swift#catch_errors",
            "swift#gatekeeper",
            "swift#healthcheck",
            "swift#proxy_logging",
            "swift#memcache",
            "swift#etag_quoter",
            "swift#listing_formats",
            "swift#bulk",
            "swift#tempurl",
            "swift#ratelimit",
            "swift#crossdomain",
            "swift#container_sync",
            "swift#tempauth",
            "swift#staticweb",
            "swift#copy",
            "swift#container_quotas",
            "swift#account_quotas",
            "swift#slo",
            "swift#dlo",
            "swift#versioned_writes",
            "swift#symlink",
            "swift#keymaster",
            "swift#encryption",
            "swift#proxy_logging",
            "swift#proxy",
        ]),
    ),
    (
        "pastedeploy/test_config.ini",
        Some("test3"),
        &[],
        Chain(&["FakeApp#configed"]),
    ),
    (
        "pastedeploy/test_config.ini",
        Some("test_foreign_config"),
        &[],
        Chain(&["FakeApp#configed"]),
    ),
    (
        "pastedeploy/test_config.ini",
        Some("test_global_conf"),
        &[],
        Error("%(inherit)s"),
    ),
    (
        "pastedeploy/test_config.ini",
        Some("test_global_conf"),
        &["inherit=x"],
        Chain(&["FakeApp#configed"]),
    ),
    (
        "pastedeploy/test_filter.ini",
        Some("piped3"),
        &[],
        Error("has extra (disallowed) settings: extra_config_option"),
    ),
    (
        "pastedeploy/test_filter_with.ini",
        None,
        &[],
        Chain(&["FakeApp#caps", "FakeApp#caps", "FakeApp#basic_app"]),
    ),
    (
        "pastedeploy/test_func.ini",
        Some("remote_addr"),
        &[],
        Composite(&["app.1", "app.2"]),
    ),
    (
        "pastedeploy/basic_app.ini",
        None,
        &[],
        Chain(&["FakeApp#basic_app"]),
    ),
    (
        "pastedeploy/executable.ini",
        None,
        &[],
        Chain(&["FakeApp#basic_app"]),
    ),
    (
        "pastedeploy/test_error.ini",
        None,
        &[],
        Error("%(does_not_exist)s"),
    ),
    (
        "pyramid/tests-fixtures-dummy.ini",
        Some("myapp"),
        &["bar=1"],
        Chain(&["python#tests.test_paster:make_dummyapp"]),
    ),
    (
        "pyramid/tests-fixtures-dummy.ini",
        Some("myapp"),
        &[],
        Error("%(bar)s"),
    ),
    (
        "h/development.ini",
        None,
        &[],
        Chain(&["python#h.app:create_app"]),
    ),
    (
        "h/production.ini",
        None,
        &[],
        Chain(&["PasteDeploy#prefix", "python#h.app:create_app"]),
    ),
    (
        "kotti/development.ini",
        None,
        &[],
        Chain(&["fanstatic#fanstatic", "kotti#main"]),
    ),
    (
        "kotti/app.ini",
        None,
        &[],
        Chain(&["fanstatic#fanstatic", "kotti#main"]),
    ),
    (
        "kinto/functional.ini",
        None,
        &["http_port=8888"],
        Chain(&["kinto#main"]),
    ),
    (
        "pylons/development.ini",
        None,
        &[],
        Chain(&["MyPylonsApp#main"]),
    ),
    (
        "pylons/deployment.ini",
        None,
        &[],
        Chain(&["MyPylonsApp#main"]),
    ),
    ("pylons/test.ini", None, &[], Chain(&["MyPylonsApp#main"])),
    (
        "mediadrop/development.ini",
        None,
        &[],
        Chain(&["MediaDrop#main"]),
    ),
    ("reddit/example.ini", None, &[], Error("already exists")),
    ("ckan/deployment.ini", None, &[], Chain(&["ckan#main"])),
    ("ckan/test-core.ini", None, &[], Chain(&["ckan#main"])),
    ("ckan/who.ini", None, &[], Error("No section 'main'")),
    (
        "turbogears/development.ini",
        None,
        &[],
        Chain(&["MyTGApp#main"]),
    ),
    ("turbogears/test.ini", None, &[], Chain(&["MyTGApp#main"])),
    (
        "turbogears/test.ini",
        Some("main_without_authn"),
        &[],
        Chain(&["MyTGApp#main"]),
    ),
    ("allura/development.ini", None, &[], Chain(&["Allura#main"])),
    (
        "allura/development.ini",
        Some("profile"),
        &[],
        Chain(&["keas.profile#profiler", "Allura#main"]),
    ),
    (
        "allura/development.ini",
        Some("task"),
        &[],
        Chain(&["Allura#main"]),
    ),
    (
        "allura/test.ini",
        Some("task"),
        &[],
        Chain(&["Allura#main"]),
    ),
    (
        "kallithea/development.ini",
        None,
        &[],
        Chain(&["kallithea#main"]),
    ),
];

#[test]
fn every_corpus_file_is_valid_ini_except_the_one_with_a_duplicate_key() {
    let (_dir, files) = corpus();
    assert!(files.len() >= 30, "{} files", files.len());
    for file in &files {
        let result = deploy::load::read_ini(file);
        if file.ends_with("reddit/example.ini") {
            // Python 3's configparser rejects it too: `cloudflare_email_address` twice in [secrets].
            let e = result.unwrap_err().to_string();
            assert!(
                e.contains("cloudflare_email_address") && e.contains("already exists"),
                "{e}"
            );
        } else if let Err(e) = result {
            panic!("{}: {e}", file.display());
        }
    }
}

#[test]
fn the_apps_users_load_resolve() {
    let (dir, files) = corpus();
    let registry = registry();
    let mut covered = std::collections::HashSet::new();
    for (file, app, vars, expect) in CASES {
        let path = dir.path().join(file);
        covered.insert(path.clone());
        let request = Request {
            config_uri: path.to_string_lossy().into_owned(),
            app_name: app.map(str::to_owned),
            server_name: None,
            vars: vars.iter().map(|v| (*v).to_owned()).collect(),
        };
        let result = load(&registry, &request);
        let what = format!("{file}#{}", app.unwrap_or("main"));
        match (expect, result) {
            (Chain(eggs), Ok(plan)) => assert_eq!(chain(&plan.app), *eggs, "{what}"),
            (Composite(mounts), Ok(plan)) => {
                let Node::Composite { factory, apps } = &plan.app else {
                    panic!("{what}: not a composite")
                };
                for mount in *mounts {
                    let name = factory.local_conf.get(*mount).unwrap_or_else(|| {
                        panic!("{what}: no mount {mount}: {:?}", factory.local_conf)
                    });
                    assert!(
                        apps.contains_key(name),
                        "{what}: {mount} -> {name} not loaded"
                    );
                }
            }
            (Error(text), Err(e)) => assert!(e.to_string().contains(text), "{what}: {e}"),
            (_, Ok(plan)) => panic!("{what}: loaded {:?}", chain(&plan.app)),
            (_, Err(e)) => panic!("{what}: {e}"),
        }
    }
    let missing: Vec<_> = files
        .iter()
        .filter(|f| !covered.contains(*f) && !f.ends_with("test_config_included.ini"))
        .collect();
    assert!(
        missing.is_empty(),
        "corpus files no case loads: {missing:?}"
    );
}

#[test]
fn servers_of_real_files() {
    let (dir, _) = corpus();
    let registry = registry();
    let server = |file: &str, vars: &[&str]| -> Conf {
        let request = Request {
            config_uri: dir.path().join(file).to_string_lossy().into_owned(),
            vars: vars.iter().map(|v| (*v).to_owned()).collect(),
            ..Request::default()
        };
        let plan = load(&registry, &request).unwrap();
        plan.server.unwrap().factory.local_conf
    };
    assert_eq!(
        server("kinto/functional.ini", &["http_port=8888"])["port"],
        "8888"
    );
    assert_eq!(server("pylons/development.ini", &[])["port"], "5000");
    assert_eq!(server("kallithea/development.ini", &[])["port"], "5000");
    assert!(load(
        &registry,
        &Request {
            config_uri: dir
                .path()
                .join("h/development.ini")
                .to_string_lossy()
                .into_owned(),
            ..Request::default()
        }
    )
    .unwrap()
    .server
    .is_none());
}
