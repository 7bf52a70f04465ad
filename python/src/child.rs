//! Running a short-lived child (the environment's interpreter, `serve python-eggs`) with a
//! deadline: the supervisor reads Python environments while it serves, and a child that hangs
//! (a `sitecustomize` waiting on the network, say) must fail the reload, not stall it.

use std::io::{self, Read};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a child may take.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Runs `command` to completion, or kills it at `deadline`; stdout and stderr are collected.
pub fn output(command: &mut Command, deadline: Duration) -> io::Result<Output> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    // Both pipes are drained while waiting, so a chatty child never blocks on a full pipe.
    // The readers answer through channels, so that a grandchild holding a pipe open cannot
    // keep this call waiting past the deadline either.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut data = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut data);
            }
            let _ = sender.send(data);
        });
        receiver
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let until = Instant::now() + deadline;
    let timed_out = || {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer within {} s", deadline.as_secs()),
        )
    };
    let status = loop {
        let waited = child.try_wait();
        if let Ok(Some(status)) = waited {
            break status;
        }
        if waited.is_err() || Instant::now() >= until {
            let _ = child.kill();
            let _ = child.wait();
            return Err(waited.err().unwrap_or_else(timed_out));
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let left = |receiver: &std::sync::mpsc::Receiver<Vec<u8>>| {
        receiver
            .recv_timeout(until.saturating_duration_since(Instant::now()))
            .map_err(|_| timed_out())
    };
    Ok(Output {
        status,
        stdout: left(&stdout)?,
        stderr: left(&stderr)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_that_hangs_is_killed_at_the_deadline() {
        let started = Instant::now();
        let error =
            output(Command::new("sleep").arg("30"), Duration::from_millis(200)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_grandchild_holding_the_pipes_does_not_outlast_the_deadline() {
        let started = Instant::now();
        let error = output(
            Command::new("sh").args(["-c", "sleep 3 & echo started"]),
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_child_that_answers_is_read_whole() {
        let out = output(
            Command::new("sh").args(["-c", "head -c 200000 /dev/zero; echo err >&2"]),
            DEADLINE,
        )
        .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), 200_000);
        assert_eq!(out.stderr, b"err\n");
    }
}
