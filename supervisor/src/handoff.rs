//! The contract between the supervisor and a worker: everything a worker is handed when it is
//! started, in one place.
//!
//! A worker is the supervisor's own binary, exec'd as `serve worker` right after fork (a fresh
//! runtime, fresh signal state, a clean fd table). It receives:
//! - the listening sockets at fds 3, 4, ... (`SERVE_LISTEN_FDS` says how many, and
//!   `SERVE_LISTEN_KINDS` whether each is `tcp` or `unix`);
//! - a unix stream socket to the supervisor at `SERVE_STATUS_FD`, on which it writes lines:
//!   `ready`, `heartbeat`, `failed REASON`; EOF on it means the supervisor is gone;
//! - the validated plan as JSON in an anonymous file at `SERVE_PLAN_FD`;
//! - its generation and number (`SERVE_GENERATION`, `SERVE_WORKER`) and the command-line
//!   overrides of the server section (`SERVE_THREADS`, `SERVE_GRACEFUL_TIMEOUT_MS`).
//!
//! Between fork and exec the child only calls `dup2` and `prctl` (async-signal-safe), through
//! `CommandExt::pre_exec`. `PR_SET_PDEATHSIG` makes the kernel kill the worker if the supervisor
//! dies.

use deploy::Plan;
use std::io::{self, Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::time::Duration;
use worker::server::listen::Bound;

/// The first fd of the listeners in a worker.
const FIRST_LISTENER: RawFd = 3;

/// What the supervisor passes to every worker of a generation.
#[derive(Debug)]
pub struct Spawn<'a> {
    /// The serve binary to exec.
    pub exe: &'a std::path::Path,
    /// The listeners, shared by every worker.
    pub listeners: &'a [&'a Bound],
    /// The table of connection counts and this worker's slot in it.
    pub balance: Option<(std::os::fd::BorrowedFd<'a>, usize)>,
    /// The plan, serialized once per generation.
    pub plan_json: &'a str,
    /// The generation.
    pub generation: u64,
    /// How many workers the generation has (Python's `wsgi.multiprocess`).
    pub workers: usize,
    /// Command-line overrides: runtime threads.
    pub threads: Option<usize>,
    /// Command-line overrides: drain deadline.
    pub graceful_timeout: Option<Duration>,
    /// The user and group the worker runs as, if not the supervisor's.
    pub credentials: Option<(u32, u32)>,
}

/// A started worker: its process and the supervisor's end of its status socket.
#[derive(Debug)]
pub struct Started {
    /// The process.
    pub child: Child,
    /// Lines from the worker.
    pub status: UnixStream,
}

fn raw(bound: &Bound) -> RawFd {
    match bound {
        Bound::Tcp(l) => l.as_raw_fd(),
        Bound::Unix(l) => l.as_raw_fd(),
    }
}

/// Duplicates `fd` above every fd the child will be given, close-on-exec, so `dup2` onto
/// 3.. in the child cannot clobber a source it still needs.
fn high_dup(fd: RawFd) -> io::Result<OwnedFd> {
    let duplicated = nix::fcntl::fcntl(
        // SAFETY: `fd` is open for the duration of this call (it belongs to a live listener,
        // socket or file owned by the caller).
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
        nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(1000),
    )
    .map_err(io::Error::from)?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(duplicated) })
}

/// Starts worker `number` of a generation.
pub fn spawn(spawn: &Spawn<'_>, number: usize) -> io::Result<Started> {
    let (ours, theirs) = UnixStream::pair()?;
    let mut plan = tempfile::tempfile()?;
    plan.write_all(spawn.plan_json.as_bytes())?;
    plan.rewind()?;
    let mut sources: Vec<OwnedFd> = spawn
        .listeners
        .iter()
        .map(|b| high_dup(raw(b)))
        .collect::<io::Result<_>>()?;
    sources.push(high_dup(theirs.as_raw_fd())?);
    sources.push(high_dup(plan.as_raw_fd())?);
    if let Some((table, _)) = spawn.balance {
        sources.push(high_dup(table.as_raw_fd())?);
    }
    let raw_sources: Vec<RawFd> = sources.iter().map(AsRawFd::as_raw_fd).collect();
    let listeners = spawn.listeners.len();
    let kinds: Vec<&str> = spawn
        .listeners
        .iter()
        .map(|b| match b {
            Bound::Tcp(_) => "tcp",
            Bound::Unix(_) => "unix",
        })
        .collect();
    let status_fd = FIRST_LISTENER + i32::try_from(listeners).unwrap_or(i32::MAX);
    let credentials = spawn.credentials;
    let mut command = Command::new(spawn.exe);
    command
        .arg0(format!("serve: worker {}/{number}", spawn.generation))
        .arg("worker")
        // Only the supervisor talks to the service manager.
        .env_remove(crate::sd::SOCKET)
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .env("SERVE_LISTEN_FDS", listeners.to_string())
        .env("SERVE_LISTEN_KINDS", kinds.join(","))
        .env("SERVE_STATUS_FD", status_fd.to_string())
        .env("SERVE_PLAN_FD", (status_fd + 1).to_string())
        .env("SERVE_GENERATION", spawn.generation.to_string())
        .env("SERVE_WORKER", number.to_string())
        .env("SERVE_WORKERS", spawn.workers.to_string());
    if let Some((_, slot)) = spawn.balance {
        command
            .env("SERVE_BALANCE_FD", (status_fd + 2).to_string())
            .env("SERVE_SLOT", slot.to_string());
    }
    if let Some(threads) = spawn.threads {
        command.env("SERVE_THREADS", threads.to_string());
    }
    if let Some(timeout) = spawn.graceful_timeout {
        command.env("SERVE_GRACEFUL_TIMEOUT_MS", timeout.as_millis().to_string());
    }
    // SAFETY: the closure runs in the child between fork and exec; it only calls dup2,
    // setgroups, setgid, setuid and prctl, which are async-signal-safe, on fds that stay open until exec (`sources` lives in
    // the parent past `spawn()`, and the child has its own copy of the fd table).
    unsafe {
        command.pre_exec(move || {
            for (i, fd) in raw_sources.iter().enumerate() {
                let target = FIRST_LISTENER + i32::try_from(i).unwrap_or(0);
                if nix::libc::dup2(*fd, target) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if let Some((uid, gid)) = credentials {
                // Group first: once the user changes, the group can no longer be set.
                let groups = [gid];
                if nix::libc::setgroups(1, groups.as_ptr()) < 0
                    || nix::libc::setgid(gid) < 0
                    || nix::libc::setuid(uid) < 0
                {
                    return Err(io::Error::last_os_error());
                }
            }
            // After setuid, which clears it.
            if nix::libc::prctl(nix::libc::PR_SET_PDEATHSIG, nix::libc::SIGKILL, 0, 0, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command.spawn()?;
    drop(sources);
    drop(theirs);
    ours.set_nonblocking(true)?;
    Ok(Started {
        child,
        status: ours,
    })
}

/// What a worker was handed, read back in the worker.
#[derive(Debug)]
pub struct Handed {
    /// The listeners.
    pub listeners: Vec<Bound>,
    /// The status socket to the supervisor.
    pub status: UnixStream,
    /// The plan.
    pub plan: Plan,
    /// Generation and number.
    pub generation: u64,
    /// The worker's number.
    pub number: usize,
    /// How many workers its generation has.
    pub workers: usize,
    /// Command-line overrides.
    pub threads: Option<usize>,
    /// Command-line overrides.
    pub graceful_timeout: Option<Duration>,
    /// The table of connection counts and this worker's slot.
    pub share: Option<(OwnedFd, usize)>,
}

fn var<T: std::str::FromStr>(name: &str) -> io::Result<T> {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name} is missing or invalid (serve worker is started by the supervisor)"),
            )
        })
}

/// Takes over what the supervisor handed this worker.
pub fn take() -> io::Result<Handed> {
    let count: usize = var("SERVE_LISTEN_FDS")?;
    let kinds: String = var("SERVE_LISTEN_KINDS")?;
    let status_fd: RawFd = var("SERVE_STATUS_FD")?;
    let plan_fd: RawFd = var("SERVE_PLAN_FD")?;
    let kinds: Vec<&str> = kinds.split(',').filter(|k| !k.is_empty()).collect();
    if kinds.len() != count {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "SERVE_LISTEN_KINDS does not match SERVE_LISTEN_FDS",
        ));
    }
    let mut listeners = Vec::with_capacity(count);
    for (i, kind) in kinds.iter().enumerate() {
        let fd = FIRST_LISTENER + i32::try_from(i).unwrap_or(0);
        // SAFETY: the supervisor put a listening socket at this fd for this process alone, and
        // nothing else in this process claims it.
        listeners.push(match *kind {
            "unix" => Bound::Unix(unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) }),
            _ => Bound::Tcp(unsafe { std::net::TcpListener::from_raw_fd(fd) }),
        });
    }
    // SAFETY: as above, for the status socket and the plan file.
    let status = unsafe { UnixStream::from_raw_fd(status_fd) };
    let mut plan_file = unsafe { std::fs::File::from_raw_fd(plan_fd) };
    let mut json = String::new();
    plan_file.read_to_string(&mut json)?;
    let plan: Plan = serde_json::from_str(&json)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("the plan: {e}")))?;
    Ok(Handed {
        listeners,
        status,
        plan,
        generation: var("SERVE_GENERATION")?,
        number: var("SERVE_WORKER")?,
        workers: var("SERVE_WORKERS").unwrap_or(1),
        threads: std::env::var("SERVE_THREADS")
            .ok()
            .and_then(|v| v.parse().ok()),
        share: match (var::<RawFd>("SERVE_BALANCE_FD"), var::<usize>("SERVE_SLOT")) {
            // SAFETY: the supervisor put the table's memfd at this fd for this process alone.
            (Ok(fd), Ok(slot)) => Some((unsafe { OwnedFd::from_raw_fd(fd) }, slot)),
            _ => None,
        },
        graceful_timeout: std::env::var("SERVE_GRACEFUL_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_millis),
    })
}
