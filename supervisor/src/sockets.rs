//! The listening sockets the supervisor owns: which address each came from, so that a reload
//! can keep the sockets of addresses still configured (the same socket, its queue intact), bind
//! new ones, and close the ones no longer configured.

use std::collections::HashSet;
use worker::server::listen::{bind, Bound};
use worker::settings::ListenAddr;

/// Listening sockets and the address each was bound for.
#[derive(Debug, Default)]
pub struct Sockets {
    /// The sockets, in the order workers receive them.
    pub bound: Vec<Bound>,
    /// The address of each socket (one address may have several: `*`, or a name that resolves
    /// to v4 and v6).
    pub addrs: Vec<ListenAddr>,
}

fn duplicate(bound: &Bound) -> std::io::Result<Bound> {
    Ok(match bound {
        Bound::Tcp(l) => Bound::Tcp(l.try_clone()?),
        Bound::Unix(l) => Bound::Unix(l.try_clone()?),
    })
}

impl Sockets {
    /// Sockets for `wanted`: those of `current` that are still wanted (shared, not rebound),
    /// plus newly bound ones.
    pub fn for_addrs(
        wanted: &[ListenAddr],
        backlog: u32,
        current: Option<&Sockets>,
    ) -> Result<Sockets, String> {
        let mut next = Sockets::default();
        for addr in wanted {
            let kept: Vec<&Bound> = current
                .map(|c| {
                    c.addrs
                        .iter()
                        .zip(&c.bound)
                        .filter(|(a, _)| *a == addr)
                        .map(|(_, b)| b)
                        .collect()
                })
                .unwrap_or_default();
            if kept.is_empty() {
                for bound in bind(addr, backlog).map_err(|e| e.to_string())? {
                    tracing::info!("listening on {}", bound.describe());
                    next.bound.push(bound);
                    next.addrs.push(addr.clone());
                }
            } else {
                for bound in kept {
                    next.bound.push(
                        duplicate(bound)
                            .map_err(|e| format!("cannot share the socket of {addr}: {e}"))?,
                    );
                    next.addrs.push(addr.clone());
                }
            }
        }
        Ok(next)
    }

    /// Whether these are the sockets for exactly `wanted`.
    pub fn serves(&self, wanted: &[ListenAddr]) -> bool {
        let mine: HashSet<&ListenAddr> = self.addrs.iter().collect();
        let theirs: HashSet<&ListenAddr> = wanted.iter().collect();
        mine == theirs
    }

    /// The addresses of `self` that `next` no longer has.
    pub fn dropped_by(&self, next: &Sockets) -> Vec<ListenAddr> {
        let mut gone: Vec<ListenAddr> = self
            .addrs
            .iter()
            .filter(|a| !next.addrs.contains(a))
            .cloned()
            .collect();
        gone.dedup();
        gone
    }
}
