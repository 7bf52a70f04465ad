//! Differential tests: the loader against Python's PasteDeploy 3.1 itself.
//!
//! `tests/differential/pastedeploy_plan.py` loads each case of `cases/CASES.json` with the real
//! PasteDeploy and fake distributions built from `eggs.json`, whose factories record the
//! `global_conf` and `local_conf` they receive. The same case is loaded here with the same
//! eggs, and the two trees must be equal; where PasteDeploy fails, the loader must fail too.
//! Requires `python3` with `PasteDeploy==3.1.0` (`.ci/run` installs it).
#![allow(clippy::unwrap_used)]

mod common;

use deploy::load::Loader;
use deploy::plan::Conf;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

/// Cases where `serve` differs from PasteDeploy on purpose (README, "Fixed on purpose").
const DELIBERATE: &[(&str, Option<&str>)] = &[
    // A `use` of a section with filter-with keeps the using section's keys (spec §2.20 #7).
    ("use_filter_with.ini", None),
    ("use_filter_with.ini", Some("d")),
];

/// Runs the oracle on every case of `CASES.json` (or of `only`), one result per case.
fn python_plans(cases: &Path, only: Option<&Value>) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let list = match only {
        Some(case) => {
            let path = dir.path().join("CASES.json");
            std::fs::write(&path, serde_json::to_string(&[case]).unwrap()).unwrap();
            path
        }
        None => cases.join("CASES.json"),
    };
    let out = Command::new("python3")
        .arg(common::differential_dir().join("pastedeploy_plan.py"))
        .arg("--eggs")
        .arg(common::differential_dir().join("eggs.json"))
        .arg("--relative-to")
        .arg(cases)
        .arg("--cases")
        .arg(list)
        .output()
        .expect("python3 must be installed");
    assert!(
        out.status.success(),
        "the PasteDeploy oracle failed (is PasteDeploy==3.1.0 installed? `python3 -m pip install PasteDeploy==3.1.0`):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Drops the fields only `serve` reports (where each node was configured) from plan nodes.
fn strip_extras(node: &mut Value) {
    let Value::Object(map) = node else { return };
    for key in ["section", "file", "line", "key_locations", "call"] {
        map.remove(key);
    }
    if let Some(app) = map.get_mut("app") {
        strip_extras(app);
    }
    if let Some(Value::Object(apps)) = map.get_mut("apps") {
        apps.values_mut().for_each(strip_extras);
    }
}

fn rust_plan(case: &Value, cases: &Path) -> Value {
    let registry = common::test_registry();
    let mut loader = Loader::new(&registry);
    let global: Option<Conf> = case["global"]
        .as_object()
        .filter(|g| !g.is_empty())
        .map(|g| {
            g.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect()
        });
    let uri = format!("config:{}", case["file"].as_str().unwrap());
    let server = loader.load_server(&uri, case["server_name"].as_str(), cases, global.as_ref());
    let server = match server {
        Ok(server) => serde_json::to_value(server).unwrap(),
        Err(e) => {
            let missing_main = case["server_name"].is_null()
                && e.to_string()
                    .starts_with("No section 'main' (prefixed by 'server')");
            if !missing_main {
                return json!({"error": e.to_string()});
            }
            Value::Null
        }
    };
    match loader.load_app(&uri, case["name"].as_str(), cases, global.as_ref()) {
        Ok(app) => {
            let mut plan = json!({"app": app, "server": server});
            strip_extras(&mut plan["app"]);
            strip_extras(&mut plan["server"]);
            plan
        }
        Err(e) => json!({"error": e.to_string()}),
    }
}

/// Whether serve's error says what PasteDeploy's does: the section-lookup, pipeline, filter-app
/// and missing-distribution texts are kept word for word (after serve's `PATH:LINE: `
/// prefix); the others are serve's own and only have to be errors too.
fn same_message(python: &Value, ours: &str) -> bool {
    let kind = python["type"].as_str().unwrap();
    let message = python["message"].as_str().unwrap();
    let verbatim = match kind {
        "LookupError" => ["No section", "Ambiguous section", "The ["]
            .iter()
            .any(|p| message.starts_with(p)),
        "PackageNotFoundError" => true,
        _ => false,
    };
    !verbatim || ours.contains(message)
}

#[test]
fn every_case_matches_pastedeploy() {
    let cases = common::differential_dir().join("cases");
    let list: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(cases.join("CASES.json")).unwrap()).unwrap();
    assert!(list.len() > 20, "the case list is too short to mean much");
    let python_results = python_plans(&cases, None);
    assert_eq!(python_results.len(), list.len());
    let mut failures = Vec::new();
    let (mut loaded, mut errors) = (0, 0);
    for (case, python) in list.iter().zip(python_results) {
        let file = case["file"].as_str().unwrap();
        if DELIBERATE.contains(&(file, case["name"].as_str())) {
            continue;
        }
        let rust = rust_plan(case, &cases);
        let agree = match (python.get("error"), rust.get("error")) {
            (Some(py), Some(rs)) => {
                errors += 1;
                same_message(py, rs.as_str().unwrap())
            }
            (None, None) => {
                loaded += 1;
                python == rust
            }
            _ => false,
        };
        if !agree {
            failures.push(format!(
                "{case}\n  PasteDeploy: {}\n  serve:       {}",
                serde_json::to_string(&python).unwrap(),
                serde_json::to_string(&rust).unwrap()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ:\n{}",
        failures.len(),
        list.len(),
        failures.join("\n\n")
    );
    assert!(
        loaded >= 20 && errors >= 10,
        "loaded {loaded}, errors {errors}"
    );
}

/// The deliberate difference: PasteDeploy drops `x`, serve passes it on.
#[test]
fn use_of_a_filter_with_section_keeps_the_outer_keys() {
    let cases = common::differential_dir().join("cases");
    let case =
        json!({"file": "use_filter_with.ini", "name": null, "server_name": null, "global": {}});
    let python = python_plans(&cases, Some(&case)).remove(0);
    let rust = rust_plan(&case, &cases);
    assert_eq!(python["app"]["app"]["local_conf"], json!({"y": "2"}));
    assert_eq!(
        rust["app"]["app"]["local_conf"],
        json!({"y": "2", "x": "1"})
    );
    assert_eq!(python["app"]["type"], "filter");
    assert_eq!(rust["app"]["type"], "filter");
}

#[test]
#[ignore = "prints both messages of every error case side by side, for reading"]
fn show_error_messages() {
    let cases = common::differential_dir().join("cases");
    let list: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(cases.join("CASES.json")).unwrap()).unwrap();
    for (case, python) in list.iter().zip(python_plans(&cases, None)) {
        if let Some(e) = python.get("error") {
            println!(
                "{}#{}\n  py: {}\n  rs: {}",
                case["file"],
                case["name"],
                e,
                rust_plan(case, &cases)["error"]
            );
        }
    }
}
