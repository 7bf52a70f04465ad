//! The supervisor's control socket, for `serve reload`: a command that asks for a reload (or
//! waits for the one a `HUP` started) and learns how it ended, so that systemd's
//! `ExecReload=` can report a failed reload (a `HUP` alone cannot: whatever happens, the
//! supervisor answers `READY=1`).
//!
//! The socket is abstract (`serve-control-PID`, in the network namespace of the supervisor,
//! nothing on disk), nonblocking, polled by the supervisor's loop; only root and the
//! supervisor's own user may use it. A client sends one line, `reload` or `wait`, and gets one
//! line back once no reload is pending: `ok STATUS` or `failed REASON`.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::time::Duration;

/// The abstract socket name of supervisor `pid`.
pub fn name(pid: u32) -> String {
    format!("serve-control-{pid}")
}

/// What a client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// Reload, and say how it ended.
    Reload,
    /// Say how the reload in progress (or the last one) ended.
    Wait,
}

struct Client {
    stream: UnixStream,
    line: Vec<u8>,
    ask: Option<Ask>,
}

/// The listening control socket and its clients.
pub struct Control {
    listener: UnixListener,
    clients: Vec<Client>,
}

/// Whether the peer of `stream` is root or this process's user.
fn trusted(stream: &UnixStream) -> bool {
    use nix::sys::socket::{getsockopt, sockopt::PeerCredentials};
    match getsockopt(stream, PeerCredentials) {
        Ok(creds) => creds.uid() == 0 || creds.uid() == nix::unistd::geteuid().as_raw(),
        Err(_) => false,
    }
}

impl Control {
    /// Listens on this process's control socket.
    pub fn bind() -> io::Result<Control> {
        let addr = SocketAddr::from_abstract_name(name(std::process::id()))?;
        let listener = UnixListener::bind_addr(&addr)?;
        listener.set_nonblocking(true)?;
        Ok(Control {
            listener,
            clients: Vec::new(),
        })
    }

    /// What `poll` should watch: the socket, and clients that have not asked yet.
    pub fn fds(&self) -> Vec<BorrowedFd<'_>> {
        let mut fds = vec![self.listener.as_fd()];
        fds.extend(
            self.clients
                .iter()
                .filter(|c| c.ask.is_none())
                .map(|c| c.stream.as_fd()),
        );
        fds
    }

    /// Accepts clients and reads their requests; the reloads asked for since the last call.
    pub fn take_requests(&mut self) -> usize {
        while let Ok((stream, _)) = self.listener.accept() {
            if !trusted(&stream) || stream.set_nonblocking(true).is_err() {
                continue;
            }
            self.clients.push(Client {
                stream,
                line: Vec::new(),
                ask: None,
            });
        }
        let mut reloads = 0;
        self.clients.retain_mut(|c| {
            if c.ask.is_some() {
                return true;
            }
            let mut buf = [0u8; 64];
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => return false,
                    Ok(n) => c.line.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => return false,
                }
                if c.line.len() > 64 {
                    return false;
                }
            }
            let Some(end) = c.line.iter().position(|b| *b == b'\n') else {
                return true;
            };
            c.ask = match &c.line[..end] {
                b"reload" => Some(Ask::Reload),
                b"wait" => Some(Ask::Wait),
                _ => {
                    let _ = c.stream.write_all(b"failed unknown request\n");
                    return false;
                }
            };
            if c.ask == Some(Ask::Reload) {
                reloads += 1;
            }
            true
        });
        reloads
    }

    /// Whether a client waits for an answer.
    pub fn waiting(&self) -> bool {
        self.clients.iter().any(|c| c.ask.is_some())
    }

    /// Tells every client that asked how the last reload ended.
    pub fn answer(&mut self, outcome: &Result<String, String>) {
        let line = match outcome {
            Ok(status) => format!("ok {status}\n"),
            Err(reason) => format!("failed {reason}\n"),
        };
        self.clients.retain_mut(|c| {
            if c.ask.is_none() {
                return true;
            }
            // A reader that went away is no concern of the supervisor's; a short line fits
            // any socket buffer, so this never blocks.
            let _ = c.stream.write_all(line.as_bytes());
            false
        });
    }
}

/// `serve reload`: asks supervisor `pid` (or, with `signalled`, waits for the reload a `HUP`
/// started) and returns how the reload ended.
pub fn request(pid: u32, ask: Ask, timeout: Duration) -> Result<String, String> {
    let reach = |e: io::Error| format!("cannot reach serve (pid {pid}) on its control socket: {e}");
    let addr = SocketAddr::from_abstract_name(name(pid)).map_err(reach)?;
    let mut stream = UnixStream::connect_addr(&addr).map_err(reach)?;
    stream.set_read_timeout(Some(timeout)).map_err(reach)?;
    let line: &[u8] = match ask {
        Ask::Reload => b"reload\n",
        Ask::Wait => b"wait\n",
    };
    stream.write_all(line).map_err(reach)?;
    let mut answer = String::new();
    match stream.read_to_string(&mut answer) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            return Err(format!(
                "no answer from serve (pid {pid}) within {timeout:?}"
            ))
        }
        Err(e) => return Err(reach(e)),
    }
    let answer = answer.trim_end();
    if let Some(status) = answer.strip_prefix("ok ") {
        Ok(status.to_owned())
    } else if let Some(reason) = answer.strip_prefix("failed ") {
        Err(reason.to_owned())
    } else if answer.is_empty() {
        Err(format!(
            "serve (pid {pid}) closed the control socket without an answer (stopping or upgrading?)"
        ))
    } else {
        Err(format!(
            "unexpected answer from serve (pid {pid}): {answer}"
        ))
    }
}

/// `serve reload`: prints the outcome; exit status 0 if the new generation serves.
pub fn run(args: &crate::cli::Reload) -> std::process::ExitCode {
    let pid = match (args.pid, &args.pid_file) {
        (Some(pid), _) => Ok(pid),
        (None, Some(file)) => std::fs::read_to_string(file)
            .map_err(|e| format!("{}: {e}", file.display()))
            .and_then(|text| {
                text.trim()
                    .parse()
                    .map_err(|_| format!("{}: not a PID", file.display()))
            }),
        (None, None) => Err("which serve? give its PID or --pid FILE".to_owned()),
    };
    let timeout = Duration::try_from_secs_f64(args.timeout)
        .map_err(|_| format!("--timeout {}: not a number of seconds", args.timeout));
    let ask = if args.no_signal {
        Ask::Wait
    } else {
        Ask::Reload
    };
    match pid.and_then(|pid| request(pid, ask, timeout?)) {
        Ok(status) => {
            println!("reloaded: {status}");
            std::process::ExitCode::SUCCESS
        }
        Err(reason) => {
            eprintln!("error: reload failed: {reason}");
            std::process::ExitCode::FAILURE
        }
    }
}
