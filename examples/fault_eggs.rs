//! `serve` with eggs that misbehave on purpose, for the supervisor's fault tests (not part of
//! the real binary). Each is `egg:test#NAME`:
//!
//! - `sleep`: answers after `?MS` milliseconds (`/?300`).
//! - `panic`: panics in every request.
//! - `block`: blocks its worker's runtime for `seconds` (default 60) on every request.
//! - `fail`: its factory fails (a configuration error the worker reports).
//! - `abort`: its factory aborts the worker process while it boots.
//! - `hang`: its factory never returns (the worker never becomes ready).
//! - `crash_later`: worker `worker` (default 1) aborts `ms` milliseconds after it started.

use serve::app::{app_fn, text};
use serve::conf::{ConfExt, EggError};
use serve::Eggs;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let mut eggs = Eggs::builtin();
    eggs.app("test", "sleep", |_, _| {
        Ok(app_fn(|req| async move {
            let ms: u64 = req.uri().query().and_then(|q| q.parse().ok()).unwrap_or(0);
            tracing::info!("test#sleep: sleeping {ms} ms");
            tokio::time::sleep(Duration::from_millis(ms)).await;
            text(http::StatusCode::OK, format!("slept {ms}\n"))
        }))
    })
    .app("test", "panic", |_, _| {
        Ok(app_fn(|_req| async { panic!("test#panic") }))
    })
    .app("test", "block", |_, local| {
        let seconds = local.int("seconds", 60)?;
        Ok(app_fn(move |_req| async move {
            std::thread::sleep(Duration::from_secs(u64::try_from(seconds).unwrap_or(60)));
            text(http::StatusCode::OK, "unblocked\n")
        }))
    })
    .app("test", "fail", |_, _| {
        Err(EggError::key("reason", "this factory always fails"))
    })
    .app("test", "abort", |_, _| std::process::abort())
    .app("test", "hang", |_, _| loop {
        std::thread::sleep(Duration::from_secs(3600));
    })
    .app("test", "crash_later", |_, local| {
        let victim = usize::try_from(local.int("worker", 1)?).unwrap_or(1);
        let ms = u64::try_from(local.int("ms", 300)?).unwrap_or(300);
        if serve::identity::get().worker == victim {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(ms));
                std::process::abort();
            });
        }
        Ok(app_fn(|_req| async {
            text(http::StatusCode::OK, "still here\n")
        }))
    });
    serve::main_with(eggs)
}
