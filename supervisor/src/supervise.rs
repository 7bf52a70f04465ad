//! The supervisor: one synchronous loop on `poll(2)` that owns the listeners and keeps N ready
//! workers serving through reloads, crashes and shutdown.
//!
//! Signals reach the loop through signal-hook (flags plus a self-pipe that wakes `poll`); each
//! worker's status socket says `ready`, `heartbeat`, `failed REASON` or `retiring`; deadlines
//! (boot, heartbeat, drain, respawn backoff) set `poll`'s timeout. A reload starts the new
//! generation before it stops the old one: the old workers are told to drain only when every new
//! worker is ready, and a new generation that fails (a worker exits, reports `failed`, or is
//! not ready within the boot timeout) is killed while the old one keeps serving.

use crate::cli::{Overrides, Target};
use crate::handoff::{self, Spawn};
use crate::sockets::{Origin, Sockets};
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use signal_hook::consts::signal::{
    SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2,
};
use std::collections::HashMap;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use worker::eggs::Eggs;
use worker::settings::{ListenAddr, ServerSettings};

/// The shortest wait between two starts of the same worker slot.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A worker that lived this long resets its slot's backoff.
const HEALTHY: Duration = Duration::from_secs(60);
/// Grace after `graceful_timeout` before a draining worker is killed.
const KILL_GRACE: Duration = Duration::from_secs(1);

/// Where a worker is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Booting { deadline: Instant },
    Ready,
    Retiring { deadline: Instant },
}

#[derive(Debug)]
struct Worker {
    number: usize,
    generation: u64,
    pid: u32,
    status: Option<UnixStream>,
    buffer: Vec<u8>,
    state: State,
    started: Instant,
    last_beat: Instant,
    /// Why it failed, as it said (`failed REASON`).
    failure: Option<String>,
    /// Requests served, as of the last heartbeat.
    requests: u64,
    /// Past this many requests the worker is replaced (`max_requests` plus its jitter).
    recycle_at: Option<u64>,
    /// A replacement has been started for it.
    replaced: bool,
    /// It said `retiring`: it accepts no more connections.
    stopped_accepting: bool,
    /// Its slot in the table of connection counts.
    slot: Option<usize>,
    /// The source files of the Python modules it imported (`source PATH`), for `--reload`.
    sources: Vec<PathBuf>,
}

impl Worker {
    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.pid).unwrap_or(0))
    }

    fn signal(&self, signal: Signal) {
        let _ = kill(self.pid(), signal);
    }

    /// How the worker ended, if it has (and reaps it).
    fn try_exit(&self) -> Option<Exit> {
        use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
        match waitpid(self.pid(), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => Some(Exit::Code(code)),
            Ok(WaitStatus::Signaled(_, signal, _)) => Some(Exit::Signal(signal)),
            Ok(_) => None,
            // Not our child (any more): gone.
            Err(nix::errno::Errno::ECHILD) => Some(Exit::Code(-1)),
            Err(_) => None,
        }
    }
}

/// How a worker ended.
#[derive(Debug, Clone, Copy)]
enum Exit {
    Code(i32),
    Signal(Signal),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit status: {code}"),
            Exit::Signal(signal) => write!(f, "signal: {} ({signal})", *signal as i32),
        }
    }
}

/// A reload in progress.
#[derive(Debug)]
struct Pending {
    generation: u64,
    started: Instant,
    /// The new generation's sockets, when its addresses differ from the serving one's.
    sockets: Option<Sockets>,
    /// The new config: committed only when the new generation is ready.
    plan_json: String,
    files: Vec<PathBuf>,
    limits: Limits,
}

/// Respawn pacing of one worker slot.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    delay: Duration,
    not_before: Instant,
}

/// Settings of the loop.
#[derive(Debug, Clone)]
struct Limits {
    workers: usize,
    boot_timeout: Duration,
    timeout: Duration,
    graceful_timeout: Duration,
    max_requests: u64,
    max_requests_jitter: u64,
}

impl Limits {
    /// The loop's settings: the command line's, else the server section's.
    fn new(overrides: &Overrides, settings: &ServerSettings) -> Result<Limits, String> {
        let timeout = overrides
            .timeout
            .map_or(settings.timeout, Duration::from_secs_f64);
        let least = 2 * crate::worker_main::HEARTBEAT;
        if !timeout.is_zero() && timeout < least {
            return Err(format!(
                "timeout {timeout:?}: must be 0 (no heartbeat check) or at least {least:?} (twice the heartbeat)"
            ));
        }
        Ok(Limits {
            workers: overrides.workers.or(settings.workers).unwrap_or(1).max(1),
            boot_timeout: overrides
                .boot_timeout
                .map_or(Duration::from_secs(30), Duration::from_secs_f64),
            timeout,
            graceful_timeout: settings.graceful_timeout,
            max_requests: overrides.max_requests.unwrap_or(settings.max_requests),
            max_requests_jitter: overrides
                .max_requests_jitter
                .unwrap_or(settings.max_requests_jitter),
        })
    }
}

struct Supervisor<'a> {
    target: &'a Target,
    overrides: &'a Overrides,
    eggs: &'a Eggs,
    exe: PathBuf,
    sockets: Sockets,
    limits: Limits,
    plan_json: String,
    generation: u64,
    /// The number the next generation gets; never reused, even by a reload that failed.
    next_generation: u64,
    workers: Vec<Worker>,
    pending: Option<Pending>,
    backoff: HashMap<usize, Backoff>,
    respawn: HashMap<usize, Instant>,
    stopping: Option<Instant>,
    /// When the next `EXTEND_TIMEOUT_USEC` is due during a stop.
    extend_at: Option<Instant>,
    /// Whether to reload on file changes, and the watch.
    watching: bool,
    watch: Option<crate::watch::FileWatch>,
    /// When a debounced file change should reload.
    reload_at: Option<Instant>,
    /// A `HUP` that came while a reload was pending: another reload once it is done.
    hup_queued: bool,
    /// The connection counts the workers share, to spread connections evenly.
    balance: Option<worker::server::balance::Table>,
    /// `serve reload`'s socket, if it could be bound.
    control: Option<crate::control::Control>,
    /// A reload whose new generation serves, announced (`READY=1`, `serve reload`'s answer)
    /// once no older worker accepts: the status line.
    announce: Option<String>,
    /// How the last reload ended: the status line, or why it failed.
    last_reload: Result<String, String>,
    /// The config files the plan was read from.
    files: Vec<PathBuf>,
    /// `--user`/`--group`, resolved.
    credentials: Option<(u32, u32)>,
    /// systemd's watchdog: the interval and when `WATCHDOG=1` is next due.
    watchdog: Option<(Duration, Instant)>,
    /// Workers reported source files, or the serving generation changed: `--reload` watches
    /// the Python sources of the serving generation's workers.
    sources_changed: bool,
}

/// The flags signal handlers set, and the pipe that wakes `poll`.
struct Signals {
    flags: HashMap<i32, Arc<AtomicBool>>,
    wake: UnixStream,
    /// A writer that wakes `poll` (for the file watcher).
    waker: UnixStream,
}

impl Signals {
    fn install() -> io::Result<Signals> {
        let (wake, wake_writer) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        wake_writer.set_nonblocking(true)?;
        let mut flags = HashMap::new();
        for signal in [
            SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD, SIGTTIN, SIGTTOU,
        ] {
            let flag = Arc::new(AtomicBool::new(false));
            signal_hook::flag::register(signal, Arc::clone(&flag))?;
            signal_hook::low_level::pipe::register(signal, wake_writer.try_clone()?)?;
            flags.insert(signal, flag);
        }
        Ok(Signals {
            flags,
            wake,
            waker: wake_writer,
        })
    }

    /// Whether `signal` arrived and was not taken yet.
    fn pending(&self, signal: i32) -> bool {
        self.flags
            .get(&signal)
            .is_some_and(|f| f.load(Ordering::SeqCst))
    }

    /// Whether `signal` arrived since the last look.
    fn take(&self, signal: i32) -> bool {
        self.flags
            .get(&signal)
            .is_some_and(|f| f.swap(false, Ordering::SeqCst))
    }

    fn drain_wake(&mut self) {
        let mut buf = [0u8; 64];
        while matches!(self.wake.read(&mut buf), Ok(n) if n > 0) {}
    }
}

/// Runs the supervisor until it is told to stop.
pub fn supervise(target: &Target, overrides: &Overrides, eggs: &Eggs) -> Result<(), String> {
    let mut signals =
        Signals::install().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    // After a USR2 upgrade the signals arrive blocked; now they have handlers.
    crate::upgrade::unblock_signals();
    let adopted = crate::upgrade::take();
    // Before anything else can start a thread or a child: the variables are cleared here.
    let inherited = match adopted {
        Some(_) => Sockets::default(),
        None => crate::activation::inherit()?,
    };
    let (plan, settings) = load(target, overrides, eggs)?;
    let plan_json = serde_json::to_string(&plan).map_err(|e| e.to_string())?;
    let sockets = match &adopted {
        Some(state) => crate::upgrade::listeners(state)?,
        None => {
            let sockets = Sockets::for_addrs(&settings.listen, settings.backlog, Some(&inherited))?;
            // Stored sockets of addresses no longer configured leave the store.
            crate::activation::unstore(inherited.dropped_by(&sockets));
            for l in &sockets.listeners {
                if let (None, Origin::Activated(name)) = (&l.entry, &l.origin) {
                    tracing::info!(
                        "listening on {} (from systemd: socket activation, '{name}'; no bind/listen entry names it)",
                        l.socket.describe()
                    );
                }
            }
            drop(inherited);
            crate::activation::store(&sockets);
            sockets
        }
    };
    let limits = Limits::new(overrides, &settings)?;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own binary: {e}"))?;
    let mut supervisor = Supervisor {
        target,
        overrides,
        eggs,
        exe,
        sockets,
        limits,
        plan_json,
        generation: 1,
        next_generation: 2,
        workers: Vec::new(),
        pending: None,
        backoff: HashMap::new(),
        respawn: HashMap::new(),
        stopping: None,
        extend_at: None,
        watching: overrides.reload || settings.reload,
        watch: None,
        reload_at: None,
        hup_queued: false,
        balance: match worker::server::balance::Table::create() {
            Ok(table) => Some(table),
            Err(e) => {
                tracing::warn!("connections will not be spread over the workers: {e}");
                None
            }
        },
        control: match crate::control::Control::bind() {
            Ok(control) => Some(control),
            Err(e) => {
                tracing::warn!("no control socket for `serve reload`: {e}");
                None
            }
        },
        announce: None,
        last_reload: Ok("no reload yet".to_owned()),
        files: plan.files.clone(),
        credentials: credentials(overrides)?,
        watchdog: crate::sd::watchdog_interval().map(|interval| (interval / 2, Instant::now())),
        sources_changed: false,
    };
    let _pid_file = match &overrides.pid_file {
        Some(path) => Some(PidFile::write(path)?),
        None => None,
    };
    match adopted {
        Some(state) => supervisor.adopt(&state),
        None => supervisor.boot(&mut signals)?,
    }
    supervisor.rewatch(&signals);
    supervisor.run(&mut signals);
    supervisor.remove_unix_sockets();
    Ok(())
}

/// `--user`/`--group` as a uid and gid.
fn credentials(overrides: &Overrides) -> Result<Option<(u32, u32)>, String> {
    use nix::unistd::{Group, User};
    let Some(name) = &overrides.user else {
        return match &overrides.group {
            Some(_) => Err("--group needs --user".to_owned()),
            None => Ok(None),
        };
    };
    let user = User::from_name(name)
        .map_err(|e| format!("--user {name}: {e}"))?
        .ok_or_else(|| format!("--user {name}: no such user"))?;
    let gid = match &overrides.group {
        Some(group) => {
            Group::from_name(group)
                .map_err(|e| format!("--group {group}: {e}"))?
                .ok_or_else(|| format!("--group {group}: no such group"))?
                .gid
        }
        None => user.gid,
    };
    Ok(Some((user.uid.as_raw(), gid.as_raw())))
}

/// `--pid FILE`: written at start, removed at exit.
struct PidFile(PathBuf);

impl PidFile {
    fn write(path: &std::path::Path) -> Result<PidFile, String> {
        std::fs::write(path, format!("{}\n", std::process::id()))
            .map_err(|e| format!("--pid {}: {e}", path.display()))?;
        Ok(PidFile(path.to_path_buf()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Resolves the plan and the server settings a command line names.
fn load(
    target: &Target,
    overrides: &Overrides,
    eggs: &Eggs,
) -> Result<(deploy::Plan, ServerSettings), String> {
    let plan = crate::resolve(target, eggs)?;
    let mut settings =
        worker::pipeline::build_server(plan.server.as_ref(), eggs).map_err(|e| e.to_string())?;
    crate::run::apply(&mut settings, overrides)?;
    if let Some(server) = &plan.server {
        for key in &settings.ignored {
            let at = server
                .factory
                .key_location(key)
                .map(|l| format!("{l}: "))
                .unwrap_or_default();
            tracing::warn!("{at}`{key}` is a setting of another server; serve ignores it");
        }
    }
    Ok((plan, settings))
}

impl Supervisor<'_> {
    fn spawn(&mut self, number: usize, generation: u64) -> Result<(), String> {
        let (sockets, plan_json, workers) = match &self.pending {
            Some(p) if p.generation == generation => (
                p.sockets.as_ref().unwrap_or(&self.sockets),
                &p.plan_json,
                p.limits.workers,
            ),
            _ => (&self.sockets, &self.plan_json, self.limits.workers),
        };
        let slot = self.balance.as_ref().and_then(|_| {
            (0..worker::server::balance::SLOTS)
                .find(|s| !self.workers.iter().any(|w| w.slot == Some(*s)))
        });
        let spawn = Spawn {
            exe: &self.exe,
            balance: self
                .balance
                .as_ref()
                .zip(slot)
                .map(|(table, slot)| (table.fd(), slot)),
            listeners: &sockets.bound(),
            plan_json,
            generation,
            workers,
            threads: self.overrides.threads,
            graceful_timeout: self.overrides.graceful_timeout.map(Duration::from_secs_f64),
            credentials: self.credentials,
        };
        let started =
            handoff::spawn(&spawn, number).map_err(|e| format!("cannot start a worker: {e}"))?;
        let now = Instant::now();
        tracing::debug!(
            pid = started.child.id(),
            generation,
            number,
            "worker started"
        );
        let recycle_at = (self.limits.max_requests > 0).then(|| {
            self.limits.max_requests + jitter(self.limits.max_requests_jitter, started.child.id())
        });
        self.workers.push(Worker {
            number,
            generation,
            pid: started.child.id(),
            status: Some(started.status),
            buffer: Vec::new(),
            state: State::Booting {
                deadline: now + self.limits.boot_timeout,
            },
            started: now,
            last_beat: now,
            failure: None,
            requests: 0,
            recycle_at,
            replaced: false,
            stopped_accepting: false,
            slot,
            sources: Vec::new(),
        });
        Ok(())
    }

    /// Starts the first generation and waits until every worker is ready (or a stop signal).
    fn boot(&mut self, signals: &mut Signals) -> Result<(), String> {
        for number in 0..self.limits.workers {
            self.spawn(number, self.generation)?;
        }
        loop {
            self.poll_with(signals, Duration::from_millis(100));
            signals.drain_wake();
            if signals.take(SIGTERM) | signals.take(SIGINT) | signals.take(SIGQUIT) {
                self.kill_all(Signal::SIGKILL);
                self.reap_all_blocking();
                return Err("stopped while the workers were starting".to_owned());
            }
            self.read_statuses();
            let now = Instant::now();
            let broken = self.workers.iter_mut().find_map(|w| {
                let exited = w.try_exit();
                let late = matches!(w.state, State::Booting { deadline } if now >= deadline);
                (exited.is_some() || w.failure.is_some() || late)
                    .then(|| describe_failure(w, exited, late))
            });
            if let Some(reason) = broken {
                self.kill_all(Signal::SIGKILL);
                self.reap_all_blocking();
                return Err(format!("a worker could not start: {reason}"));
            }
            if self.workers.iter().all(|w| w.state == State::Ready) {
                let pids: Vec<String> = self.workers.iter().map(|w| w.pid.to_string()).collect();
                tracing::info!(
                    "ready: generation {}, {} workers (pids {})",
                    self.generation,
                    self.workers.len(),
                    pids.join(" ")
                );
                crate::sd::started(&self.status("started"));
                return Ok(());
            }
        }
    }

    /// The loop, until every worker is gone after a stop.
    fn run(&mut self, signals: &mut Signals) {
        loop {
            let timeout = self.next_deadline().map_or(Duration::from_secs(1), |d| {
                d.saturating_duration_since(Instant::now())
            });
            self.poll_with(signals, timeout.min(Duration::from_secs(1)));
            signals.drain_wake();
            if signals.take(SIGTERM) && self.stopping.is_none() {
                tracing::info!(
                    "SIGTERM: draining {} workers (up to {:?})",
                    self.workers.len(),
                    self.limits.graceful_timeout
                );
                self.stop(Signal::SIGTERM);
            }
            if signals.take(SIGINT) | signals.take(SIGQUIT) {
                // Also while draining: a second signal does not wait any longer.
                tracing::info!("stopping now");
                self.stop(Signal::SIGQUIT);
            }
            // Before HUP: a HUP that came with it is handed to the new image (see `upgrade`).
            if signals.take(SIGUSR2) {
                self.upgrade(signals);
            }
            let asked = self
                .control
                .as_mut()
                .map_or(0, crate::control::Control::take_requests);
            if signals.take(SIGHUP) || asked > 0 {
                if self.reloading() {
                    // It may bring a config newer than the pending reload read.
                    tracing::info!("SIGHUP: a reload is in progress; reloading again after it");
                    self.hup_queued = true;
                } else {
                    self.reload();
                    self.rewatch(signals);
                }
            }
            if self
                .watch
                .as_ref()
                .is_some_and(crate::watch::FileWatch::take_change)
            {
                self.reload_at = Some(Instant::now() + crate::watch::DEBOUNCE);
            }
            if self.reload_at.is_some_and(|at| Instant::now() >= at) && !self.reloading() {
                self.reload_at = None;
                tracing::info!("a config file changed");
                self.reload();
                self.rewatch(signals);
            }
            if signals.take(SIGUSR1) {
                for w in &self.workers {
                    w.signal(Signal::SIGUSR1);
                }
                tracing::info!("SIGUSR1: telling workers to reopen their log files");
            }
            if signals.take(SIGTTIN) {
                self.limits.workers += 1;
                tracing::info!("SIGTTIN: {} workers", self.limits.workers);
            }
            if signals.take(SIGTTOU) && self.limits.workers > 1 {
                self.limits.workers -= 1;
                tracing::info!("SIGTTOU: {} workers", self.limits.workers);
            }
            signals.take(SIGCHLD);
            self.read_statuses();
            self.reap();
            self.enforce_deadlines();
            if let Some(deadline) = self.stopping {
                self.extend_stop_timeout(deadline);
                if let Some(control) = self.control.as_mut() {
                    control.answer(&Err("serve is stopping".to_owned()));
                }
                if self.workers.is_empty() {
                    tracing::info!("all workers gone; exiting");
                    return;
                }
                continue;
            }
            self.advance_reload();
            self.announce_when_switched();
            if std::mem::take(&mut self.sources_changed) {
                self.rewatch(signals);
            }
            if self.hup_queued && !self.reloading() {
                self.hup_queued = false;
                self.reload();
                self.rewatch(signals);
            }
            // Once every reload asked for (a HUP not yet taken included) has ended.
            if !self.reloading() && !self.hup_queued && !signals.pending(SIGHUP) {
                if let Some(control) = self.control.as_mut().filter(|c| c.waiting()) {
                    control.answer(&self.last_reload);
                }
            }
            self.keep_slots_filled();
            self.recycle();
            self.feed_watchdog();
        }
    }

    /// USR2: re-exec the binary on disk in place; returns only if that failed.
    fn upgrade(&mut self, signals: &Signals) {
        if self.pending.is_some() || self.stopping.is_some() {
            tracing::warn!("SIGUSR2: ignored while a reload or a stop is in progress");
            return;
        }
        let state = crate::upgrade::State {
            generation: self.generation,
            workers: self.limits.workers,
            listeners: crate::upgrade::handed_listeners(&self.sockets),
            running: self
                .workers
                .iter()
                .map(|w| crate::upgrade::Adopted {
                    pid: w.pid,
                    number: w.number,
                    generation: w.generation,
                    status_fd: w.status.as_ref().map(AsRawFd::as_raw_fd),
                    retiring: matches!(w.state, State::Retiring { .. }),
                })
                .collect(),
        };
        tracing::info!("SIGUSR2: re-executing {} in place", self.exe.display());
        // A HUP not yet taken would die with this image: it is raised again, pending across
        // exec, for the new one.
        let reraise = signals.pending(SIGHUP);
        let error = crate::upgrade::exec(&self.exe, &state, reraise);
        tracing::error!("upgrade failed: {error}; this supervisor keeps running");
    }

    /// Takes over the workers of the supervisor this process replaced, then replaces them
    /// with workers of this binary.
    fn adopt(&mut self, state: &crate::upgrade::State) {
        let now = Instant::now();
        let deadline = now + self.limits.graceful_timeout + KILL_GRACE;
        self.generation = state.generation;
        self.next_generation = state
            .running
            .iter()
            .map(|w| w.generation)
            .fold(state.generation, u64::max)
            + 1;
        self.limits.workers = state.workers;
        for w in &state.running {
            let status = w.status_fd.map(|fd| {
                // SAFETY: the old supervisor passed its end of this worker's status socket
                // across exec for this process alone.
                let stream = unsafe { UnixStream::from_raw_fd(fd) };
                let _ = stream.set_nonblocking(true);
                stream
            });
            self.workers.push(Worker {
                number: w.number,
                generation: w.generation,
                pid: w.pid,
                status,
                buffer: Vec::new(),
                state: if w.retiring {
                    State::Retiring { deadline }
                } else {
                    State::Ready
                },
                started: now,
                last_beat: now,
                failure: None,
                requests: 0,
                recycle_at: None,
                replaced: false,
                stopped_accepting: w.retiring,
                slot: None,
                sources: Vec::new(),
            });
        }
        let pids: Vec<String> = self.workers.iter().map(|w| w.pid.to_string()).collect();
        tracing::info!(
            "upgraded in place: adopted generation {} (pids {}); replacing its workers",
            self.generation,
            pids.join(" ")
        );
        self.reload();
    }

    /// `WATCHDOG=1` when due, if every ready worker of the serving generation heartbeats.
    fn feed_watchdog(&mut self) {
        let Some((every, due)) = self.watchdog else {
            return;
        };
        let now = Instant::now();
        if now < due {
            return;
        }
        let fresh = 2 * crate::worker_main::HEARTBEAT;
        let healthy = self
            .workers
            .iter()
            .filter(|w| w.generation == self.generation && w.state == State::Ready)
            .all(|w| now.duration_since(w.last_beat) <= fresh);
        if healthy {
            crate::sd::watchdog();
        } else {
            tracing::warn!("a worker missed its heartbeats; not feeding systemd's watchdog");
        }
        self.watchdog = Some((every, now + every));
    }

    /// The `STATUS=` line: generation, ready workers, last reload.
    fn status(&self, last_reload: &str) -> String {
        let ready = self
            .workers
            .iter()
            .filter(|w| w.generation == self.generation && w.state == State::Ready)
            .count();
        format!(
            "generation {}: {ready}/{} workers ready; {last_reload}",
            self.generation, self.limits.workers
        )
    }

    /// A reload ended without a new generation: the old one serves on.
    fn reload_failed(&mut self, reason: &str) {
        tracing::error!(
            "reload failed: {reason}; generation {} keeps serving",
            self.generation
        );
        self.last_reload = Err(reason.to_owned());
        crate::sd::ready(&self.status(&format!("last reload failed: {reason}")));
    }

    /// `max_requests`: replaces a worker that served its share, start before stop, one at a
    /// time.
    fn recycle(&mut self) {
        if self.pending.is_some() {
            return;
        }
        // A replacement that is ready retires the worker it replaces.
        let deadline = Instant::now() + self.limits.graceful_timeout + KILL_GRACE;
        let generation = self.generation;
        let ready_slots: Vec<usize> = self
            .workers
            .iter()
            .filter(|w| w.generation == generation && w.state == State::Ready && !w.replaced)
            .map(|w| w.number)
            .collect();
        for w in &mut self.workers {
            let has_ready_replacement = ready_slots.contains(&w.number);
            if w.replaced && w.state == State::Ready && has_ready_replacement {
                tracing::info!(
                    "worker {} (pid {}) served {} requests; recycled",
                    w.number,
                    w.pid,
                    w.requests
                );
                w.signal(Signal::SIGTERM);
                w.state = State::Retiring { deadline };
            }
        }
        let booting = self
            .workers
            .iter()
            .any(|w| w.generation == generation && matches!(w.state, State::Booting { .. }));
        if booting {
            return;
        }
        let due = self.workers.iter_mut().find(|w| {
            w.generation == generation
                && w.state == State::Ready
                && !w.replaced
                && w.recycle_at.is_some_and(|limit| w.requests >= limit)
        });
        if let Some(w) = due {
            w.replaced = true;
            let number = w.number;
            if let Err(e) = self.spawn(number, generation) {
                tracing::error!("{e}");
            }
        }
    }

    fn poll_with(&mut self, signals: &Signals, timeout: Duration) {
        let mut polls: Vec<PollFd<'_>> = vec![PollFd::new(signals.wake.as_fd(), PollFlags::POLLIN)];
        polls.extend(
            self.workers
                .iter()
                .filter_map(|w| w.status.as_ref())
                .map(|s| PollFd::new(s.as_fd(), PollFlags::POLLIN)),
        );
        if let Some(control) = &self.control {
            polls.extend(
                control
                    .fds()
                    .into_iter()
                    .map(|fd| PollFd::new(fd, PollFlags::POLLIN)),
            );
        }
        let ms = PollTimeout::try_from(timeout.as_millis().min(60_000) as i32)
            .unwrap_or(PollTimeout::NONE);
        let _ = nix::poll::poll(&mut polls, ms);
    }

    /// Reads every worker's status lines.
    fn read_statuses(&mut self) {
        let now = Instant::now();
        for w in &mut self.workers {
            let Some(status) = w.status.as_mut() else {
                continue;
            };
            let mut buf = [0u8; 4096];
            loop {
                match status.read(&mut buf) {
                    Ok(0) => {
                        w.status = None;
                        break;
                    }
                    Ok(n) => w.buffer.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        w.status = None;
                        break;
                    }
                }
            }
            while let Some(end) = w.buffer.iter().position(|b| *b == b'\n') {
                let line = String::from_utf8_lossy(&w.buffer[..end]).into_owned();
                w.buffer.drain(..=end);
                if line == "ready" {
                    if matches!(w.state, State::Booting { .. }) {
                        w.state = State::Ready;
                        tracing::info!(
                            "worker {} (pid {}) of generation {} ready",
                            w.number,
                            w.pid,
                            w.generation
                        );
                    }
                    w.last_beat = now;
                } else if let Some(count) = line.strip_prefix("heartbeat") {
                    w.last_beat = now;
                    w.requests = count.trim().parse().unwrap_or(w.requests);
                } else if let Some(reason) = line.strip_prefix("failed ") {
                    w.failure = Some(reason.to_owned());
                } else if let Some(path) = line.strip_prefix("source ") {
                    w.sources.push(PathBuf::from(path));
                    self.sources_changed = true;
                } else if line == "retiring" {
                    // The worker stopped accepting and drains (it was told to, or it is being
                    // recycled).
                    w.stopped_accepting = true;
                }
            }
        }
    }

    /// Collects exited workers; a worker of the serving generation that exits on its own is
    /// scheduled for a respawn.
    fn reap(&mut self) {
        let mut i = 0;
        while i < self.workers.len() {
            let exited = self.workers[i].try_exit();
            let Some(status) = exited else {
                i += 1;
                continue;
            };
            let w = self.workers.remove(i);
            if let (Some(table), Some(slot)) = (&self.balance, w.slot) {
                table.clear(slot);
            }
            let retiring = matches!(w.state, State::Retiring { .. });
            let pending = self
                .pending
                .as_ref()
                .is_some_and(|p| p.generation == w.generation);
            if retiring || self.stopping.is_some() {
                tracing::info!(
                    "worker {} (pid {}) of generation {} stopped ({status})",
                    w.number,
                    w.pid,
                    w.generation
                );
            } else if pending {
                // advance_reload sees the failure through the missing worker.
                let reason = w
                    .failure
                    .clone()
                    .unwrap_or_else(|| format!("exited ({status})"));
                self.fail_reload(&format!("worker {} (pid {}): {reason}", w.number, w.pid));
            } else if let Some(old) = self
                .workers
                .iter_mut()
                .find(|o| o.generation == w.generation && o.number == w.number && o.replaced)
            {
                // A max_requests replacement failed: the worker it was to replace goes on
                // serving, and may be recycled again later.
                old.replaced = false;
                let reason = w.failure.clone().unwrap_or_else(|| format!("{status}"));
                tracing::warn!(
                    "the replacement of worker {} (pid {}) exited: {reason}",
                    w.number,
                    w.pid
                );
            } else if w.generation == self.generation {
                let reason = w.failure.clone().unwrap_or_else(|| format!("{status}"));
                let backoff = self.next_backoff(w.number, w.started);
                tracing::warn!(
                    "worker {} (pid {}) exited: {reason}; restarting it in {:?}",
                    w.number,
                    w.pid,
                    backoff
                );
                self.respawn.insert(w.number, Instant::now() + backoff);
            }
        }
    }

    fn next_backoff(&mut self, number: usize, started: Instant) -> Duration {
        let now = Instant::now();
        let entry = self.backoff.entry(number).or_insert(Backoff {
            delay: Duration::ZERO,
            not_before: now,
        });
        entry.delay = if started.elapsed() >= HEALTHY || entry.delay.is_zero() {
            BACKOFF_MIN
        } else {
            (entry.delay * 2).min(BACKOFF_MAX)
        };
        entry.not_before = now + entry.delay;
        entry.delay
    }

    /// Kills workers that missed a deadline.
    fn enforce_deadlines(&mut self) {
        let now = Instant::now();
        let timeout = self.limits.timeout;
        for w in &mut self.workers {
            match w.state {
                State::Booting { deadline } if now >= deadline => {
                    w.failure
                        .get_or_insert_with(|| "not ready within the boot timeout".to_owned());
                    w.signal(Signal::SIGKILL);
                }
                State::Ready if !timeout.is_zero() && now.duration_since(w.last_beat) > timeout => {
                    tracing::error!(
                        "worker {} (pid {}) sent no heartbeat for {:?}; killing it",
                        w.number,
                        w.pid,
                        timeout
                    );
                    w.failure
                        .get_or_insert_with(|| format!("no heartbeat for {timeout:?}"));
                    w.signal(Signal::SIGKILL);
                    w.last_beat = now;
                }
                State::Retiring { deadline } if now >= deadline => {
                    tracing::warn!(
                        "worker {} (pid {}) still draining after graceful_timeout; killing it",
                        w.number,
                        w.pid
                    );
                    w.signal(Signal::SIGKILL);
                    w.state = State::Retiring {
                        deadline: now + KILL_GRACE,
                    };
                }
                _ => {}
            }
        }
    }

    /// Starts workers for empty slots of the serving generation whose backoff has passed.
    fn keep_slots_filled(&mut self) {
        let now = Instant::now();
        let (generation, wanted) = (self.generation, self.limits.workers);
        let present = |workers: &[Worker], number: usize| {
            workers.iter().any(|w| {
                w.generation == generation
                    && w.number == number
                    && !matches!(w.state, State::Retiring { .. })
            })
        };
        // A pending restart of a slot that is filled again, or no longer wanted, is moot.
        let workers = &self.workers;
        self.respawn
            .retain(|number, _| *number < wanted && !present(workers, *number));
        for number in 0..self.limits.workers {
            let present = self.workers.iter().any(|w| {
                w.generation == self.generation
                    && w.number == number
                    && !matches!(w.state, State::Retiring { .. })
            });
            if present || self.respawn.get(&number).is_some_and(|at| now < *at) {
                continue;
            }
            self.respawn.remove(&number);
            if let Err(e) = self.spawn(number, self.generation) {
                tracing::error!("{e}");
                let backoff = self.next_backoff(number, now);
                self.respawn.insert(number, now + backoff);
            }
        }
        // TTOU: retire workers above the wanted count.
        let wanted = self.limits.workers;
        let deadline = now + self.limits.graceful_timeout + KILL_GRACE;
        for w in &mut self.workers {
            if w.generation == self.generation
                && w.number >= wanted
                && !matches!(w.state, State::Retiring { .. })
            {
                w.signal(Signal::SIGTERM);
                w.state = State::Retiring { deadline };
            }
        }
    }

    /// SIGHUP: validate the new config, then start its generation beside the serving one.
    fn reload(&mut self) {
        if self.reloading() {
            tracing::warn!("SIGHUP: a reload is already in progress");
            return;
        }
        crate::sd::reloading(&self.status("reloading"));
        let started = Instant::now();
        let (plan, settings) = match load(self.target, self.overrides, self.eggs) {
            Ok(loaded) => loaded,
            Err(e) => {
                self.reload_failed(&e.to_string());
                return;
            }
        };
        let limits = match Limits::new(self.overrides, &settings) {
            Ok(limits) => limits,
            Err(e) => {
                self.reload_failed(&e.to_string());
                return;
            }
        };
        let plan_json = match serde_json::to_string(&plan) {
            Ok(json) => json,
            Err(e) => {
                self.reload_failed(&e.to_string());
                return;
            }
        };
        let sockets = if self.sockets.serves(&settings.listen) {
            None
        } else {
            match Sockets::for_addrs(&settings.listen, settings.backlog, Some(&self.sockets)) {
                Ok(next) => Some(next),
                Err(e) => {
                    self.reload_failed(&e.to_string());
                    return;
                }
            }
        };
        let generation = self.next_generation;
        self.next_generation += 1;
        tracing::info!("SIGHUP: starting generation {generation}");
        let workers = limits.workers;
        self.pending = Some(Pending {
            generation,
            started,
            sockets,
            plan_json,
            files: plan.files.clone(),
            limits,
        });
        for number in 0..workers {
            if let Err(e) = self.spawn(number, generation) {
                self.fail_reload(&e);
                return;
            }
        }
    }

    /// Finishes a reload whose new workers are all ready, or gives it up if one failed.
    fn advance_reload(&mut self) {
        let Some(pending) = &self.pending else { return };
        let generation = pending.generation;
        let new: Vec<&Worker> = self
            .workers
            .iter()
            .filter(|w| w.generation == generation)
            .collect();
        if let Some(w) = new.iter().find(|w| w.failure.is_some()) {
            let reason = format!(
                "worker {} (pid {}): {}",
                w.number,
                w.pid,
                w.failure.clone().unwrap_or_default()
            );
            self.fail_reload(&reason);
            return;
        }
        if new.len() < pending.limits.workers || new.iter().any(|w| w.state != State::Ready) {
            return;
        }
        let old_pids: Vec<String> = self
            .workers
            .iter()
            .filter(|w| w.generation != generation)
            .map(|w| w.pid.to_string())
            .collect();
        let new_pids: Vec<String> = new.iter().map(|w| w.pid.to_string()).collect();
        let took = pending.started.elapsed();
        let deadline = Instant::now() + self.limits.graceful_timeout + KILL_GRACE;
        for w in &mut self.workers {
            if w.generation != generation && !matches!(w.state, State::Retiring { .. }) {
                w.signal(Signal::SIGTERM);
                w.state = State::Retiring { deadline };
            }
        }
        tracing::info!(
            "reloaded: generation {} -> {generation} in {:?}; old pids {} draining, new pids {}",
            self.generation,
            took,
            old_pids.join(" "),
            new_pids.join(" ")
        );
        self.generation = generation;
        let Some(done) = self.pending.take() else {
            return;
        };
        self.plan_json = done.plan_json;
        self.files = done.files;
        self.sources_changed = true;
        // Slots added by TTIN meanwhile are kept.
        let workers = self.limits.workers.max(done.limits.workers);
        self.limits = Limits {
            workers,
            ..done.limits
        };
        if let Some(next) = done.sockets {
            let dropped = self.sockets.dropped_by(&next);
            for l in &dropped {
                tracing::info!(
                    "no longer listening on {} (the old workers finish what they accepted)",
                    l.socket.describe()
                );
                if let Some(ListenAddr::Unix(path)) = &l.entry {
                    let _ = std::fs::remove_file(path);
                }
            }
            crate::activation::unstore(dropped);
            crate::activation::store(&next);
            self.sockets = next;
        }
        self.respawn.clear();
        let status = self.status(&format!("last reload ok ({took:?})"));
        self.announce = Some(status);
    }

    /// Whether a reload is under way: its generation is starting, or it serves and the older
    /// workers have not all stopped accepting yet.
    fn reloading(&self) -> bool {
        self.pending.is_some() || self.announce.is_some()
    }

    /// Announces a reload once every older worker has stopped accepting (or is gone), so that
    /// whoever waits for it (systemd, `serve reload`) is answered by the new config only.
    fn announce_when_switched(&mut self) {
        if self.announce.is_none()
            || self
                .workers
                .iter()
                .any(|w| w.generation < self.generation && !w.stopped_accepting)
        {
            return;
        }
        if let Some(status) = self.announce.take() {
            crate::sd::ready(&status);
            self.last_reload = Ok(status);
        }
    }

    fn fail_reload(&mut self, reason: &str) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        if let Some(sockets) = &pending.sockets {
            for l in sockets.dropped_by(&self.sockets) {
                if let Some(ListenAddr::Unix(path)) = &l.entry {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        tracing::error!(
            "reload to generation {} failed: {reason}; generation {} keeps serving",
            pending.generation,
            self.generation
        );
        for w in &mut self.workers {
            if w.generation == pending.generation {
                w.signal(Signal::SIGKILL);
                w.state = State::Retiring {
                    deadline: Instant::now() + KILL_GRACE,
                };
            }
        }
        self.last_reload = Err(reason.to_owned());
        crate::sd::ready(&self.status(&format!("last reload failed: {reason}")));
    }

    fn stop(&mut self, signal: Signal) {
        crate::sd::stopping(&self.status("stopping"));
        let grace = if signal == Signal::SIGTERM {
            self.limits.graceful_timeout + KILL_GRACE
        } else {
            KILL_GRACE
        };
        let deadline = Instant::now() + grace;
        self.stopping = Some(deadline);
        for w in &mut self.workers {
            w.signal(signal);
            w.state = State::Retiring { deadline };
        }
    }

    /// Once a second while a stop drains: systemd may wait beyond `TimeoutStopSec=` for as
    /// long as the drain can still take.
    fn extend_stop_timeout(&mut self, deadline: Instant) {
        let now = Instant::now();
        if self.extend_at.is_some_and(|at| now < at) {
            return;
        }
        self.extend_at = Some(now + Duration::from_secs(1));
        crate::sd::extend_timeout(
            deadline.saturating_duration_since(now) + 2 * KILL_GRACE + Duration::from_secs(3),
        );
    }

    fn next_deadline(&self) -> Option<Instant> {
        let now = Instant::now();
        let workers = self.workers.iter().map(|w| match w.state {
            State::Booting { deadline } | State::Retiring { deadline } => deadline,
            State::Ready if self.limits.timeout.is_zero() => now + Duration::from_secs(1),
            State::Ready => w.last_beat + self.limits.timeout,
        });
        workers
            .chain(self.watchdog.map(|(_, due)| due))
            .chain(self.respawn.values().copied())
            .chain(self.reload_at)
            .min()
    }

    /// With `--reload`: watches the files the current config read (they may have changed
    /// with the reload: a new include).
    fn rewatch(&mut self, signals: &Signals) {
        if !self.watching {
            return;
        }
        let mut files = self.files.clone();
        if let Some(config) = files.first().cloned() {
            files.extend(crate::watch::watch_files(&config));
        }
        // The Python modules the serving generation imported: editing a view reloads.
        for w in self
            .workers
            .iter()
            .filter(|w| w.generation == self.generation)
        {
            files.extend(w.sources.iter().cloned());
        }
        files.sort();
        files.dedup();
        if self.watch.as_ref().is_some_and(|w| {
            w.files()
                .iter()
                .eq(files.iter().collect::<std::collections::BTreeSet<_>>())
        }) {
            return;
        }
        match crate::watch::FileWatch::new(&files, &signals.waker) {
            Ok(watch) => {
                tracing::info!("watching {} files for changes", watch.files().len());
                self.watch = Some(watch);
            }
            Err(e) => tracing::error!("cannot watch the config files: {e}"),
        }
    }

    fn kill_all(&self, signal: Signal) {
        for w in &self.workers {
            w.signal(signal);
        }
    }

    fn reap_all_blocking(&mut self) {
        for w in &mut self.workers {
            let _ = nix::sys::wait::waitpid(w.pid(), None);
        }
        self.workers.clear();
    }

    /// Removes the unix sockets serve bound, unless systemd keeps them for the next start.
    fn remove_unix_sockets(&self) {
        if crate::activation::store_capacity() > 0 {
            return;
        }
        for l in self.sockets.own() {
            if let Some(ListenAddr::Unix(path)) = &l.entry {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// A worker's extra requests before recycling, up to `max`, different for each worker so they
/// do not all recycle at once.
fn jitter(max: u64, pid: u32) -> u64 {
    if max == 0 {
        return 0;
    }
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(pid);
    hasher.finish() % (max + 1)
}

/// Why a booting worker failed.
fn describe_failure(w: &Worker, exited: Option<Exit>, late: bool) -> String {
    let what = match (&w.failure, exited, late) {
        (Some(reason), _, _) => reason.clone(),
        (None, Some(status), _) => format!("exited ({status})"),
        (None, None, _) => "not ready within the boot timeout".to_owned(),
    };
    format!("worker {} (pid {}): {what}", w.number, w.pid)
}
