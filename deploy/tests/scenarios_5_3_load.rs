//! Spec §5.3 D16–D45: building global_conf and local_conf, section lookup, URIs, eggs,
//! `call:`, explicit factories, composition and cycles, scenario by scenario.
#![allow(clippy::unwrap_used)]

mod common;

use common::{egg, inner};
use deploy::load::Loader;
use deploy::plan::Conf;
use deploy::{LoadError, LoadErrorKind, Node};

/// Loads app `name` of `t.ini` in a fixture holding `files` (the first is `t.ini`).
fn load_in(files: &[(&str, &str)], name: &str, global: Option<&Conf>) -> Result<Node, LoadError> {
    let dir = common::fixture(files);
    let registry = common::test_registry();
    let result = Loader::new(&registry).load_app("config:t.ini", Some(name), dir.path(), global);
    result
}

fn load(text: &str, name: &str) -> Result<Node, LoadError> {
    load_in(&[("t.ini", text)], name, None)
}

/// The error of loading app `name`, with the fixture directory taken out of paths.
fn err(text: &str, name: &str) -> String {
    let dir = common::fixture(&[("t.ini", text)]);
    let registry = common::test_registry();
    let e = Loader::new(&registry)
        .load_app("config:t.ini", Some(name), dir.path(), None)
        .unwrap_err();
    e.to_string()
        .replace(&format!("{}/", dir.path().display()), "")
}

const D16: &str = "[DEFAULT]\ndebug = false\nport = 6543\n\
[app:main]\nuse = egg:ExpApp#app\ndebug = true\nset port = 8080\ninterp_port = %(port)s\n\
get myport = port\nget mydebug = debug\nown = x\n";

#[test]
fn scenario_5_3_d16_defaults_shadow_set_and_get() {
    let f = load(D16, "main").unwrap().factory().clone();
    assert_eq!(
        f.local_conf,
        conf! {"interp_port" => "6543", "own" => "x", "myport" => "8080", "mydebug" => "false"}
    );
    assert_eq!(f.global_conf["port"], "8080");
    assert_eq!(f.global_conf["debug"], "false");
    let order: Vec<&String> = f.local_conf.keys().collect();
    assert_eq!(
        order,
        ["interp_port", "own", "myport", "mydebug"],
        "get keys come last"
    );
}

#[test]
fn scenario_5_3_d17_caller_globals() {
    let text = format!("{D16}[app:paths]\nuse = egg:ExpApp#app\n[DEFAULT]\nwhere = %(here)s\n");
    let dir = common::fixture(&[("t.ini", &text)]);
    let registry = common::test_registry();
    let caller = conf! {"port" => "9999", "newvar" => "N", "here" => "/elsewhere", "own" => "G"};
    let f = Loader::new(&registry)
        .load_app("config:t.ini", Some("main"), dir.path(), Some(&caller))
        .unwrap()
        .factory()
        .clone();
    assert_eq!(
        f.local_conf,
        conf! {"interp_port" => "6543", "myport" => "8080", "mydebug" => "false"}
    );
    assert_eq!(f.global_conf["here"], "/elsewhere");
    assert_eq!(f.global_conf["newvar"], "N");
    assert_eq!(f.global_conf["own"], "G");
    assert_eq!(f.global_conf["port"], "8080");
    assert_eq!(
        f.global_conf["where"],
        common::s(&deploy::uri::abspath(dir.path()))
    );
}

#[test]
fn scenario_5_3_d18_caller_globals_fill_only_what_default_lacks() {
    let text =
        "[DEFAULT]\nport = 6543\n[app:main]\nuse = egg:ExpApp#app\np = %(port)s\nq = %(newvar)s\n";
    let caller = conf! {"port" => "9999", "newvar" => "N"};
    let f = load_in(&[("t.ini", text)], "main", Some(&caller))
        .unwrap()
        .factory()
        .clone();
    assert_eq!(f.local_conf, conf! {"p" => "6543", "q" => "N"});
    assert_eq!(f.global_conf["port"], "9999");
}

#[test]
fn scenario_5_3_d19_get_of_a_missing_global() {
    let e = err(
        "[app:main]\nuse = egg:ExpApp#app\nget x = nonexistent\n",
        "main",
    );
    assert!(
        e.starts_with("t.ini:3: ") && e.contains("'nonexistent'"),
        "{e}"
    );
}

#[test]
fn scenario_5_3_d20_set_and_use_in_default() {
    let f = load(
        "[DEFAULT]\nset injected = fromdefault\n[app:main]\nuse = egg:ExpApp#app\n",
        "main",
    )
    .unwrap()
    .factory()
    .clone();
    assert_eq!(f.global_conf["injected"], "fromdefault");
    assert_eq!(f.global_conf["set injected"], "fromdefault");
    let e = err(
        "[DEFAULT]\nuse = egg:ExpApp#app\n[app:main]\nx = 1\n",
        "main",
    );
    assert!(e.contains("No loader given in section 'app:main'"), "{e}");
}

#[test]
fn scenario_5_3_d21_set_and_get_spacing_and_case() {
    let f = load(
        "[app:main]\nuse = egg:ExpApp#app\nset  spaced   = v\nget   loc   =  spaced\nSET upper = no\n",
        "main",
    )
    .unwrap()
    .factory()
    .clone();
    assert_eq!(f.global_conf["spaced"], "v");
    assert_eq!(f.local_conf, conf! {"SET upper" => "no", "loc" => "v"});
}

#[test]
fn scenario_5_3_d22_set_does_not_change_interpolation() {
    let f = load("[DEFAULT]\na = 1\n[app:main]\nuse = egg:ExpApp#app\nset a = 2\nseen = %(a)s\nset b = %(a)s-b\n", "main")
        .unwrap()
        .factory()
        .clone();
    assert_eq!(f.local_conf, conf! {"seen" => "1"});
    assert_eq!(
        (f.global_conf["a"].as_str(), f.global_conf["b"].as_str()),
        ("2", "1-b")
    );
}

#[test]
fn scenario_5_3_d23_local_keys_shadow_defaults_for_interpolation_only() {
    let text = "[DEFAULT]\na = 1\n[app:main]\nuse = egg:ExpApp#app\na = 2\nb = %(a)s\n[app:other]\nuse = egg:ExpApp#app\nc = %(b)s\n";
    let f = load(text, "main").unwrap().factory().clone();
    assert_eq!(f.local_conf, conf! {"b" => "2"});
    assert_eq!(f.global_conf["a"], "1");
    assert!(matches!(
        load(text, "other").unwrap_err().kind(),
        LoadErrorKind::Interpolate(_)
    ));
}

#[test]
fn scenario_5_3_d24_require() {
    let f = load(
        "[app:main]\nuse = egg:ExpApp#app\nrequire = ExpApp FakeApp\n",
        "main",
    )
    .unwrap();
    assert!(f.factory().local_conf.is_empty());
    let e = err(
        "[app:main]\nuse = egg:ExpApp#app\nrequire = NoSuchDist\n",
        "main",
    );
    assert!(
        e.starts_with("t.ini:3: No package metadata was found for NoSuchDist"),
        "{e}"
    );
}

#[test]
fn scenario_5_3_d25_aliases_and_ambiguity() {
    let app = "use = egg:ExpApp#app\n";
    let both = format!("[app:main]\n{app}[application:main]\nuse = egg:ExpApp#main\n");
    assert_eq!(egg(&load(&both, "main").unwrap()), "ExpApp#app");
    for other in ["composite:main", "pipeline:main"] {
        let text = format!("[app:main]\n{app}[{other}]\n{app}");
        let e = err(&text, "main");
        assert!(
            e.starts_with(&format!("Ambiguous section names ['app:main', '{other}']")),
            "{e}"
        );
    }
    let text = "[composit:main]
use = egg:ExpApp#main
[composite:main]
use = egg:ExpApp#comp
";
    assert_eq!(egg(&load(text, "main").unwrap()), "ExpApp#comp");
}

#[test]
fn scenario_5_3_d26_bare_sections_answer_for_main() {
    // Deliberate fix: PasteDeploy's loadapp never finds a bare [app]; its docs say it should.
    let text = "[server]\nuse = egg:ExpApp#sdual\n[app]\nuse = egg:FakeApp#basic_app\n[filter]\nuse = egg:ExpApp#filt\n";
    assert_eq!(egg(&load(text, "main").unwrap()), "FakeApp#basic_app");
    let dir = common::fixture(&[("t.ini", text)]);
    let registry = common::test_registry();
    let server = Loader::new(&registry)
        .load_server("config:t.ini", None, dir.path(), None)
        .unwrap();
    assert_eq!(server.factory.egg.to_string(), "ExpApp#sdual");
    // A named [app:main] wins over a bare [app].
    let text = "[app]\nuse = egg:FakeApp#basic_app\n[app:main]\nuse = egg:FakeApp#other\n";
    assert_eq!(egg(&load(text, "main").unwrap()), "FakeApp#other");
    // Only `main` falls back.
    assert!(matches!(
        load("[app]\nuse = egg:ExpApp#app\n", "x")
            .unwrap_err()
            .kind(),
        LoadErrorKind::NoSection { .. }
    ));
}

#[test]
fn scenario_5_3_d27_prefixes_and_names_are_case_sensitive() {
    assert!(load("[App:main]\nuse = egg:ExpApp#app\n", "main").is_err());
    let text = "[app:Main]\nuse = egg:ExpApp#app\n";
    assert!(load(text, "main").is_err());
    assert!(load(text, "Main").is_ok());
}

#[test]
fn scenario_5_3_d28_filters_and_servers_by_type() {
    let text = "[server:main]\nuse = egg:ExpApp#sdual\n[filter:main]\nuse = egg:ExpApp#filt\n[app:main]\nuse = egg:ExpApp#app\n";
    let dir = common::fixture(&[("t.ini", text)]);
    let registry = common::test_registry();
    let mut loader = Loader::new(&registry);
    assert_eq!(
        loader
            .load_server("config:t.ini", None, dir.path(), None)
            .unwrap()
            .factory
            .egg
            .to_string(),
        "ExpApp#sdual"
    );
    assert_eq!(
        loader
            .load_filter("config:t.ini", None, dir.path(), None)
            .unwrap()
            .filters[0]
            .egg
            .to_string(),
        "ExpApp#filt"
    );
    let e = loader
        .load_server("config:t.ini#nope", None, dir.path(), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("No section 'nope' (prefixed by 'server')"),
        "{e}"
    );
    let e = loader
        .load_filter("config:t.ini#nope", None, dir.path(), None)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("No section 'nope' (prefixed by 'filter')"),
        "{e}"
    );
}

#[test]
fn scenario_5_3_d29_uri_handling() {
    let text = "[app:main]\nuse = egg:ExpApp#app\n";
    let dir = common::fixture(&[("s7.ini", text), ("sp ace.ini", text), ("cfg/s7.ini", text)]);
    let registry = common::test_registry();
    let mut loader = Loader::new(&registry);
    let mut load = |uri: &str, rel: &std::path::Path| loader.load_app(uri, None, rel, None);
    let d = dir.path();
    assert!(load("s7.ini", d)
        .unwrap_err()
        .to_string()
        .starts_with("URI has no scheme: 's7.ini'"));
    assert_eq!(
        load("file:s7.ini", d).unwrap_err().to_string(),
        "URI scheme not known: 'file' (from config, egg, call)"
    );
    assert!(load("CONFIG:s7.ini", d).is_ok());
    assert!(matches!(
        load("config:nope.ini", d).unwrap_err().kind(),
        LoadErrorKind::Read { .. }
    ));
    let abs = d.join("s7.ini");
    assert!(load(&format!("config:{}", abs.display()), d).is_ok());
    assert!(load(&format!("config://{}", abs.display()), d).is_ok());
    assert!(load("config:sp%20ace.ini", d).is_ok());
    assert!(load("config:s7.ini", &d.join("")).is_ok());
    assert!(load("config:../cfg/s7.ini", &d.join("cfg")).is_ok());
    assert!(load("config:s7.ini#", d)
        .unwrap_err()
        .to_string()
        .starts_with("No section ''"));
}

#[test]
fn scenario_5_3_d30_names_with_letters_and_a_colon_are_uris() {
    let text = "[app:foo:bar]\nuse = egg:ExpApp#app\n[app:main]\nuse = app:foo:bar\n";
    assert!(err(text, "foo:bar").contains("URI scheme not known: 'foo'"));
    assert!(err(text, "main").contains("URI scheme not known: 'app'"));
}

#[test]
fn scenario_5_3_d31_use_of_same_file_sections() {
    let text = "[app:other]\nuse = egg:ExpApp#app\n[filter:onlyfilter]\nuse = egg:ExpApp#filt\n\
[app:a]\nuse = other\n[app:b]\nuse = onlyfilter\n[app:c]\nuse = nosuch_section\n";
    assert_eq!(egg(&load(text, "a").unwrap()), "ExpApp#app");
    assert!(err(text, "b").starts_with("t.ini:8: No section 'onlyfilter' (prefixed by 'app' or"));
    assert!(err(text, "c").starts_with("t.ini:10: No section 'nosuch_section'"));
}

#[test]
fn scenario_5_3_d32_direct_egg_loads() {
    let registry = common::test_registry();
    let mut loader = Loader::new(&registry);
    let mut load = |uri: &str| loader.load_app(uri, None, std::path::Path::new(""), None);
    assert_eq!(egg(&load("egg:ExpApp").unwrap()), "ExpApp#main");
    assert!(matches!(
        load("egg:ExpApp#comp").unwrap(),
        Node::Composite { .. }
    ));
    let e = load("egg:ExpApp#both").unwrap_err().to_string();
    assert!(
        e.starts_with("Ambiguous entry points for 'both' in egg 'ExpApp'"),
        "{e}"
    );
    let e = load("egg:ExpApp#nope").unwrap_err().to_string();
    assert!(e.starts_with("Entry point 'nope' not found in egg 'ExpApp' (protocols: paste.app_factory, paste.composite_factory, paste.composit_factory;"), "{e}");
    assert!(load("egg:NoSuchDist")
        .unwrap_err()
        .to_string()
        .starts_with("No package metadata was found for NoSuchDist"));
    assert!(load("egg:ExpApp==1.0")
        .unwrap_err()
        .to_string()
        .starts_with("No package metadata was found for ExpApp==1.0"));
    assert_eq!(egg(&load("egg:expapp#app").unwrap()), "ExpApp#app");
    assert!(load("egg:ExpApp#APP").is_err());
}

#[test]
fn scenario_5_3_d33_filter_and_server_groups() {
    let registry = common::test_registry();
    let mut loader = Loader::new(&registry);
    let here = std::path::Path::new("");
    let dual = loader
        .load_filter("egg:ExpApp#dual", None, here, None)
        .unwrap();
    assert_eq!(dual.filters[0].protocol.group(), "paste.filter_factory");
    let fa = loader
        .load_filter("egg:ExpApp#fa", None, here, None)
        .unwrap();
    assert_eq!(fa.filters[0].protocol.group(), "paste.filter_app_factory");
    let applied = fa.apply(loader.load_app("egg:ExpApp#app", None, here, None).unwrap());
    assert_eq!(egg(inner(&applied)), "ExpApp#app");
    let sdual = loader
        .load_server("egg:ExpApp#sdual", None, here, None)
        .unwrap();
    assert_eq!(sdual.factory.protocol.group(), "paste.server_factory");
    let runner = loader
        .load_server("egg:ExpApp#runner", None, here, None)
        .unwrap();
    assert_eq!(runner.factory.protocol.group(), "paste.server_runner");
    assert!(loader
        .load_app("egg:ExpApp#filt", None, here, None)
        .unwrap_err()
        .to_string()
        .starts_with("Entry point 'filt' not found"));
    assert!(loader
        .load_filter("egg:ExpApp#app", None, here, None)
        .unwrap_err()
        .to_string()
        .starts_with("Entry point 'app' not found"));
}

#[test]
fn scenario_5_3_d34_call_used_directly() {
    // Deliberate fix: a direct `call:` is called as the plain factory of the object type
    // (PasteDeploy: "Protocol None unknown").
    let registry = common::test_registry();
    let mut loader = Loader::new(&registry);
    let here = std::path::Path::new("");
    let node = loader
        .load_app("call:fakeapp.apps:make_basic_app", None, here, None)
        .unwrap();
    assert_eq!(egg(&node), "FakeApp#basic_app");
    let e = loader
        .load_app("call:expapp", None, here, None)
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("Configuration not in format module:function"),
        "{e}"
    );
}

#[test]
fn scenario_5_3_d35_call_inside_sections() {
    let text = "[app:a]\nuse = call:fakeapp.apps:make_basic_app\nx = 1\n\
[composite:c]\nuse = call:fakeapp.apps:make_remote_addr\napp.1 = a\n\
[filter:f]\nuse = call:fakeapp.apps:make_cap_filter\n\
[filter-app:fa]\nuse = call:fakeapp.apps:make_cap_filter\nnext = a\n\
[app:wrapped]\nuse = egg:ExpApp#app\nfilter-with = f\n\
[app:bad]\nuse = call:nosuch.module:factory\n\
[app:colons]\nuse = call:a:b:c\n";
    let a = load(text, "a").unwrap();
    assert_eq!(a.factory().local_conf, conf! {"x" => "1"});
    assert_eq!(
        a.factory().global_conf.keys().collect::<Vec<_>>(),
        ["here", "__file__"]
    );
    let c = load(text, "c").unwrap();
    assert_eq!(c.factory().protocol.group(), "paste.composit_factory");
    assert_eq!(egg(&common::apps(&c)["a"]), "FakeApp#basic_app");
    assert_eq!(
        load(text, "wrapped").unwrap().factory().protocol.group(),
        "paste.filter_factory"
    );
    // Deliberate fix: call: in a filter-app is called as a filter factory.
    let fa = load(text, "fa").unwrap();
    assert_eq!(fa.factory().protocol.group(), "paste.filter_factory");
    assert_eq!(egg(inner(&fa)), "FakeApp#basic_app");
    assert!(err(text, "bad").starts_with("t.ini:16: no factory 'nosuch.module:factory'"));
    assert!(
        err(text, "colons").starts_with("t.ini:18: Configuration not in format module:function")
    );
}

#[test]
fn scenario_5_3_d36_explicit_factory_keys() {
    let text = "[app:ok]\npaste.app_factory = fakeapp.configapps:SimpleApp.make_app\nk = v\n\
[app:multi]\npaste.app_factory = fakeapp.apps:make_basic_app\npaste.composite_factory = fakeapp.apps:make_remote_addr\n\
[app:none]\nk = v\n\
[app:filterkey]\npaste.filter_factory = fakeapp.apps:make_cap_filter\n\
[composite:comp]\npaste.composit_factory = fakeapp.apps:make_remote_addr\n\
[filter:both]\npaste.filter_factory = fakeapp.apps:make_cap_filter\npaste.filter_app_factory = fakeapp.apps:CapFilter\n\
[app:main]\nuse = egg:ExpApp#app\nfilter-with = both\n\
[app:module]\npaste.app_factory = fakeapp\n";
    let ok = load(text, "ok").unwrap();
    assert_eq!(ok.factory().local_conf, conf! {"k" => "v"});
    assert_eq!(
        ok.factory().call.as_deref(),
        Some("fakeapp.configapps:SimpleApp.make_app")
    );
    assert!(err(text, "multi").contains("Multiple protocols given in section 'app:multi': [('paste.app_factory', 'fakeapp.apps:make_basic_app'), ('paste.composite_factory', 'fakeapp.apps:make_remote_addr')]"));
    assert!(err(text, "none").contains("No loader given in section 'app:none'"));
    assert!(err(text, "filterkey").contains("No loader given in section 'app:filterkey'"));
    assert!(matches!(
        load(text, "comp").unwrap(),
        Node::Composite { .. }
    ));
    let both = load(text, "main").unwrap();
    assert_eq!(both.factory().protocol.group(), "paste.filter_factory");
    assert_eq!(
        both.factory().local_conf,
        conf! {"paste.filter_app_factory" => "fakeapp.apps:CapFilter"}
    );
    assert!(err(text, "module").contains("no factory 'fakeapp'"));
}

const FILTERS: &str = "[app:app]\nuse = egg:ExpApp#app\n[filter:f1]\nuse = egg:ExpApp#filt\n[filter:f3]\nuse = egg:ExpApp#fa\n";

fn chain(node: &Node) -> Vec<String> {
    let mut out = vec![egg(node)];
    let mut node = node;
    while let Node::Filter { app, .. } = node {
        out.push(egg(app));
        node = app;
    }
    out
}

#[test]
fn scenario_5_3_d37_pipeline_order() {
    let text = format!("{FILTERS}[pipeline:main]\npipeline = f1 egg:ExpApp#filt\n  f3 app\n");
    let node = load(&text, "main").unwrap();
    assert_eq!(
        chain(&node),
        ["ExpApp#filt", "ExpApp#filt", "ExpApp#fa", "ExpApp#app"]
    );
    assert_eq!(node.factory().section.as_deref(), Some("filter:f1"));
    assert_eq!(
        inner(&node).factory().section,
        None,
        "the egg: entry has no section"
    );
}

#[test]
fn scenario_5_3_d38_pipeline_edge_cases() {
    let text = format!(
        "{FILTERS}[pipeline:withset]\nset s = 1\npipeline = f1 app\n\
[pipeline:withget]\nget g = here\npipeline = app\n\
[pipeline:withuse]\nuse = app\npipeline = app\n\
[pipeline:empty]\npipeline =\n\
[pipeline:nokey]\nset x = 1\n\
[pipeline:appfirst]\npipeline = app f1\n\
[pipeline:appmiddle]\npipeline = f1 app f3 app\n\
[pipeline:single]\npipeline = app\n\
[pipeline:nested]\npipeline = f1 withset\n"
    );
    let node = load(&text, "withset").unwrap();
    assert_eq!(node.factory().global_conf["s"], "1");
    assert_eq!(inner(&node).factory().global_conf["s"], "1");
    assert!(err(&text, "withget").contains("has extra (disallowed) settings: g"));
    assert!(err(&text, "withuse").contains("has extra (disallowed) settings: use"));
    assert!(err(&text, "empty").contains("has an empty 'pipeline' setting"));
    assert!(err(&text, "nokey").contains("is missing a 'pipeline' setting"));
    assert!(err(&text, "appfirst").contains("No section 'f1' (prefixed by 'app'"));
    assert!(err(&text, "appmiddle").contains("No section 'app' (prefixed by 'filter')"));
    assert_eq!(chain(&load(&text, "single").unwrap()), ["ExpApp#app"]);
    assert_eq!(
        chain(&load(&text, "nested").unwrap()),
        ["ExpApp#filt", "ExpApp#filt", "ExpApp#app"]
    );
}

#[test]
fn scenario_5_3_d39_filter_app_chains() {
    let text = format!(
        "{FILTERS}[filter-app:fa1]\nuse = egg:ExpApp#filt\nnext = app\n\
[filter-app:fa2]\nuse = egg:ExpApp#fa\nnext = fa1\n\
[filter-app:explicit]\npaste.filter_factory = fakeapp.apps:make_cap_filter\nnext = app\n\
[filter-app:appegg]\nuse = egg:ExpApp#app\nnext = app\n\
[filter-app:nonext]\nuse = egg:ExpApp#filt\n"
    );
    assert_eq!(
        chain(&load(&text, "fa2").unwrap()),
        ["ExpApp#fa", "ExpApp#filt", "ExpApp#app"]
    );
    assert_eq!(
        chain(&load(&text, "explicit").unwrap()),
        ["FakeApp#caps", "ExpApp#app"]
    );
    assert!(err(&text, "appegg").contains("Entry point 'app' not found in egg 'ExpApp' (protocols: paste.filter_factory, paste.filter_app_factory;"));
    assert!(err(&text, "nonext").contains("is missing a 'next' setting"));
}

#[test]
fn scenario_5_3_d40_filter_with() {
    let text = format!(
        "{FILTERS}[app:main]\nuse = egg:ExpApp#app\nfilter-with = f1\n\
[app:chained]\nuse = egg:ExpApp#app\nfilter-with = A\n\
[filter:A]\nuse = egg:ExpApp#filt\nlabel = A\nfilter-with = B\n\
[filter:B]\nuse = egg:ExpApp#fa\nlabel = B\nfilter-with = C\n\
[filter:C]\nuse = egg:ExpApp#filt\nlabel = C\n\
[composite:comp]\nuse = egg:ExpApp#comp\nfilter-with = f1\n\
[app:eggfw]\nuse = egg:ExpApp#app\nfilter-with = egg:ExpApp#filt\n\
[app:missing]\nuse = egg:ExpApp#app\nfilter-with = nosuch\n\
[pipeline:pipe]\npipeline = f3 app\nfilter-with = f1\n\
[filter-app:fapp]\nuse = egg:ExpApp#fa\nnext = app\nfilter-with = f1\n"
    );
    assert_eq!(
        chain(&load(&text, "main").unwrap()),
        ["ExpApp#filt", "ExpApp#app"]
    );
    let labels = |node: &Node| -> Vec<String> {
        let mut out = Vec::new();
        let mut node = node;
        while let Node::Filter { factory, app } = node {
            out.push(factory.local_conf["label"].clone());
            node = app;
        }
        out
    };
    assert_eq!(labels(&load(&text, "chained").unwrap()), ["C", "B", "A"]);
    let dir = common::fixture(&[("t.ini", &text)]);
    let registry = common::test_registry();
    let filters = Loader::new(&registry)
        .load_filter("config:t.ini#A", None, dir.path(), None)
        .unwrap();
    let labels_of: Vec<&str> = filters
        .filters
        .iter()
        .map(|f| f.local_conf["label"].as_str())
        .collect();
    assert_eq!(labels_of, ["A", "B", "C"], "innermost first: C(B(A(app)))");
    let comp = load(&text, "comp").unwrap();
    assert!(matches!(inner(&comp), Node::Composite { .. }));
    assert_eq!(
        chain(&load(&text, "eggfw").unwrap()),
        ["ExpApp#filt", "ExpApp#app"]
    );
    assert!(err(&text, "missing").contains("No section 'nosuch' (prefixed by 'filter')"));
    // Deliberate fix: on a pipeline or a filter-app the result is the filtered app.
    assert_eq!(
        chain(&load(&text, "pipe").unwrap()),
        ["ExpApp#filt", "ExpApp#fa", "ExpApp#app"]
    );
    assert_eq!(
        chain(&load(&text, "fapp").unwrap()),
        ["ExpApp#filt", "ExpApp#fa", "ExpApp#app"]
    );
}

#[test]
fn scenario_5_3_d41_use_merges() {
    let text = format!(
        "{FILTERS}[app:a]\nuse = b\nx = 1\n\
[app:b]\nuse = egg:ExpApp#app\nfilter-with = f1\ny = 2\n\
[app:c]\nuse = pipe\nignored = yes\n\
[pipeline:pipe]\npipeline = f1 app\n\
[composite:d]\nuse = b\n\
[filter:g]\nuse = f1\nlabel = g\n\
[server:main]\nuse = s2\nport = 1\n\
[server:s2]\nuse = egg:ExpApp#sdual\nhost = h\n"
    );
    // Deliberate fix: x reaches the app (PasteDeploy loses it).
    let a = load(&text, "a").unwrap();
    assert_eq!(chain(&a), ["ExpApp#filt", "ExpApp#app"]);
    assert_eq!(
        inner(&a).factory().local_conf,
        conf! {"y" => "2", "x" => "1"}
    );
    assert_eq!(
        chain(&load(&text, "c").unwrap()),
        ["ExpApp#filt", "ExpApp#app"]
    );
    assert_eq!(
        chain(&load(&text, "d").unwrap()),
        ["ExpApp#filt", "ExpApp#app"]
    );
    let dir = common::fixture(&[("t.ini", &text)]);
    let registry = common::test_registry();
    let mut loader = Loader::new(&registry);
    let g = loader
        .load_filter("config:t.ini#g", None, dir.path(), None)
        .unwrap();
    assert_eq!(g.filters[0].local_conf, conf! {"label" => "g"});
    let server = loader
        .load_server("config:t.ini", None, dir.path(), None)
        .unwrap();
    assert_eq!(
        server.factory.local_conf,
        conf! {"host" => "h", "port" => "1"}
    );
}

#[test]
fn scenario_5_3_d42_composite_sets_reach_children() {
    let text = "[DEFAULT]\nd = 1\n\
[composite:main]\nuse = egg:ExpApp#comp\nset d = fromcomp\nset extra = E\napp.1 = child\n\
[app:child]\nuse = egg:ExpApp#app\nset own = O\nv = %(d)s\n\
[pipeline:pipe]\nset p = P\npipeline = f child\n[filter:f]\nuse = egg:ExpApp#filt\n";
    let node = load(text, "main").unwrap();
    let child = common::apps(&node)["child"].factory().clone();
    assert_eq!(child.global_conf["d"], "fromcomp");
    assert_eq!(child.global_conf["extra"], "E");
    assert_eq!(child.global_conf["own"], "O");
    assert_eq!(child.local_conf, conf! {"v" => "1"});
    let pipe = load(text, "pipe").unwrap();
    assert_eq!(pipe.factory().global_conf["p"], "P");
    assert_eq!(inner(&pipe).factory().global_conf["p"], "P");
}

#[test]
fn scenario_5_3_d43_nested_config_files() {
    let outer = "[DEFAULT]\nouter_d = O\ninner_d = outer-value\n\
[app:main]\nuse = config:sub/inner.ini\nlocal_outer = L\n\
[app:deep]\nuse = config:sub/inner.ini#deeper\n";
    let inner_ini = "[DEFAULT]\ninner_d = I\nhere_seen = %(here)s\n\
[app:main]\nuse = egg:ExpApp#app\ninner_here = %(here)s\nouter_var = %(outer_d)s\n\
[app:deeper]\nuse = config:../r2target.ini#t\n";
    let target = "[app:t]\nuse = egg:ExpApp#app\nfile = %(__file__)s\n";
    let dir = common::fixture(&[
        ("t.ini", outer),
        ("sub/inner.ini", inner_ini),
        ("r2target.ini", target),
    ]);
    let registry = common::test_registry();
    let mut loader = Loader::new(&registry);
    let root = deploy::uri::abspath(dir.path());
    let f = loader
        .load_app("config:t.ini", None, dir.path(), None)
        .unwrap()
        .factory()
        .clone();
    let sub = common::s(&root.join("sub"));
    assert_eq!(
        f.local_conf,
        conf! {"inner_here" => sub.clone(), "outer_var" => "O", "local_outer" => "L"}
    );
    assert_eq!(
        f.global_conf,
        conf! {"here" => common::s(&root), "__file__" => common::s(&root.join("t.ini")),
        "inner_d" => "outer-value", "here_seen" => sub, "outer_d" => "O"}
    );
    let deep = loader
        .load_app("config:t.ini#deep", None, dir.path(), None)
        .unwrap();
    assert_eq!(
        deep.factory().local_conf["file"],
        common::s(&root.join("r2target.ini"))
    );
    // A relative base works too, and the files read are reported for reload watching.
    assert_eq!(loader.files().len(), 3);
}

#[test]
fn scenario_5_3_d44_cycles_are_reported_with_their_chain() {
    let cases = [
        ("[app:a]\nuse = b\n[app:b]\nuse = a\n", "a", "[app:a] (t.ini:1) -> [app:b] (t.ini:3) -> [app:a] (t.ini:1)"),
        ("[app:self]\nuse = self\n", "self", "[app:self] (t.ini:1) -> [app:self] (t.ini:1)"),
        ("[pipeline:p]\npipeline = p\n", "p", "[pipeline:p] (t.ini:1) -> [pipeline:p] (t.ini:1)"),
        ("[filter-app:fa]\nuse = egg:ExpApp#filt\nnext = fa\n", "fa", "[filter-app:fa] (t.ini:1) -> [filter-app:fa] (t.ini:1)"),
        ("[composite:c]\nuse = egg:ExpApp#comp\napp.1 = c\n", "c", "[composite:c] (t.ini:1) -> [composite:c] (t.ini:1)"),
        ("[app:a]\nuse = egg:ExpApp#app\nfilter-with = f\n[filter:f]\nuse = egg:ExpApp#filt\nfilter-with = f\n", "a", "[filter:f] (t.ini:4) -> [filter:f] (t.ini:4)"),
    ];
    for (text, name, chain) in cases {
        assert!(matches!(
            load(text, name).unwrap_err().kind(),
            LoadErrorKind::Cycle { .. }
        ));
        let e = err(text, name);
        assert!(e.ends_with(&format!("reference cycle: {chain}")), "{e}");
    }
    // Through a composite's child and another file.
    let a = "[composite:main]\nuse = egg:ExpApp#comp\napp.1 = config:b.ini\n";
    let b = "[app:main]\nuse = config:t.ini\n";
    let e = load_in(&[("t.ini", a), ("b.ini", b)], "main", None).unwrap_err();
    assert!(matches!(e.kind(), LoadErrorKind::Cycle { .. }), "{e}");
    // The same section twice in a row is not a cycle.
    let text = format!("{FILTERS}[pipeline:main]\npipeline = f1 f1 app\n");
    assert_eq!(chain(&load(&text, "main").unwrap()).len(), 3);
}

// D45 (factory argument errors) is about calling Python factories: it belongs to the worker.
// D46–D49 (urlmap matching at request time) belong to the worker; D50–D51 (urlmap keys) are
// tested in worker/src/eggs/urlmap.rs; D52–D54 (pserve's command line) in the serve binary's
// tests; D55 (plaster's get_settings) has no counterpart.

#[test]
fn nesting_is_bounded_with_a_clear_error() {
    let chain = |n: usize| {
        let mut text = String::new();
        for i in 0..n {
            text.push_str(&format!("[app:a{i}]\nuse = a{}\n", i + 1));
        }
        text.push_str(&format!("[app:a{n}]\nuse = egg:ExpApp#app\n"));
        text
    };
    assert_eq!(
        egg(&load(&chain(deploy::load::MAX_NESTING - 2), "a0").unwrap()),
        "ExpApp#app"
    );
    let e = load(&chain(deploy::load::MAX_NESTING + 50), "a0").unwrap_err();
    assert!(matches!(e.kind(), LoadErrorKind::TooDeep { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("more than 64 levels deep (starting at [app:a0]"),
        "{e}"
    );
}

#[test]
fn files_reached_through_symlinks_are_read_as_named() {
    // `link/../x.ini` is `other/x.ini` when `link` points into `other/`; Python reads each
    // path as given, and so does the loader (no cache by normalised path).
    let dir = common::fixture(&[
        ("x.ini", "[filter:f]\nuse = egg:ExpApp#filt\nwhich = top\n"),
        (
            "other/x.ini",
            "[filter:f]\nuse = egg:ExpApp#filt\nwhich = other\n",
        ),
        ("other/deeper/.keep", ""),
        (
            "t.ini",
            "[pipeline:main]\npipeline = config:x.ini#f config:link/../x.ini#f egg:ExpApp#app\n",
        ),
    ]);
    std::os::unix::fs::symlink(dir.path().join("other/deeper"), dir.path().join("link")).unwrap();
    let registry = common::test_registry();
    let mut loader = Loader::new(&registry);
    let node = loader
        .load_app("config:t.ini", None, dir.path(), None)
        .unwrap();
    assert_eq!(node.factory().local_conf["which"], "top");
    assert_eq!(inner(&node).factory().local_conf["which"], "other");
    assert_eq!(loader.files().len(), 3);
}
