//! Spec §5.1: PasteDeploy's own test suite, assertion by assertion, on its own sample configs
//! (`tests/corpus/pastedeploy--*.ini`, copied under their original names) and the FakeApp eggs.
//! Identity checks (`app is basic_app`) become checks of which entry point was called.
#![allow(clippy::unwrap_used)]

mod common;

use common::{apps, egg, inner, s};
use deploy::load::Loader;
use deploy::Node;
use std::path::Path;

fn app(uri: &str, name: Option<&str>, rel: &Path) -> Node {
    let registry = common::test_registry();
    Loader::new(&registry)
        .load_app(uri, name, rel, None)
        .unwrap()
}

#[test]
fn scenario_5_1_01_application_alias_is_main() {
    let t = common::pastedeploy_tests_dir();
    assert_eq!(
        egg(&app("config:sample_configs/basic_app.ini", None, t.path())),
        "FakeApp#basic_app"
    );
}

#[test]
fn scenario_5_1_02_fragment_main() {
    let t = common::pastedeploy_tests_dir();
    assert_eq!(
        egg(&app(
            "config:sample_configs/basic_app.ini#main",
            None,
            t.path()
        )),
        "FakeApp#basic_app"
    );
}

#[test]
fn scenario_5_1_03_name_keyword() {
    let t = common::pastedeploy_tests_dir();
    assert_eq!(
        egg(&app(
            "config:sample_configs/basic_app.ini",
            Some("main"),
            t.path()
        )),
        "FakeApp#basic_app"
    );
}

#[test]
fn scenario_5_1_04_name_beats_fragment() {
    let t = common::pastedeploy_tests_dir();
    assert_eq!(
        egg(&app(
            "config:sample_configs/basic_app.ini#ignored",
            Some("main"),
            t.path()
        )),
        "FakeApp#basic_app"
    );
}

#[test]
fn scenario_5_1_05_other() {
    let t = common::pastedeploy_tests_dir();
    assert_eq!(
        egg(&app(
            "config:sample_configs/basic_app.ini#other",
            None,
            t.path()
        )),
        "FakeApp#other"
    );
}

fn assert_remote_addr(node: &Node) {
    assert_eq!(egg(node), "FakeApp#remote_addr");
    assert_eq!(node.factory().protocol.group(), "paste.composit_factory");
    let local = &node.factory().local_conf;
    assert_eq!(local["addr.1"], "127.0.0.1");
    assert_eq!(local["addr.2"], "0.0.0.0");
    let apps = apps(node);
    assert_eq!(egg(&apps[local["app.1"].as_str()]), "FakeApp#basic_app");
    assert_eq!(egg(&apps[local["app.2"].as_str()]), "FakeApp#other");
}

#[test]
fn scenario_5_1_06_composit_gets_a_loader_and_blank_lines_do_not_end_the_section() {
    let t = common::pastedeploy_tests_dir();
    assert_remote_addr(&app(
        "config:sample_configs/basic_app.ini#remote_addr",
        None,
        t.path(),
    ));
}

#[test]
fn scenario_5_1_07_direct_egg_gets_empty_confs() {
    let node = app("egg:FakeApp#configed", None, Path::new(""));
    assert_eq!(egg(&node), "FakeApp#configed");
    assert!(node.factory().global_conf.is_empty());
    assert!(node.factory().local_conf.is_empty());
}

fn config1(t: &Path) -> Node {
    app("config:sample_configs/test_config.ini", Some("test1"), t)
}

fn assert_config1(t: &Path) {
    let sdir = t.join("sample_configs");
    let f = config1(t).factory().clone();
    assert_eq!(
        f.local_conf,
        conf! {"setting1" => "foo", "setting2" => "bar", "apppath" => format!("{}/app", s(&sdir))}
    );
    assert_eq!(
        f.global_conf,
        conf! {"here" => s(&sdir), "__file__" => s(&sdir.join("test_config.ini")),
        "def1" => "a", "def2" => "b", "basepath" => s(&sdir)}
    );
}

#[test]
fn scenario_5_1_08_config1_two_level_interpolation() {
    let t = common::pastedeploy_tests_dir();
    assert_config1(t.path());
}

fn assert_config2(t: &Path) {
    let sdir = t.join("sample_configs");
    let f = app("config:sample_configs/test_config.ini", Some("test2"), t)
        .factory()
        .clone();
    assert_eq!(f.local_conf, conf! {"local conf" => "something"});
    assert_eq!(
        f.global_conf,
        conf! {"here" => s(&sdir), "__file__" => s(&sdir.join("test_config.ini")),
        "def1" => "test2", "def2" => "b", "basepath" => s(&sdir), "another" => "TEST"}
    );
}

#[test]
fn scenario_5_1_09_config2_set_and_keys_with_spaces() {
    let t = common::pastedeploy_tests_dir();
    assert_config2(t.path());
    assert_config1(t.path());
}

#[test]
fn scenario_5_1_10_config3_use_merges_and_continuation_lines() {
    let t = common::pastedeploy_tests_dir();
    let sdir = t.path().join("sample_configs");
    let f = app(
        "config:sample_configs/test_config.ini",
        Some("test3"),
        t.path(),
    )
    .factory()
    .clone();
    assert_eq!(egg(&Node::App(f.clone())), "FakeApp#configed");
    assert_eq!(
        f.local_conf,
        conf! {"local conf" => "something", "another" => "something more\nacross several\nlines"}
    );
    assert_eq!(
        f.global_conf,
        conf! {"here" => s(&sdir), "__file__" => s(&sdir.join("test_config.ini")),
        "def1" => "test3", "def2" => "b", "basepath" => s(&sdir), "another" => "TEST"}
    );
    assert_config2(t.path());
    assert_config1(t.path());
}

fn func_app(name_in_uri: &str, name: Option<&str>) -> Node {
    let t = common::pastedeploy_tests_dir();
    app(
        &format!("config:test_func.ini{name_in_uri}"),
        name,
        &t.path().join("sample_configs"),
    )
}

#[test]
fn scenario_5_1_11_call_main() {
    assert_eq!(egg(&func_app("", None)), "FakeApp#basic_app");
    assert_eq!(
        func_app("", None).factory().call.as_deref(),
        Some("fakeapp.apps:make_basic_app")
    );
}

#[test]
fn scenario_5_1_12_call_fragment_main() {
    assert_eq!(egg(&func_app("#main", None)), "FakeApp#basic_app");
}

#[test]
fn scenario_5_1_13_call_name_keyword() {
    assert_eq!(egg(&func_app("", Some("main"))), "FakeApp#basic_app");
}

#[test]
fn scenario_5_1_14_call_name_beats_fragment() {
    assert_eq!(
        egg(&func_app("#ignored", Some("main"))),
        "FakeApp#basic_app"
    );
}

#[test]
fn scenario_5_1_15_call_other() {
    assert_eq!(egg(&func_app("#other", None)), "FakeApp#other");
}

#[test]
fn scenario_5_1_16_call_composit_infers_the_composite_protocol() {
    assert_remote_addr(&func_app("#remote_addr", None));
}

#[test]
fn scenario_5_1_17_foreign_config() {
    let t = common::pastedeploy_tests_dir();
    let sdir = t.path().join("sample_configs");
    let f = app(
        "config:sample_configs/test_config.ini",
        Some("test_foreign_config"),
        t.path(),
    )
    .factory()
    .clone();
    assert_eq!(egg(&Node::App(f.clone())), "FakeApp#configed");
    assert_eq!(
        f.local_conf,
        conf! {"another" => "FOO", "bob" => "your uncle"}
    );
    assert_eq!(
        f.global_conf,
        conf! {"here" => s(&sdir), "__file__" => s(&sdir.join("test_config.ini")),
        "def1" => "a", "def2" => "b", "def3" => "c", "basepath" => s(&sdir), "glob" => "override"}
    );
}

#[test]
fn scenario_5_1_18_get_reads_the_set_value() {
    let t = common::pastedeploy_tests_dir();
    let sdir = t.path().join("sample_configs");
    let f = app(
        "config:sample_configs/test_config.ini",
        Some("test_get"),
        t.path(),
    )
    .factory()
    .clone();
    assert_eq!(f.local_conf, conf! {"def1" => "a", "foo" => "TEST"});
    assert_eq!(
        f.global_conf,
        conf! {"here" => s(&sdir), "__file__" => s(&sdir.join("test_config.ini")),
        "def1" => "a", "def2" => "TEST", "basepath" => s(&sdir)}
    );
}

#[test]
fn scenario_5_1_19_appconfig() {
    let t = common::pastedeploy_tests_dir();
    let registry = common::test_registry();
    let (global, local) = Loader::new(&registry)
        .app_config(
            "config:sample_configs/test_config.ini",
            Some("test_get"),
            t.path(),
            None,
        )
        .unwrap();
    assert_eq!(local, conf! {"def1" => "a", "foo" => "TEST"});
    assert_eq!(global["def2"], "TEST");
    let mut merged = global.clone();
    merged.extend(local);
    assert_eq!(merged["foo"], "TEST");
    assert_eq!(merged.len(), 6);
}

#[test]
fn scenario_5_1_20_appconfig_through_filter_with() {
    let t = common::pastedeploy_tests_dir();
    let registry = common::test_registry();
    let (_, local) = Loader::new(&registry)
        .app_config(
            "config:test_filter_with.ini",
            None,
            &t.path().join("sample_configs"),
            None,
        )
        .unwrap();
    assert_eq!(local["example"], "test");
}

#[test]
fn scenario_5_1_21_caller_global_conf() {
    let t = common::pastedeploy_tests_dir();
    let sdir = t.path().join("sample_configs");
    let registry = common::test_registry();
    let caller = conf! {"def2" => "TEST DEF 2", "inherit" => "bazbar"};
    let (global, local) = Loader::new(&registry)
        .app_config(
            "config:sample_configs/test_config.ini",
            Some("test_global_conf"),
            t.path(),
            Some(&caller),
        )
        .unwrap();
    assert_eq!(local, conf! {"test_interp" => "this:bazbar"});
    assert_eq!(
        global,
        conf! {"here" => s(&sdir), "__file__" => s(&sdir.join("test_config.ini")),
        "def1" => "a", "def2" => "TEST DEF 2", "basepath" => s(&sdir), "inherit" => "bazbar"}
    );
}

#[test]
fn scenario_5_1_22_interpolation_error_names_the_file() {
    let t = common::pastedeploy_tests_dir();
    let sdir = t.path().join("sample_configs");
    let registry = common::test_registry();
    let err = Loader::new(&registry)
        .app_config("config:test_error.ini", None, &sdir, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("{}:8: ", s(&sdir.join("test_error.ini")))),
        "{err}"
    );
    assert!(err.contains("does_not_exist"), "{err}");
}

fn filter_app(name: &str) -> Node {
    let t = common::pastedeploy_tests_dir();
    app(
        &format!("config:sample_configs/test_filter.ini#{name}"),
        None,
        t.path(),
    )
}

fn assert_caps(node: &Node, method: Option<&str>, protocol: &str) {
    assert!(matches!(node, Node::Filter { .. }), "{node:?}");
    assert_eq!(node.factory().protocol.group(), protocol);
    assert_eq!(
        node.factory()
            .local_conf
            .get("method_to_call")
            .map(String::as_str),
        method
    );
    assert_eq!(egg(inner(node)), "FakeApp#basic_app");
}

#[test]
fn scenario_5_1_23_filter_app_over_a_filter_factory() {
    assert_caps(&filter_app("filt"), Some("lower"), "paste.filter_factory");
}

#[test]
fn scenario_5_1_24_pipeline_with_an_egg_filter() {
    assert_caps(&filter_app("piped"), None, "paste.filter_factory");
}

#[test]
fn scenario_5_1_25_filter_app_over_a_filter_app_factory() {
    assert_caps(
        &filter_app("filt2"),
        Some("lower"),
        "paste.filter_app_factory",
    );
}

#[test]
fn scenario_5_1_26_pipeline_with_a_filter_app_factory() {
    assert_caps(&filter_app("piped2"), None, "paste.filter_app_factory");
}

#[test]
fn scenario_5_1_27_filter_with_an_egg_uri() {
    assert_caps(&filter_app("inv"), None, "paste.filter_factory");
}

#[test]
fn scenario_5_1_28_filter_with_filter_with() {
    let t = common::pastedeploy_tests_dir();
    let node = app(
        "config:test_filter_with.ini",
        None,
        &t.path().join("sample_configs"),
    );
    assert_eq!(egg(&node), "FakeApp#caps");
    assert_eq!(egg(inner(&node)), "FakeApp#caps");
    assert_eq!(egg(inner(inner(&node))), "FakeApp#basic_app");
    assert_eq!(node.factory().section.as_deref(), Some("filter:filter2"));
    assert_eq!(
        inner(&node).factory().section.as_deref(),
        Some("filter:filter1")
    );
}

#[test]
fn scenario_5_1_29_bad_pipeline() {
    let t = common::pastedeploy_tests_dir();
    let registry = common::test_registry();
    let err = Loader::new(&registry)
        .load_app(
            "config:sample_configs/test_filter.ini#piped3",
            None,
            t.path(),
            None,
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("has extra (disallowed) settings: extra_config_option"),
        "{err}"
    );
    assert!(err.contains("test_filter.ini:26: "), "{err}");
}

// 30 and 31 (asbool) are unit tests in src/converters.rs.
// 32 (ConfigMiddleware propagates body errors) is runtime behaviour, for the worker.

#[test]
fn scenario_5_1_33_the_fake_distributions_are_discoverable() {
    let registry = common::test_registry();
    assert_eq!(registry.distribution("fakeapp").unwrap().1, "FakeApp");
    assert_eq!(registry.distribution("FAKEAPP").unwrap().1, "FakeApp");
}
