//! Spec §5.2: plaster_pastedeploy's tests, the part that concerns loading apps, servers and
//! filters from a `CONFIG_URI` (P7–P12), through [`deploy::load`] as the command line uses it.
//! P1–P6 test plaster's raw `get_settings`, which `serve` has no counterpart of.
#![allow(clippy::unwrap_used)]

mod common;

use common::{egg, inner};
use deploy::load::Loader;
use deploy::{load, Plan, Request};

const TEST_CONFIG: &str = "[DEFAULT]\ndef1 = a\ndef2 = b\nbasepath = %(here)s\n\
[app:main]\nuse = egg:FakeApp#basic_app\n\
[app:test_get]\nuse = egg:FakeApp#configed\nset def2 = TEST\nget def1 = def1\nget foo = def2\n\
[app:test_foreign_config]\nuse = config:test_config_included.ini\nset glob = override\nanother = FOO\n\
[server:main]\nuse = egg:FakeApp#fake\nfoo = main\n\
[server:other]\nuse = egg:FakeApp#fake\nfoo = other\n\
[loggers]\nkeys = root\n[logger_root]\nlevel = WARN\n\
[formatter_generic]\nformat = %(asctime)s %(message)s\n";

const INCLUDED: &str = "[DEFAULT]\ndef2 = from include\ndef3 = c\n\
[app:main]\npaste.app_factory = fakeapp.configapps:SimpleApp.make_app\nset glob = orig\nbob = your uncle\nanother = BAR\n";

fn fixture() -> tempfile::TempDir {
    common::fixture(&[
        ("test_config.ini", TEST_CONFIG),
        ("test_config_included.ini", INCLUDED),
        ("basic_app.ini", "[application:main]\nuse = egg:FakeApp#basic_app\n[app:configed]\nuse = egg:FakeApp#configed\n"),
        ("test_filter_with.ini", "[app:main]\nuse = egg:FakeApp#basic_app\nexample = test\nfilter-with = filter1\n[filter:filter1]\nuse = egg:FakeApp#caps\n"),
        ("test_filter.ini", "[app:normal]\nuse = egg:FakeApp#basic_app\n[filter-app:filt]\nuse = egg:FakeApp#caps\nmethod_to_call = lower\nnext = normal\n[filter:filt]\nuse = egg:FakeApp#caps\nmethod_to_call = lower\n"),
    ])
}

fn plan(uri: &str, app: Option<&str>, server: Option<&str>) -> Result<Plan, deploy::LoadError> {
    let request = Request {
        config_uri: uri.to_owned(),
        app_name: app.map(str::to_owned),
        server_name: server.map(str::to_owned),
        vars: Vec::new(),
    };
    load(&common::test_registry(), &request)
}

#[test]
fn scenario_5_2_p7_apps_by_path_fragment_and_config_uri() {
    let dir = fixture();
    let path = dir
        .path()
        .join("basic_app.ini")
        .to_string_lossy()
        .into_owned();
    for uri in [
        path.clone(),
        format!("{path}#main"),
        format!("config:{path}"),
    ] {
        assert_eq!(
            egg(&plan(&uri, None, None).unwrap().app),
            "FakeApp#basic_app",
            "{uri}"
        );
        assert_eq!(
            egg(&plan(&uri, Some("main"), None).unwrap().app),
            "FakeApp#basic_app"
        );
    }
    let e = plan(&path, Some("invalid"), None).unwrap_err().to_string();
    assert!(e.starts_with("No section 'invalid'"), "{e}");
}

#[test]
fn scenario_5_2_p8_egg_uris() {
    assert_eq!(
        egg(&plan("egg:FakeApp#basic_app", None, None).unwrap().app),
        "FakeApp#basic_app"
    );
    assert_eq!(
        egg(&plan("egg:FakeApp#basic_app", Some("configed"), None)
            .unwrap()
            .app),
        "FakeApp#configed"
    );
    assert!(plan("egg:FakeApp#basic_app", Some("invalid"), None).is_err());
}

#[test]
fn scenario_5_2_p9_app_settings() {
    let dir = fixture();
    let registry = common::test_registry();
    let mut loader = Loader::new(&registry);
    let (global, local) = loader
        .app_config("config:test_config.ini", Some("test_get"), dir.path(), None)
        .unwrap();
    assert_eq!(local, conf! {"def1" => "a", "foo" => "TEST"});
    assert_eq!(
        (global["def1"].as_str(), global["def2"].as_str()),
        ("a", "TEST")
    );
    assert!(global.contains_key("basepath"));
    let node = loader
        .load_app(
            "config:test_config.ini",
            Some("test_foreign_config"),
            dir.path(),
            None,
        )
        .unwrap();
    let f = node.factory();
    assert_eq!(
        f.local_conf,
        conf! {"another" => "FOO", "bob" => "your uncle"}
    );
    for (k, v) in [
        ("def1", "a"),
        ("def2", "b"),
        ("def3", "c"),
        ("glob", "override"),
    ] {
        assert_eq!(f.global_conf[k], v);
    }
    assert!(loader
        .load_app("config:test_config.ini", Some("invalid"), dir.path(), None)
        .is_err());
}

#[test]
fn scenario_5_2_p10_settings_through_filter_with_and_of_eggs() {
    let dir = fixture();
    let registry = common::test_registry();
    let mut loader = Loader::new(&registry);
    let (_, local) = loader
        .app_config("config:test_filter_with.ini", None, dir.path(), None)
        .unwrap();
    assert_eq!(local["example"], "test");
    let (_, local) = loader
        .app_config("egg:FakeApp#configed", None, dir.path(), None)
        .unwrap();
    assert!(local.is_empty());
}

#[test]
fn scenario_5_2_p11_servers() {
    let dir = fixture();
    let path = dir
        .path()
        .join("test_config.ini")
        .to_string_lossy()
        .into_owned();
    let server =
        |uri: &str, name: Option<&str>| plan(uri, None, name).map(|p| p.server.unwrap().factory);
    assert_eq!(server(&path, None).unwrap().local_conf["foo"], "main");
    assert_eq!(
        server(&path, Some("other")).unwrap().local_conf["foo"],
        "other"
    );
    // Deliberate difference: the fragment picks the app only; the server stays `main`.
    let p = plan(&format!("{path}#test_get"), None, None).unwrap();
    assert_eq!(p.server.unwrap().factory.local_conf["foo"], "main");
    assert_eq!(egg(&p.app), "FakeApp#configed");
    assert!(server(&path, Some("invalid"))
        .unwrap_err()
        .to_string()
        .starts_with("No section 'invalid' (prefixed by 'server')"));
    let registry = common::test_registry();
    let fake = Loader::new(&registry)
        .load_server("egg:FakeApp#fake", None, dir.path(), None)
        .unwrap();
    assert_eq!(fake.factory.egg.to_string(), "FakeApp#fake");
}

#[test]
fn scenario_5_2_p12_filters_prefer_filter_sections() {
    let dir = fixture();
    let registry = common::test_registry();
    let mut loader = Loader::new(&registry);
    let filters = loader
        .load_filter("config:test_filter.ini", Some("filt"), dir.path(), None)
        .unwrap();
    assert_eq!(filters.filters.len(), 1);
    assert_eq!(filters.filters[0].section.as_deref(), Some("filter:filt"));
    let applied = filters.apply(
        loader
            .load_app("config:test_filter.ini#normal", None, dir.path(), None)
            .unwrap(),
    );
    assert_eq!(applied.factory().local_conf["method_to_call"], "lower");
    assert_eq!(egg(inner(&applied)), "FakeApp#basic_app");
    let via_fragment = loader
        .load_filter("config:test_filter.ini#filt", None, dir.path(), None)
        .unwrap();
    assert_eq!(via_fragment, filters);
    let egg_filter = loader
        .load_filter("egg:FakeApp#caps", None, dir.path(), None)
        .unwrap();
    assert_eq!(egg_filter.filters[0].egg.to_string(), "FakeApp#caps");
}
