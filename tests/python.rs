//! Python apps served by `serve` (built with the `python` feature): PEP 3333 conformance of
//! the WSGI host, with the app `tests/python/conform.py` loaded from the Python on `PATH`
//! (which has PasteDeploy) through `PYTHONPATH`, and the points where other servers fail.
#![cfg(feature = "python")]
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};
use support::{body, raw, request, root, Running};

/// `serve` on the conformance app, with `args` before the config.
fn conform(args: &[&str]) -> Running {
    let pythonpath = root().join("tests/python");
    let mut all = args.to_vec();
    all.push("tests/python/conform.ini");
    Running::start_with_env(
        Path::new(env!("CARGO_BIN_EXE_serve")),
        &all,
        &[("PYTHONPATH", pythonpath.to_str().unwrap())],
    )
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A POST of `data` with a Content-Length.
fn post(addr: &str, path: &str, data: &str) -> String {
    raw(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{data}",
            data.len()
        ),
    )
}

/// A POST of `chunks` with `Transfer-Encoding: chunked`.
fn post_chunked(addr: &str, path: &str, chunks: &[&str]) -> String {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    for chunk in chunks {
        request.push_str(&format!("{:x}\r\n{chunk}\r\n", chunk.len()));
    }
    request.push_str("0\r\n\r\n");
    raw(addr, &request)
}

#[test]
fn the_environ_is_built_from_the_request_alone() {
    let serve = conform(&["--workers", "2"]);
    let response = raw(
        &serve.addr,
        "GET /environ?a=1&b=%20 HTTP/1.1\r\nHost: example.test:8080\r\nCookie: a=1\r\nCookie: b=2\r\nX-Dup: one\r\nX-Dup: two\r\nX_Sneaky: underscore\r\nConnection: close\r\n\r\n",
    );
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    let env = json(&body(&response));
    assert_eq!(env["REQUEST_METHOD"], "GET");
    assert_eq!(env["SCRIPT_NAME"], "");
    assert_eq!(env["PATH_INFO"], "/environ");
    assert_eq!(env["QUERY_STRING"], "a=1&b=%20");
    assert_eq!(env["SERVER_PROTOCOL"], "HTTP/1.1");
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1");
    assert!(
        env["REMOTE_PORT"].as_str().unwrap().parse::<u16>().unwrap() > 0,
        "{env}"
    );
    let port = serve.addr.rsplit(':').next().unwrap();
    assert_eq!(env["SERVER_NAME"], "127.0.0.1");
    assert_eq!(env["SERVER_PORT"], port);
    assert_eq!(env["HTTP_HOST"], "example.test:8080");
    // RFC 6265: one Cookie field, joined with "; "; other repeated fields with ", ".
    assert_eq!(env["HTTP_COOKIE"], "a=1; b=2");
    assert_eq!(env["HTTP_X_DUP"], "one, two");
    // A name with an underscore would pass for X-Sneaky: left out.
    assert!(env.get("HTTP_X_SNEAKY").is_none(), "{env}");
    assert_eq!(env["wsgi.version"], serde_json::json!([1, 0]));
    assert_eq!(env["wsgi.url_scheme"], "http");
    assert_eq!(env["wsgi.multiprocess"], true);
    assert_eq!(env["wsgi.multithread"], false);
    assert_eq!(env["wsgi.run_once"], false);
    assert_eq!(env["wsgi.input_terminated"], true);
    assert_eq!(env["wsgi.input"], "Input");
    assert_eq!(env["wsgi.errors"], "Errors");
    // Nothing of os.environ (granian copies it in).
    assert_eq!(env["_os_environ_leaked"], false);
    // The factory got PasteDeploy's global_conf and local_conf.
    assert_eq!(env["_conf"]["local"], serde_json::json!({"answer": "42"}));
    assert_eq!(env["_conf"]["global"]["greeting"], "hello");
    assert!(env["_conf"]["global"]["__file__"]
        .as_str()
        .unwrap()
        .ends_with("tests/python/conform.ini"));
}

#[test]
fn start_response_may_come_late_and_the_body_carries_the_head() {
    let serve = conform(&[]);
    let response = request(&serve.addr, "/lazy");
    // granian sends 200 before iterating and loses the header.
    assert!(
        response.starts_with("HTTP/1.1 201 Created\r\n"),
        "{response}"
    );
    assert!(
        response.to_ascii_lowercase().contains("x-lazy: yes\r\n"),
        "{response}"
    );
    assert_eq!(body(&response), "lazy body\n");
}

#[test]
fn the_write_callable_sends_data_before_the_iterable() {
    let serve = conform(&[]);
    // granian's write() returns None.
    assert_eq!(
        body(&request(&serve.addr, "/write")),
        "written by write()\n"
    );
}

#[test]
fn wsgi_input_reads_lines_with_their_newlines() {
    let serve = conform(&[]);
    // granian drops the newline and the rest of the body.
    let response = post(&serve.addr, "/readline", "a\nb\nc");
    assert_eq!(
        json(&body(&response)),
        serde_json::json!(["a\n", "b\n", "c"])
    );
    let response = post_chunked(&serve.addr, "/readline", &["a\nb", "\n", "c"]);
    assert_eq!(
        json(&body(&response)),
        serde_json::json!(["a\n", "b\n", "c"])
    );
    let response = post_chunked(&serve.addr, "/iterate", &["one\ntw", "o\nthree\n"]);
    assert_eq!(
        json(&body(&response)),
        serde_json::json!(["one\n", "two\n", "three\n"])
    );
    let response = post(&serve.addr, "/readlines?5", "ab\ncd\nef\ngh\n");
    assert_eq!(json(&body(&response)), serde_json::json!(["ab\n", "cd\n"]));
}

#[test]
fn wsgi_input_streams_large_and_chunked_bodies() {
    let serve = conform(&[]);
    let data = "z".repeat(100_000);
    let response = post(&serve.addr, "/read?30000", &data);
    assert_eq!(
        json(&body(&response)),
        serde_json::json!([30000, 30000, 30000, 10000])
    );
    let chunks: Vec<String> = (0..50).map(|i| format!("{i:04}-").repeat(100)).collect();
    let refs: Vec<&str> = chunks.iter().map(String::as_str).collect();
    let response = post_chunked(&serve.addr, "/echo", &refs);
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert_eq!(body(&response), chunks.concat());
}

#[test]
fn close_is_called_when_the_body_ends_and_when_the_client_leaves() {
    let serve = conform(&[]);
    assert_eq!(body(&request(&serve.addr, "/close?first")), "abc\n");
    // A client that reads a little of a long body, then goes away.
    let mut stream = TcpStream::connect(&serve.addr).unwrap();
    stream
        .write_all(b"GET /stream?400 HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut some = [0u8; 4096];
    stream.read_exact(&mut some).unwrap();
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let closed = json(&body(&request(&serve.addr, "/closed")));
        if closed == serde_json::json!(["first", "stream"]) {
            break;
        }
        assert!(Instant::now() < deadline, "close() calls: {closed}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_slow_reader_does_not_hold_the_python_thread() {
    // One Python thread; a client that does not read a 25 MiB body must not stop another
    // client from being answered (granian pins a thread per slow client).
    let serve = conform(&["--threads", "1"]);
    let mut slow = TcpStream::connect(&serve.addr).unwrap();
    slow.write_all(b"GET /stream?400 HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 1024];
    slow.read_exact(&mut first).unwrap();
    let started = Instant::now();
    assert_eq!(body(&request(&serve.addr, "/")), "conform\n");
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(slow);
}

#[test]
fn an_exception_is_a_logged_500_and_the_worker_lives() {
    let serve = conform(&[]);
    let response = request(&serve.addr, "/raise");
    assert!(
        response.starts_with("HTTP/1.1 500 Internal Server Error\r\n"),
        "{response}"
    );
    serve.wait_for("RuntimeError: the app failed on purpose");
    for path in ["/not-bytes", "/no-start", "/twice"] {
        let response = request(&serve.addr, path);
        assert!(response.starts_with("HTTP/1.1 500 "), "{path}: {response}");
    }
    serve.wait_for("AssertionError: start_response was already called");
    assert_eq!(body(&request(&serve.addr, "/")), "conform\n");
}

#[test]
fn an_exception_after_the_head_cuts_the_body_off() {
    let serve = conform(&[]);
    let response = raw(
        &serve.addr,
        "GET /raise-late HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
    );
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.contains("first chunk\n"), "{response}");
    // No terminating zero-size chunk: the client knows the body is incomplete.
    assert!(!response.ends_with("0\r\n\r\n"), "{response:?}");
    serve.wait_for("RuntimeError: the body failed on purpose");
    let closed = json(&body(&request(&serve.addr, "/closed")));
    assert!(
        closed.as_array().unwrap().contains(&"raise-late".into()),
        "{closed}"
    );
}

#[test]
fn a_list_subclass_is_closed_and_a_late_second_start_response_raises() {
    let serve = conform(&[]);
    assert_eq!(
        body(&request(&serve.addr, "/list-close")),
        "a list that closes\n"
    );
    let closed = json(&body(&request(&serve.addr, "/closed")));
    assert!(
        closed.as_array().unwrap().contains(&"list".into()),
        "{closed}"
    );
    // Calling start_response again once the head is out, without exc_info, is an error:
    // the body is cut off and the error logged.
    let response = raw(
        &serve.addr,
        "GET /twice-late HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
    );
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.contains("head sent\n") && !response.contains("not reached"));
    assert!(!response.ends_with("0\r\n\r\n"), "{response:?}");
    serve.wait_for("AssertionError: start_response was already called");
}

#[test]
fn exc_info_replaces_the_head_before_it_is_sent() {
    let serve = conform(&[]);
    let response = request(&serve.addr, "/exc-info");
    assert!(
        response.starts_with("HTTP/1.1 503 Try Later\r\n"),
        "{response}"
    );
    assert_eq!(body(&response), "sorry\n");
    // A reason phrase of the app's own goes out as it is.
    let response = request(&serve.addr, "/reason");
    assert!(
        response.starts_with("HTTP/1.1 299 Custom Reason\r\n"),
        "{response}"
    );
}

#[test]
fn a_python_filter_and_a_rust_filter_share_one_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("mixed.ini");
    std::fs::write(
        &ini,
        "[pipeline:main]\npipeline = rust python app\n\n\
         [filter:rust]\nuse = egg:serve#headers\nset.X-Rust-Filter = yes\n\n\
         [filter:python]\nuse = call:conform:filter_factory\ntag = tagged\n\n\
         [app:app]\nuse = call:conform:app_factory\n",
    )
    .unwrap();
    let pythonpath = root().join("tests/python");
    let serve = Running::start_with_env(
        Path::new(env!("CARGO_BIN_EXE_serve")),
        &[ini.to_str().unwrap()],
        &[("PYTHONPATH", pythonpath.to_str().unwrap())],
    );
    let response = request(&serve.addr, "/").to_ascii_lowercase();
    assert!(response.contains("x-rust-filter: yes\r\n"), "{response}");
    assert!(
        response.contains("x-python-filter: tagged\r\n"),
        "{response}"
    );
    assert_eq!(body(&response), "conform\n");
}

/// `serve ARGS` run to completion in the repository, with the conformance app importable.
fn serve_output(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_serve"))
        .args(args)
        .current_dir(root())
        .env("PYTHONPATH", root().join("tests/python"))
        .output()
        .unwrap()
}

#[test]
fn serve_check_shows_python_nodes_and_their_environment() {
    let out = serve_output(&["check", "--json", "tests/python/conform.ini"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(plan["app"]["runtime"], "python");
    assert_eq!(plan["app"]["call"], "conform:app_factory");
    let python = plan["python"].as_str().unwrap();
    assert!(Path::new(python).is_absolute(), "{plan}");
    // The tree names the runtime too.
    let out = serve_output(&["check", "tests/python/conform.ini"]);
    assert!(out.status.success());
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(tree.contains("python"), "{tree}");
}

#[test]
fn a_missing_python_module_or_a_rust_app_under_a_python_filter_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.ini");
    std::fs::write(&missing, "[app:main]\nuse = call:nothere.wsgi:app\n").unwrap();
    let out = serve_output(&["check", missing.to_str().unwrap()]);
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("no factory 'nothere.wsgi:app' is registered as a paste.app_factory")
            && error.contains("no module 'nothere' is found in the Python environment of"),
        "{error}"
    );
    let inverted = dir.path().join("inverted.ini");
    std::fs::write(
        &inverted,
        "[pipeline:main]\npipeline = python app\n\n\
         [filter:python]\nuse = call:conform:filter_factory\n\n\
         [app:app]\nuse = egg:minimal#main\n",
    )
    .unwrap();
    let out = serve_output(&["check", inverted.to_str().unwrap()]);
    assert!(!out.status.success());
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("inverted.ini:7: [app:app] (minimal#main) is Rust code and cannot run inside the Python filter [filter:python]"),
        "{error}"
    );
    let nowhere = serve_output(&[
        "check",
        "--python",
        "/nonexistent/env",
        "tests/python/conform.ini",
    ]);
    let error = String::from_utf8_lossy(&nowhere.stderr);
    assert!(
        error.contains(
            "Python eggs were not searched: /nonexistent/env: neither a virtualenv folder"
        ),
        "{error}"
    );
}

#[test]
fn ctrl_c_is_the_workers_and_wsgi_errors_goes_to_the_log() {
    let serve = conform(&[]);
    // Python never installed its KeyboardInterrupt handler: SIGINT belongs to the worker.
    let handler = body(&request(&serve.addr, "/sigint"));
    assert!(!handler.contains("default_int_handler"), "{handler}");
    assert_eq!(body(&request(&serve.addr, "/errors")), "logged\n");
    serve.wait_for("written to wsgi.errors");
}

/// A Python module answering `text` for every request, saved in `dir`.
fn write_app(dir: &Path, text: &str) {
    support::write(
        &dir.join("hello_app.py"),
        &format!(
            "def app_factory(global_conf, **local):\n    def app(environ, start_response):\n        start_response('200 OK', [('Content-Type', 'text/plain')])\n        return [b'{text}\\n']\n    return app\n"
        ),
    );
}

#[test]
fn editing_a_python_module_reloads_under_load_and_a_broken_import_keeps_serving() {
    use support::load::{Client, Load};
    let dir = tempfile::tempdir().unwrap();
    write_app(dir.path(), "one");
    let ini = dir.path().join("deploy.ini");
    support::write(
        &ini,
        "[app:main]\nuse = call:hello_app:app_factory\n\n[server:main]\nuse = egg:serve#http\nworkers = 2\n",
    );
    let serve = Running::start_with_env(
        Path::new(env!("CARGO_BIN_EXE_serve")),
        &["--reload", ini.to_str().unwrap()],
        &[("PYTHONPATH", dir.path().to_str().unwrap())],
    );
    // The ini and the module (plus PasteDeploy's own modules).
    serve.wait_for("files for changes");
    assert_eq!(body(&request(&serve.addr, "/")), "one\n");
    let load = Load::start(&serve.addr, &[Client::KeepAliveGet, Client::FreshGet]);
    // (A different length: Python's bytecode cache keys on the size and the second.)
    write_app(dir.path(), "second");
    serve.wait_for_new("reloaded: generation 1 -> 2");
    serve.wait_for_new("of generation 1 stopped");
    assert_eq!(body(&request(&serve.addr, "/")), "second\n");
    // An import that fails keeps generation 2 serving, with the traceback in the log.
    support::write(&dir.path().join("hello_app.py"), "def app_factory(:\n");
    let line = serve.wait_for_new("keeps serving");
    assert!(
        line.contains("SyntaxError: invalid syntax (hello_app.py, line 1)"),
        "{line}"
    );
    serve.wait_for("Traceback (most recent call last)");
    assert_eq!(body(&request(&serve.addr, "/")), "second\n");
    write_app(dir.path(), "the third");
    serve.wait_for_new("reloaded: generation 2 -> ");
    let tally = load.finish();
    assert!(
        tally.failures.is_empty(),
        "{:?}",
        &tally.failures[..tally.failures.len().min(10)]
    );
    assert!(tally.ok > 50, "too light a load: {}", tally.ok);
    assert_eq!(body(&request(&serve.addr, "/")), "the third\n");
}

#[test]
fn an_app_that_takes_sigterm_at_import_is_warned_and_the_worker_still_drains() {
    let dir = tempfile::tempdir().unwrap();
    support::write(
        &dir.path().join("grabby.py"),
        "import signal\nsignal.signal(signal.SIGTERM, lambda *a: None)\n\n\
         def app_factory(global_conf, **local):\n    def app(environ, start_response):\n        start_response('200 OK', [])\n        return [b'grabby\\n']\n    return app\n",
    );
    let ini = dir.path().join("grabby.ini");
    support::write(&ini, "[app:main]\nuse = call:grabby:app_factory\n");
    let mut serve = Running::start_with_env(
        Path::new(env!("CARGO_BIN_EXE_serve")),
        &["--graceful-timeout", "60", ini.to_str().unwrap()],
        &[("PYTHONPATH", dir.path().to_str().unwrap())],
    );
    serve.wait_for("replaced the handler of SIGTERM");
    assert_eq!(body(&request(&serve.addr, "/")), "grabby\n");
    // TERM drains and exits well before the 60 s a worker deaf to TERM would take.
    let started = Instant::now();
    serve.signal("TERM");
    assert_eq!(serve.wait_exit(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

/// A virtualenv with Pyramid, waitress, PasteDeploy and the test project `pyramid_hello`
/// (editable), as `tests/python/pyramid-venv.sh` makes it (`.ci/run` does, before the tests).
fn pyramid_venv() -> std::path::PathBuf {
    // Made once per test process, whichever test asks first; the others wait for it.
    static VENV: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    VENV.get_or_init(|| {
        let venv = root().join("target/python-tests/pyramid-venv");
        let out = std::process::Command::new(root().join("tests/python/pyramid-venv.sh"))
            .arg(&venv)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tests/python/pyramid-venv.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        venv
    })
    .clone()
}

#[test]
fn a_pyramid_projects_production_ini_is_served_unchanged() {
    let venv = pyramid_venv();
    let venv = venv.to_str().unwrap();
    let ini = "tests/python/pyramid_hello/production.ini";
    // serve check resolves the project's egg from the virtualenv's entry points.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_serve"))
        .args(["check", "--json", "--python", venv, ini])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plan = json(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(plan["app"]["egg"], "pyramid_hello#main");
    assert_eq!(plan["app"]["runtime"], "python");
    assert_eq!(plan["server"]["egg"], "waitress#main");
    assert_eq!(
        plan["app"]["local_conf"]["pyramid.includes"],
        "\npyramid_hello.extra"
    );
    assert!(plan["python"].as_str().unwrap().starts_with(venv), "{plan}");
    let serve = Running::start_with_env(
        Path::new(env!("CARGO_BIN_EXE_serve")),
        &["--python", venv, "--workers", "2", ini],
        &[],
    );
    assert_eq!(
        body(&request(&serve.addr, "/")),
        "Howdy from Pyramid at / (script '')\n"
    );
    // pyramid.includes, continuation line and all.
    assert_eq!(
        body(&request(&serve.addr, "/included")),
        "from an include\n"
    );
    let response = post(&serve.addr, "/echo", "posted body");
    assert_eq!(body(&response), "posted body");
    let response = request(&serve.addr, "/nowhere");
    assert!(
        response.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{response}"
    );
    // Logging as the file's [loggers] sections say, as pserve sets it up.
    let line = serve.wait_for("hello view called for /");
    assert!(line.contains(" INFO  [pyramid_hello:"), "{line}");
    assert!(line.contains("][serve-python-0] "), "{line}");
}

#[test]
fn a_rust_urlmap_mounts_the_pyramid_app_with_script_name_and_path_info() {
    let venv = pyramid_venv();
    let serve = Running::start_with_env(
        Path::new(env!("CARGO_BIN_EXE_serve")),
        &[
            "--python",
            venv.to_str().unwrap(),
            "tests/python/pyramid_hello/mounted.ini",
        ],
        &[],
    );
    assert_eq!(
        body(&request(&serve.addr, "/app/")),
        "Howdy from Pyramid at / (script '/app')\n"
    );
    assert_eq!(
        body(&request(&serve.addr, "/app/included")),
        "from an include\n"
    );
    assert_eq!(body(&request(&serve.addr, "/")), "Hello world!\n");
}

#[test]
fn file_wrapper_sends_a_regular_file_from_where_the_app_left_it() {
    let serve = conform(&[]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.bin");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, &data).unwrap();
    let mut stream = TcpStream::connect(&serve.addr).unwrap();
    write!(
        stream,
        "GET /file?{} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
        path.display()
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200 ok"), "{head}");
    // The worker knows the size: a Content-Length, not chunks.
    assert!(head.contains("content-length: 299995"), "{head}");
    assert!(
        response[split + 4..] == data[5..],
        "the file's bytes from offset 5"
    );
    // Not a regular file: the wrapper is iterated in Python, block by block.
    assert_eq!(
        body(&request(&serve.addr, "/file-pipe")),
        "in memory, ".repeat(1000)
    );
}

#[test]
fn another_python_version_or_a_missing_egg_is_a_clear_error_in_check_and_at_start() {
    let fake = root().join("tests/python/fake-python27");
    let fake = fake.to_str().unwrap();
    for args in [
        vec!["check", "--python", fake, "tests/python/conform.ini"],
        vec![
            "--python",
            fake,
            "--bind",
            "127.0.0.1:0",
            "tests/python/conform.ini",
        ],
    ] {
        let out = serve_output(&args);
        assert!(!out.status.success(), "{args:?}");
        let error = String::from_utf8_lossy(&out.stderr);
        assert!(
            error.contains("/opt/py27/bin/python is Python 2.7, but this serve embeds Python 3."),
            "{args:?}: {error}"
        );
    }
    // PasteDeploy's texts for a missing distribution and a missing entry point.
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("missing.ini");
    std::fs::write(&ini, "[app:main]\nuse = egg:NoSuchProject\n").unwrap();
    let out = serve_output(&["check", ini.to_str().unwrap()]);
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("No package metadata was found for NoSuchProject"),
        "{error}"
    );
    std::fs::write(&ini, "[app:main]\nuse = egg:PasteDeploy#nope\n").unwrap();
    let out = serve_output(&["check", ini.to_str().unwrap()]);
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(
        error.contains("Entry point 'nope' not found in egg 'PasteDeploy'"),
        "{error}"
    );
}

#[test]
fn a_python_composite_loads_its_apps_with_pastedeploy_itself() {
    let pythonpath = root().join("tests/python");
    let serve = Running::start_with_env(
        Path::new(env!("CARGO_BIN_EXE_serve")),
        &["tests/python/composite.ini"],
        &[("PYTHONPATH", pythonpath.to_str().unwrap())],
    );
    let env = json(&body(&request(&serve.addr, "/one/environ")));
    assert_eq!(env["SCRIPT_NAME"], "/one");
    assert_eq!(env["PATH_INFO"], "/environ");
    assert_eq!(env["_conf"]["local"], serde_json::json!({"which": "first"}));
    assert_eq!(env["_conf"]["global"]["greeting"], "composed");
    let response = request(&serve.addr, "/two/").to_ascii_lowercase();
    assert!(
        response.contains("x-python-filter: via-filter-with\r\n"),
        "{response}"
    );
    assert_eq!(body(&response), "conform\n");
    assert!(request(&serve.addr, "/three").starts_with("HTTP/1.1 404 "));
}

#[test]
fn threads_are_python_threads_that_serve_requests_side_by_side() {
    let serve = conform(&["--threads", "3"]);
    let env = json(&body(&request(&serve.addr, "/environ")));
    assert_eq!(env["wsgi.multithread"], true);
    assert_eq!(env["wsgi.multiprocess"], false);
    // Three requests that each sleep 0.6 s in Python finish together, not one after another.
    let started = Instant::now();
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let addr = serve.addr.clone();
            std::thread::spawn(move || body(&request(&addr, "/slow?0.6")))
        })
        .collect();
    for call in calls {
        assert_eq!(call.join().unwrap(), "slow\n");
    }
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_drained_worker_runs_the_apps_atexit_functions() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("atexit.log");
    let pythonpath = root().join("tests/python");
    let mut serve = Running::start_with_env(
        Path::new(env!("CARGO_BIN_EXE_serve")),
        &["--workers", "2", "tests/python/conform.ini"],
        &[
            ("PYTHONPATH", pythonpath.to_str().unwrap()),
            ("CONFORM_ATEXIT", marker.to_str().unwrap()),
        ],
    );
    assert_eq!(body(&request(&serve.addr, "/")), "conform\n");
    serve.signal("TERM");
    assert_eq!(serve.wait_exit(), Some(0));
    let text = std::fs::read_to_string(&marker).unwrap_or_default();
    assert_eq!(
        text.lines().filter(|l| l.starts_with("exited ")).count(),
        2,
        "{text:?}"
    );
}

#[test]
fn an_unread_request_body_does_not_hold_up_the_next_request_on_the_connection() {
    let serve = conform(&[]);
    let mut stream = TcpStream::connect(&serve.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // /cycle ignores its body and keeps its environ (and wsgi.input) alive in a reference
    // cycle; 1 MiB is far more than the pump reads ahead.
    let payload = "x".repeat(1 << 20);
    write!(
        stream,
        "POST /cycle HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n",
        payload.len()
    )
    .unwrap();
    let writer = {
        let mut stream = stream.try_clone().unwrap();
        std::thread::spawn(move || {
            let _ = stream.write_all(payload.as_bytes());
            let _ = stream.write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        })
    };
    let mut response = String::new();
    let started = Instant::now();
    // hyper answers both, or closes after the first; neither may hang.
    let _ = stream.read_to_string(&mut response);
    writer.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
}
