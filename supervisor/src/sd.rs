//! Telling systemd (or any service manager speaking the `sd_notify` protocol) what the
//! supervisor is doing, from the supervisor only (`NotifyAccess=main`; workers never see
//! `NOTIFY_SOCKET`).
//!
//! `READY=1` once every worker of the first generation is ready; on each reload `RELOADING=1`
//! with `MONOTONIC_USEC` (which `Type=notify-reload` requires), then `READY=1` when the new
//! generation serves, or when the reload failed and the old one still does; `STOPPING=1` on a
//! stop, then `EXTEND_TIMEOUT_USEC` while the drain runs; `STATUS=` with the generation, the
//! ready workers and the last reload's result; `FDSTORE=1` with the sockets for systemd's FD
//! store. `MAINPID=` is sent once, with the first `READY=1`: the supervisor's PID never changes
//! afterwards (a `USR2` upgrade execs in place). Without `NOTIFY_SOCKET` nothing is sent.

use sd_notify::NotifyState;

/// The environment variable naming the service manager's socket.
pub const SOCKET: &str = "NOTIFY_SOCKET";

fn send(states: &[NotifyState<'_>]) {
    if std::env::var_os(SOCKET).is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify the service manager: {e}");
    }
}

/// The service serves for the first time, from this process.
pub fn started(status: &str) {
    send(&[
        NotifyState::Ready,
        NotifyState::MainPid(std::process::id()),
        NotifyState::Status(status),
    ]);
}

/// The service serves (after a reload, successful or not).
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A reload starts.
pub fn reloading(status: &str) {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now, NotifyState::Status(status)]),
        Err(e) => tracing::warn!("cannot read the monotonic clock for RELOADING: {e}"),
    }
}

/// How often systemd expects `WATCHDOG=1` (`WATCHDOG_USEC`, for this process), if at all.
pub fn watchdog_interval() -> Option<std::time::Duration> {
    sd_notify::watchdog_enabled()
}

/// The supervisor's loop runs and its workers heartbeat.
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// The service stops.
pub fn stopping(status: &str) {
    send(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

/// A stop takes longer: systemd should wait `more` beyond `TimeoutStopSec=` if need be.
pub fn extend_timeout(more: std::time::Duration) {
    let usec = u32::try_from(more.as_micros()).unwrap_or(u32::MAX);
    send(&[NotifyState::ExtendTimeoutUsec(usec)]);
}

/// Keeps `fd` in systemd's FD store under `name`.
pub fn store_fd(name: &str, fd: std::os::fd::BorrowedFd<'_>) {
    if std::env::var_os(SOCKET).is_none() {
        return;
    }
    if let Err(e) =
        sd_notify::notify_with_fds(&[NotifyState::FdStore, NotifyState::FdName(name)], &[fd])
    {
        tracing::warn!("cannot store {name} in the service manager's FD store: {e}");
    }
}

/// Removes the fds stored under `name` from systemd's FD store.
pub fn remove_stored(name: &str) {
    send(&[NotifyState::FdStoreRemove, NotifyState::FdName(name)]);
}
