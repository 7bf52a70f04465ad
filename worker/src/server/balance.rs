//! Spreading connections over the workers that share a listening socket.
//!
//! Every worker waits on the same socket, and the kernel wakes them all for a new connection;
//! the one already on a CPU wins the race, so on a busy machine one worker can end up holding
//! nearly every keep-alive connection while its siblings idle. To prevent that, the workers
//! publish their open connection counts in a small table in shared memory (a memfd the
//! supervisor creates and hands to each worker with a slot of its own). Before it accepts, a
//! worker that holds clearly more than its share waits a moment, so that a sibling takes the
//! connection; if none does, it accepts after that moment anyway, so a connection is never
//! left waiting on siblings that are blocked or gone.

use nix::sys::mman::{mmap, MapFlags, ProtFlags};
use std::io;
use std::num::NonZeroUsize;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Slots in a table: the most workers that take part at once.
pub const SLOTS: usize = 512;
/// A slot no accepting worker holds.
const EMPTY: u32 = u32::MAX;
/// How long a worker over its share waits before it accepts anyway.
pub const DEFER: Duration = Duration::from_millis(1);

/// Connection counts of the accepting workers, in memory shared between processes.
#[derive(Debug)]
pub struct Table {
    slots: NonNull<AtomicU32>,
    fd: OwnedFd,
}

// SAFETY: the table is only ever accessed through atomics; the mapping lives as long as the
// `Table`, and nothing else in the process unmaps it.
unsafe impl Send for Table {}
// SAFETY: as above.
unsafe impl Sync for Table {}

fn bytes() -> NonZeroUsize {
    NonZeroUsize::new(SLOTS * std::mem::size_of::<AtomicU32>()).unwrap_or(NonZeroUsize::MIN)
}

impl Table {
    /// A new table, every slot empty (in the supervisor).
    pub fn create() -> io::Result<Table> {
        let fd = nix::sys::memfd::memfd_create(
            c"serve-balance",
            nix::sys::memfd::MFdFlags::MFD_CLOEXEC,
        )?;
        nix::unistd::ftruncate(&fd, i64::try_from(bytes().get()).unwrap_or(i64::MAX))?;
        let table = Table::open(fd)?;
        for slot in 0..SLOTS {
            table.clear(slot);
        }
        Ok(table)
    }

    /// Maps the table behind `fd` (in a worker).
    pub fn open(fd: OwnedFd) -> io::Result<Table> {
        // SAFETY: a fresh shared mapping of the memfd's whole size, which is what `create`
        // truncated it to; it is unmapped only when the process exits.
        let ptr = unsafe {
            mmap(
                None,
                bytes(),
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &fd,
                0,
            )
        }?;
        Ok(Table {
            slots: ptr.cast(),
            fd,
        })
    }

    /// The fd to hand to workers.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn slots(&self) -> &[AtomicU32] {
        // SAFETY: the mapping holds SLOTS AtomicU32s (zero-initialised by the kernel, then
        // written only through atomics) and lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.slots.as_ptr(), SLOTS) }
    }

    /// Publishes the connection count of `slot`.
    pub fn set(&self, slot: usize, count: usize) {
        if let Some(s) = self.slots().get(slot) {
            s.store(u32::try_from(count).unwrap_or(EMPTY - 1), Ordering::Relaxed);
        }
    }

    /// One connection more (`opened`) or fewer in `slot`, unless the slot is empty (its worker
    /// withdrew): a compare-and-swap, so that connections ending on several threads at once
    /// never leave a stale count behind.
    pub fn adjust(&self, slot: usize, opened: bool) {
        let Some(s) = self.slots().get(slot) else {
            return;
        };
        let _ = s.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |count| match count {
            EMPTY => None,
            count if opened => Some(count.saturating_add(1).min(EMPTY - 1)),
            count => Some(count.saturating_sub(1)),
        });
    }

    /// The connection count `slot` published; `None` if no accepting worker holds it.
    pub fn count(&self, slot: usize) -> Option<u32> {
        self.slots()
            .get(slot)
            .map(|s| s.load(Ordering::Relaxed))
            .filter(|c| *c != EMPTY)
    }

    /// `slot` no longer accepts (its worker drains, or is gone).
    pub fn clear(&self, slot: usize) {
        if let Some(s) = self.slots().get(slot) {
            s.store(EMPTY, Ordering::Relaxed);
        }
    }

    /// Whether the worker in `slot` holds clearly more than its share of the connections of
    /// all accepting workers: more than the average plus an eighth of it, and at least 2 more.
    pub fn over_share(&self, slot: usize) -> bool {
        let Some(mine) = self.slots().get(slot).map(|s| s.load(Ordering::Relaxed)) else {
            return false;
        };
        if mine == EMPTY {
            return false;
        }
        let (mut total, mut workers) = (0u64, 0u64);
        for s in self.slots() {
            let count = s.load(Ordering::Relaxed);
            if count != EMPTY {
                total += u64::from(count);
                workers += 1;
            }
        }
        let average = total / workers.max(1);
        u64::from(mine) > average + (average / 8).max(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_are_seen_through_the_shared_memory() {
        let table = Table::create().unwrap();
        // Another process would map the same fd; a second mapping in this one is the same.
        let other = Table::open(table.fd().try_clone_to_owned().unwrap()).unwrap();
        assert!(!table.over_share(0), "an empty slot is never over");
        table.set(0, 10);
        assert!(!table.over_share(0), "alone, a worker takes everything");
        other.set(1, 0);
        other.set(2, 0);
        assert!(table.over_share(0), "10 of 10 with three workers");
        other.set(1, 8);
        other.set(2, 8);
        assert!(
            !table.over_share(0),
            "10 against an average of 8 is within the slack"
        );
        table.set(0, 14);
        other.clear(1);
        assert!(
            table.over_share(0),
            "14 against an average of 11, one worker gone"
        );
        assert!(!other.over_share(2));
    }
}
