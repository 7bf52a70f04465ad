//! End-to-end tests of `serve CONFIG_URI`: the real binary serving the example configs on a
//! free loopback port, answering, cutting off a slow client, and draining on SIGTERM.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{body, dechunk, raw, request, root, Running};

#[test]
fn the_readme_command_serves_the_tutorial_app_and_drains_on_sigterm() {
    let mut serve = Running::start(&["configs/tutorial.ini"]);
    let response = request(&serve.addr, "/");
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("content-type: text/plain\r\n"),
        "{response}"
    );
    assert_eq!(body(&response), "Hello world!\n");
    serve.signal("TERM");
    serve.wait_for("SIGTERM: draining");
    assert_eq!(serve.wait_exit(), Some(0));
}

#[test]
fn the_tutorial_pipeline_prefixes_the_body() {
    let serve = Running::start(&["configs/tutorial-pipeline.ini"]);
    assert_eq!(body(&request(&serve.addr, "/")), "yikes: Hello world!\n");
}

#[test]
fn the_production_example_routes_by_prefix() {
    let serve = Running::start(&["configs/production.ini"]);
    assert_eq!(body(&request(&serve.addr, "/")), "Example: Hello world!\n");
    assert_eq!(body(&request(&serve.addr, "/api/x")), "Hello world!\n");
}

#[test]
fn a_slowloris_client_is_cut_off_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("slow.ini");
    std::fs::write(&ini, "[app:main]\nuse = egg:minimal\n[server:main]\nuse = egg:serve#http\nheader_timeout = 0.5\n").unwrap();
    let serve = Running::start(&[ini.to_str().unwrap()]);
    let mut slow = TcpStream::connect(&serve.addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Dribble: a")
        .unwrap();
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(body(&request(&serve.addr, "/")), "Hello world!\n");
    }
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut rest = Vec::new();
    let closed = slow.read_to_end(&mut rest).is_ok();
    assert!(
        closed && started.elapsed() < Duration::from_secs(10),
        "the slow client was not cut off"
    );
    assert!(!String::from_utf8_lossy(&rest).contains("200 OK"));
}

#[test]
fn a_second_signal_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("t.ini");
    std::fs::write(&ini, "[app:main]\nuse = egg:minimal\n").unwrap();
    let mut serve = Running::start(&["--graceful-timeout", "60", ini.to_str().unwrap()]);
    // Hold a connection open mid-request so the drain has something to wait for.
    let mut open = TcpStream::connect(&serve.addr).unwrap();
    open.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    serve.signal("TERM");
    serve.wait_for("SIGTERM: draining");
    serve.signal("INT");
    serve.wait_for("stopping now");
    assert_eq!(serve.wait_exit(), Some(0));
}

#[test]
fn an_address_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_serve"))
        .args(["--bind", &addr, "configs/tutorial.ini"])
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("error: cannot listen on {addr}: ")),
        "{stderr}"
    );
}

#[test]
fn the_static_egg_refuses_escapes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("public")).unwrap();
    std::fs::write(dir.path().join("public/ok.txt"), "public\n").unwrap();
    std::fs::write(dir.path().join("secret.txt"), "SECRET\n").unwrap();
    let ini = dir.path().join("static.ini");
    std::fs::write(&ini, "[app:main]\nuse = egg:serve#static\nroot = public\n").unwrap();
    let serve = Running::start(&[ini.to_str().unwrap()]);
    assert_eq!(body(&request(&serve.addr, "/ok.txt")), "public\n");
    for path in [
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E%2Fsecret.txt",
        "/..%2fsecret.txt",
        "/ok.txt/../../secret.txt",
        "//../secret.txt",
    ] {
        let response = raw(
            &serve.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
        );
        assert!(
            !response.contains("SECRET"),
            "{path} escaped the root:\n{response}"
        );
        assert!(response.starts_with("HTTP/1.1 4"), "{path}: {response}");
    }
}

#[test]
fn the_site_example_serves_files_health_and_a_proxied_api_streaming_a_large_body() {
    // The upstream: another serve, serving a 16 MiB file.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    let big: Vec<u8> = (0..16 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.path().join("data/big.bin"), &big).unwrap();
    let ini = dir.path().join("upstream.ini");
    std::fs::write(&ini, "[app:main]\nuse = egg:serve#static\nroot = data\n").unwrap();
    let upstream = Running::start(&[ini.to_str().unwrap()]);
    let site = Running::start(&[
        "configs/site.ini",
        &format!("api_upstream=http://{}", upstream.addr),
    ]);

    let page = request(&site.addr, "/");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let lower = page.to_ascii_lowercase();
    assert!(
        lower.contains("x-content-type-options: nosniff")
            && lower.contains("x-frame-options: deny"),
        "{page}"
    );
    assert!(lower.contains("x-request-id: "), "{page}");
    assert!(body(&page).contains("<h1>It works.</h1>"));
    assert!(body(&request(&site.addr, "/healthz")).starts_with("{\"status\":\"ok\""));
    // What the files lack falls through the cascade to the tutorial app.
    assert_eq!(
        body(&request(&site.addr, "/no-such-file")),
        "Hello world!\n"
    );
    // The request dump is for operators.
    assert!(request(&site.addr, "/debug/").starts_with("HTTP/1.1 401"));
    let dump = raw(&site.addr, "GET /debug/x HTTP/1.1\r\nHost: t\r\nAuthorization: Basic ZGVtbzpVKlU=\r\nConnection: close\r\n\r\n");
    assert!(
        body(&dump).starts_with("GET /x HTTP/1.1\nscript_name: \"/debug\"\npath_info: \"/x\"\n"),
        "{dump}"
    );

    // The 16 MiB body, through urlmap, limit, timeout and proxy, arrives whole.
    let mut stream = TcpStream::connect(&site.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "GET /api/big.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let payload = &response[split + 4..];
    let received = if head.contains("transfer-encoding: chunked") {
        dechunk(payload)
    } else {
        payload.to_vec()
    };
    assert_eq!(received.len(), big.len());
    assert!(
        received == big,
        "the body changed on its way through the proxy"
    );
    // The access log saw the requests.
    site.wait_for("\"GET /api/big.bin HTTP/1.1\" 200 16777216");
    site.wait_for("- demo [");
}

#[test]
fn an_embedding_program_serves_its_axum_app_behind_a_built_in_filter() {
    let example = support::example("axum_app");
    let check = Command::new(&example)
        .args(["check", "examples/axum.ini"])
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(String::from_utf8_lossy(&check.stdout)
        .contains("myapp#main (paste.app_factory)  [app:hello]"));
    let serve = Running::start_binary(&example, &["examples/axum.ini"]);
    let response = request(&serve.addr, "/hello?name=Ada");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("x-served-by: serve"),
        "{response}"
    );
    assert_eq!(body(&response), "Bonjour, Ada!\n");
    assert!(request(&serve.addr, "/nope").starts_with("HTTP/1.1 404"));
}

#[test]
fn sigusr1_reopens_the_access_log_and_unknown_server_keys_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("log.ini");
    std::fs::write(
        &ini,
        "[app:hello]\nuse = egg:minimal\n[filter:log]\nuse = egg:serve#accesslog\nfile = access.log\n\
         [pipeline:main]\npipeline = log hello\n[server:main]\nuse = egg:waitress#main\nurl_scheme = https\n",
    )
    .unwrap();
    let serve = Running::start(&["--threads", "2", ini.to_str().unwrap()]);
    serve.wait_for("log.ini:10: `url_scheme` is a setting of another server; serve ignores it");
    let log = dir.path().join("access.log");
    assert_eq!(body(&request(&serve.addr, "/first")), "Hello world!\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("GET /first")
    {
        assert!(
            Instant::now() < deadline,
            "the first line never reached the log"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::rename(&log, dir.path().join("access.log.1")).unwrap();
    serve.signal("USR1");
    serve.wait_for("worker 0: log files reopened");
    assert_eq!(body(&request(&serve.addr, "/second")), "Hello world!\n");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("GET /second")
    {
        assert!(
            Instant::now() < deadline,
            "the reopened log never got the second line"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let rotated = std::fs::read_to_string(dir.path().join("access.log.1")).unwrap();
    assert!(rotated.contains("GET /first") && !rotated.contains("GET /second"));
}
