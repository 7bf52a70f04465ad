//! Sockets systemd holds for the service: socket activation (`LISTEN_FDS`, `LISTEN_PID`,
//! `LISTEN_FDNAMES`) and the FD store (`FileDescriptorStoreMax=`, which systemd ≥ 254 announces
//! in `$FDSTORE`).
//!
//! At start the supervisor takes the sockets systemd passed and clears the variables, so no
//! worker sees them. A socket whose name starts with [`STORE_PREFIX`] is one serve bound and
//! kept in the FD store on an earlier run; any other came from a socket unit. With an FD store,
//! every socket serve binds is stored under a name derived from its address, and removed from
//! the store when a reload stops listening there: `systemctl restart` then hands the same
//! sockets to the next supervisor, and connections that arrive in between wait in their queues.

use crate::sockets::{Listener, Origin, Sockets};
use std::os::fd::AsFd;
use worker::server::listen::{Bound, Local};

/// The start of the names serve's own sockets are stored under.
pub const STORE_PREFIX: &str = "serve.fdstore.";

const VARS: [&str; 3] = ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"];

/// The sockets systemd passed to this process (none if it passed none), with the `LISTEN_*`
/// variables cleared.
pub fn inherit() -> Result<Sockets, String> {
    let passed = sd_notify::listen_fds_with_names();
    for var in VARS {
        std::env::remove_var(var);
    }
    let passed = passed.map_err(|e| format!("the sockets systemd passed (LISTEN_FDS): {e}"))?;
    let mut sockets = Sockets::default();
    for (fd, name) in passed {
        // SAFETY: systemd passed this fd to this process alone (LISTEN_PID is ours), and
        // nothing else in the process has claimed it.
        let socket = unsafe { Bound::from_inherited(fd) }
            .map_err(|e| format!("the socket systemd passed as '{name}': {e}"))?;
        let origin = if name.starts_with(STORE_PREFIX) {
            Origin::Own
        } else {
            Origin::Activated(name)
        };
        sockets.listeners.push(Listener {
            socket,
            entry: None,
            origin,
        });
    }
    Ok(sockets)
}

/// How many fds systemd keeps for this service (`FileDescriptorStoreMax=`); 0 without a
/// service manager or an FD store.
pub fn store_capacity() -> usize {
    if std::env::var_os(crate::sd::SOCKET).is_none() {
        return 0;
    }
    std::env::var("FDSTORE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The name `socket` is stored under: [`STORE_PREFIX`] and its address, in the characters
/// systemd allows in a name.
pub fn store_name(socket: &Bound) -> String {
    let address = match socket.local() {
        Ok(Local::Tcp(addr)) => format!("tcp-{addr}"),
        Ok(Local::Unix(Some(path))) => format!("unix-{}", path.display()),
        Ok(Local::Unix(None)) | Err(_) => "unknown".to_owned(),
    };
    let name: String = format!("{STORE_PREFIX}{address}")
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != ':' {
                c
            } else {
                '_'
            }
        })
        .collect();
    name.chars().take(255).collect()
}

/// Stores serve's own sockets of `sockets` (systemd ignores one it already holds).
pub fn store(sockets: &Sockets) {
    let capacity = store_capacity();
    if capacity == 0 {
        return;
    }
    let own: Vec<&Listener> = sockets.own().collect();
    if own.len() > capacity {
        tracing::warn!(
            "{} sockets, but FileDescriptorStoreMax={capacity}: a restart rebinds the rest",
            own.len()
        );
    }
    for l in own {
        let fd = match &l.socket {
            Bound::Tcp(s) => s.as_fd(),
            Bound::Unix(s) => s.as_fd(),
        };
        crate::sd::store_fd(&store_name(&l.socket), fd);
    }
}

/// Takes `listeners` out of the FD store.
pub fn unstore<'a>(listeners: impl IntoIterator<Item = &'a Listener>) {
    if store_capacity() == 0 {
        return;
    }
    for l in listeners {
        if l.origin == Origin::Own {
            crate::sd::remove_stored(&store_name(&l.socket));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_names_are_valid_systemd_names() {
        let v6 = std::net::TcpListener::bind("[::1]:0");
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = v4.local_addr().unwrap().port();
        assert_eq!(
            store_name(&Bound::Tcp(v4)),
            format!("serve.fdstore.tcp-127.0.0.1_{port}")
        );
        if let Ok(v6) = v6 {
            let name = store_name(&Bound::Tcp(v6));
            assert!(name.starts_with("serve.fdstore.tcp-[__1]_"), "{name}");
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a b.sock");
        let unix = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let name = store_name(&Bound::Unix(unix));
        assert!(name.ends_with("/a_b.sock"), "{name}");
        assert!(!name.contains(':'));
    }
}
