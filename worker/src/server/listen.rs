//! Binding the addresses a server section names, as plain (blocking-mode-agnostic) std sockets
//! that a supervisor can own and hand to workers, with the section's backlog.
//!
//! `*` means every interface: `0.0.0.0` and `[::]` (the latter v6-only, so both bind). A host
//! name binds every address it resolves to. A unix socket path that holds a stale socket is
//! replaced; any other file there is an error.

use crate::settings::ListenAddr;
use socket2::{Domain, Socket, Type};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::FileTypeExt;
use thiserror::Error;

/// A bound, listening socket.
#[derive(Debug)]
pub enum Bound {
    /// TCP.
    Tcp(std::net::TcpListener),
    /// A unix socket.
    Unix(std::os::unix::net::UnixListener),
}

impl Bound {
    /// The address for messages (`http://127.0.0.1:6543`, `unix:/run/app.sock`).
    pub fn describe(&self) -> String {
        match self {
            Bound::Tcp(l) => match l.local_addr() {
                Ok(addr) => format!("http://{addr}"),
                Err(_) => "http://(unknown)".into(),
            },
            Bound::Unix(l) => match l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
            {
                Some(path) => format!("unix:{path}"),
                None => "unix:(unnamed)".into(),
            },
        }
    }
}

/// An address that could not be bound.
#[derive(Debug, Error)]
#[error("cannot listen on {addr}: {source}")]
pub struct BindError {
    /// What was asked for.
    pub addr: String,
    /// Why not.
    pub source: io::Error,
}

/// Binds `addr` with `backlog`: one socket per resolved address.
pub fn bind(addr: &ListenAddr, backlog: u32) -> Result<Vec<Bound>, BindError> {
    let fail = |source: io::Error| BindError {
        addr: addr.to_string(),
        source,
    };
    match addr {
        ListenAddr::Unix(path) => {
            if let Ok(meta) = std::fs::symlink_metadata(path) {
                if meta.file_type().is_socket() {
                    std::fs::remove_file(path).map_err(fail)?;
                }
            }
            let socket = Socket::new(Domain::UNIX, Type::STREAM, None).map_err(fail)?;
            socket
                .bind(&socket2::SockAddr::unix(path).map_err(fail)?)
                .map_err(fail)?;
            socket.listen(backlog_int(backlog)).map_err(fail)?;
            Ok(vec![Bound::Unix(socket.into())])
        }
        ListenAddr::Tcp { host, port } => {
            let addrs: Vec<SocketAddr> = if host == "*" {
                vec![
                    SocketAddr::from(([0, 0, 0, 0], *port)),
                    SocketAddr::from(([0u16; 8], *port)),
                ]
            } else {
                (host.as_str(), *port)
                    .to_socket_addrs()
                    .map_err(fail)?
                    .collect()
            };
            let mut bound = Vec::new();
            for sock_addr in addrs {
                let socket = Socket::new(Domain::for_address(sock_addr), Type::STREAM, None)
                    .map_err(fail)?;
                socket.set_reuse_address(true).map_err(fail)?;
                if sock_addr.is_ipv6() {
                    socket.set_only_v6(true).map_err(fail)?;
                }
                socket.set_tcp_nodelay(true).map_err(fail)?;
                socket.bind(&sock_addr.into()).map_err(fail)?;
                socket.listen(backlog_int(backlog)).map_err(fail)?;
                bound.push(Bound::Tcp(socket.into()));
            }
            Ok(bound)
        }
    }
}

fn backlog_int(backlog: u32) -> i32 {
    i32::try_from(backlog).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_port_zero_and_reports_the_address() {
        let bound = bind(
            &ListenAddr::Tcp {
                host: "127.0.0.1".into(),
                port: 0,
            },
            16,
        )
        .unwrap();
        assert_eq!(bound.len(), 1);
        assert!(bound[0].describe().starts_with("http://127.0.0.1:"));
    }

    #[test]
    fn replaces_a_stale_unix_socket_but_not_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        drop(bind(&ListenAddr::Unix(path.clone()), 16).unwrap());
        let again = bind(&ListenAddr::Unix(path.clone()), 16).unwrap();
        assert_eq!(again[0].describe(), format!("unix:{}", path.display()));
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        assert!(bind(&ListenAddr::Unix(file), 16).is_err());
    }

    #[test]
    fn a_taken_port_is_a_clear_error() {
        let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = first.local_addr().unwrap().port();
        let err = bind(
            &ListenAddr::Tcp {
                host: "127.0.0.1".into(),
                port,
            },
            16,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("cannot listen on 127.0.0.1:{port}: ")),
            "{err}"
        );
    }
}
