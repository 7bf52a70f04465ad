//! `egg:Paste#urlmap`: mounts apps at path prefixes (and domains), as Paste's `urlmap` does
//! (spec §3). This module holds what the loader needs now: which apps a urlmap section names
//! and whether its keys are valid path expressions.

use deploy::plan::Conf;

/// A mount key after `parse_path_expression` and `normalize_url`: an optional `host[:port]`
/// and a path with runs of `/` collapsed and no trailing `/` (the root is `""`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `domain HOST [port PORT]`, as written (Paste does not lower-case it).
    pub domain: Option<String>,
    /// The normalised path prefix.
    pub path: String,
}

/// Paste's `parse_path_expression` followed by `URLMap.normalize_url`.
pub fn parse_mount(expression: &str) -> Result<Mount, String> {
    let mut domain: Option<&str> = None;
    let mut port: Option<&str> = None;
    let mut path: Option<&str> = None;
    let mut parts = expression.split_whitespace();
    while let Some(part) = parts.next() {
        match part {
            "domain" => {
                let value = parts
                    .next()
                    .ok_or("'domain' must be followed with a domain name")?;
                if domain.is_some() {
                    return Err("'domain' given twice".into());
                }
                domain = Some(value);
            }
            "port" => {
                let value = parts
                    .next()
                    .ok_or("'port' must be followed with a port number")?;
                if port.is_some() {
                    return Err("'port' given twice".into());
                }
                port = Some(value);
            }
            other => {
                if let Some(have) = path {
                    return Err(format!(
                        "more than one path given (have '{have}', got '{other}')"
                    ));
                }
                path = Some(other);
            }
        }
    }
    if port.is_some() && domain.is_none() {
        return Err("If you give a port, you must also give a domain".into());
    }
    let path = path.unwrap_or("");
    if domain.is_none() && !path.is_empty() && !path.starts_with('/') {
        return Err(format!(
            "URL fragments must start with / or http:// (you gave '{path}')"
        ));
    }
    let host = domain.map(|d| match port {
        Some(p) => format!("{d}:{p}"),
        None => d.to_owned(),
    });
    Ok(Mount {
        domain: host,
        path: normalize_path(path, true),
    })
}

/// Collapses runs of `/` into one and, with `trim`, removes a trailing `/`.
pub fn normalize_path(path: &str, trim: bool) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    if trim {
        while out.ends_with('/') {
            out.pop();
        }
    }
    out
}

/// The apps a urlmap section loads: `not_found_app` (from the section, else from
/// global_conf), then each mount's app.
pub fn children(local: &Conf, global: &Conf) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let not_found = local
        .get("not_found_app")
        .or_else(|| global.get("not_found_app"));
    if let Some(app) = not_found.filter(|a| !a.is_empty()) {
        names.push(app.clone());
    }
    for (key, app) in local {
        if key == "not_found_app" {
            continue;
        }
        parse_mount(key).map_err(|e| format!("mount key '{key}': {e}"))?;
        names.push(app.clone());
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(domain: Option<&str>, path: &str) -> Mount {
        Mount {
            domain: domain.map(str::to_owned),
            path: path.to_owned(),
        }
    }

    #[test]
    fn scenario_5_3_d51_path_expressions() {
        assert_eq!(parse_mount("domain a.com"), Ok(mount(Some("a.com"), "")));
        assert_eq!(
            parse_mount("domain a.com port 81 /x"),
            Ok(mount(Some("a.com:81"), "/x"))
        );
        assert_eq!(
            parse_mount("port 81 /x"),
            Err("If you give a port, you must also give a domain".into())
        );
        assert!(parse_mount("/a /b")
            .unwrap_err()
            .starts_with("more than one path given"));
        assert_eq!(
            parse_mount("domain a domain b"),
            Err("'domain' given twice".into())
        );
        assert_eq!(
            parse_mount("domain"),
            Err("'domain' must be followed with a domain name".into())
        );
    }

    #[test]
    fn scenario_5_3_d50_keys_must_start_with_a_slash() {
        assert_eq!(
            parse_mount("foo"),
            Err("URL fragments must start with / or http:// (you gave 'foo')".into())
        );
        assert_eq!(parse_mount("/foo/bar/"), Ok(mount(None, "/foo/bar")));
        assert_eq!(parse_mount("/"), Ok(mount(None, "")));
        assert_eq!(parse_mount("//a//b"), Ok(mount(None, "/a/b")));
    }

    #[test]
    fn children_start_with_the_not_found_app() {
        let local: Conf = [("/", "root"), ("not_found_app", "nf"), ("/foo", "foo")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(
            children(&local, &Conf::new()).unwrap(),
            ["nf", "root", "foo"]
        );
        let global: Conf = [("not_found_app".to_owned(), "g".to_owned())]
            .into_iter()
            .collect();
        let local: Conf = [("/".to_owned(), "root".to_owned())].into_iter().collect();
        assert_eq!(children(&local, &global).unwrap(), ["g", "root"]);
    }
}
