//! Spec §5.3 D1–D15: the INI dialect and interpolation, scenario by scenario.
#![allow(clippy::unwrap_used)]

mod common;

use deploy::ini::{parse, IniFile, LineProblem};
use deploy::load::Loader;
use deploy::{LoadErrorKind, Node};
use std::path::Path;

fn ini(text: &str) -> IniFile {
    parse(Path::new("t.ini"), text).unwrap()
}

fn raw<'a>(file: &'a IniFile, section: &str, key: &str) -> &'a str {
    file.raw(section, key)
        .unwrap_or_else(|| panic!("no {key} in [{section}]"))
}

/// Loads app `name` from a one-file fixture with the test eggs.
fn load(text: &str, name: &str) -> Result<Node, deploy::LoadError> {
    let dir = common::fixture(&[("t.ini", text)]);
    let registry = common::test_registry();
    let result = Loader::new(&registry).load_app("config:t.ini", Some(name), dir.path(), None);
    result
}

fn local(text: &str, name: &str) -> deploy::Conf {
    load(text, name).unwrap().factory().local_conf.clone()
}

#[test]
fn scenario_5_3_d1_no_inline_comments() {
    let f = ini("[s]\nk1 = v1 ; not a comment\nk2 = v2 # not a comment\n");
    assert_eq!(raw(&f, "s", "k1"), "v1 ; not a comment");
    assert_eq!(raw(&f, "s", "k2"), "v2 # not a comment");
}

#[test]
fn scenario_5_3_d2_delimiters_split_at_the_first() {
    let f = ini("[s]\nk3: colon\na:b = c\nx = y = z\n");
    assert_eq!(raw(&f, "s", "k3"), "colon");
    assert_eq!(raw(&f, "s", "a"), "b = c");
    assert_eq!(raw(&f, "s", "x"), "y = z");
}

#[test]
fn scenario_5_3_d3_keys_are_case_sensitive() {
    let f = ini("[s]\nKey = upper\nkey = lower\nx = 1\nX = 2\n");
    assert_eq!(raw(&f, "s", "Key"), "upper");
    assert_eq!(raw(&f, "s", "key"), "lower");
    assert_eq!(raw(&f, "s", "X"), "2");
}

#[test]
fn scenario_5_3_d4_blank_lines_kept_comment_lines_dropped() {
    let f = ini("[s]\nmulti = line1\n  line2\n\n  line4\nm = m1\n  # comment\n  m2\n");
    assert_eq!(raw(&f, "s", "multi"), "line1\nline2\n\nline4");
    assert_eq!(raw(&f, "s", "m"), "m1\nm2");
}

#[test]
fn scenario_5_3_d5_empty_first_line() {
    assert_eq!(raw(&ini("[s]\nx =\n  a\n  b\n"), "s", "x"), "\na\nb");
}

#[test]
fn scenario_5_3_d6_section_headers() {
    let f = ini("[app:main] # trailing\nuse = egg:ExpApp#app\n");
    assert!(f.sections.contains_key("app:main"));
    let spaced = "[ app:main ]\nuse = egg:ExpApp#app\n";
    assert!(matches!(
        load(spaced, "main").unwrap_err().kind(),
        LoadErrorKind::NoSection { .. }
    ));
    assert_eq!(
        common::egg(&load("[app:  main  ]\nuse = egg:ExpApp#app\n", "main").unwrap()),
        "ExpApp#app"
    );
}

#[test]
fn scenario_5_3_d7_unclosed_headers_and_indented_headers() {
    let f = ini("[s]\na = 1\n[filter:x\n");
    assert_eq!(raw(&f, "s", "[filter"), "x");
    let err = parse(Path::new("t.ini"), "[filter:x\n").unwrap_err();
    assert!(matches!(
        err.problems[0].1,
        LineProblem::BeforeFirstSection(_)
    ));
    assert_eq!(err.problems[0].0.line, 1);
    let f = ini("[s]\na = 1\n  [app:other]\n");
    assert_eq!(raw(&f, "s", "a"), "1\n[app:other]");
    assert!(!f.sections.contains_key("app:other"));
}

#[test]
fn scenario_5_3_d8_bom_crlf_and_tabs() {
    // Deliberate difference: a byte-order mark is skipped (Python reports text before the first
    // header).
    let f = ini("\u{feff}[s]\r\na = 1\r\n\tb\r\n");
    assert_eq!(raw(&f, "s", "a"), "1\nb");
    let f = ini("[s]\ra = 1\r  c\r");
    assert_eq!(raw(&f, "s", "a"), "1\nc");
}

#[test]
fn scenario_5_3_d9_percent_signs() {
    assert_eq!(
        local("[app:main]\nuse = egg:ExpApp#app\npct = 100%%\n", "main")["pct"],
        "100%"
    );
    for bad in ["x = 100%", "x = %(foo)", "y = 1\nx = %(y)d"] {
        let err = load(
            &format!("[app:main]\nuse = egg:ExpApp#app\n{bad}\n"),
            "main",
        )
        .unwrap_err();
        assert!(
            matches!(err.kind(), LoadErrorKind::Interpolate(_)),
            "{bad}: {err}"
        );
    }
}

#[test]
fn scenario_5_3_d10_depth_and_missing_keys() {
    let err = load(
        "[app:main]\nuse = egg:ExpApp#app\na = %(b)s\nb = %(a)s\n",
        "main",
    )
    .unwrap_err();
    assert!(matches!(
        err.kind(),
        LoadErrorKind::Interpolate(deploy::ini::InterpolateError::TooDeep { .. })
    ));
    let err = load("[app:main]\nuse = egg:ExpApp#app\nx = %(nope)s\n", "main").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("t.ini:3: "), "{text}");
    assert!(
        text.contains("\"x\"") && text.contains("[app:main]") && text.contains("%(nope)s"),
        "{text}"
    );
}

#[test]
fn scenario_5_3_d11_broken_default_fails_every_section() {
    let text = "[DEFAULT]\nbad = %(missing)s\n[app:main]\nuse = egg:ExpApp#app\n[app:other]\nuse = egg:ExpApp#app\n";
    for name in ["main", "other"] {
        let err = load(text, name).unwrap_err();
        assert!(err.to_string().contains("[DEFAULT]"), "{err}");
        assert_eq!(err.location().unwrap().line, 2);
    }
}

#[test]
fn scenario_5_3_d12_strictness_errors_have_lines() {
    type Case = (&'static str, u32, fn(&LineProblem) -> bool);
    let cases: &[Case] = &[
        ("[s]\n[s]\n", 2, |p| {
            matches!(p, LineProblem::DuplicateSection { .. })
        }),
        ("[s]\nx = 1\nx = 2\n", 3, |p| {
            matches!(p, LineProblem::DuplicateKey { .. })
        }),
        ("[s]\nnovalue\n", 2, |p| {
            matches!(p, LineProblem::NoDelimiter(_))
        }),
        ("[s]\n= v\n", 2, |p| matches!(p, LineProblem::EmptyKey(_))),
        ("[s]\n[]\n", 2, |p| matches!(p, LineProblem::NoDelimiter(_))),
    ];
    for (text, line, is) in cases {
        let err = parse(Path::new("t.ini"), text).unwrap_err();
        assert_eq!(err.problems[0].0.line, *line, "{text}");
        assert!(is(&err.problems[0].1), "{text}: {err}");
        assert!(
            err.to_string().starts_with(&format!("t.ini:{line}: ")),
            "{err}"
        );
    }
    let err = parse(Path::new("t.ini"), "[s]\nbad one\nok = 1\nbad two\n").unwrap_err();
    let lines: Vec<u32> = err.problems.iter().map(|(at, _)| at.line).collect();
    assert_eq!(lines, [2, 4]);
}

#[test]
fn scenario_5_3_d13_default_blocks() {
    let f = ini("[default]\na = 1\n[DEFAULT]\nb = 2\n[s]\nc = 3\n[DEFAULT]\nd = 4\n");
    assert!(f.sections.contains_key("default"));
    assert_eq!(f.defaults.keys().collect::<Vec<_>>(), ["b", "d"]);
    let err = parse(Path::new("t.ini"), "[DEFAULT]\nb = 2\n[DEFAULT]\nb = 3\n").unwrap_err();
    assert!(matches!(
        err.problems[0].1,
        LineProblem::DuplicateKey { .. }
    ));
}

#[test]
fn scenario_5_3_d14_default_here_overrides() {
    let node = load(
        "[DEFAULT]\nhere = /custom\n[app:main]\nuse = egg:ExpApp#app\nseen = %(here)s\n",
        "main",
    )
    .unwrap();
    assert_eq!(node.factory().local_conf["seen"], "/custom");
    assert_eq!(node.factory().global_conf["here"], "/custom");
}

#[test]
fn scenario_5_3_d15_use_is_interpolated() {
    let node = load(
        "[DEFAULT]\nwhich = app\n[app:main]\nuse = egg:ExpApp#%(which)s\n",
        "main",
    )
    .unwrap();
    assert_eq!(common::egg(&node), "ExpApp#app");
}

#[test]
fn an_empty_key_ends_the_value_before_it() {
    // Python stores `= 2` under the key '' (and reports it); the indented line after it is
    // then not a continuation of `a` but a line of its own.
    let err = parse(Path::new("t.ini"), "[s]\na = 1\n= 2\n  foo\n").unwrap_err();
    let lines: Vec<u32> = err.problems.iter().map(|(at, _)| at.line).collect();
    assert_eq!(lines, [3, 4]);
}
