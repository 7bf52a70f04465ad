//! Who this worker is: its generation and number under the supervisor, and when it started.
//! Set once at start-up (single-process mode is generation 0, worker 0); read by `serve#health`
//! and the logs.

use std::sync::OnceLock;
use std::time::Instant;

/// A worker's identity.
#[derive(Debug, Clone, Copy)]
pub struct Identity {
    /// The generation of workers this one belongs to (it grows with every reload).
    pub generation: u64,
    /// The worker's number within its generation.
    pub worker: usize,
    /// When the worker started.
    pub started: Instant,
}

static IDENTITY: OnceLock<Identity> = OnceLock::new();

/// Records this process's identity; only the first call counts.
pub fn set(generation: u64, worker: usize) {
    let _ = IDENTITY.set(Identity {
        generation,
        worker,
        started: Instant::now(),
    });
}

/// This process's identity (generation 0, worker 0, started now, if never set).
pub fn get() -> Identity {
    *IDENTITY.get_or_init(|| Identity {
        generation: 0,
        worker: 0,
        started: Instant::now(),
    })
}
