//! The worker's HTTP server on real loopback sockets: keep-alive, HTTP/2, slow and oversized
//! requests, the connection limit, and drain.
#![allow(clippy::unwrap_used)]

use http::StatusCode;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use worker::app::{app_fn, text, App};
use worker::eggs::Eggs;
use worker::server::listen::{bind, Bound};
use worker::server::Server;
use worker::settings::{ListenAddr, ServerSettings};

/// An app: `/slow?MS` answers after MS milliseconds, anything else at once, with the path.
fn app() -> App {
    app_fn(|req| async move {
        if req.uri().path() == "/slow" {
            let ms: u64 = req.uri().query().and_then(|q| q.parse().ok()).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        text(StatusCode::OK, format!("path={}\n", req.uri().path()))
    })
}

fn settings(f: impl FnOnce(&mut ServerSettings)) -> ServerSettings {
    let mut s = ServerSettings::default();
    f(&mut s);
    s
}

/// Binds a free loopback port.
fn listener() -> (Vec<Bound>, SocketAddr) {
    let bound = bind(
        &ListenAddr::Tcp {
            host: "127.0.0.1".into(),
            port: 0,
        },
        64,
    )
    .unwrap();
    let addr = match &bound[0] {
        Bound::Tcp(l) => l.local_addr().unwrap(),
        Bound::Unix(_) => unreachable!(),
    };
    (bound, addr)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Reads one HTTP/1.1 response with a Content-Length body: (head, body).
fn read_response(stream: &mut TcpStream) -> (String, String) {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).unwrap();
        assert!(
            n > 0,
            "connection closed mid-head: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.push(byte[0]);
    }
    let head = String::from_utf8(buf).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).unwrap();
    (head, String::from_utf8(body).unwrap())
}

fn get(stream: &mut TcpStream, path: &str) -> (String, String) {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    read_response(stream)
}

/// Whether the server closed the connection (EOF) before `deadline`.
fn closed_within(stream: &mut TcpStream, deadline: Duration) -> bool {
    stream.set_read_timeout(Some(deadline)).unwrap();
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).is_ok()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let rt = runtime();
    let (bound, addr) = listener();
    let _server = rt
        .block_on(async { Server::start(bound, app(), &ServerSettings::default()) })
        .unwrap();
    let mut stream = connect(addr);
    for path in ["/a", "/b", "/c"] {
        let (head, body) = get(&mut stream, path);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert_eq!(body, format!("path={path}\n"));
    }
}

#[test]
fn http2_with_prior_knowledge() {
    let rt = runtime();
    let (bound, addr) = listener();
    let _server = rt
        .block_on(async { Server::start(bound, app(), &ServerSettings::default()) })
        .unwrap();
    rt.block_on(async {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get("http://t/h2")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let response = sender.send_request(req).await.unwrap();
        assert_eq!(response.version(), http::Version::HTTP_2);
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(&body[..], b"path=/h2\n");
    });
}

#[test]
fn a_slow_client_is_cut_off_while_others_are_served() {
    let rt = runtime();
    let (bound, addr) = listener();
    let s = settings(|s| s.header_timeout = Duration::from_millis(300));
    assert_eq!(s.head_timeout(), Duration::from_millis(300));
    let _server = rt
        .block_on(async { Server::start(bound, app(), &s) })
        .unwrap();
    let mut slow = connect(addr);
    slow.write_all(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .unwrap();
    let started = Instant::now();
    let mut fast = connect(addr);
    assert_eq!(get(&mut fast, "/fast").1, "path=/fast\n");
    assert!(
        closed_within(&mut slow, Duration::from_secs(5)),
        "the slow client was never cut off"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn oversized_headers_get_431() {
    let rt = runtime();
    let (bound, addr) = listener();
    let s = settings(|s| s.max_header_size = 8192);
    let _server = rt
        .block_on(async { Server::start(bound, app(), &s) })
        .unwrap();
    let mut stream = connect(addr);
    let big = "x".repeat(20_000);
    let _ = write!(stream, "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n");
    let (head, _) = read_response(&mut stream);
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
    let mut other = connect(addr);
    assert_eq!(get(&mut other, "/ok").1, "path=/ok\n");
}

#[test]
fn the_connection_limit_stops_accepting() {
    let rt = runtime();
    let (bound, addr) = listener();
    let s = settings(|s| s.max_connections = 1);
    let _server = rt
        .block_on(async { Server::start(bound, app(), &s) })
        .unwrap();
    let mut first = connect(addr);
    assert_eq!(get(&mut first, "/1").1, "path=/1\n");
    // The second connection queues in the backlog until the first closes.
    let mut second = connect(addr);
    write!(second, "GET /2 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        second.read(&mut byte).is_err(),
        "served beyond max_connections"
    );
    drop(first);
    second
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let (head, body) = read_response(&mut second);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "path=/2\n");
}

#[test]
fn drain_finishes_in_flight_requests_and_closes_keep_alive_connections() {
    let rt = runtime();
    let (bound, addr) = listener();
    let server = rt
        .block_on(async { Server::start(bound, app(), &ServerSettings::default()) })
        .unwrap();
    let mut idle = connect(addr);
    assert_eq!(get(&mut idle, "/before").1, "path=/before\n");
    let mut busy = connect(addr);
    write!(busy, "GET /slow?500 HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    // Wait until the slow request is in flight.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.requests() < 2 {
        assert!(Instant::now() < deadline, "the slow request never arrived");
        std::thread::yield_now();
    }
    let drained = rt.spawn(server.drain(Duration::from_secs(5), Duration::from_secs(20)));
    // A request on a keep-alive connection during the drain is answered, with Connection: close.
    let (head, body) = get(&mut idle, "/during");
    assert_eq!(body, "path=/during\n");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    assert!(closed_within(&mut idle, Duration::from_secs(5)));
    // The in-flight request completes.
    let (head, body) = read_response(&mut busy);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "path=/slow\n");
    let report = rt.block_on(drained).unwrap();
    assert_eq!(report.abandoned, 0);
    assert_eq!(report.requests, 3);
    // Nothing accepts any more: the listener is gone.
    assert!(TcpStream::connect(addr).is_err());
}

#[test]
fn idle_connections_close_after_the_linger() {
    let rt = runtime();
    let (bound, addr) = listener();
    let server = rt
        .block_on(async { Server::start(bound, app(), &ServerSettings::default()) })
        .unwrap();
    let mut idle = connect(addr);
    assert_eq!(get(&mut idle, "/").1, "path=/\n");
    let started = Instant::now();
    let report = rt.block_on(server.drain(Duration::from_millis(200), Duration::from_secs(10)));
    assert!(closed_within(&mut idle, Duration::from_secs(5)));
    assert_eq!(report.abandoned, 0);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn the_tutorial_pipeline_over_a_socket() {
    let eggs = Eggs::builtin();
    let dir = tempfile::tempdir().unwrap();
    let ini =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/tutorial-pipeline.ini");
    std::fs::copy(ini, dir.path().join("p.ini")).unwrap();
    let plan = deploy::load(
        &eggs.registry(),
        &deploy::Request {
            config_uri: dir.path().join("p.ini").to_string_lossy().into_owned(),
            ..Default::default()
        },
    )
    .unwrap();
    let app = worker::pipeline::build(&plan.app, &eggs).unwrap();
    let rt = runtime();
    let (bound, addr) = listener();
    let _server = rt
        .block_on(async { Server::start(bound, app, &ServerSettings::default()) })
        .unwrap();
    let mut stream = connect(addr);
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut all = String::new();
    stream.read_to_string(&mut all).unwrap();
    assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
    // The app's body is whole and small: the filter keeps a Content-Length.
    assert!(
        all.contains("content-length: 20\r\n") && all.ends_with("\r\n\r\nyikes: Hello world!\n"),
        "{all}"
    );
}

#[test]
fn idle_keep_alive_connections_close_after_keepalive() {
    let rt = runtime();
    let (bound, addr) = listener();
    let s = settings(|s| s.keepalive = Duration::from_millis(300));
    let _server = rt
        .block_on(async { Server::start(bound, app(), &s) })
        .unwrap();
    let mut stream = connect(addr);
    assert_eq!(get(&mut stream, "/").1, "path=/\n");
    let idle_since = Instant::now();
    assert!(closed_within(&mut stream, Duration::from_secs(5)));
    assert!(
        idle_since.elapsed() >= Duration::from_millis(250),
        "closed before keepalive passed"
    );
}

#[test]
fn a_connection_that_sends_nothing_is_closed_and_frees_its_slot() {
    let rt = runtime();
    let (bound, addr) = listener();
    let s = settings(|s| {
        s.max_connections = 1;
        s.header_timeout = Duration::from_millis(300);
    });
    let _server = rt
        .block_on(async { Server::start(bound, app(), &s) })
        .unwrap();
    let mut silent = connect(addr);
    assert!(
        closed_within(&mut silent, Duration::from_secs(5)),
        "a silent client kept its connection"
    );
    // The slot is free again.
    let mut next = connect(addr);
    assert_eq!(get(&mut next, "/next").1, "path=/next\n");
}

#[test]
fn an_idle_http2_connection_is_closed() {
    let rt = runtime();
    let (bound, addr) = listener();
    let s = settings(|s| s.keepalive = Duration::from_millis(300));
    let _server = rt
        .block_on(async { Server::start(bound, app(), &s) })
        .unwrap();
    rt.block_on(async {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .unwrap();
        let driver = tokio::spawn(conn);
        let req = http::Request::get("http://t/once")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        assert_eq!(sender.send_request(req).await.unwrap().status(), 200);
        // The server sends GOAWAY once the connection idles; the client's driver then ends.
        let ended = tokio::time::timeout(Duration::from_secs(5), driver).await;
        assert!(ended.is_ok(), "the idle HTTP/2 connection stayed open");
    });
}

#[test]
fn requests_no_app_should_see_are_answered_by_the_server() {
    let rt = runtime();
    let (bound, addr) = listener();
    let _server = rt
        .block_on(async { Server::start(bound, app(), &ServerSettings::default()) })
        .unwrap();
    let mut stream = connect(addr);
    write!(stream, "GET / HTTP/1.1\r\n\r\n").unwrap();
    assert!(read_response(&mut stream).0.starts_with("HTTP/1.1 400"));
    let mut stream = connect(addr);
    write!(
        stream,
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
    )
    .unwrap();
    assert!(read_response(&mut stream).0.starts_with("HTTP/1.1 405"));
    // HTTP/1.0 needs no Host.
    let mut stream = connect(addr);
    write!(stream, "GET /old HTTP/1.0\r\n\r\n").unwrap();
    assert!(read_response(&mut stream).0.starts_with("HTTP/1.0 200"));
}

#[test]
fn a_panic_inside_a_body_closes_only_that_connection() {
    let rt = runtime();
    let (bound, addr) = listener();
    struct Exploding;
    impl http_body::Body for Exploding {
        type Data = bytes::Bytes;
        type Error = worker::body::BoxError;
        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
            panic!("boom in the body")
        }
    }
    let app = app_fn(|req| async move {
        if req.uri().path() == "/explode" {
            http::Response::new(worker::body::Body::new(Exploding))
        } else {
            text(StatusCode::OK, "fine\n")
        }
    });
    let _server = rt
        .block_on(async { Server::start(bound, app, &ServerSettings::default()) })
        .unwrap();
    let mut stream = connect(addr);
    write!(stream, "GET /explode HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert!(closed_within(&mut stream, Duration::from_secs(5)));
    let mut other = connect(addr);
    assert_eq!(get(&mut other, "/").1, "fine\n");
}

#[test]
fn keepalive_zero_closes_after_each_response() {
    let rt = runtime();
    let (bound, addr) = listener();
    let s = settings(|s| s.keepalive = Duration::ZERO);
    let _server = rt
        .block_on(async { Server::start(bound, app(), &s) })
        .unwrap();
    let mut stream = connect(addr);
    let (head, _) = get(&mut stream, "/");
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    assert!(closed_within(&mut stream, Duration::from_secs(5)));
}

#[test]
fn a_worker_publishes_its_connections_until_it_drains() {
    use worker::server::balance::Table;
    use worker::server::Share;
    let rt = runtime();
    let (bound, addr) = listener();
    let table = Table::create().unwrap();
    let view = Table::open(table.fd().try_clone_to_owned().unwrap()).unwrap();
    let share = Share { table, slot: 3 };
    // Idle connections end after 300 ms.
    let s = settings(|s| s.keepalive = Duration::from_millis(300));
    let server = rt
        .block_on(async { Server::start_sharing(bound, app(), &s, Some(share)) })
        .unwrap();
    assert_eq!(view.count(3), Some(0), "registered as accepting");
    let mut first = connect(addr);
    assert_eq!(get(&mut first, "/").1, "path=/\n");
    let mut second = connect(addr);
    assert_eq!(get(&mut second, "/").1, "path=/\n");
    assert_eq!(view.count(3), Some(2));
    let counted = |want: Option<u32>| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while view.count(3) != want {
            assert!(
                Instant::now() < deadline,
                "count {:?}, not {want:?}",
                view.count(3)
            );
            std::thread::yield_now();
        }
    };
    // Both idle out; each end is counted off.
    assert!(closed_within(&mut first, Duration::from_secs(5)));
    assert!(closed_within(&mut second, Duration::from_secs(5)));
    counted(Some(0));
    // A connection that ends while the worker drains is not counted back in.
    let mut third = connect(addr);
    assert_eq!(get(&mut third, "/").1, "path=/\n");
    counted(Some(1));
    let drained = rt.spawn(server.drain(Duration::from_secs(5), Duration::from_secs(10)));
    assert_eq!(view.count(3), None);
    assert!(closed_within(&mut third, Duration::from_secs(5)));
    assert_eq!(rt.block_on(drained).unwrap().abandoned, 0);
    assert_eq!(view.count(3), None);
}

#[test]
fn a_busy_app_accepts_no_connection_until_it_has_room() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use worker::server::Options;
    let rt = runtime();
    let (bound, addr) = listener();
    let busy = Arc::new(AtomicBool::new(true));
    let probe = Arc::clone(&busy);
    let options = Options {
        busy: Some(Arc::new(move || probe.load(Ordering::Relaxed))),
        ..Options::default()
    };
    let _server = rt
        .block_on(async { Server::start_with(bound, app(), &ServerSettings::default(), options) })
        .unwrap();
    // The kernel completes the handshake (the backlog), but no worker takes the connection.
    let mut stream = connect(addr);
    stream
        .write_all(b"GET /waiting HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        stream.read(&mut byte).is_err(),
        "answered while the app was busy"
    );
    busy.store(false, Ordering::Relaxed);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(read_response(&mut stream).1, "path=/waiting\n");
}
