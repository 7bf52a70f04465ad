//! Telling systemd (or any service manager speaking the `sd_notify` protocol) what the
//! supervisor is doing, from the supervisor only (`NotifyAccess=main`; workers never see
//! `NOTIFY_SOCKET`).
//!
//! `READY=1` once every worker of the first generation is ready; on each reload `RELOADING=1`
//! with `MONOTONIC_USEC` (which `Type=notify-reload` requires), then `READY=1` when the new
//! generation serves, or when the reload failed and the old one still does; `STOPPING=1` on a
//! stop; `STATUS=` with the generation, the ready workers and the last reload's result. Without
//! `NOTIFY_SOCKET` nothing is sent.

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

/// The service serves (after start or a reload, successful or not).
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
