//! `serve#basic_auth`: HTTP Basic authentication against an htpasswd file of bcrypt hashes
//! (`htpasswd -B`).
//!
//! A request without valid credentials gets `401` with `WWW-Authenticate: Basic`; a valid one
//! passes on, and its user name reaches the access log. Passwords are checked off the async
//! runtime (bcrypt is slow on purpose), and credentials that passed are remembered for the
//! worker's life so a client's every request does not pay for bcrypt again. The file is read
//! when the worker starts: a reload picks up changes.
//!
//! Keys: `htpasswd` (required; relative to the config file's directory), `realm` (default
//! `Restricted`).

use super::accesslog::AuthUser;
use crate::app::{app_fn, call, App, Filter};
use crate::body::{full, Body};
use crate::conf::{ConfExt, EggError};
use crate::eggs::Eggs;
use base64::Engine;
use deploy::plan::Conf;
use http::{header, HeaderValue, Request, Response, StatusCode};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Registers `serve#basic_auth`.
pub fn register(eggs: &mut Eggs) {
    eggs.filter("serve", "basic_auth", basic_auth_filter);
}

/// How many accepted credentials are remembered before the memory is cleared.
const REMEMBERED: usize = 1024;

struct Guard {
    users: HashMap<String, String>,
    challenge: HeaderValue,
    accepted: Mutex<HashSet<String>>,
}

/// Reads `user:hash` lines; only bcrypt hashes are accepted.
fn read_htpasswd(path: &PathBuf) -> Result<HashMap<String, String>, EggError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| EggError::key("htpasswd", format!("cannot read {}: {e}", path.display())))?;
    let mut users = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = format!("{}:{}", path.display(), n + 1);
        let (user, hash) = line
            .split_once(':')
            .ok_or_else(|| EggError::key("htpasswd", format!("{at}: expected user:hash")))?;
        if !["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
            return Err(EggError::key(
                "htpasswd",
                format!("{at}: only bcrypt entries are supported (make them with `htpasswd -B`)"),
            ));
        }
        users.insert(user.to_owned(), hash.to_owned());
    }
    Ok(users)
}

fn basic_auth_filter(global: &Conf, local: &Conf) -> Result<Filter, EggError> {
    let file = local.get("htpasswd").ok_or_else(|| {
        EggError::key(
            "htpasswd",
            "is required: an htpasswd file of bcrypt entries",
        )
    })?;
    let mut path = PathBuf::from(file.trim());
    if path.is_relative() {
        if let Some(here) = global.get("here") {
            path = PathBuf::from(here).join(path);
        }
    }
    let realm = local.text("realm", "Restricted").replace(['"', '\\'], "");
    let guard = Arc::new(Guard {
        users: read_htpasswd(&path)?,
        challenge: HeaderValue::from_str(&format!("Basic realm=\"{realm}\", charset=\"UTF-8\""))
            .map_err(|_| EggError::key("realm", "is not a valid header value"))?,
        accepted: Mutex::new(HashSet::new()),
    });
    Ok(Arc::new(move |app: App| {
        let guard = Arc::clone(&guard);
        app_fn(move |req: Request<Body>| {
            let (app, guard) = (app.clone(), Arc::clone(&guard));
            async move {
                let credentials = req
                    .headers()
                    .get(header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                match guard.check(credentials).await {
                    Some(user) => {
                        let mut response = call(&app, req).await;
                        response.extensions_mut().insert(AuthUser(user));
                        response
                    }
                    None => {
                        let mut response = Response::new(full("401 Unauthorized\n"));
                        *response.status_mut() = StatusCode::UNAUTHORIZED;
                        response
                            .headers_mut()
                            .insert(header::WWW_AUTHENTICATE, guard.challenge.clone());
                        response.headers_mut().insert(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("text/plain; charset=utf-8"),
                        );
                        response
                    }
                }
            }
        })
    }))
}

impl Guard {
    /// The user the `Authorization` header proves, if it does.
    async fn check(&self, header: Option<String>) -> Option<String> {
        let header = header?;
        let (scheme, encoded) = header.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let encoded = encoded.trim();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        let (user, password) = decoded.split_once(':')?;
        let hash = self.users.get(user)?.clone();
        if self.accepted.lock().ok()?.contains(&header) {
            return Some(user.to_owned());
        }
        let password = password.to_owned();
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .ok()?;
        if ok {
            if let Ok(mut accepted) = self.accepted.lock() {
                if accepted.len() >= REMEMBERED {
                    accepted.clear();
                }
                accepted.insert(header);
            }
            return Some(user.to_owned());
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::tests::{build_err, send};

    /// The OpenBSD bcrypt test vector: `U*U` at cost 5.
    const VECTOR: &str = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW";

    fn basic(user: &str, password: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    }

    fn app(dir: &std::path::Path) -> App {
        let fresh = bcrypt::hash("s3cret", 4)
            .unwrap()
            .replacen("$2b$", "$2y$", 1);
        std::fs::write(
            dir.join("users"),
            format!("# users\nalice:{VECTOR}\n\nbob:{fresh}\n"),
        )
        .unwrap();
        let ini = "[app:echo]\nuse = egg:serve#echo\n[filter:auth]\nuse = egg:serve#basic_auth\nhtpasswd = users\nrealm = Staff\n[pipeline:main]\npipeline = auth echo\n";
        std::fs::write(dir.join("t.ini"), ini).unwrap();
        let eggs = crate::eggs::Eggs::builtin();
        let plan = deploy::load(
            &eggs.registry(),
            &deploy::Request {
                config_uri: dir.join("t.ini").to_string_lossy().into_owned(),
                ..Default::default()
            },
        )
        .unwrap();
        crate::pipeline::build(&plan.app, &eggs).unwrap()
    }

    async fn status(app: &App, authorization: Option<String>) -> (u16, http::HeaderMap) {
        let mut req = Request::get("/");
        if let Some(value) = authorization {
            req = req.header("authorization", value);
        }
        let (status, headers, _) = send(app, req.body(full("")).unwrap()).await;
        (status, headers)
    }

    #[tokio::test]
    async fn only_valid_credentials_pass() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let (code, headers) = status(&app, None).await;
        assert_eq!(code, 401);
        assert_eq!(
            headers["www-authenticate"],
            "Basic realm=\"Staff\", charset=\"UTF-8\""
        );
        assert_eq!(status(&app, Some(basic("alice", "U*U"))).await.0, 200);
        assert_eq!(status(&app, Some(basic("alice", "U*U"))).await.0, 200);
        assert_eq!(status(&app, Some(basic("bob", "s3cret"))).await.0, 200);
        assert_eq!(status(&app, Some(basic("alice", "wrong"))).await.0, 401);
        assert_eq!(status(&app, Some(basic("carol", "U*U"))).await.0, 401);
        assert_eq!(status(&app, Some("Basic !!!".into())).await.0, 401);
        assert_eq!(status(&app, Some("Bearer x".into())).await.0, 401);
        let upper = basic("alice", "U*U").replacen("Basic", "BASIC", 1);
        assert_eq!(status(&app, Some(upper)).await.0, 200);
    }

    #[test]
    fn non_bcrypt_entries_are_refused_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("users"), "alice:$apr1$abc$def\n").unwrap();
        let ini = format!("[app:h]\nuse = egg:minimal\n[filter:auth]\nuse = egg:serve#basic_auth\nhtpasswd = {}\n[pipeline:main]\npipeline = auth h\n", dir.path().join("users").display());
        let err = build_err(&ini);
        assert!(
            err.contains(&format!(
                "htpasswd: {}:1: only bcrypt entries are supported",
                dir.path().join("users").display()
            )),
            "{err}"
        );
    }
}
