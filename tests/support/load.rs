//! Load for the end-to-end tests: clients that hammer a server until stopped (keep-alive,
//! a new connection per request, or bodies echoed back) and tally what failed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One HTTP/1.1 response: status, lower-cased headers, body.
pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

pub fn read_reply(reader: &mut BufReader<TcpStream>) -> std::io::Result<Reply> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "closed before the status line",
        ));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut headers = HashMap::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((k, v)) = trimmed.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let mut body = Vec::new();
    if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim(), 16)
                .map_err(|_| std::io::Error::other("bad chunk size"))?;
            let mut chunk = vec![0u8; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = headers
        .get("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    }
    Ok(Reply {
        status,
        headers,
        body,
    })
}

#[derive(Clone, Copy, Debug)]
pub enum Client {
    /// GET / on one keep-alive connection (reconnecting when the server closes it).
    KeepAliveGet,
    /// GET / on a new connection each time.
    FreshGet,
    /// POST /echo with a body on a keep-alive connection.
    KeepAlivePost,
}

#[derive(Default, Debug)]
pub struct Tally {
    pub ok: u64,
    pub failures: Vec<String>,
    /// The body of the last GET / answer.
    pub last: String,
}

/// Clients hammering a server until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Tally>>,
}

impl Load {
    pub fn start(addr: &str, clients: &[Client]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = clients
            .iter()
            .map(|client| {
                let (addr, stop, client) = (addr.to_owned(), Arc::clone(&stop), *client);
                std::thread::spawn(move || drive(&addr, client, &stop))
            })
            .collect();
        Load { stop, threads }
    }

    pub fn finish(self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        let mut total = Tally::default();
        for thread in self.threads {
            let tally = thread.join().unwrap();
            total.ok += tally.ok;
            total.failures.extend(tally.failures);
            if !tally.last.is_empty() {
                total.last = tally.last;
            }
        }
        total
    }
}

pub fn drive(addr: &str, client: Client, stop: &AtomicBool) -> Tally {
    let mut tally = Tally::default();
    let mut conn: Option<(TcpStream, BufReader<TcpStream>)> = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    let payload = "p".repeat(2000);
    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
        let fresh = matches!(client, Client::FreshGet);
        if conn.is_none() || fresh {
            match TcpStream::connect(addr) {
                Ok(stream) => {
                    stream
                        .set_read_timeout(Some(Duration::from_secs(20)))
                        .unwrap();
                    let reader = BufReader::new(stream.try_clone().unwrap());
                    conn = Some((stream, reader));
                }
                Err(e) => {
                    tally.failures.push(format!("{client:?}: connect: {e}"));
                    continue;
                }
            }
        }
        let (stream, reader) = conn.as_mut().unwrap();
        let request = match client {
            Client::KeepAlivePost => format!(
                "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{payload}",
                payload.len()
            ),
            Client::FreshGet => "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_owned(),
            Client::KeepAliveGet => "GET / HTTP/1.1\r\nHost: t\r\n\r\n".to_owned(),
        };
        if let Err(e) = stream.write_all(request.as_bytes()) {
            tally.failures.push(format!("{client:?}: write: {e}"));
            conn = None;
            continue;
        }
        match read_reply(reader) {
            Ok(reply) if reply.status == 200 => {
                let body = String::from_utf8_lossy(&reply.body).into_owned();
                match client {
                    Client::KeepAlivePost if !body.ends_with(&payload) => {
                        tally.failures.push(format!("{client:?}: body lost"))
                    }
                    Client::KeepAlivePost => tally.ok += 1,
                    _ => {
                        tally.ok += 1;
                        tally.last = body;
                    }
                }
                if reply
                    .headers
                    .get("connection")
                    .is_some_and(|c| c.eq_ignore_ascii_case("close"))
                {
                    conn = None;
                }
            }
            Ok(reply) => {
                tally
                    .failures
                    .push(format!("{client:?}: status {}", reply.status));
                conn = None;
            }
            Err(e) => {
                tally.failures.push(format!("{client:?}: read: {e}"));
                conn = None;
            }
        }
    }
    tally
}
