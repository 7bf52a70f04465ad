//! The listening sockets the supervisor owns: which `bind`/`listen` entry each serves and
//! where it came from, so that a reload can keep the sockets of entries still configured (the
//! same socket, its queue intact), bind new ones, and close the ones no longer configured.
//!
//! Sockets inherited from systemd (see `activation`) are matched to entries by name
//! (`systemd:NAME`) or by address. A socket unit's sockets are served by every generation and
//! never closed, whether or not an entry names them; sockets serve bound itself (also those
//! that came back from systemd's FD store) are closed once no entry wants them.

use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use worker::server::listen::{bind, Bound, Local};
use worker::settings::ListenAddr;

/// Who made a socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// serve bound it: this process, or an earlier one that kept it in systemd's FD store.
    Own,
    /// systemd passed it from a socket unit, under this name (`FileDescriptorName=`).
    Activated(String),
}

/// One listening socket.
#[derive(Debug)]
pub struct Listener {
    /// The socket.
    pub socket: Bound,
    /// The entry it serves; `None` for an inherited socket that no entry names.
    pub entry: Option<ListenAddr>,
    /// Who made it.
    pub origin: Origin,
}

/// Listening sockets, in the order workers receive them.
#[derive(Debug, Default)]
pub struct Sockets {
    /// The sockets.
    pub listeners: Vec<Listener>,
}

fn duplicate(bound: &Bound) -> std::io::Result<Bound> {
    Ok(match bound {
        Bound::Tcp(l) => Bound::Tcp(l.try_clone()?),
        Bound::Unix(l) => Bound::Unix(l.try_clone()?),
    })
}

/// Whether `listener`, inherited and not yet claimed, is the socket `entry` asks for.
/// `resolved` is what a TCP entry's host resolves to.
fn answers(listener: &Listener, entry: &ListenAddr, resolved: &[SocketAddr]) -> bool {
    if let ListenAddr::Systemd(name) = entry {
        return listener.origin == Origin::Activated(name.clone());
    }
    match (entry, listener.socket.local()) {
        (ListenAddr::Tcp { host, port }, Ok(Local::Tcp(local))) if host == "*" => {
            local.port() == *port && local.ip().is_unspecified()
        }
        (ListenAddr::Tcp { .. }, Ok(Local::Tcp(local))) => resolved.contains(&local),
        (ListenAddr::Unix(path), Ok(Local::Unix(Some(local)))) => *path == local,
        _ => false,
    }
}

fn resolve(entry: &ListenAddr) -> Vec<SocketAddr> {
    match entry {
        ListenAddr::Tcp { host, port } if host != "*" => (host.as_str(), *port)
            .to_socket_addrs()
            .map(Iterator::collect)
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

impl Sockets {
    /// Sockets for `wanted`: those of `current` that already serve an entry, or (inherited
    /// ones) answer it, are shared, not rebound; the rest are bound. Every socket a socket
    /// unit passed is kept, named by an entry or not.
    pub fn for_addrs(
        wanted: &[ListenAddr],
        backlog: u32,
        current: Option<&Sockets>,
    ) -> Result<Sockets, String> {
        let current: &[Listener] = current.map_or(&[], |c| &c.listeners);
        let mut taken = vec![false; current.len()];
        let mut next = Sockets::default();
        let share = |l: &Listener, entry: Option<ListenAddr>| -> Result<Listener, String> {
            Ok(Listener {
                socket: duplicate(&l.socket).map_err(|e| {
                    format!("cannot share the socket of {}: {e}", l.socket.describe())
                })?,
                entry,
                origin: l.origin.clone(),
            })
        };
        // Sockets that already serve an entry first, then inherited or equivalent ones by
        // name or address (`localhost:80` after `127.0.0.1:80` shares the socket).
        let mut claims: Vec<Vec<usize>> = vec![Vec::new(); wanted.len()];
        for (j, entry) in wanted.iter().enumerate() {
            for (i, l) in current.iter().enumerate() {
                if !taken[i] && l.entry.as_ref() == Some(entry) {
                    taken[i] = true;
                    claims[j].push(i);
                }
            }
        }
        for (j, entry) in wanted.iter().enumerate() {
            if !claims[j].is_empty() {
                continue;
            }
            let resolved = resolve(entry);
            for (i, l) in current.iter().enumerate() {
                if !taken[i] && answers(l, entry, &resolved) {
                    taken[i] = true;
                    claims[j].push(i);
                    if l.entry.is_none() {
                        let from = match &l.origin {
                            Origin::Activated(name) => format!("socket activation, '{name}'"),
                            Origin::Own => "the FD store".to_owned(),
                        };
                        tracing::info!(
                            "listening on {} (from systemd: {from})",
                            l.socket.describe()
                        );
                    }
                }
            }
        }
        for (entry, claim) in wanted.iter().zip(&claims) {
            for &i in claim {
                next.listeners
                    .push(share(&current[i], Some(entry.clone()))?);
            }
            if claim.is_empty() {
                for socket in bind(entry, backlog).map_err(|e| e.to_string())? {
                    tracing::info!("listening on {}", socket.describe());
                    next.listeners.push(Listener {
                        socket,
                        entry: Some(entry.clone()),
                        origin: Origin::Own,
                    });
                }
            }
        }
        for (i, l) in current.iter().enumerate() {
            if !taken[i] && matches!(l.origin, Origin::Activated(_)) {
                if l.entry.is_some() {
                    tracing::info!(
                        "{} is no longer configured, but came from a socket unit: still serving it",
                        l.socket.describe()
                    );
                }
                next.listeners.push(share(l, None)?);
            }
        }
        Ok(next)
    }

    /// The sockets, in the order workers receive them.
    pub fn bound(&self) -> Vec<&Bound> {
        self.listeners.iter().map(|l| &l.socket).collect()
    }

    /// Whether these are the sockets for exactly `wanted`.
    pub fn serves(&self, wanted: &[ListenAddr]) -> bool {
        let mine: HashSet<&ListenAddr> = self
            .listeners
            .iter()
            .filter_map(|l| l.entry.as_ref())
            .collect();
        let theirs: HashSet<&ListenAddr> = wanted.iter().collect();
        mine == theirs
    }

    /// The sockets of `self` that serve bound and `next` no longer has.
    pub fn dropped_by<'a>(&'a self, next: &Sockets) -> Vec<&'a Listener> {
        let kept: Vec<Local> = next
            .listeners
            .iter()
            .filter_map(|l| l.socket.local().ok())
            .collect();
        self.own()
            .filter(|l| !l.socket.local().is_ok_and(|local| kept.contains(&local)))
            .collect()
    }

    /// The sockets serve bound itself.
    pub fn own(&self) -> impl Iterator<Item = &Listener> {
        self.listeners.iter().filter(|l| l.origin == Origin::Own)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::IntoRawFd;

    fn tcp(host: &str, port: u16) -> ListenAddr {
        ListenAddr::Tcp {
            host: host.into(),
            port,
        }
    }

    fn inherited(listener: std::net::TcpListener, origin: Origin) -> Listener {
        Listener {
            // SAFETY: the fd was just released by its owner.
            socket: unsafe { Bound::from_inherited(listener.into_raw_fd()) }.unwrap(),
            entry: None,
            origin,
        }
    }

    fn port_of(l: &Listener) -> u16 {
        match l.socket.local().unwrap() {
            Local::Tcp(addr) => addr.port(),
            Local::Unix(_) => 0,
        }
    }

    #[test]
    fn inherited_sockets_answer_entries_by_address_and_by_name() {
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let c = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (pa, pb, pc) = (
            a.local_addr().unwrap().port(),
            b.local_addr().unwrap().port(),
            c.local_addr().unwrap().port(),
        );
        let current = Sockets {
            listeners: vec![
                inherited(a, Origin::Activated("web".into())),
                inherited(b, Origin::Activated("other".into())),
                inherited(c, Origin::Activated("extra".into())),
            ],
        };
        let wanted = [
            tcp("localhost", pa),
            ListenAddr::Systemd("other".into()),
            tcp("127.0.0.1", 0),
        ];
        let next = Sockets::for_addrs(&wanted, 16, Some(&current)).unwrap();
        let entries: Vec<Option<&ListenAddr>> =
            next.listeners.iter().map(|l| l.entry.as_ref()).collect();
        assert_eq!(
            entries,
            [Some(&wanted[0]), Some(&wanted[1]), Some(&wanted[2]), None]
        );
        assert_eq!(port_of(&next.listeners[0]), pa);
        assert_eq!(port_of(&next.listeners[1]), pb);
        assert_ne!(port_of(&next.listeners[2]), 0);
        assert_eq!(next.listeners[2].origin, Origin::Own);
        // An activated socket no entry names is served all the same.
        assert_eq!(port_of(&next.listeners[3]), pc);
        assert!(next.serves(&wanted));

        // A reload that keeps only `web` keeps every activated socket and drops the own one.
        let later =
            Sockets::for_addrs(&[ListenAddr::Systemd("web".into())], 16, Some(&next)).unwrap();
        let activated = later
            .listeners
            .iter()
            .filter(|l| matches!(l.origin, Origin::Activated(_)))
            .count();
        assert_eq!(activated, 3);
        let dropped: Vec<u16> = next.dropped_by(&later).iter().map(|l| port_of(l)).collect();
        assert_eq!(dropped, [port_of(&next.listeners[2])]);
    }

    #[test]
    fn unclaimed_own_sockets_are_not_kept_and_a_missing_name_is_an_error() {
        let stored = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let current = Sockets {
            listeners: vec![inherited(stored, Origin::Own)],
        };
        let next = Sockets::for_addrs(&[tcp("127.0.0.1", 0)], 16, Some(&current)).unwrap();
        assert_eq!(next.listeners.len(), 1);
        let err = Sockets::for_addrs(&[ListenAddr::Systemd("web".into())], 16, Some(&current))
            .unwrap_err();
        assert!(err.contains("no socket named 'web'"), "{err}");
    }

    #[test]
    fn another_spelling_of_a_bound_address_shares_its_socket() {
        let first = Sockets::for_addrs(&[tcp("127.0.0.1", 0)], 16, None).unwrap();
        let port = port_of(&first.listeners[0]);
        let respelled = [tcp("localhost", port)];
        let next = Sockets::for_addrs(&respelled, 16, Some(&first)).unwrap();
        assert!(next.listeners.iter().any(|l| port_of(l) == port));
        assert!(first.dropped_by(&next).is_empty());
    }

    #[test]
    fn star_answers_unspecified_addresses_only() {
        let any = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = any.local_addr().unwrap().port();
        let l = inherited(any, Origin::Activated("a".into()));
        assert!(answers(&l, &tcp("*", port), &[]));
        assert!(!answers(&l, &tcp("*", port.wrapping_add(1)), &[]));
        let lo = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = lo.local_addr().unwrap().port();
        let l = inherited(lo, Origin::Activated("b".into()));
        assert!(!answers(&l, &tcp("*", port), &[]));
    }
}
