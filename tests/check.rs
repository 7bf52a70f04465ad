//! End-to-end tests of `serve check` (and of `serve FILE` before the worker exists): the real
//! binary on the example configs and on broken files, as a user runs it.
#![allow(clippy::unwrap_used)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn serve(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_serve"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).unwrap()
}

fn json(args: &[&str], cwd: &Path) -> Value {
    let out = serve(args, cwd);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn configs() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("configs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ini"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_config_checks() {
    let files = configs();
    assert!(files.len() >= 3);
    for file in files {
        let rel = file
            .strip_prefix(root())
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let out = serve(&["check", &rel], &root());
        assert!(out.status.success(), "{rel}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.starts_with("server:\n"), "{text}");
        assert!(text.ends_with(&format!("{rel}: ok\n")), "{text}");
        let plan = json(&["check", "--json", &rel], &root());
        assert_eq!(plan["server"]["type"], "server", "{rel}");
        assert!(plan["app"]["type"].is_string(), "{rel}");
    }
}

#[test]
fn several_files_at_once() {
    let files: Vec<String> = configs()
        .iter()
        .map(|f| f.strip_prefix(root()).unwrap().to_str().unwrap().to_owned())
        .collect();
    let mut args = vec!["check"];
    args.extend(files.iter().map(String::as_str));
    args.push("http_port=7000");
    let out = serve(&args, &root());
    assert!(out.status.success(), "{}", stderr(&out));
    for file in &files {
        assert!(
            stdout(&out).contains(&format!("{file}: ok\n")),
            "{}",
            stdout(&out)
        );
    }
    args.insert(1, "--json");
    let out = serve(&args, &root());
    let plans: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(plans.len(), files.len());
    assert!(plans
        .iter()
        .all(|p| p["app"]["global_conf"]["http_port"] == "7000"));
    // One broken file fails the run; the others are still checked.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.ini"), "[app:main]\nbroken\n").unwrap();
    let bad = dir.path().join("bad.ini");
    let out = serve(
        &["check", bad.to_str().unwrap(), "configs/tutorial.ini"],
        &root(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).starts_with(&format!("error: {}:2: ", bad.display())));
    assert!(stdout(&out).contains("configs/tutorial.ini: ok"));
}

#[test]
fn tutorial_pipeline_tree_and_json() {
    let out = serve(&["check", "configs/tutorial-pipeline.ini"], &root());
    let text = stdout(&out);
    let filter = text
        .find("filter    minimal#main (paste.filter_factory)  [filter:middleware]")
        .unwrap();
    let prefix = text.find("prefix = yikes:").unwrap();
    let app = text
        .find("app       minimal#main (paste.app_factory)  [app:minimal]")
        .unwrap();
    assert!(filter < prefix && prefix < app, "{text}");

    let plan = json(
        &["check", "--json", "configs/tutorial-pipeline.ini"],
        &root(),
    );
    let file = root().join("configs/tutorial-pipeline.ini");
    assert_eq!(plan["app"]["type"], "filter");
    assert_eq!(plan["app"]["egg"], "minimal#main");
    assert_eq!(plan["app"]["protocol"], "paste.filter_factory");
    assert_eq!(
        plan["app"]["local_conf"],
        serde_json::json!({"prefix": "yikes:"})
    );
    assert_eq!(
        plan["app"]["global_conf"]["__file__"],
        file.to_str().unwrap()
    );
    assert_eq!(
        plan["app"]["global_conf"]["here"],
        root().join("configs").to_str().unwrap()
    );
    assert_eq!(plan["app"]["app"]["type"], "app");
    assert_eq!(plan["app"]["app"]["egg"], "minimal#main");
    assert_eq!(plan["app"]["app"]["protocol"], "paste.app_factory");
    assert_eq!(plan["server"]["egg"], "Paste#http");
    assert_eq!(plan["server"]["protocol"], "paste.server_runner");
    assert_eq!(plan["server"]["local_conf"]["port"], "6543");
    assert_eq!(
        plan["app"]["key_locations"]["prefix"],
        "configs/tutorial-pipeline.ini:12"
    );
}

#[test]
fn production_example_composite() {
    let plan = json(
        &[
            "check",
            "--json",
            "configs/production.ini",
            "http_port=8080",
        ],
        &root(),
    );
    assert_eq!(plan["app"]["type"], "composite");
    assert_eq!(plan["app"]["egg"], "Paste#urlmap");
    let site = &plan["app"]["apps"]["site"];
    assert_eq!(site["egg"], "PasteDeploy#prefix");
    assert_eq!(site["app"]["local_conf"]["prefix"], "Example:");
    assert_eq!(site["app"]["app"]["local_conf"]["use_class"], "true");
    assert_eq!(plan["app"]["apps"]["api"]["global_conf"]["debug"], "true");
    // http_port=8080 reaches global_conf, but [DEFAULT] keeps %(http_port)s at 6543 (as pserve).
    assert_eq!(plan["server"]["global_conf"]["http_port"], "8080");
    assert_eq!(
        plan["server"]["local_conf"]["listen"],
        "127.0.0.1:6543 [::1]:6543"
    );
}

/// The first line of stderr for a broken file, and the exit status.
fn first_error_line(text: &str) -> (String, i32) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("deploy.ini"), text).unwrap();
    let out = serve(&["check", "deploy.ini"], dir.path());
    let line = stderr(&out).lines().next().unwrap_or_default().to_owned();
    (line, out.status.code().unwrap())
}

#[test]
fn broken_files_name_the_file_and_line_on_the_first_line_of_stderr() {
    let cases = [
        ("[app:main]\nuse = egg:minimal\nnot a key value line\n", "error: deploy.ini:3: line has no '=' or ':'"),
        ("stray text\n[app:main]\n", "error: deploy.ini:1: text before the first [section] header"),
        ("[app:main]\nuse = egg:minimal\nuse = egg:minimal\n", "error: deploy.ini:3: key \"use\" in section [app:main] already exists"),
        ("[app:main]\n[app:main]\n", "error: deploy.ini:2: section [app:main] already exists"),
        ("[app:main]\nuse = nosuch\n", "error: deploy.ini:2: No section 'nosuch'"),
        ("[app:main]\nuse = egg:minimal\nx = %(nope)s\n", "error: deploy.ini:3: key \"x\" in section [app:main] refers to %(nope)s"),
        ("[app:main]\nuse = egg:nosuchegg\n", "error: deploy.ini:2: No package metadata was found for nosuchegg"),
        ("[pipeline:main]\npipeline = main\n", "error: deploy.ini:1: reference cycle: [pipeline:main] (deploy.ini:1) -> [pipeline:main] (deploy.ini:1)"),
        ("[composite:main]\nuse = egg:Paste#urlmap\nfoo = main\n", "error: deploy.ini:1: [composite:main] (Paste#urlmap): mount key 'foo': URL fragments must start with / or http://"),
        ("[app:other]\nuse = egg:minimal\n", "error: No section 'main' (prefixed by 'app'"),
        ("[app:main]\nuse = egg:minimal\nuse_class = maybe\n", "error: deploy.ini:3: [app:main] minimal#main: use_class: String is not true/false"),
        ("[app:main]\nuse = egg:serve#static\nroot = /nonexistent\n", "error: deploy.ini:3: [app:main] serve#static: root: /nonexistent is not a directory"),
        ("[app:main]\nuse = egg:minimal\n[server:main]\nuse = egg:serve#http\nport = http\n", "error: deploy.ini:5: [server:main] serve#http: port: 'http' is not a port number"),
    ];
    for (text, want) in cases {
        let (line, code) = first_error_line(text);
        assert!(
            line.starts_with(want),
            "{text:?}\n  got:  {line}\n  want: {want}"
        );
        assert_eq!(code, 1);
    }
}

#[test]
fn a_missing_file_and_no_file() {
    let out = serve(&["check", "nope.ini"], &root());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: cannot read config file nope.ini: "),
        "{}",
        stderr(&out)
    );
    for args in [&[][..], &["check", "http_port=1"][..]] {
        let out = serve(args, &root());
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let text = stderr(&out);
        assert!(
            text.starts_with("error: You must give a config file"),
            "{text}"
        );
    }
}

const DEV_INI: &str = "[DEFAULT]\nhttp_port = 6543\ndebug = false\n\
[app:main]\nuse = egg:minimal\nport_seen = %(http_port)s\ndebug = true\nextra = %(extra)s\n\
[app:other]\nuse = egg:minimal\n\
[server:main]\nuse = egg:waitress#main\nport = %(http_port)s\n\
[server:alt]\nuse = egg:serve#http\nport = 1111\n";

fn dev_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("dev.ini"), DEV_INI).unwrap();
    dir
}

#[test]
fn scenario_5_3_d52_variables_as_pserve_passes_them() {
    let dir = dev_dir();
    let plan = json(
        &["check", "--json", "dev.ini", "http_port=8080", "extra=E"],
        dir.path(),
    );
    assert_eq!(
        plan["server"]["local_conf"],
        serde_json::json!({"port": "6543"})
    );
    assert_eq!(
        plan["app"]["local_conf"],
        serde_json::json!({"port_seen": "6543"})
    );
    for node in [&plan["server"], &plan["app"]] {
        let g = &node["global_conf"];
        assert_eq!(
            (
                g["http_port"].as_str(),
                g["extra"].as_str(),
                g["debug"].as_str()
            ),
            (Some("8080"), Some("E"), Some("false"))
        );
    }
}

#[test]
fn scenario_5_3_d53_app_and_server_names() {
    let dir = dev_dir();
    let plan = json(
        &[
            "check",
            "--json",
            "--server-name",
            "alt",
            "dev.ini#other",
            "extra=E",
        ],
        dir.path(),
    );
    assert_eq!(
        plan["server"]["local_conf"],
        serde_json::json!({"port": "1111"})
    );
    assert_eq!(plan["app"]["section"], "app:other");
    // Deliberate difference from pserve: the fragment picks only the app.
    let plan = json(&["check", "--json", "dev.ini#other", "extra=E"], dir.path());
    assert_eq!(plan["server"]["section"], "server:main");
    assert_eq!(plan["app"]["section"], "app:other");
    let plan = json(&["check", "--json", "dev.ini", "-n", "other"], dir.path());
    assert_eq!(plan["app"]["section"], "app:other");
    let plan = json(
        &["check", "--json", "dev.ini?extra=Q", "-n", "other"],
        dir.path(),
    );
    assert_eq!(plan["app"]["global_conf"]["extra"], "Q");
}

#[test]
fn scenario_5_3_d54_argument_errors() {
    let dir = dev_dir();
    let err = |args: &[&str]| {
        let out = serve(args, dir.path());
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        stderr(&out)
    };
    assert!(err(&["dev.ini", "badvar"])
        .starts_with("error: Variable assignment 'badvar' invalid (no \"=\")"));
    // `serve check` takes several files, so there a word without `=` is one more file.
    assert!(err(&["check", "dev.ini", "extra=E", "badvar"])
        .starts_with("error: cannot read config file badvar"));
    assert!(
        err(&["check", "--server-name", "nope", "dev.ini", "extra=E"])
            .starts_with("error: No section 'nope' (prefixed by 'server')")
    );
    assert!(err(&["check", "nope.ini"]).starts_with("error: cannot read config file nope.ini"));
    // Without extra=E, `extra = %(extra)s` refers to itself.
    assert!(err(&["check", "dev.ini"]).starts_with(
        "error: dev.ini:8: key \"extra\" in section [app:main] cannot be expanded in 10 steps"
    ));
    let plan = json(&["check", "--json", "egg:minimal"], dir.path());
    assert_eq!(plan["app"]["egg"], "minimal#main");
    assert!(plan["server"].is_null());
}

#[test]
fn scenario_5_2_p7_relative_to_the_current_directory() {
    let plan = json(
        &["check", "--json", "tutorial.ini"],
        &root().join("configs"),
    );
    assert_eq!(plan["app"]["egg"], "minimal#main");
    assert_eq!(
        plan["app"]["global_conf"]["here"],
        root().join("configs").to_str().unwrap()
    );
}

#[test]
fn help_answers() {
    let out = serve(&["--help"], &root());
    let text = stdout(&out);
    for word in [
        "check",
        "CONFIG_URI",
        "VAR=VALUE",
        "--app-name",
        "--server-name",
    ] {
        assert!(text.contains(word), "{word} missing from --help:\n{text}");
    }
    let out = serve(&["check", "--help"], &root());
    assert!(stdout(&out).contains("--json"));
}
