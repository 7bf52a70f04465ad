//! The WSGI `environ` of a request, built from the request alone (never from `os.environ`).
//!
//! Strings are WSGI's native strings: the request's bytes decoded as latin-1, so an app gets
//! back the exact bytes with `.encode('latin-1')`. `PATH_INFO` is the percent-decoded path
//! (what a Rust composite left of it, with `SCRIPT_NAME` the part it consumed); header fields
//! become `HTTP_*` keys, repeated ones joined with `, ` (and `Cookie` with `; `, RFC 6265);
//! a field whose name has an underscore is left out, so it cannot pass for the same field
//! spelt with a dash (as gunicorn and nginx do).

use http::request::Parts;
use http::{header, Version};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use worker::app::Mount;
use worker::eggs::prefix::UrlScheme;
use worker::server::RemoteAddr;

/// What the environ takes from the host rather than the request.
pub(crate) struct Context<'a, 'py> {
    /// `(1, 0)`, made once per thread.
    pub(crate) version: &'a Bound<'py, PyAny>,
    pub(crate) input: Bound<'py, PyAny>,
    pub(crate) errors: &'a Bound<'py, PyAny>,
    /// The `wsgi.file_wrapper` type.
    pub(crate) file_wrapper: &'a Bound<'py, PyAny>,
    /// The last listener address seen, as `SERVER_NAME` and `SERVER_PORT` strings.
    pub(crate) server: &'a ServerCache<'py>,
    pub(crate) multithread: bool,
    pub(crate) multiprocess: bool,
}

/// A listener address and its `SERVER_NAME` and `SERVER_PORT`, kept by each Python thread.
pub(crate) type ServerCache<'py> = std::cell::RefCell<
    Option<(
        std::net::SocketAddr,
        Bound<'py, PyString>,
        Bound<'py, PyString>,
    )>,
>;

/// A native string: bytes as latin-1.
pub(crate) fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> Bound<'py, PyString> {
    if let Ok(text) = std::str::from_utf8(bytes).map_err(drop).and_then(|t| {
        // ASCII reads the same in UTF-8 and latin-1.
        if t.is_ascii() {
            Ok(t)
        } else {
            Err(())
        }
    }) {
        return PyString::new(py, text);
    }
    let text: String = bytes.iter().map(|&b| char::from(b)).collect();
    PyString::new(py, &text)
}

/// `%XX` decoded to bytes (invalid escapes kept as they are).
pub(crate) fn unquote(path: &str) -> Vec<u8> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = |b: u8| (b as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// The environ of a request.
pub(crate) fn environ<'py>(
    py: Python<'py>,
    head: &Parts,
    context: Context<'_, 'py>,
) -> PyResult<Bound<'py, PyDict>> {
    let env = PyDict::new(py);
    // Constant keys are interned once: no new string per request.
    env.set_item(intern!(py, "REQUEST_METHOD"), head.method.as_str())?;
    match head.extensions.get::<Mount>() {
        Some(mount) => {
            env.set_item(
                intern!(py, "SCRIPT_NAME"),
                latin1(py, mount.script_name.as_bytes()),
            )?;
            env.set_item(
                intern!(py, "PATH_INFO"),
                latin1(py, mount.path_info.as_bytes()),
            )?;
        }
        None => {
            env.set_item(intern!(py, "SCRIPT_NAME"), intern!(py, ""))?;
            env.set_item(
                intern!(py, "PATH_INFO"),
                latin1(py, &unquote(head.uri.path())),
            )?;
        }
    }
    env.set_item(
        intern!(py, "QUERY_STRING"),
        latin1(py, head.uri.query().unwrap_or("").as_bytes()),
    )?;
    env.set_item(
        intern!(py, "SERVER_PROTOCOL"),
        match head.version {
            Version::HTTP_09 => intern!(py, "HTTP/0.9"),
            Version::HTTP_10 => intern!(py, "HTTP/1.0"),
            Version::HTTP_2 => intern!(py, "HTTP/2"),
            Version::HTTP_3 => intern!(py, "HTTP/3"),
            _ => intern!(py, "HTTP/1.1"),
        },
    )?;
    let remote = head.extensions.get::<RemoteAddr>();
    if let Some(remote) = remote {
        env.set_item(intern!(py, "REMOTE_ADDR"), &*remote.addr)?;
        if let Some(port) = remote.port {
            env.set_item(intern!(py, "REMOTE_PORT"), port.to_string())?;
        }
    }
    match remote.and_then(|r| r.local) {
        Some(local) => {
            let mut cache = context.server.borrow_mut();
            if cache.as_ref().map_or(true, |(addr, _, _)| *addr != local) {
                *cache = Some((
                    local,
                    PyString::new(py, &local.ip().to_string()),
                    PyString::new(py, &local.port().to_string()),
                ));
            }
            if let Some((_, name, port)) = cache.as_ref() {
                env.set_item(intern!(py, "SERVER_NAME"), name)?;
                env.set_item(intern!(py, "SERVER_PORT"), port)?;
            }
        }
        None => {
            let (name, port) = server_name(head);
            env.set_item(intern!(py, "SERVER_NAME"), name)?;
            env.set_item(intern!(py, "SERVER_PORT"), port)?;
        }
    }
    let mut key = String::with_capacity(64);
    let mut joined: Vec<u8> = Vec::new();
    for name in head.headers.keys() {
        if name.as_str().contains('_') {
            continue;
        }
        let mut values = head.headers.get_all(name).iter();
        let Some(first) = values.next() else {
            continue;
        };
        let separator: &[u8] = if name == header::COOKIE { b"; " } else { b", " };
        let value = match values.next() {
            None => first.as_bytes(),
            Some(second) => {
                joined.clear();
                joined.extend_from_slice(first.as_bytes());
                for more in std::iter::once(second).chain(values) {
                    joined.extend_from_slice(separator);
                    joined.extend_from_slice(more.as_bytes());
                }
                &joined
            }
        };
        let value = latin1(py, value);
        if name == header::CONTENT_TYPE {
            env.set_item(intern!(py, "CONTENT_TYPE"), value)?;
        } else if name == header::CONTENT_LENGTH {
            env.set_item(intern!(py, "CONTENT_LENGTH"), value)?;
        } else if name == header::HOST {
            env.set_item(intern!(py, "HTTP_HOST"), value)?;
        } else {
            key.clear();
            key.push_str("HTTP_");
            key.extend(name.as_str().chars().map(|c| match c {
                '-' => '_',
                c => c.to_ascii_uppercase(),
            }));
            env.set_item(key.as_str(), value)?;
        }
    }
    if !head.headers.contains_key(header::HOST) {
        if let Some(authority) = head.uri.authority() {
            env.set_item(intern!(py, "HTTP_HOST"), authority.as_str())?;
        }
    }
    let scheme = match head.extensions.get::<UrlScheme>() {
        Some(scheme) => PyString::new(py, &scheme.0),
        None => match head.uri.scheme_str() {
            Some("https") => intern!(py, "https").clone(),
            _ => intern!(py, "http").clone(),
        },
    };
    env.set_item(intern!(py, "wsgi.version"), context.version)?;
    env.set_item(intern!(py, "wsgi.url_scheme"), scheme)?;
    env.set_item(intern!(py, "wsgi.input"), context.input)?;
    env.set_item(intern!(py, "wsgi.errors"), context.errors)?;
    env.set_item(intern!(py, "wsgi.multithread"), context.multithread)?;
    env.set_item(intern!(py, "wsgi.multiprocess"), context.multiprocess)?;
    env.set_item(intern!(py, "wsgi.run_once"), false)?;
    env.set_item(intern!(py, "wsgi.input_terminated"), true)?;
    env.set_item(intern!(py, "wsgi.file_wrapper"), context.file_wrapper)?;
    Ok(env)
}

/// `SERVER_NAME` and `SERVER_PORT` without a listener address (a unix socket): the `Host`
/// field.
fn server_name(head: &Parts) -> (String, String) {
    let host = head
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| head.uri.authority().map(|a| a.as_str()))
        .unwrap_or("localhost");
    split_host(host)
}

/// A `Host` value as name and port (80 when it has none); IPv6 literals keep their brackets.
fn split_host(host: &str) -> (String, String) {
    let (name, port) = match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => (&host[..i], &host[i + 1..]),
        _ => (host, ""),
    };
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return (host.to_owned(), "80".to_owned());
    }
    (name.to_owned(), port.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_decode_to_bytes() {
        assert_eq!(unquote("/a%20b/%C3%A9"), b"/a b/\xc3\xa9".to_vec());
        assert_eq!(unquote("/100%"), b"/100%".to_vec());
        assert_eq!(unquote("/%zz%4"), b"/%zz%4".to_vec());
        assert_eq!(unquote("%41"), b"A".to_vec());
    }

    #[test]
    fn host_fields_split_into_name_and_port() {
        let split = |h: &str| split_host(h);
        assert_eq!(split("example.com"), ("example.com".into(), "80".into()));
        assert_eq!(
            split("example.com:8080"),
            ("example.com".into(), "8080".into())
        );
        assert_eq!(split("[::1]:81"), ("[::1]".into(), "81".into()));
        assert_eq!(split("[::1]"), ("[::1]".into(), "80".into()));
    }
}
