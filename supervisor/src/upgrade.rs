//! `USR2`: upgrading the supervisor in place.
//!
//! The supervisor re-execs the binary on disk with its own PID (so systemd's `MAINPID` and any
//! pid file stay right), passing its listeners and its workers' status sockets across `exec`
//! and a description of them in `SERVE_UPGRADE`. The new supervisor adopts both (the workers are
//! still its children), then reloads, which replaces the old binary's workers with its own. The
//! new binary is first run with `--version`: one that does not start leaves the old supervisor
//! running.

use crate::sockets::{Listener, Origin, Sockets};
use serde::{Deserialize, Serialize};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use worker::server::listen::Bound;
use worker::settings::ListenAddr;

/// The environment variable that carries the state across `exec`.
pub const VAR: &str = "SERVE_UPGRADE";

/// What the old supervisor hands the new one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// The serving generation.
    pub generation: u64,
    /// How many workers a generation has.
    pub workers: usize,
    /// Listening sockets.
    pub listeners: Vec<HandedListener>,
    /// Running workers.
    pub running: Vec<Adopted>,
}

/// A listening socket the new supervisor takes over.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HandedListener {
    /// Its fd.
    pub fd: RawFd,
    /// The `bind`/`listen` entry it serves, if any.
    pub entry: Option<String>,
    /// The name systemd passed it under, if it came from a socket unit.
    pub activated: Option<String>,
}

/// How `sockets` are described to the next supervisor.
pub fn handed_listeners(sockets: &Sockets) -> Vec<HandedListener> {
    sockets
        .listeners
        .iter()
        .map(|l| HandedListener {
            fd: match &l.socket {
                Bound::Tcp(s) => s.as_raw_fd(),
                Bound::Unix(s) => s.as_raw_fd(),
            },
            entry: l.entry.as_ref().map(ToString::to_string),
            activated: match &l.origin {
                Origin::Activated(name) => Some(name.clone()),
                Origin::Own => None,
            },
        })
        .collect()
}

/// Takes over the listening sockets the old supervisor handed over.
pub fn listeners(state: &State) -> Result<Sockets, String> {
    let mut sockets = Sockets::default();
    for handed in &state.listeners {
        // SAFETY: the supervisor this process replaced passed these listening sockets across
        // exec for it alone.
        let socket = unsafe { Bound::from_inherited(handed.fd) }
            .map_err(|e| format!("upgrade state: {e}"))?;
        tracing::info!(
            "listening on {} (kept across the upgrade)",
            socket.describe()
        );
        let entry = match &handed.entry {
            Some(text) => {
                Some(ListenAddr::parse(text, 0).map_err(|e| format!("upgrade state: {e}"))?)
            }
            None => None,
        };
        sockets.listeners.push(Listener {
            socket,
            entry,
            origin: handed
                .activated
                .clone()
                .map_or(Origin::Own, Origin::Activated),
        });
    }
    Ok(sockets)
}

/// A worker the new supervisor adopts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Adopted {
    /// Its PID.
    pub pid: u32,
    /// Its slot.
    pub number: usize,
    /// Its generation.
    pub generation: u64,
    /// The supervisor's end of its status socket.
    pub status_fd: Option<RawFd>,
    /// Whether it was already draining.
    pub retiring: bool,
}

fn set_cloexec(fd: RawFd, on: bool) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    // SAFETY: `fd` belongs to a listener or socket the supervisor keeps open across this call.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let flags = if on {
        FdFlag::FD_CLOEXEC
    } else {
        FdFlag::empty()
    };
    fcntl(borrowed, FcntlArg::F_SETFD(flags))
        .map(drop)
        .map_err(io::Error::from)
}

/// Re-execs `exe` with this process's arguments and `state`; returns only if that failed.
/// With `reraise_hup`, a HUP is left pending (blocked) across exec for the new image.
pub fn exec(exe: &Path, state: &State, reraise_hup: bool) -> io::Error {
    match Command::new(exe)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status()
    {
        Ok(status) if status.success() => {}
        Ok(status) => {
            return io::Error::other(format!("{} --version failed ({status})", exe.display()))
        }
        Err(e) => return io::Error::other(format!("cannot run {}: {e}", exe.display())),
    }
    let json = match serde_json::to_string(state) {
        Ok(json) => json,
        Err(e) => return io::Error::other(e),
    };
    let fds: Vec<RawFd> = state
        .listeners
        .iter()
        .map(|l| l.fd)
        .chain(state.running.iter().filter_map(|w| w.status_fd))
        .collect();
    for fd in &fds {
        if let Err(e) = set_cloexec(*fd, false) {
            return e;
        }
    }
    // Keep the name `ps` shows (`serve: supervisor ...`).
    // Signals stay blocked across exec (the mask is inherited) until the new image has its
    // handlers: a HUP in between must not find the default action (exit).
    let blocked = handled_signals();
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_BLOCK,
        Some(&blocked),
        None,
    );
    if reraise_hup {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGHUP);
    }
    let mut args = std::env::args_os();
    let mut command = Command::new(exe);
    if let Some(name) = args.next() {
        command.arg0(name);
    }
    let error = command.args(args).env(VAR, json).exec();
    for fd in &fds {
        let _ = set_cloexec(*fd, true);
    }
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_UNBLOCK,
        Some(&blocked),
        None,
    );
    error
}

/// The state an old supervisor handed over, if this process is an upgrade.
pub fn take() -> Option<State> {
    let json = std::env::var(VAR).ok()?;
    std::env::remove_var(VAR);
    serde_json::from_str(&json).ok()
}

/// The signals the supervisor handles.
pub fn handled_signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for signal in [
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGQUIT,
        Signal::SIGHUP,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGCHLD,
        Signal::SIGTTIN,
        Signal::SIGTTOU,
    ] {
        set.add(signal);
    }
    set
}

/// Unblocks the signals an upgrade blocked across exec, once the handlers are installed.
pub fn unblock_signals() {
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_UNBLOCK,
        Some(&handled_signals()),
        None,
    );
}
