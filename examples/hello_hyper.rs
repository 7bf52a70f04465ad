//! The benchmarks' baseline: a bare hyper 1.x + tokio "hello world" (HTTP/1.1, keep-alive, a
//! multi-thread runtime), answering every request with `yikes: Hello world!\n`, the body that
//! `serve configs/tutorial-pipeline.ini` answers.
//!
//! ```sh
//! hello_hyper 127.0.0.1:8000        # one runtime thread per core
//! hello_hyper 127.0.0.1:8000 4      # 4 runtime threads
//! ```
//!
//! `scripts/bench.sh` builds it (through `bench/hello_hyper/Cargo.toml`) and loads it next to
//! `serve`, nginx and gunicorn.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::error::Error;
use std::net::SocketAddr;
use tokio::net::TcpListener;

const BODY: &[u8] = b"yikes: Hello world!\n";

async fn hello(
    _request: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(BODY)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}

async fn serve(listener: TcpListener) -> Result<(), Box<dyn Error>> {
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // EMFILE and friends: keep serving the connections already open.
            Err(error) => {
                eprintln!("hello_hyper: accept: {error}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            // A client that goes away mid-request is not worth a log line in a benchmark.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(hello))
                .await;
        });
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args
        .next()
        .ok_or("usage: hello_hyper HOST:PORT [THREADS]")?
        .parse()?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = args.next() {
        runtime.worker_threads(threads.parse()?);
    }
    runtime.enable_all().build()?.block_on(async {
        let listener = TcpListener::bind(addr).await?;
        eprintln!(
            "hello_hyper: listening on http://{}",
            listener.local_addr()?
        );
        serve(listener).await
    })
}
