//! Server settings: what a `[server:...]` section says about sockets and processes.
//!
//! `serve#http` and its aliases (`Paste#http`, `waitress#main`, `gunicorn#main`) read the keys
//! of the servers they stand in for: `host` and `port` (Paste, waitress), `listen` (waitress: a
//! space-separated list of `host:port`, `[::1]:port`, `*:port`, `unix:/path`), `unix_socket`
//! (waitress), `bind` (gunicorn: the same forms, several separated by spaces or lines),
//! `workers`, `threads`, `graceful_timeout`, `timeout`, `max_requests`, `max_requests_jitter`,
//! `keepalive`, `backlog`, plus `serve`'s own `header_timeout`, `max_header_size` and
//! `max_connections`. Keys another server understands but `serve` does not are kept as
//! warnings, never errors, so an existing file keeps loading.

use crate::conf::{ConfExt, EggError};
use crate::eggs::Eggs;
use deploy::plan::Conf;
use deploy::registry::Protocol;
use std::path::PathBuf;
use std::time::Duration;

/// One address to listen on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ListenAddr {
    /// A TCP host (name or address; `*` is every interface) and port.
    Tcp { host: String, port: u16 },
    /// A unix socket path.
    Unix(PathBuf),
    /// The socket systemd passes under this name (`FileDescriptorName=` of a socket unit):
    /// `systemd:NAME`. Never bound by serve.
    Systemd(String),
}

impl std::fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ListenAddr::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            ListenAddr::Tcp { host, port } => write!(f, "{host}:{port}"),
            ListenAddr::Unix(path) => write!(f, "unix:{}", path.display()),
            ListenAddr::Systemd(name) => write!(f, "systemd:{name}"),
        }
    }
}

impl ListenAddr {
    /// Parses `host:port`, `[v6]:port`, `*:port`, `:port`, `host` (with `default_port`) or
    /// `unix:/path` or `systemd:NAME`.
    pub fn parse(text: &str, default_port: u16) -> Result<ListenAddr, String> {
        if let Some(name) = text.strip_prefix("systemd:") {
            if name.is_empty()
                || name.len() > 255
                || !name.chars().all(|c| c.is_ascii_graphic() && c != ':')
            {
                return Err(format!(
                    "'{text}': a systemd socket name is 1 to 255 printable ASCII characters without ':' (its FileDescriptorName=)"
                ));
            }
            return Ok(ListenAddr::Systemd(name.to_owned()));
        }
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(format!("'{text}': a unix socket needs a path"));
            }
            return Ok(ListenAddr::Unix(PathBuf::from(path)));
        }
        let port = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| format!("'{text}': '{p}' is not a port number"))
        };
        if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("'{text}': missing ']'"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => port(p)?,
                None if after.is_empty() => default_port,
                None => return Err(format!("'{text}': expected ':PORT' after ']'")),
            };
            return Ok(ListenAddr::Tcp {
                host: host.to_owned(),
                port,
            });
        }
        match text.rsplit_once(':') {
            Some((host, p)) if !host.contains(':') => Ok(ListenAddr::Tcp {
                host: if host.is_empty() {
                    "*".to_owned()
                } else {
                    host.to_owned()
                },
                port: port(p)?,
            }),
            Some(_) => Err(format!("'{text}': write IPv6 addresses as [ADDR]:PORT")),
            None if text.is_empty() => Err("an empty address".to_owned()),
            None => Ok(ListenAddr::Tcp {
                host: text.to_owned(),
                port: default_port,
            }),
        }
    }
}

/// Everything a server section configures.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSettings {
    /// The addresses to listen on.
    pub listen: Vec<ListenAddr>,
    /// Worker processes (`None`: the supervisor's default).
    pub workers: Option<usize>,
    /// Threads per worker's runtime.
    pub threads: usize,
    /// How long draining workers get to finish in-flight requests.
    pub graceful_timeout: Duration,
    /// How long a worker may go without a heartbeat before it is replaced.
    pub timeout: Duration,
    /// Requests after which a worker is recycled (0: never).
    pub max_requests: u64,
    /// Up to this many more, at random, so workers do not recycle together.
    pub max_requests_jitter: u64,
    /// How long an idle keep-alive connection stays open (see [`ServerSettings::head_timeout`]).
    pub keepalive: Duration,
    /// The listen backlog.
    pub backlog: u32,
    /// How long a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// The largest request head accepted, in bytes (at least 8192, hyper's smallest buffer).
    pub max_header_size: usize,
    /// Connections one worker serves at once; past that it stops accepting.
    pub max_connections: usize,
    /// Reload when a config file changes (`reload = true`, like `--reload`).
    pub reload: bool,
    /// Keys that were not understood (another server's), for a warning.
    pub ignored: Vec<String>,
}

/// Paste's and waitress's default port.
pub const DEFAULT_PORT: u16 = 8080;

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: vec![ListenAddr::Tcp {
                host: "127.0.0.1".into(),
                port: DEFAULT_PORT,
            }],
            workers: None,
            threads: 1,
            graceful_timeout: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
            max_requests: 0,
            max_requests_jitter: 0,
            keepalive: Duration::from_secs(5),
            backlog: 2048,
            header_timeout: Duration::from_secs(10),
            max_header_size: 64 * 1024,
            max_connections: 10_000,
            reload: false,
            ignored: Vec::new(),
        }
    }
}

const KNOWN: &[&str] = &[
    "host",
    "port",
    "listen",
    "unix_socket",
    "bind",
    "workers",
    "threads",
    "graceful_timeout",
    "timeout",
    "max_requests",
    "max_requests_jitter",
    "keepalive",
    "backlog",
    "header_timeout",
    "max_header_size",
    "max_connections",
    "reload",
];

fn seconds(local: &Conf, key: &str, default: Duration) -> Result<Duration, EggError> {
    let Some(text) = local.get(key) else {
        return Ok(default);
    };
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| EggError::key(key, format!("'{text}' is not a number of seconds")))?;
    if !(0.0..=86_400.0 * 365.0).contains(&value) {
        return Err(EggError::key(key, format!("'{text}' is out of range")));
    }
    Ok(Duration::from_secs_f64(value))
}

fn count(local: &Conf, key: &str, default: i64, min: i64) -> Result<i64, EggError> {
    let value = local.int(key, default)?;
    if value < min {
        return Err(EggError::key(
            key,
            format!("must be at least {min}, not {value}"),
        ));
    }
    Ok(value)
}

impl ServerSettings {
    /// How long a connection may wait for (the rest of) a request head. hyper times an idle
    /// keep-alive connection and a slow request head with the same timer, so this is the
    /// shorter of `header_timeout` and `keepalive`.
    /// With `keepalive = 0` connections are not kept alive and only `header_timeout` counts.
    pub fn head_timeout(&self) -> Duration {
        if self.keepalive.is_zero() {
            self.header_timeout
        } else {
            self.header_timeout.min(self.keepalive)
        }
    }

    /// Reads a server section's `local_conf`.
    pub fn from_conf(local: &Conf) -> Result<ServerSettings, EggError> {
        let defaults = ServerSettings::default();
        let mut listen = Vec::new();
        let port = match local.get("port") {
            Some(p) => p
                .trim()
                .parse::<u16>()
                .map_err(|_| EggError::key("port", format!("'{p}' is not a port number")))?,
            None => DEFAULT_PORT,
        };
        for key in ["listen", "bind"] {
            for item in local.text(key, "").split_whitespace() {
                listen.push(ListenAddr::parse(item, port).map_err(|e| EggError::key(key, e))?);
            }
        }
        if let Some(path) = local.get("unix_socket") {
            listen.push(ListenAddr::Unix(PathBuf::from(path.trim())));
        }
        if listen.is_empty() || local.contains_key("host") {
            let hosts = local.text("host", "127.0.0.1");
            for host in hosts.split([',', ' ']).filter(|h| !h.is_empty()) {
                let host = host.trim_start_matches('[').trim_end_matches(']');
                listen.push(ListenAddr::Tcp {
                    host: host.to_owned(),
                    port,
                });
            }
        }
        let threads = count(local, "threads", 1, 1)?;
        Ok(ServerSettings {
            listen,
            workers: match local.get("workers") {
                Some(_) => Some(usize::try_from(count(local, "workers", 1, 1)?).unwrap_or(1)),
                None => None,
            },
            threads: usize::try_from(threads).unwrap_or(1),
            graceful_timeout: seconds(local, "graceful_timeout", defaults.graceful_timeout)?,
            timeout: seconds(local, "timeout", defaults.timeout)?,
            max_requests: u64::try_from(count(local, "max_requests", 0, 0)?).unwrap_or(0),
            max_requests_jitter: u64::try_from(count(local, "max_requests_jitter", 0, 0)?)
                .unwrap_or(0),
            keepalive: seconds(local, "keepalive", defaults.keepalive)?,
            backlog: u32::try_from(count(local, "backlog", 2048, 1)?)
                .map_err(|_| EggError::key("backlog", "is too large"))?,
            header_timeout: seconds(local, "header_timeout", defaults.header_timeout)?,
            max_header_size: usize::try_from(count(local, "max_header_size", 64 * 1024, 8192)?)
                .unwrap_or(64 * 1024),
            max_connections: usize::try_from(count(local, "max_connections", 10_000, 1)?)
                .unwrap_or(10_000),
            reload: local.flag("reload", false)?,
            ignored: local
                .keys()
                .filter(|k| !KNOWN.contains(&k.as_str()))
                .cloned()
                .collect(),
        })
    }
}

/// Registers `serve#http` and the server aliases.
pub fn register(eggs: &mut Eggs) {
    let read = |_global: &Conf, local: &Conf| ServerSettings::from_conf(local);
    eggs.server("serve", Protocol::ServerFactory, "http", read)
        .server("Paste", Protocol::ServerRunner, "http", read)
        .symbol(
            "paste.httpserver:server_runner",
            Protocol::ServerRunner,
            "Paste",
            "http",
        )
        .server("waitress", Protocol::ServerRunner, "main", read)
        .symbol(
            "waitress:serve_paste",
            Protocol::ServerRunner,
            "waitress",
            "main",
        )
        .server("gunicorn", Protocol::ServerRunner, "main", read)
        .symbol(
            "gunicorn.app.pasterapp:serve",
            Protocol::ServerRunner,
            "gunicorn",
            "main",
        );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::tests::conf;

    fn tcp(host: &str, port: u16) -> ListenAddr {
        ListenAddr::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn addresses() {
        assert_eq!(
            ListenAddr::parse("127.0.0.1:80", 1),
            Ok(tcp("127.0.0.1", 80))
        );
        assert_eq!(ListenAddr::parse("[::1]:6543", 1), Ok(tcp("::1", 6543)));
        assert_eq!(ListenAddr::parse("*:6543", 1), Ok(tcp("*", 6543)));
        assert_eq!(ListenAddr::parse(":6543", 1), Ok(tcp("*", 6543)));
        assert_eq!(ListenAddr::parse("localhost", 7), Ok(tcp("localhost", 7)));
        assert_eq!(
            ListenAddr::parse("unix:/run/s.sock", 1),
            Ok(ListenAddr::Unix("/run/s.sock".into()))
        );
        assert!(ListenAddr::parse("::1:80", 1).is_err());
        assert_eq!(
            ListenAddr::parse("systemd:http", 1),
            Ok(ListenAddr::Systemd("http".into()))
        );
        assert_eq!(
            ListenAddr::Systemd("http".into()).to_string(),
            "systemd:http"
        );
        assert!(ListenAddr::parse("systemd:", 1).is_err());
        assert!(ListenAddr::parse("systemd:a:b", 1).is_err());
        assert!(ListenAddr::parse("h:http", 1).is_err());
        assert_eq!(tcp("::1", 80).to_string(), "[::1]:80");
    }

    #[test]
    fn paste_and_waitress_keys() {
        let s = ServerSettings::from_conf(&conf(&[("host", "0.0.0.0"), ("port", "6543")])).unwrap();
        assert_eq!(s.listen, [tcp("0.0.0.0", 6543)]);
        let s = ServerSettings::from_conf(&conf(&[
            ("listen", "127.0.0.1:6543 [::1]:6543"),
            ("threads", "4"),
        ]))
        .unwrap();
        assert_eq!(s.listen, [tcp("127.0.0.1", 6543), tcp("::1", 6543)]);
        assert_eq!(s.threads, 4);
        let s = ServerSettings::from_conf(&conf(&[
            ("unix_socket", "/tmp/a.sock"),
            ("url_scheme", "https"),
        ]))
        .unwrap();
        assert_eq!(s.listen, [ListenAddr::Unix("/tmp/a.sock".into())]);
        assert_eq!(s.ignored, ["url_scheme"]);
    }

    #[test]
    fn gunicorn_keys() {
        let s = ServerSettings::from_conf(&conf(&[
            ("bind", "127.0.0.1:8000\nunix:/tmp/g.sock"),
            ("workers", "4"),
            ("graceful_timeout", "2.5"),
            ("max_requests", "1000"),
            ("max_requests_jitter", "50"),
            ("keepalive", "2"),
            ("backlog", "64"),
            ("proc_name", "x"),
        ]))
        .unwrap();
        assert_eq!(
            s.listen,
            [
                tcp("127.0.0.1", 8000),
                ListenAddr::Unix("/tmp/g.sock".into())
            ]
        );
        assert_eq!(s.workers, Some(4));
        assert_eq!(s.graceful_timeout, Duration::from_millis(2500));
        assert_eq!(
            (s.max_requests, s.max_requests_jitter, s.backlog),
            (1000, 50, 64)
        );
        assert_eq!(s.ignored, ["proc_name"]);
    }

    #[test]
    fn one_timer_for_idle_and_slow_heads() {
        let s = ServerSettings::from_conf(&conf(&[("keepalive", "2"), ("header_timeout", "10")]))
            .unwrap();
        assert_eq!(s.head_timeout(), Duration::from_secs(2));
        let s = ServerSettings::from_conf(&conf(&[("keepalive", "75"), ("header_timeout", "10")]))
            .unwrap();
        assert_eq!(s.head_timeout(), Duration::from_secs(10));
        let s = ServerSettings::from_conf(&conf(&[("keepalive", "0"), ("header_timeout", "10")]))
            .unwrap();
        assert_eq!(s.head_timeout(), Duration::from_secs(10));
        assert!(ServerSettings::from_conf(&conf(&[("max_header_size", "1024")])).is_err());
    }

    #[test]
    fn defaults_and_errors() {
        assert_eq!(
            ServerSettings::from_conf(&Conf::new()).unwrap(),
            ServerSettings::default()
        );
        for (key, value) in [
            ("port", "http"),
            ("workers", "0"),
            ("threads", "x"),
            ("graceful_timeout", "-1"),
            ("listen", "h:p"),
        ] {
            let err = ServerSettings::from_conf(&conf(&[(key, value)])).unwrap_err();
            assert_eq!(err.key.as_deref(), Some(key), "{err}");
        }
    }
}
