//! Helpers shared by the end-to-end tests: a running `serve` (or a program embedding it) on a
//! free loopback port, its log, and a minimal HTTP/1.1 client.
#![allow(dead_code, clippy::unwrap_used)]

pub mod load;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// An example program (built by `cargo test` next to the binaries).
pub fn example(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_serve"))
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} was not built (run the tests with cargo test)",
        path.display()
    );
    path
}

/// A running `serve` and the address it announced.
pub struct Running {
    pub child: Child,
    pub addr: String,
    log: mpsc::Receiver<String>,
    /// Every log line received so far.
    history: std::cell::RefCell<Vec<String>>,
    /// How many lines of the history `wait_for_new` has passed.
    cursor: std::cell::Cell<usize>,
}

impl Running {
    /// Starts `serve ARGS` on a free port and waits (with a deadline) until its workers are
    /// ready.
    pub fn start(args: &[&str]) -> Running {
        Running::start_binary(Path::new(env!("CARGO_BIN_EXE_serve")), args)
    }

    /// Starts `BINARY ARGS` (a program with serve's command line) on a free port.
    pub fn start_binary(binary: &Path, args: &[&str]) -> Running {
        let mut all = vec!["--bind", "127.0.0.1:0"];
        all.extend_from_slice(args);
        Running::spawn(binary, &all)
    }

    /// Starts `serve ARGS` listening where its config says.
    pub fn start_as_configured(args: &[&str]) -> Running {
        Running::spawn(Path::new(env!("CARGO_BIN_EXE_serve")), args)
    }

    /// Starts `BINARY --bind 127.0.0.1:0 ARGS` with extra environment variables.
    pub fn start_with_env(binary: &Path, args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut all = vec!["--bind", "127.0.0.1:0"];
        all.extend_from_slice(args);
        Running::spawn_env(binary, &all, env)
    }

    fn spawn(binary: &Path, args: &[&str]) -> Running {
        Running::spawn_env(binary, args, &[])
    }

    pub fn spawn_env(binary: &Path, args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut command = Command::new(binary);
        command.envs(env.iter().copied()).args(args);
        let mut running = Running::launch(command);
        let line = running.wait_for("listening on http://");
        running.addr = line
            .rsplit("http://")
            .next()
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned();
        running.wait_for("ready: generation");
        running
    }

    /// Starts `command` (run in the repository, its stderr read as the log) without waiting
    /// for anything; `addr` is empty.
    pub fn launch(mut command: Command) -> Running {
        let mut child = command
            .current_dir(root())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, log) = mpsc::channel();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            addr: String::new(),
            log,
            history: Default::default(),
            cursor: Default::default(),
        }
    }

    /// A log line containing `text`, logged so far or within 20 seconds.
    pub fn wait_for(&self, text: &str) -> String {
        if let Some(line) = self.history.borrow().iter().find(|l| l.contains(text)) {
            return line.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    self.history.borrow_mut().push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no log line with {text:?} within 20s; seen:\n{}",
                    self.history.borrow().join("\n")
                ),
            }
        }
    }

    /// The next log line containing `text` after the one the last call returned, within 30
    /// seconds.
    pub fn wait_for_new(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let start = self.cursor.get();
            let found = self.history.borrow()[start..]
                .iter()
                .position(|l| l.contains(text));
            if let Some(offset) = found {
                self.cursor.set(start + offset + 1);
                return self.history.borrow()[start + offset].clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => self.history.borrow_mut().push(line),
                Err(_) => panic!(
                    "no new log line with {text:?} within 30s; seen:\n{}",
                    self.history.borrow().join("\n")
                ),
            }
        }
    }

    /// A line logged so far that contains both `a` and `b`.
    pub fn history_line(&self, a: &str, b: &str) -> String {
        self.history
            .borrow()
            .iter()
            .find(|l| l.contains(a) && l.contains(b))
            .cloned()
            .unwrap_or_else(|| panic!("no line with {a:?} and {b:?}"))
    }

    /// The PID of the process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (with a deadline) for the process to exit; its status code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "serve did not exit within 20s");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request with `Connection: close`; the whole response.
pub fn request(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// The body of a chunked or plain response, de-chunked.
pub fn body(response: &str) -> String {
    let (head, rest) = response.split_once("\r\n\r\n").unwrap();
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return rest.to_owned();
    }
    let mut out = String::new();
    let mut rest = rest;
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

/// Sends raw request bytes on a new connection; the whole response.
pub fn raw(addr: &str, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

pub fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..line_end]).unwrap().trim(), 16)
                .unwrap();
        data = &data[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// A port the kernel says is free now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The body of `GET path` on a new connection.
pub fn get(addr: &str, path: &str) -> String {
    body(&request(addr, path))
}

/// Saves `text` as an editor does: a new file renamed over the old one (readers never see
/// half a file).
pub fn write(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The PIDs a log line lists after `pids ` (`ready: ... (pids 12 13)`).
pub fn pids(line: &str) -> Vec<i32> {
    let list = line.rsplit("pids ").next().unwrap().trim_end_matches(')');
    list.split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect()
}

/// A stand-in for systemd's notify socket.
pub fn notify_socket(path: &Path) -> std::os::unix::net::UnixDatagram {
    let socket = std::os::unix::net::UnixDatagram::bind(path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    socket
}

/// The next notification and the fds that came with it (`FDSTORE=1`), within 30 seconds.
pub fn next_notification(
    socket: &std::os::unix::net::UnixDatagram,
) -> (String, Vec<std::os::fd::OwnedFd>) {
    use sendfd::RecvWithFd;
    use std::os::fd::FromRawFd;
    let mut buf = vec![0u8; 4096];
    let mut fds = [0; 8];
    loop {
        match socket.recv_with_fd(&mut buf, &mut fds) {
            Ok((n, nfds)) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                // SAFETY: the kernel just installed these fds in this process for us.
                let owned = fds[..nfds]
                    .iter()
                    .map(|fd| unsafe { std::os::fd::OwnedFd::from_raw_fd(*fd) })
                    .collect();
                return (text, owned);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("no notification within 30 s: {e} ({:?})", e.kind()),
        }
    }
}

/// The next notification that starts with `start`, skipping others.
pub fn notification_starting(
    socket: &std::os::unix::net::UnixDatagram,
    start: &str,
) -> (String, Vec<std::os::fd::OwnedFd>) {
    loop {
        let (text, fds) = next_notification(socket);
        if text.starts_with(start) {
            return (text, fds);
        }
    }
}
