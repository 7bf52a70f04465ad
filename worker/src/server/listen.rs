//! Binding the addresses a server section names, as plain (blocking-mode-agnostic) std sockets
//! that a supervisor can own and hand to workers, with the section's backlog.
//!
//! `*` means every interface: `0.0.0.0` and `[::]` (the latter v6-only, so both bind). A host
//! name binds every address it resolves to. A unix socket path that holds a stale socket is
//! replaced; any other file there is an error. `systemd:NAME` is never bound here: the
//! supervisor takes such sockets from systemd ([`Bound::from_inherited`]).

use crate::settings::ListenAddr;
use socket2::{Domain, Socket, Type};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;
use thiserror::Error;

/// A bound, listening socket.
#[derive(Debug)]
pub enum Bound {
    /// TCP.
    Tcp(std::net::TcpListener),
    /// A unix socket.
    Unix(std::os::unix::net::UnixListener),
}

/// Where a listening socket listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Local {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A unix socket's path (`None`: unnamed or abstract).
    Unix(Option<PathBuf>),
}

impl Bound {
    /// Takes over a listening socket this process inherited (from systemd's socket
    /// activation or FD store, or from the supervisor it replaced): a stream socket that
    /// listens, TCP or unix. On error the fd is closed.
    ///
    /// # Safety
    ///
    /// `fd` must be open, and nothing else in this process may own or close it.
    pub unsafe fn from_inherited(fd: RawFd) -> io::Result<Bound> {
        // SAFETY: the caller hands over `fd`, open and owned by nothing else.
        let socket = unsafe { Socket::from_raw_fd(fd) };
        let refuse = |what: String| {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("fd {fd} is {what}, not a listening TCP or unix stream socket"),
            ))
        };
        if socket.r#type()? != Type::STREAM {
            return refuse("not a stream socket".into());
        }
        if !socket.is_listener()? {
            return refuse("a socket that does not listen".into());
        }
        socket.set_cloexec(true)?;
        let domain = socket.domain()?;
        if domain == Domain::UNIX {
            Ok(Bound::Unix(socket.into()))
        } else if domain == Domain::IPV4 || domain == Domain::IPV6 {
            // Accepted connections inherit it.
            socket.set_tcp_nodelay(true)?;
            Ok(Bound::Tcp(socket.into()))
        } else {
            refuse(format!("a socket of {domain:?}"))
        }
    }

    /// Where it listens.
    pub fn local(&self) -> io::Result<Local> {
        match self {
            Bound::Tcp(l) => Ok(Local::Tcp(l.local_addr()?)),
            Bound::Unix(l) => Ok(Local::Unix(
                l.local_addr()?.as_pathname().map(|p| p.to_path_buf()),
            )),
        }
    }

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
        ListenAddr::Systemd(name) => Err(fail(io::Error::new(
            io::ErrorKind::NotFound,
            format!("systemd passed no socket named '{name}' (LISTEN_FDNAMES)"),
        ))),
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
    fn takes_over_listening_sockets_only() {
        use std::os::fd::IntoRawFd;
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = tcp.local_addr().unwrap();
        // SAFETY: the fd was just released by its owner.
        let bound = unsafe { Bound::from_inherited(tcp.into_raw_fd()) }.unwrap();
        assert_eq!(bound.local().unwrap(), Local::Tcp(addr));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let unix = std::os::unix::net::UnixListener::bind(&path).unwrap();
        // SAFETY: as above.
        let bound = unsafe { Bound::from_inherited(unix.into_raw_fd()) }.unwrap();
        assert_eq!(bound.local().unwrap(), Local::Unix(Some(path)));

        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // SAFETY: as above.
        let err = unsafe { Bound::from_inherited(udp.into_raw_fd()) }.unwrap_err();
        assert!(err.to_string().contains("not a stream socket"), "{err}");
        let unlistened = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        // SAFETY: as above.
        let err = unsafe { Bound::from_inherited(unlistened.into_raw_fd()) }.unwrap_err();
        assert!(err.to_string().contains("does not listen"), "{err}");
    }

    #[test]
    fn a_systemd_name_is_never_bound() {
        let err = bind(&ListenAddr::Systemd("web".into()), 16).unwrap_err();
        assert!(
            err.to_string()
                .contains("systemd passed no socket named 'web'"),
            "{err}"
        );
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
