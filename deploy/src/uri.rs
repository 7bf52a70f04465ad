//! The names that point at config: `config:PATH`, `egg:DIST#NAME`, `call:module:attr`, plain
//! section names, and the `CONFIG_URI` a user passes on the command line.
//!
//! Inside a file, a name that starts with ASCII letters and a colon is a URI, anything else a
//! section of the same file (spec §2.6). `config:` paths are resolved against the directory of
//! the file that names them, with PasteDeploy's quirks kept: backslashes become slashes, `///`
//! loses two slashes, `%XX` is decoded (spec §2.3).

use crate::error::LoadErrorKind;
use crate::ini::parse::py_strip;
use std::path::{Path, PathBuf};

/// The three URI schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `config:PATH`: a section of another file.
    Config,
    /// `egg:DIST`: an entry point of a distribution.
    Egg,
    /// `call:module:attr`: a factory named by its Python path.
    Call,
}

/// A URI split into scheme, the part after the colon, and the `#name` fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    /// The scheme.
    pub scheme: Scheme,
    /// What follows `scheme:`, without the fragment.
    pub spec: String,
    /// The section or entry-point name: the explicit name, else the fragment, else `main`.
    pub name: String,
}

/// Whether a name inside a file is a URI rather than a section name (`^[a-zA-Z]+:`).
pub fn is_uri(name: &str) -> bool {
    let letters = name.bytes().take_while(u8::is_ascii_alphabetic).count();
    letters > 0 && name.as_bytes().get(letters) == Some(&b':')
}

/// PasteDeploy's `loadcontext` parsing: an explicit `name` beats the fragment, which beats `main`.
pub fn parse_uri(uri: &str, name: Option<&str>) -> Result<Uri, LoadErrorKind> {
    let (uri, fragment) = match uri.split_once('#') {
        Some((u, f)) => (u, Some(f)),
        None => (uri, None),
    };
    let name = name.or(fragment).unwrap_or("main").to_owned();
    let Some((scheme, spec)) = uri.split_once(':') else {
        return Err(LoadErrorKind::NoScheme(uri.to_owned()));
    };
    let scheme = match scheme.to_lowercase().as_str() {
        "config" => Scheme::Config,
        "egg" => Scheme::Egg,
        "call" => Scheme::Call,
        other => return Err(LoadErrorKind::UnknownScheme(other.to_owned())),
    };
    Ok(Uri {
        scheme,
        spec: spec.to_owned(),
        name,
    })
}

/// The file a `config:` spec names, relative to `relative_to` (empty: the current directory).
pub fn config_path(spec: &str, relative_to: &Path) -> PathBuf {
    let is_abs = spec.starts_with('/');
    let mut path = spec.replace('\\', "/");
    if !is_abs && !relative_to.as_os_str().is_empty() {
        let base = relative_to.to_string_lossy();
        path = if base.ends_with('/') {
            format!("{base}{path}")
        } else {
            format!("{base}/{path}")
        };
    }
    if path.starts_with("///") {
        path.replace_range(..2, "");
    }
    PathBuf::from(py_strip(&percent_decode(&path, false)))
}

/// Python's `urllib.parse.unquote` (and `unquote_plus` with `plus`): `%XX` sequences are
/// decoded as UTF-8, invalid sequences replaced.
pub fn percent_decode(text: &str, plus: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Python's `os.path.normpath` on POSIX: `.` and `..` resolved lexically, repeated slashes
/// collapsed (two leading slashes kept, as POSIX allows), no trailing slash.
pub fn normpath(path: &Path) -> PathBuf {
    let text = path.to_string_lossy();
    if text.is_empty() {
        return PathBuf::from(".");
    }
    let leading = if text.starts_with("//") && !text.starts_with("///") {
        "//"
    } else if text.starts_with('/') {
        "/"
    } else {
        ""
    };
    let mut parts: Vec<&str> = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            ".." if !leading.is_empty() => {}
            other => parts.push(other),
        }
    }
    let joined = format!("{leading}{}", parts.join("/"));
    PathBuf::from(if joined.is_empty() {
        ".".to_owned()
    } else {
        joined
    })
}

/// Python's `os.path.abspath`: joined to the current directory, then [`normpath`]; symlinks
/// are not resolved.
pub fn abspath(path: &Path) -> PathBuf {
    if path.has_root() {
        return normpath(path);
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    normpath(&cwd.join(path))
}

/// Python's `os.path.dirname`: everything before the last `/`, trailing slashes removed
/// unless the result is only slashes.
pub fn dirname(path: &Path) -> PathBuf {
    let text = path.to_string_lossy();
    let Some(i) = text.rfind('/') else {
        return PathBuf::new();
    };
    let head = &text[..=i];
    let trimmed = head.trim_end_matches('/');
    PathBuf::from(if trimmed.is_empty() { head } else { trimmed })
}

/// What a user names on the command line (the `CONFIG_URI` of `serve` and `pserve`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigUri {
    /// The PasteDeploy URI to load: `config:PATH` or `egg:DIST`.
    pub uri: String,
    /// The file, for `config:` URIs.
    pub file: Option<PathBuf>,
    /// The `#fragment`, if any.
    pub fragment: Option<String>,
    /// `?key=value` options, which enter global_conf as plaster passes them.
    pub options: Vec<(String, String)>,
}

impl ConfigUri {
    /// Parses `deploy.ini`, `deploy.ini#app`, `deploy.ini?port=80`, `config:deploy.ini` or
    /// `egg:DIST#NAME`.
    pub fn parse(text: &str) -> ConfigUri {
        let (rest, fragment) = match text.split_once('#') {
            Some((r, f)) => (r, Some(f.to_owned())),
            None => (text, None),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let options = query
            .map(|q| {
                q.split('&')
                    .filter(|pair| !pair.is_empty())
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        (percent_decode(k, true), percent_decode(v, true))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let lower = rest.to_lowercase();
        if lower.starts_with("egg:") {
            return ConfigUri {
                uri: format!("egg:{}", &rest[4..]),
                file: None,
                fragment,
                options,
            };
        }
        let path = if lower.starts_with("config:") {
            &rest[7..]
        } else {
            rest
        };
        ConfigUri {
            uri: format!("config:{path}"),
            file: Some(PathBuf::from(path)),
            fragment,
            options,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_detection() {
        assert!(is_uri("egg:Paste#urlmap"));
        assert!(is_uri("CONFIG:x.ini"));
        assert!(is_uri("foo:bar"));
        assert!(!is_uri("main"));
        assert!(!is_uri(":x"));
        assert!(!is_uri("a1:x"));
        assert!(!is_uri("C"));
    }

    #[test]
    fn fragments_and_names() {
        let u = parse_uri("config:x.ini#app", None).unwrap();
        assert_eq!(
            (u.scheme, u.spec.as_str(), u.name.as_str()),
            (Scheme::Config, "x.ini", "app")
        );
        assert_eq!(
            parse_uri("config:x.ini#ignored", Some("main"))
                .unwrap()
                .name,
            "main"
        );
        assert_eq!(parse_uri("egg:D", None).unwrap().name, "main");
        assert_eq!(parse_uri("config:x.ini#", None).unwrap().name, "");
        assert!(matches!(
            parse_uri("x.ini", None),
            Err(LoadErrorKind::NoScheme(_))
        ));
        assert!(
            matches!(parse_uri("file:x.ini", None), Err(LoadErrorKind::UnknownScheme(s)) if s == "file")
        );
        assert_eq!(
            parse_uri("CONFIG:x.ini", None).unwrap().scheme,
            Scheme::Config
        );
    }

    #[test]
    fn config_paths() {
        let base = Path::new("/srv/app");
        assert_eq!(
            config_path("sub/x.ini", base),
            Path::new("/srv/app/sub/x.ini")
        );
        assert_eq!(
            config_path("sub/x.ini", Path::new("/srv/app/")),
            Path::new("/srv/app/sub/x.ini")
        );
        assert_eq!(config_path("/etc/x.ini", base), Path::new("/etc/x.ini"));
        assert_eq!(config_path("///etc/x.ini", base), Path::new("/etc/x.ini"));
        assert_eq!(
            config_path("sp%20ace.ini", base),
            Path::new("/srv/app/sp ace.ini")
        );
        assert_eq!(config_path("a\\b.ini", base), Path::new("/srv/app/a/b.ini"));
        assert_eq!(config_path("x.ini", Path::new("")), Path::new("x.ini"));
        assert_eq!(
            config_path("x.ini", Path::new("configs")),
            Path::new("configs/x.ini")
        );
    }

    #[test]
    fn python_path_functions() {
        assert_eq!(normpath(Path::new("/a/./b/../c//d/")), Path::new("/a/c/d"));
        assert_eq!(normpath(Path::new("//a/b")).to_string_lossy(), "//a/b");
        assert_eq!(normpath(Path::new("///a")), Path::new("/a"));
        assert_eq!(normpath(Path::new("/../a")), Path::new("/a"));
        assert_eq!(normpath(Path::new("../a/../../b")), Path::new("../../b"));
        assert_eq!(dirname(Path::new("/a/b.ini")), Path::new("/a"));
        assert_eq!(dirname(Path::new("b.ini")), Path::new(""));
        assert_eq!(dirname(Path::new("/b.ini")), Path::new("/"));
        assert_eq!(percent_decode("a%2Fb%zz%", false), "a/b%zz%");
        assert_eq!(percent_decode("a+b%20c", true), "a b c");
    }

    #[test]
    fn command_line_uris() {
        let u = ConfigUri::parse("dev.ini?a=1&b=x+y#site");
        assert_eq!(u.uri, "config:dev.ini");
        assert_eq!(u.file.as_deref(), Some(Path::new("dev.ini")));
        assert_eq!(u.fragment.as_deref(), Some("site"));
        assert_eq!(
            u.options,
            [("a".into(), "1".into()), ("b".into(), "x y".into())]
        );
        let e = ConfigUri::parse("egg:MyApp#main");
        assert_eq!((e.uri.as_str(), e.file.is_none()), ("egg:MyApp", true));
        assert_eq!(
            ConfigUri::parse("config:/etc/x.ini").file.as_deref(),
            Some(Path::new("/etc/x.ini"))
        );
    }
}
