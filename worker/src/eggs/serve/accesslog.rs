//! `serve#accesslog`: one line per request in Apache's combined (or common) log format, to
//! stderr or a file that `SIGUSR1` reopens (for logrotate).
//!
//! The line is written when the response body has been sent (or abandoned), with the bytes
//! actually sent. Keys: `file` (a path, relative to the config file's directory; default `-`,
//! stderr), `format` (`combined`, the default, or `common`).

use crate::app::{app_fn, call, App, Filter};
use crate::body::{Body, BoxError};
use crate::conf::{ConfExt, EggError};
use crate::eggs::Eggs;
use crate::server::{OriginalUri, RemoteAddr};
use bytes::Bytes;
use deploy::plan::Conf;
use http::{header, Request, Response};
use http_body::Frame;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::SystemTime;

/// The authenticated user of a request, which `serve#basic_auth` puts in the response's
/// extensions for the access log's `%u`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser(pub String);

/// Where lines go.
#[derive(Debug)]
enum Sink {
    Stderr,
    File { path: PathBuf, file: Mutex<File> },
}

impl Sink {
    fn write_line(&self, line: &str) {
        let result = match self {
            Sink::Stderr => io::stderr().lock().write_all(line.as_bytes()),
            Sink::File { file, .. } => match file.lock() {
                Ok(mut file) => file.write_all(line.as_bytes()),
                Err(_) => Ok(()),
            },
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "access log: cannot write");
        }
    }

    fn reopen(&self) -> io::Result<()> {
        if let Sink::File { path, file } = self {
            let fresh = open(path)?;
            if let Ok(mut file) = file.lock() {
                *file = fresh;
            }
        }
        Ok(())
    }
}

fn open(path: &PathBuf) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

static SINKS: Mutex<Vec<Weak<Sink>>> = Mutex::new(Vec::new());

/// Reopens every access log file (on `SIGUSR1`); returns the ones that failed.
pub fn reopen_all() -> Vec<(PathBuf, io::Error)> {
    let mut failed = Vec::new();
    if let Ok(mut sinks) = SINKS.lock() {
        sinks.retain(|s| s.strong_count() > 0);
        for sink in sinks.iter().filter_map(Weak::upgrade) {
            if let Err(e) = sink.reopen() {
                if let Sink::File { path, .. } = sink.as_ref() {
                    failed.push((path.clone(), e));
                }
            }
        }
    }
    failed
}

/// Registers `serve#accesslog`.
pub fn register(eggs: &mut Eggs) {
    eggs.filter("serve", "accesslog", accesslog_filter);
}

fn accesslog_filter(global: &Conf, local: &Conf) -> Result<Filter, EggError> {
    let combined = match local.text("format", "combined") {
        "combined" => true,
        "common" => false,
        other => {
            return Err(EggError::key(
                "format",
                format!("'{other}' is not combined or common"),
            ))
        }
    };
    let sink = match local.text("file", "-").trim() {
        "-" => Arc::new(Sink::Stderr),
        path => {
            let mut path = PathBuf::from(path);
            if path.is_relative() {
                if let Some(here) = global.get("here") {
                    path = PathBuf::from(here).join(path);
                }
            }
            let file = open(&path).map_err(|e| {
                EggError::key("file", format!("cannot open {}: {e}", path.display()))
            })?;
            let sink = Arc::new(Sink::File {
                path,
                file: Mutex::new(file),
            });
            if let Ok(mut sinks) = SINKS.lock() {
                sinks.push(Arc::downgrade(&sink));
            }
            sink
        }
    };
    Ok(Arc::new(move |app: App| {
        logged(app, Arc::clone(&sink), combined)
    }))
}

fn logged(app: App, sink: Arc<Sink>, combined: bool) -> App {
    app_fn(move |req: Request<Body>| {
        let (app, sink) = (app.clone(), Arc::clone(&sink));
        async move {
            let pending = Pending::new(sink, combined, &req);
            let response = call(&app, req).await;
            let (parts, body) = response.into_parts();
            let pending = Pending {
                status: parts.status.as_u16(),
                user: parts.extensions.get::<AuthUser>().map(|u| u.0.clone()),
                ..pending
            };
            Response::from_parts(
                parts,
                Body::new(Counting {
                    inner: body,
                    pending: Some(pending),
                }),
            )
        }
    })
}

/// A request waiting for its response body to finish before it is logged.
struct Pending {
    sink: Arc<Sink>,
    combined: bool,
    host: String,
    time: SystemTime,
    request_line: String,
    referer: Option<String>,
    user_agent: Option<String>,
    user: Option<String>,
    status: u16,
    bytes: u64,
}

impl Pending {
    fn new(sink: Arc<Sink>, combined: bool, req: &Request<Body>) -> Pending {
        let header = |name: header::HeaderName| {
            req.headers()
                .get(name)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        };
        Pending {
            sink,
            combined,
            host: req
                .extensions()
                .get::<RemoteAddr>()
                .map(|a| a.addr.to_string())
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| "-".to_owned()),
            time: SystemTime::now(),
            request_line: format!(
                "{} {} {:?}",
                req.method(),
                req.extensions()
                    .get::<OriginalUri>()
                    .map_or(req.uri(), |o| &o.0)
                    .path_and_query()
                    .map_or("/", |p| p.as_str()),
                req.version()
            ),
            referer: header(header::REFERER),
            user_agent: header(header::USER_AGENT),
            user: None,
            status: 0,
            bytes: 0,
        }
    }

    fn line(&self) -> String {
        let quoted = |v: &Option<String>| v.as_deref().map_or_else(|| "-".to_owned(), escape);
        let mut line = format!(
            "{} - {} [{}] \"{}\" {} {}",
            self.host,
            self.user.as_deref().map_or_else(|| "-".to_owned(), escape),
            clf_time(self.time),
            escape(&self.request_line),
            self.status,
            if self.bytes == 0 {
                "-".to_owned()
            } else {
                self.bytes.to_string()
            },
        );
        if self.combined {
            line.push_str(&format!(
                " \"{}\" \"{}\"",
                quoted(&self.referer),
                quoted(&self.user_agent)
            ));
        }
        line.push('\n');
        line
    }
}

/// Counts the bytes of a response body; logs the request when the body is done or dropped.
struct Counting {
    inner: Body,
    pending: Option<Pending>,
}

impl http_body::Body for Counting {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let (Some(data), Some(pending)) = (frame.data_ref(), self.pending.as_mut()) {
                pending.bytes += data.len() as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counting {
    fn drop(&mut self) {
        if let Some(pending) = self.pending.take() {
            pending.sink.write_line(&pending.line());
        }
    }
}

/// Apache's escaping of logged strings: `"` and `\` backslashed, control bytes as `\xhh`.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// `10/Oct/2000:13:55:36 +0000` (UTC).
fn clf_time(time: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{day:02}/{}/{year}:{:02}:{:02}:{:02} +0000",
        MONTHS[usize::try_from(month - 1).unwrap_or(0)],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body::full;
    use crate::pipeline::tests::{build_err, send};
    use std::time::Duration;

    #[test]
    fn times_are_common_log_format() {
        assert_eq!(
            clf_time(SystemTime::UNIX_EPOCH),
            "01/Jan/1970:00:00:00 +0000"
        );
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(971_186_136);
        assert_eq!(clf_time(t), "10/Oct/2000:13:55:36 +0000");
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_208_000);
        assert_eq!(clf_time(leap), "29/Feb/2024:12:00:00 +0000");
    }

    #[tokio::test]
    async fn lines_are_written_after_the_body_and_files_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let ini = "[app:hello]\nuse = egg:minimal\n[filter:log]\nuse = egg:serve#accesslog\nfile = access.log\n[pipeline:main]\npipeline = log hello\n";
        std::fs::write(dir.path().join("t.ini"), ini).unwrap();
        let eggs = crate::eggs::Eggs::builtin();
        let plan = deploy::load(
            &eggs.registry(),
            &deploy::Request {
                config_uri: dir.path().join("t.ini").to_string_lossy().into_owned(),
                ..Default::default()
            },
        )
        .unwrap();
        let app = crate::pipeline::build(&plan.app, &eggs).unwrap();
        let mut req = Request::get("/a?b=c")
            .header("referer", "http://r/")
            .header("user-agent", "test \"1\"")
            .body(full(""))
            .unwrap();
        req.extensions_mut().insert(RemoteAddr::new("192.0.2.1"));
        let (status, _, body) = send(&app, req).await;
        assert_eq!((status, body.as_str()), (200, "Hello world!\n"));
        let log = dir.path().join("access.log");
        let text = std::fs::read_to_string(&log).unwrap();
        let line = text.lines().next().unwrap();
        assert!(line.starts_with("192.0.2.1 - - ["), "{line}");
        assert!(
            line.ends_with("] \"GET /a?b=c HTTP/1.1\" 200 13 \"http://r/\" \"test \\\"1\\\"\""),
            "{line}"
        );
        // logrotate: move the file away, reopen, and the next line goes to a new file.
        std::fs::rename(&log, dir.path().join("access.log.1")).unwrap();
        assert!(reopen_all().is_empty());
        send(&app, Request::get("/again").body(full("")).unwrap()).await;
        let fresh = std::fs::read_to_string(&log).unwrap();
        assert_eq!(fresh.lines().count(), 1);
        assert!(
            fresh.contains("\"GET /again HTTP/1.1\" 200 13 \"-\" \"-\""),
            "{fresh}"
        );
    }

    #[tokio::test]
    async fn logs_the_request_as_sent_and_panics_as_500() {
        let dir = tempfile::tempdir().unwrap();
        let mut eggs = crate::eggs::Eggs::builtin();
        eggs.app("test", "panics", |_, _| {
            Ok(crate::app::app_fn(|_req| async { panic!("boom") }))
        });
        let ini = "[filter:log]\nuse = egg:serve#accesslog\nfile = access.log\n\
                   [composite:map]\nuse = egg:Paste#urlmap\n/hello = hello\n/bad = bad\n\
                   [app:hello]\nuse = egg:minimal\n[app:bad]\nuse = egg:test#panics\n\
                   [pipeline:main]\npipeline = log map\n";
        std::fs::write(dir.path().join("t.ini"), ini).unwrap();
        let plan = deploy::load(
            &eggs.registry(),
            &deploy::Request {
                config_uri: dir.path().join("t.ini").to_string_lossy().into_owned(),
                ..Default::default()
            },
        )
        .unwrap();
        let app = crate::pipeline::build(&plan.app, &eggs).unwrap();
        let mut req = Request::get("/hello/x").body(full("")).unwrap();
        let original = crate::server::OriginalUri(req.uri().clone());
        req.extensions_mut().insert(original);
        send(&app, req).await;
        assert_eq!(
            send(&app, Request::get("/bad").body(full("")).unwrap())
                .await
                .0,
            500
        );
        let text = std::fs::read_to_string(dir.path().join("access.log")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("- - - [")
                && lines[0].contains("\"GET /hello/x HTTP/1.1\" 200 13"),
            "{text}"
        );
        assert!(lines[1].contains("\"GET /bad HTTP/1.1\" 500 "), "{text}");
    }

    #[test]
    fn a_bad_format_is_named() {
        let err = build_err("[app:h]\nuse = egg:minimal\n[filter:log]\nuse = egg:serve#accesslog\nformat = json\n[pipeline:main]\npipeline = log h\n");
        assert!(
            err.contains("format: 'json' is not combined or common"),
            "{err}"
        );
    }
}
