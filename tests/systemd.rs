//! systemd's side of the protocol, played without a running systemd: socket activation through
//! `systemd-socket-activate` (systemd's own tool), and the FD store and `EXTEND_TIMEOUT_USEC`
//! through a stand-in notify socket that receives the fds as systemd would. A real systemd runs
//! these too, in `scripts/systemd/level2.sh`.
#![allow(clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::{
    example, free_port, get, next_notification, notification_starting, notify_socket, pids, write,
    Running,
};

const SOCKET_ACTIVATE: &str = "/usr/bin/systemd-socket-activate";

fn config(listen: &str, extra: &str) -> String {
    format!(
        "[app:main]\nuse = egg:minimal\n{extra}\n\
         [server:main]\nuse = egg:serve#http\nworkers = 2\n{listen}\n"
    )
}

/// The names of a process's environment variables.
fn environ(pid: i32) -> Vec<String> {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/environ")).unwrap())
        .split('\0')
        .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.to_owned()))
        .collect()
}

/// Whether a process was given any of the socket activation variables.
fn has_listen_vars(pid: i32) -> bool {
    environ(pid)
        .iter()
        .any(|k| ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"].contains(&k.as_str()))
}

#[test]
fn socket_activation_starts_on_the_first_connection_and_never_closes_a_socket() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("deploy.ini");
    let (web, other, extra, later) = (free_port(), free_port(), free_port(), free_port());
    let at = |port: u16| format!("127.0.0.1:{port}");
    // `web` by name, `other` by address; `extra` is named by no entry.
    write(
        &ini,
        &config(&format!("listen = systemd:web {}", at(other)), ""),
    );
    let mut command = Command::new(SOCKET_ACTIVATE);
    command
        .args(["-l", &at(web), "-l", &at(other), "-l", &at(extra)])
        .args(["--fdname=web:other:extra", "-E", "RUST_LOG"])
        .arg(env!("CARGO_BIN_EXE_serve"))
        .arg(&ini);
    let mut serve = Running::launch(command);
    serve.wait_for(&format!("Listening on {} as 5", at(extra)));
    assert!(
        !serve.history_line("Listening on", "as 3").is_empty(),
        "systemd-socket-activate listens"
    );

    // The first connection starts serve, which answers it.
    assert_eq!(get(&at(web), "/"), "Hello world!\n");
    serve.wait_for(&format!(
        "listening on http://{} (from systemd: socket activation, 'web')",
        at(web)
    ));
    serve.wait_for(&format!(
        "listening on http://{} (from systemd: socket activation, 'other')",
        at(other)
    ));
    let ready = serve.wait_for("ready: generation 1");
    for port in [other, extra] {
        assert_eq!(get(&at(port), "/"), "Hello world!\n");
    }
    // The check sees the variables where they are: serve itself was started with them.
    assert!(has_listen_vars(i32::try_from(serve.pid()).unwrap()));
    for worker in pids(&ready) {
        assert!(
            !has_listen_vars(worker),
            "worker {worker} inherited the LISTEN_* variables"
        );
    }

    // A reload to a config that names none of them: they are all still served, and the
    // new address too.
    write(&ini, &config(&format!("listen = {}", at(later)), ""));
    serve.signal("HUP");
    serve.wait_for("reloaded: generation 1 -> 2");
    for port in [web, other, extra, later] {
        assert_eq!(get(&at(port), "/"), "Hello world!\n", "port {port}");
    }
    // A name systemd did not pass is a failed reload that keeps serving.
    write(&ini, &config("listen = systemd:nope", ""));
    serve.signal("HUP");
    let failed = serve.wait_for("failed: ");
    assert!(
        failed.contains("systemd passed no socket named 'nope'"),
        "{failed}"
    );
    assert_eq!(get(&at(web), "/"), "Hello world!\n");

    serve.signal("TERM");
    assert_eq!(serve.wait_exit(), Some(0));
}

#[test]
fn the_fd_store_keeps_the_listening_socket_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("deploy.ini");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    write(&ini, &config(&format!("listen = {addr}"), ""));
    let socket_path = dir.path().join("notify.sock");
    let notify = notify_socket(&socket_path);
    let env = [
        ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
        ("FDSTORE", "4"),
    ];
    let mut first = Running::spawn_env(
        Path::new(env!("CARGO_BIN_EXE_serve")),
        &[ini.to_str().unwrap()],
        &env,
    );
    let name = format!("serve.fdstore.tcp-127.0.0.1_{port}");
    let (stored, mut fds) = notification_starting(&notify, "FDSTORE=1");
    assert_eq!(stored, format!("FDSTORE=1\nFDNAME={name}\n"));
    assert_eq!(fds.len(), 1);
    let held = fds.pop().unwrap();
    assert!(notification_starting(&notify, "READY=1")
        .0
        .contains("MAINPID="));

    // Stopped, with "systemd" holding the socket: a client connects and waits.
    first.signal("TERM");
    assert_eq!(first.wait_exit(), Some(0));
    let mut waiting = TcpStream::connect(&addr).unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    waiting
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();

    // The next start gets the socket back as systemd passes it: fd 3, LISTEN_* naming it.
    let raw = held.as_raw_fd();
    let mut command = Command::new("sh");
    command
        .args(["-c", "LISTEN_PID=$$ exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_serve"))
        .arg(&ini)
        .envs(env)
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", &name);
    // SAFETY: dup2 is async-signal-safe; `held` stays open in the parent until the child
    // has exec'd.
    unsafe {
        command.pre_exec(move || {
            if nix::libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let second = Running::launch(command);
    second.wait_for(&format!(
        "listening on http://{addr} (from systemd: the FD store)"
    ));
    let ready = second.wait_for("ready: generation 1");
    drop(held);
    let mut answer = String::new();
    waiting.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(support::body(&answer), "Hello world!\n");
    for worker in pids(&ready) {
        assert!(!has_listen_vars(worker));
    }

    // A reload that moves to another port takes the old socket out of the store and stores
    // the new one.
    let moved = free_port();
    write(&ini, &config(&format!("listen = 127.0.0.1:{moved}"), ""));
    second.signal("HUP");
    let (removed, _) = notification_starting(&notify, "FDSTOREREMOVE=1");
    assert_eq!(removed, format!("FDSTOREREMOVE=1\nFDNAME={name}\n"));
    let (stored, fds) = notification_starting(&notify, "FDSTORE=1");
    assert_eq!(
        stored,
        format!("FDSTORE=1\nFDNAME=serve.fdstore.tcp-127.0.0.1_{moved}\n")
    );
    assert_eq!(fds.len(), 1);
    assert_eq!(get(&format!("127.0.0.1:{moved}"), "/"), "Hello world!\n");
}

#[test]
fn a_long_drain_extends_systemds_stop_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("deploy.ini");
    write(
        &ini,
        &config("graceful_timeout = 20", "").replace("use = egg:minimal", "use = egg:test#sleep"),
    );
    let socket_path = dir.path().join("notify.sock");
    let notify = notify_socket(&socket_path);
    let mut serve = Running::start_with_env(
        &example("fault_eggs"),
        &[ini.to_str().unwrap()],
        &[("NOTIFY_SOCKET", socket_path.to_str().unwrap())],
    );
    let addr = serve.addr.clone();
    let slow = std::thread::spawn(move || support::request(&addr, "/?2500"));
    serve.wait_for("test#sleep: sleeping 2500 ms");
    serve.signal("TERM");
    notification_starting(&notify, "STOPPING=1");
    let (extend, _) = next_notification(&notify);
    let usec: u64 = extend
        .strip_prefix("EXTEND_TIMEOUT_USEC=")
        .unwrap_or_else(|| panic!("{extend}"))
        .trim()
        .parse()
        .unwrap();
    // Up to the drain deadline (20 s) and the kill grace, no less than what is left of it.
    assert!((15_000_000..=30_000_000).contains(&usec), "{usec}");
    // Repeated while the drain runs.
    assert!(next_notification(&notify)
        .0
        .starts_with("EXTEND_TIMEOUT_USEC="));
    assert!(slow.join().unwrap().starts_with("HTTP/1.1 200"));
    assert_eq!(serve.wait_exit(), Some(0));
}

/// `serve reload ARGS`: its exit status, stdout and stderr.
fn serve_reload(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_serve"))
        .arg("reload")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn serve_reload_waits_for_the_new_generation_and_reports_failures() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("deploy.ini");
    let tagged = |tag: &str| {
        config("", "").replace(
            "[app:main]\nuse = egg:minimal\n",
            &format!(
                "[pipeline:main]\npipeline = tag app\n[filter:tag]\nuse = egg:minimal\nprefix = {tag}:\n[app:app]\nuse = egg:minimal\n"
            ),
        )
    };
    write(&ini, &tagged("v"));
    let pid_file = dir.path().join("serve.pid");
    let serve = Running::start_binary(
        &example("fault_eggs"),
        &["--pid", pid_file.to_str().unwrap(), ini.to_str().unwrap()],
    );
    let pid = serve.pid().to_string();

    // Asks for the reload and returns once the new generation answers.
    write(&ini, &tagged("w"));
    let (ok, stdout, stderr) = serve_reload(&[&pid]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with("reloaded: generation 2: 2/2 workers ready; last reload ok"),
        "{stdout}"
    );
    assert_eq!(get(&serve.addr, "/"), "w: Hello world!\n");

    // A config that does not load: exit status 1 with the file and line; serving goes on.
    write(&ini, "[app:main]\nbroken\n");
    let (ok, _, stderr) = serve_reload(&["--pid", pid_file.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.starts_with("error: reload failed: ") && stderr.contains("deploy.ini:2:"),
        "{stderr}"
    );
    // A factory that fails in the new workers: the same.
    write(
        &ini,
        &tagged("x").replace(
            "[app:app]\nuse = egg:minimal",
            "[app:app]\nuse = egg:test#fail",
        ),
    );
    let (ok, _, stderr) = serve_reload(&[&pid]);
    assert!(!ok);
    assert!(stderr.contains("this factory always fails"), "{stderr}");
    assert_eq!(get(&serve.addr, "/"), "w: Hello world!\n");

    // --no-signal waits for the reload a HUP started (systemd's Type=notify-reload sends the
    // HUP, then runs ExecReload). The last reload failed, so an early answer would fail too.
    write(&ini, &tagged("y"));
    serve.signal("HUP");
    let (ok, stdout, stderr) = serve_reload(&["--no-signal", &pid]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("generation 4:"), "{stdout}");
    assert_eq!(get(&serve.addr, "/"), "y: Hello world!\n");

    // Nobody there: a clear error.
    let (ok, _, stderr) = serve_reload(&["1"]);
    assert!(!ok);
    assert!(
        stderr.contains("cannot reach serve (pid 1) on its control socket"),
        "{stderr}"
    );
}
