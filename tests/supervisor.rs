//! End-to-end tests of the supervisor: reloads under load with zero failed requests, broken
//! reloads that keep the old generation serving, killed, crashing and blocked workers, stops,
//! and resource use across many reloads. Faulty apps come from `examples/fault_eggs.rs`, a
//! program that embeds `serve` with test-only eggs.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use support::load::{Client, Load};
use support::{example, free_port, get, next_notification, notify_socket, pids, write, Running};

/// A deploy file answering `TAG: Hello world!` at `/`, with an echo at `/echo`.
fn versioned(tag: &str, workers: usize, extra: &str) -> String {
    format!(
        "[composite:main]\nuse = egg:Paste#urlmap\n/ = hello\n/echo = echo\n\
         [pipeline:hello]\npipeline = tag app\n[filter:tag]\nuse = egg:minimal\nprefix = {tag}:\n\
         [app:app]\nuse = egg:minimal\n[app:echo]\nuse = egg:serve#echo\n{extra}\
         [server:main]\nuse = egg:serve#http\nworkers = {workers}\n"
    )
}

fn deploy_dir(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("deploy.ini");
    write(&ini, text);
    (dir, ini)
}

#[test]
fn twenty_reloads_under_load_fail_no_request_and_switch_the_answer() {
    let (_dir, ini) = deploy_dir(&versioned("v0", 2, ""));
    let serve = Running::start(&[ini.to_str().unwrap()]);
    let load = Load::start(
        &serve.addr,
        &[
            Client::KeepAliveGet,
            Client::KeepAliveGet,
            Client::FreshGet,
            Client::KeepAlivePost,
        ],
    );
    for n in 1..=20u64 {
        write(&ini, &versioned(&format!("v{n}"), 2, ""));
        serve.signal("HUP");
        serve.wait_for_new(&format!("-> {} in", n + 1));
    }
    // Once the last old generation has stopped, every answer is the last config's.
    serve.wait_for_new("of generation 20 stopped");
    let latest = get(&serve.addr, "/");
    let tally = load.finish();
    assert!(
        tally.failures.is_empty(),
        "{} failed requests of {}: {:?}",
        tally.failures.len(),
        tally.ok + tally.failures.len() as u64,
        &tally.failures[..tally.failures.len().min(10)]
    );
    assert!(
        tally.ok > 100,
        "the load was too light to mean anything: {}",
        tally.ok
    );
    assert_eq!(latest, "v20: Hello world!\n");
}

#[test]
fn broken_reloads_keep_the_old_generation_serving() {
    let (_dir, ini) = deploy_dir(&versioned("good", 2, ""));
    let serve = Running::start_binary(
        &example("fault_eggs"),
        &["--boot-timeout", "2", ini.to_str().unwrap()],
    );
    let load = Load::start(
        &serve.addr,
        &[
            Client::KeepAliveGet,
            Client::FreshGet,
            Client::KeepAlivePost,
        ],
    );
    let broken: [(&str, String, &str); 5] = [
        (
            "bad INI line",
            versioned("bad", 2, "this line has no delimiter\n"),
            "deploy.ini:14: line has no '=' or ':'",
        ),
        (
            "unknown egg",
            versioned("bad", 2, "").replace("egg:minimal\nprefix", "egg:nosuch\nprefix"),
            "No package metadata was found for nosuch",
        ),
        (
            "failing factory",
            versioned("bad", 2, "").replace(
                "[app:app]\nuse = egg:minimal",
                "[app:app]\nuse = egg:test#fail",
            ),
            "reason: this factory always fails",
        ),
        (
            "crash at boot",
            versioned("bad", 2, "").replace(
                "[app:app]\nuse = egg:minimal",
                "[app:app]\nuse = egg:test#abort",
            ),
            "signal: 6",
        ),
        (
            "never ready",
            versioned("bad", 2, "").replace(
                "[app:app]\nuse = egg:minimal",
                "[app:app]\nuse = egg:test#hang",
            ),
            "not ready within the boot timeout",
        ),
    ];
    for (what, text, cause) in &broken {
        write(&ini, text);
        serve.signal("HUP");
        let line = serve.wait_for_new("failed");
        assert!(line.contains(cause), "{what}: {line}");
        assert!(
            line.contains("keeps serving") || line.contains("reload failed"),
            "{what}: {line}"
        );
        assert_eq!(get(&serve.addr, "/"), "good: Hello world!\n", "{what}");
    }
    write(&ini, &versioned("fixed", 2, ""));
    serve.signal("HUP");
    // Failed reloads used generations 2 to 4; numbers are never reused.
    serve.wait_for_new("reloaded: generation 1 -> 5");
    serve.wait_for_new("of generation 1 stopped");
    serve.wait_for_new("of generation 1 stopped");
    assert_eq!(get(&serve.addr, "/"), "fixed: Hello world!\n");
    let tally = load.finish();
    assert!(
        tally.failures.is_empty(),
        "{:?}",
        &tally.failures[..tally.failures.len().min(10)]
    );
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn a_killed_worker_is_replaced() {
    let (_dir, ini) = deploy_dir(&versioned("v", 2, ""));
    let serve = Running::start(&[ini.to_str().unwrap()]);
    let workers = pids(&serve.wait_for("ready: generation 1"));
    assert_eq!(workers.len(), 2);
    let load = Load::start(&serve.addr, &[Client::FreshGet, Client::FreshGet]);
    std::process::Command::new("kill")
        .args(["-KILL", &workers[0].to_string()])
        .status()
        .unwrap();
    let line = serve.wait_for_new("restarting it in");
    assert!(line.contains(&format!("(pid {})", workers[0])), "{line}");
    serve.wait_for_new("of generation 1 ready");
    let tally = load.finish();
    // Fresh connections on the other worker, or queued in the shared socket, never fail; only
    // a request the killed worker had already accepted can.
    assert!(tally.failures.len() <= 2, "{:?}", tally.failures);
    assert_eq!(get(&serve.addr, "/"), "v: Hello world!\n");
}

#[test]
fn a_crash_looping_worker_after_a_reload_is_restarted_with_growing_pauses_while_the_other_serves() {
    let (_dir, ini) = deploy_dir(&versioned("v", 2, ""));
    let serve = Running::start_binary(&example("fault_eggs"), &[ini.to_str().unwrap()]);
    let crashing = versioned("v", 2, "").replace(
        "[app:app]\nuse = egg:minimal",
        "[app:app]\nuse = egg:test#crash_later\nworker = 1\nms = 50",
    );
    write(&ini, &crashing);
    serve.signal("HUP");
    serve.wait_for_new("reloaded: generation 1 -> 2");
    let mut delays = Vec::new();
    for _ in 0..4 {
        let line = serve.wait_for_new("restarting it in");
        assert!(line.contains("worker 1 "), "{line}");
        delays.push(line.rsplit("restarting it in ").next().unwrap().to_owned());
    }
    assert_eq!(delays, ["100ms", "200ms", "400ms", "800ms"]);
    // Worker 0 serves throughout.
    for _ in 0..5 {
        assert_eq!(get(&serve.addr, "/"), "v: still here\n");
    }
}

#[test]
fn a_blocked_worker_is_killed_after_the_timeout_and_replaced() {
    let ini_text = versioned("v", 1, "").replace("/echo = echo", "/echo = echo\n/block = block")
        + "[app:block]\nuse = egg:test#block\nseconds = 60\n";
    let (_dir, ini) = deploy_dir(&ini_text);
    let serve = Running::start_binary(
        &example("fault_eggs"),
        &["--timeout", "2", ini.to_str().unwrap()],
    );
    let blocked = block_a_worker(&serve.addr);
    serve.wait_for_new("sent no heartbeat");
    serve.wait_for_new("restarting it in");
    serve.wait_for_new("of generation 1 ready");
    assert_eq!(get(&serve.addr, "/"), "v: Hello world!\n");
    blocked.join().unwrap();
}

#[test]
fn term_finishes_a_slow_request_then_exits_and_idle_term_is_quick() {
    let (_dir, ini) = deploy_dir(
        "[app:main]\nuse = egg:test#sleep\n[server:main]\nuse = egg:serve#http\nworkers = 2\n",
    );
    let mut serve = Running::start_binary(&example("fault_eggs"), &[ini.to_str().unwrap()]);
    let addr = serve.addr.clone();
    let slow = std::thread::spawn(move || support::request(&addr, "/?1500"));
    serve.wait_for_new("test#sleep: sleeping 1500 ms");
    serve.signal("TERM");
    let response = slow.join().unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(support::body(&response), "slept 1500\n");
    assert_eq!(serve.wait_exit(), Some(0));

    let (_dir, ini) = deploy_dir(&versioned("v", 2, ""));
    let mut idle = Running::start(&[ini.to_str().unwrap()]);
    let asked = Instant::now();
    idle.signal("TERM");
    assert_eq!(idle.wait_exit(), Some(0));
    assert!(
        asked.elapsed() < Duration::from_millis(200),
        "idle stop took {:?}",
        asked.elapsed()
    );
}

#[test]
fn workers_die_with_a_killed_supervisor_and_the_port_is_free_again() {
    let (_dir, ini) = deploy_dir(&versioned("v", 2, ""));
    let mut serve = Running::start(&[ini.to_str().unwrap()]);
    let workers = pids(&serve.wait_for("ready: generation 1"));
    let addr = serve.addr.clone();
    serve.child.kill().unwrap();
    serve.child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(1);
    while workers.iter().any(|p| alive(*p)) {
        assert!(
            Instant::now() < deadline,
            "workers outlived their supervisor by a second"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::net::TcpListener::bind(&addr).unwrap();
}

fn resources(pid: u32) -> (usize, u64, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    (fds, field("Threads:"), field("VmRSS:"))
}

#[test]
fn two_hundred_reloads_leak_no_fd_thread_or_memory() {
    let (_dir, ini) = deploy_dir(&versioned("v", 1, ""));
    let serve = Running::start(&[ini.to_str().unwrap()]);
    // Warm up, so lazily allocated buffers are in place before measuring.
    for n in 2..=11 {
        serve.signal("HUP");
        serve.wait_for_new(&format!("-> {n} in"));
    }
    // Measure with no old worker left (its status socket would count).
    serve.wait_for_new("of generation 10 stopped");
    let before = resources(serve.pid());
    for n in 12..=211 {
        serve.signal("HUP");
        serve.wait_for_new(&format!("-> {n} in"));
    }
    serve.wait_for_new("of generation 210 stopped");
    let after = resources(serve.pid());
    assert_eq!(after.0, before.0, "open fds changed");
    assert_eq!(after.1, before.1, "threads changed");
    assert!(
        after.2 < before.2 + 1024,
        "RSS grew from {} KiB to {} KiB",
        before.2,
        after.2
    );
    assert_eq!(get(&serve.addr, "/"), "v: Hello world!\n");
}

#[test]
fn max_requests_recycles_workers_under_load_without_losing_a_request() {
    let (_dir, ini) = deploy_dir(&versioned("v", 2, ""));
    let serve = Running::start(&[
        "--max-requests",
        "100",
        "--max-requests-jitter",
        "20",
        ini.to_str().unwrap(),
    ]);
    let load = Load::start(
        &serve.addr,
        &[
            Client::KeepAliveGet,
            Client::FreshGet,
            Client::KeepAlivePost,
        ],
    );
    for _ in 0..3 {
        serve.wait_for_new("recycled");
    }
    let tally = load.finish();
    assert!(
        tally.failures.is_empty(),
        "{:?}",
        &tally.failures[..tally.failures.len().min(10)]
    );
    assert!(tally.ok >= 300, "{}", tally.ok);
}

#[test]
fn reload_on_save_of_the_ini_or_an_include_and_a_broken_save_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("deploy.ini");
    let inc = dir.path().join("app.ini");
    let top = |tag: &str| {
        format!("[pipeline:main]\npipeline = tag app\n[filter:tag]\nuse = egg:minimal\nprefix = {tag}:\n[app:app]\nuse = config:app.ini\n")
    };
    write(&inc, "[app:main]\nuse = egg:minimal\n");
    write(&ini, &top("one"));
    let serve = Running::start(&["--reload", ini.to_str().unwrap()]);
    serve.wait_for("watching 2 files for changes");
    assert_eq!(get(&serve.addr, "/"), "one: Hello world!\n");
    let load = Load::start(&serve.addr, &[Client::KeepAliveGet, Client::FreshGet]);
    // Saving the INI reloads.
    write(&ini, &top("two"));
    serve.wait_for_new("reloaded: generation 1 -> 2");
    serve.wait_for_new("of generation 1 stopped");
    assert_eq!(get(&serve.addr, "/"), "two: Hello world!\n");
    // Saving the included file reloads too.
    write(&inc, "[app:main]\nuse = egg:minimal\nuse_class = true\n");
    serve.wait_for_new("reloaded: generation 2 -> 3");
    // A broken save keeps generation 3 serving.
    write(&ini, "[pipeline:main]\npipeline = tag app\nbroken line\n");
    let line = serve.wait_for_new("reload failed");
    assert!(line.contains("deploy.ini:3:"), "{line}");
    assert_eq!(get(&serve.addr, "/"), "two: Hello world!\n");
    // And the fix is picked up.
    write(&ini, &top("three"));
    serve.wait_for_new("reloaded: generation 3 -> 4");
    serve.wait_for_new("of generation 3 stopped");
    assert_eq!(get(&serve.addr, "/"), "three: Hello world!\n");
    let tally = load.finish();
    assert!(
        tally.failures.is_empty(),
        "{:?}",
        &tally.failures[..tally.failures.len().min(10)]
    );
}

#[test]
fn pid_file_user_and_check_config() {
    let (dir, ini) = deploy_dir(&versioned("v", 1, ""));
    let pid_file = dir.path().join("serve.pid");
    let mut serve = Running::start(&[
        "--pid",
        pid_file.to_str().unwrap(),
        "--user",
        "nobody",
        ini.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(&pid_file).unwrap().trim(),
        serve.pid().to_string()
    );
    let worker = pids(&serve.wait_for("ready: generation 1"))[0];
    let status = std::fs::read_to_string(format!("/proc/{worker}/status")).unwrap();
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap()
        .to_owned();
    let nobody = std::process::Command::new("id")
        .args(["-u", "nobody"])
        .output()
        .unwrap();
    let nobody = String::from_utf8(nobody.stdout).unwrap().trim().to_owned();
    assert!(
        uid_line.split_whitespace().skip(1).all(|u| u == nobody),
        "{uid_line}"
    );
    assert_eq!(get(&serve.addr, "/"), "v: Hello world!\n");
    // `ps` names.
    let cmdline = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
            .unwrap()
            .replace('\0', " ")
    };
    assert!(
        cmdline(serve.pid()).starts_with("serve: supervisor "),
        "{}",
        cmdline(serve.pid())
    );
    assert!(
        cmdline(worker as u32).starts_with("serve: worker 1/0 "),
        "{}",
        cmdline(worker as u32)
    );
    serve.signal("TERM");
    assert_eq!(serve.wait_exit(), Some(0));
    assert!(!pid_file.exists(), "the pid file outlived the supervisor");

    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_serve"))
        .args(["--check-config", ini.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    write(
        &ini,
        "[app:main]\nuse = egg:serve#static\nroot = /nonexistent\n",
    );
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_serve"))
        .args(["--check-config", ini.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr)
        .contains("deploy.ini:3: [app:main] serve#static: root: /nonexistent is not a directory"));
}

/// Copies an executable with `cp`, so that no descriptor open for writing it can leak into a
/// child that another test thread forks meanwhile (exec'ing it would fail with ETXTBSY).
fn copy_executable(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn usr2_upgrades_the_binary_in_place_without_failing_a_request() {
    let (dir, ini) = deploy_dir(&versioned("v", 2, ""));
    let binary = dir.path().join("serve-bin");
    copy_executable(Path::new(env!("CARGO_BIN_EXE_serve")), &binary);
    let serve = Running::start_binary(&binary, &[ini.to_str().unwrap()]);
    let load = Load::start(
        &serve.addr,
        &[
            Client::KeepAliveGet,
            Client::FreshGet,
            Client::KeepAlivePost,
        ],
    );

    // A binary that does not start leaves the old supervisor running.
    let broken = dir.path().join("broken");
    copy_executable(Path::new("/bin/false"), &broken);
    std::fs::rename(&broken, &binary).unwrap();
    serve.signal("USR2");
    serve.wait_for_new("upgrade failed");
    assert_eq!(get(&serve.addr, "/"), "v: Hello world!\n");

    // The new binary: serve with the test eggs, renamed over the file as a package manager does.
    let staged = dir.path().join("staged");
    copy_executable(&example("fault_eggs"), &staged);
    std::fs::rename(&staged, &binary).unwrap();
    serve.signal("USR2");
    serve.wait_for_new("upgraded in place");
    serve.wait_for_new("reloaded: generation 1 -> 2");
    serve.wait_for_new("of generation 1 stopped");
    serve.wait_for_new("of generation 1 stopped");
    let tally = load.finish();
    assert!(
        tally.failures.is_empty(),
        "{:?}",
        &tally.failures[..tally.failures.len().min(10)]
    );
    // Same supervisor process, now running the new binary, and so are its workers.
    let exe = std::fs::read_link(format!("/proc/{}/exe", serve.pid())).unwrap();
    assert_eq!(exe, binary);
    // Only the new binary knows egg:test#sleep.
    write(
        &ini,
        "[app:main]\nuse = egg:test#sleep\n[server:main]\nuse = egg:serve#http\nworkers = 2\n",
    );
    serve.signal("HUP");
    serve.wait_for_new("reloaded: generation 2 -> 3");
    serve.wait_for_new("of generation 2 stopped");
    serve.wait_for_new("of generation 2 stopped");
    assert_eq!(get(&serve.addr, "/?5"), "slept 5\n");
}

#[test]
fn ttin_and_ttou_add_and_remove_a_worker() {
    let (_dir, ini) = deploy_dir(&versioned("v", 2, ""));
    let serve = Running::start(&[ini.to_str().unwrap()]);
    serve.signal("TTIN");
    serve.wait_for_new("SIGTTIN: 3 workers");
    let added = serve.wait_for_new("worker 2 (pid");
    assert!(added.contains("of generation 1 ready"), "{added}");
    serve.signal("TTOU");
    serve.wait_for_new("SIGTTOU: 2 workers");
    let stopped = serve.wait_for_new("stopped");
    assert!(stopped.contains("worker 2 (pid"), "{stopped}");
    assert_eq!(get(&serve.addr, "/"), "v: Hello world!\n");
}

#[test]
fn a_reload_binds_new_addresses_and_closes_dropped_ones() {
    let (a, b) = (free_port(), free_port());
    let with_listen = |ports: &[u16]| {
        let listen: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        versioned("v", 1, "").replace(
            "workers = 1\n",
            &format!("workers = 1\nlisten = {}\n", listen.join(" ")),
        )
    };
    let (_dir, ini) = deploy_dir(&with_listen(&[a]));
    let serve = Running::start_as_configured(&[ini.to_str().unwrap()]);
    assert_eq!(serve.addr, format!("127.0.0.1:{a}"));
    write(&ini, &with_listen(&[a, b]));
    serve.signal("HUP");
    serve.wait_for_new(&format!("listening on http://127.0.0.1:{b}"));
    serve.wait_for_new("reloaded: generation 1 -> 2");
    assert_eq!(get(&format!("127.0.0.1:{b}"), "/"), "v: Hello world!\n");
    assert_eq!(get(&format!("127.0.0.1:{a}"), "/"), "v: Hello world!\n");
    write(&ini, &with_listen(&[b]));
    serve.signal("HUP");
    serve.wait_for_new(&format!("no longer listening on http://127.0.0.1:{a}"));
    serve.wait_for_new("of generation 2 stopped");
    assert_eq!(get(&format!("127.0.0.1:{b}"), "/"), "v: Hello world!\n");
    assert!(
        TcpStream::connect(format!("127.0.0.1:{a}")).is_err(),
        "port {a} still accepts"
    );
    // An address that cannot be bound fails the reload and keeps everything as it was.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let c = taken.local_addr().unwrap().port();
    write(&ini, &with_listen(&[b, c]));
    serve.signal("HUP");
    let line = serve.wait_for_new("reload failed");
    assert!(
        line.contains(&format!("cannot listen on 127.0.0.1:{c}")),
        "{line}"
    );
    assert_eq!(get(&format!("127.0.0.1:{b}"), "/"), "v: Hello world!\n");
}

#[test]
fn reload_edge_cases_from_review() {
    // TTIN during a pending reload: the reload completes and the slot is added.
    let (_dir, ini) = deploy_dir(&versioned("v", 2, ""));
    let serve = Running::start_binary(&example("fault_eggs"), &[ini.to_str().unwrap()]);
    serve.signal("HUP");
    serve.signal("TTIN");
    serve.wait_for_new("reloaded: generation 1 -> 2");
    // (A slot 2 started for generation 1 may come and go; generation 2 gets one too.)
    while !serve
        .wait_for_new("worker 2 (pid")
        .contains("of generation 2 ready")
    {}

    // A failed reload leaves the serving config in place for respawns.
    write(
        &ini,
        &versioned("v", 2, "").replace(
            "[app:app]\nuse = egg:minimal",
            "[app:app]\nuse = egg:test#fail",
        ),
    );
    serve.signal("HUP");
    serve.wait_for_new("reload to generation 3 failed");
    let ready = serve.history_line("worker 0 (pid", "of generation 2 ready");
    let pid: i32 = ready
        .split("(pid ")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    serve.wait_for_new("restarting it in");
    serve.wait_for_new("of generation 2 ready");
    assert_eq!(get(&serve.addr, "/"), "v: Hello world!\n");

    // `workers` from the file applies on reload; generation numbers are never reused.
    write(&ini, &versioned("w", 3, ""));
    serve.signal("HUP");
    let line = serve.wait_for_new("reloaded: generation 2 -> 4");
    assert_eq!(
        line.rsplit("new pids ")
            .next()
            .unwrap()
            .split_whitespace()
            .count(),
        3,
        "{line}"
    );

    // USR2 followed at once by HUP: the signal waits for the new image's handlers.
    serve.signal("USR2");
    serve.signal("HUP");
    serve.wait_for_new("upgraded in place");
    serve.wait_for_new("reloaded: generation 4 -> 5");
    assert_eq!(get(&serve.addr, "/"), "w: Hello world!\n");
}

#[test]
fn a_heartbeat_timeout_shorter_than_two_heartbeats_is_refused() {
    let (_dir, ini) =
        deploy_dir(&versioned("v", 1, "").replace("workers = 1\n", "workers = 1\ntimeout = 0.5\n"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_serve"))
        .args(["--bind", "127.0.0.1:0", ini.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("must be 0 (no heartbeat check) or at least 2s"));
}

/// A request to `/block` (test#block) on a thread: the worker that takes it stops heartbeating.
fn block_a_worker(addr: &str) -> JoinHandle<()> {
    let addr = addr.to_owned();
    std::thread::spawn(move || {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let _ = stream.write_all(b"GET /block HTTP/1.1\r\nHost: t\r\n\r\n");
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
    })
}

#[test]
fn the_service_manager_hears_ready_reloading_and_stopping() {
    let (dir, ini) = deploy_dir(&versioned("v", 2, ""));
    let socket_path = dir.path().join("notify.sock");
    let socket = notify_socket(&socket_path);
    let next = || next_notification(&socket).0;
    let mut serve = Running::start_with_env(
        &example("fault_eggs"),
        &[ini.to_str().unwrap()],
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())],
    );
    assert_eq!(
        next(),
        format!(
            "READY=1\nMAINPID={}\nSTATUS=generation 1: 2/2 workers ready; started\n",
            serve.pid()
        )
    );
    let worker = pids(&serve.wait_for("ready: generation 1"))[0];
    let environ = std::fs::read(format!("/proc/{worker}/environ")).unwrap();
    assert!(
        !String::from_utf8_lossy(&environ).contains("NOTIFY_SOCKET"),
        "a worker inherited NOTIFY_SOCKET"
    );

    // A reload: RELOADING with the monotonic clock, then READY once the new generation serves.
    write(&ini, &versioned("w", 2, ""));
    serve.signal("HUP");
    let reloading = next();
    let lines: Vec<&str> = reloading.lines().collect();
    assert_eq!(lines[0], "RELOADING=1", "{reloading}");
    let usec: i128 = lines[1]
        .strip_prefix("MONOTONIC_USEC=")
        .unwrap()
        .parse()
        .unwrap();
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).unwrap();
    let now_usec = i128::from(now.tv_sec()) * 1_000_000 + i128::from(now.tv_nsec()) / 1000;
    assert!(
        (now_usec - usec).abs() < 10_000_000,
        "MONOTONIC_USEC {usec} is not now ({now_usec})"
    );
    let ready = next();
    assert!(
        ready.starts_with("READY=1\nSTATUS=generation 2: 2/2 workers ready; last reload ok ("),
        "{ready}"
    );

    // A config that does not load, and one whose factory fails: READY again, with the failure.
    write(&ini, "[app:main]\nbroken\n");
    serve.signal("HUP");
    assert!(next().starts_with("RELOADING=1\n"));
    let failed = next();
    assert!(
        failed.starts_with("READY=1\nSTATUS=generation 2: 2/2 workers ready; last reload failed: "),
        "{failed}"
    );
    assert!(failed.contains("deploy.ini:2:"), "{failed}");
    write(
        &ini,
        &versioned("x", 2, "").replace(
            "[app:app]\nuse = egg:minimal",
            "[app:app]\nuse = egg:test#fail",
        ),
    );
    serve.signal("HUP");
    assert!(next().starts_with("RELOADING=1\n"));
    let failed = next();
    assert!(
        failed.contains("last reload failed: worker")
            && failed.contains("this factory always fails"),
        "{failed}"
    );
    assert_eq!(get(&serve.addr, "/"), "w: Hello world!\n");

    serve.signal("TERM");
    assert!(next().starts_with("STOPPING=1\nSTATUS="));
    assert_eq!(serve.wait_exit(), Some(0));
}

#[test]
fn the_watchdog_is_fed_only_while_workers_heartbeat() {
    let ini_text = versioned("v", 1, "").replace("/echo = echo", "/echo = echo\n/block = block")
        + "[app:block]\nuse = egg:test#block\nseconds = 60\n";
    let (dir, ini) = deploy_dir(&ini_text);
    let socket_path = dir.path().join("notify.sock");
    let socket = notify_socket(&socket_path);
    let next = || next_notification(&socket).0;
    let serve = Running::start_with_env(
        &example("fault_eggs"),
        &["--timeout", "3", ini.to_str().unwrap()],
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
        ],
    );
    assert!(next().starts_with("READY=1\n"));
    assert_eq!(next(), "WATCHDOG=1\n");
    let worker = pids(&serve.wait_for("ready: generation 1"))[0];
    let environ =
        String::from_utf8_lossy(&std::fs::read(format!("/proc/{worker}/environ")).unwrap())
            .into_owned();
    assert!(
        !environ.contains("WATCHDOG_USEC"),
        "a worker inherited WATCHDOG_USEC"
    );

    // The only worker blocks: no more WATCHDOG=1 until it has been replaced.
    let blocked = block_a_worker(&serve.addr);
    serve.wait_for_new("not feeding systemd's watchdog");
    serve.wait_for_new("sent no heartbeat");
    serve.wait_for_new("of generation 1 ready");
    socket.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 4096];
    while socket.recv(&mut buf).is_ok() {}
    socket.set_nonblocking(false).unwrap();
    assert_eq!(next(), "WATCHDOG=1\n");
    blocked.join().unwrap();
}

#[test]
fn a_hup_during_a_pending_reload_reloads_again_after_it() {
    let (_dir, ini) = deploy_dir(&versioned("v", 1, ""));
    let serve = Running::start_binary(
        &example("fault_eggs"),
        &["--boot-timeout", "2", ini.to_str().unwrap()],
    );
    // A generation that never gets ready keeps the reload pending until the boot timeout.
    write(
        &ini,
        &versioned("x", 1, "").replace(
            "[app:app]\nuse = egg:minimal",
            "[app:app]\nuse = egg:test#hang",
        ),
    );
    serve.signal("HUP");
    serve.wait_for_new("SIGHUP: starting generation 2");
    // The fix arrives meanwhile: its HUP is not lost.
    write(&ini, &versioned("w", 1, ""));
    serve.signal("HUP");
    serve.wait_for_new("reloading again after it");
    serve.wait_for_new("reload to generation 2 failed");
    serve.wait_for_new("reloaded: generation 1 -> 3");
    // (Until it has seen its TERM, the old worker may still take a connection.)
    serve.wait_for_new("of generation 1 stopped");
    assert_eq!(get(&serve.addr, "/"), "w: Hello world!\n");
}

#[test]
fn a_burst_of_connections_is_spread_over_the_workers() {
    let (_dir, ini) = deploy_dir(
        "[app:main]\nuse = egg:serve#health\n[server:main]\nuse = egg:serve#http\nworkers = 4\n",
    );
    let serve = Running::start(&[ini.to_str().unwrap()]);
    serve.wait_for("ready: generation 1, 4 workers");
    // 40 connections at once, as a load generator opens them, each then kept open.
    let mut streams: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(&serve.addr).unwrap())
        .collect();
    let mut per_pid: HashMap<String, usize> = HashMap::new();
    for stream in &mut streams {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        while !answer.ends_with(b"}\n") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "connection closed");
            answer.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&answer);
        let pid = text
            .split("\"pid\":")
            .nth(1)
            .unwrap()
            .split(',')
            .next()
            .unwrap();
        *per_pid.entry(pid.to_owned()).or_default() += 1;
    }
    // Without spreading, the worker that wakes first takes nearly all of them.
    let most = per_pid.values().max().copied().unwrap_or(0);
    assert!(
        per_pid.len() >= 3 && most <= 30,
        "connections per worker: {per_pid:?}"
    );
}
