//! `%(name)s` interpolation, as Python's `configparser.BasicInterpolation` does it.
//!
//! Only `%(name)s` and `%%` are recognised; any other `%` is an error. A name is looked up in
//! the section's own raw keys first, then in the defaults (`here`, `__file__`, `[DEFAULT]`, and
//! the caller's globals that `[DEFAULT]` does not define). A substituted value that itself holds a
//! `%` is expanded again, at most [`MAX_DEPTH`] levels deep, which also stops reference cycles.
//! Interpolation is lazy: the loader calls it only for the keys it reads (spec §1.5).

use thiserror::Error;

/// Python's `MAX_INTERPOLATION_DEPTH`.
pub const MAX_DEPTH: usize = 10;

/// Why a value could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InterpolateError {
    /// A `%` not followed by `%` or `(`.
    #[error("'%' must be followed by '%' or '(', found: {rest:?} (in key {option:?} of [{section}], raw value {raw:?}; write %% for a literal %)")]
    StrayPercent {
        option: String,
        section: String,
        raw: String,
        rest: String,
    },
    /// A `%(` that is not a complete `%(name)s`.
    #[error("bad interpolation variable reference {rest:?} (in key {option:?} of [{section}], raw value {raw:?}; only %(name)s is supported)")]
    BadReference {
        option: String,
        section: String,
        raw: String,
        rest: String,
    },
    /// `%(name)s` where no key `name` is visible.
    #[error("key {option:?} in section [{section}] refers to %({name})s, which is not defined in this section, in [DEFAULT] or by the caller (raw value {raw:?})")]
    Missing {
        option: String,
        section: String,
        raw: String,
        name: String,
    },
    /// Substitution nested deeper than [`MAX_DEPTH`], usually a cycle.
    #[error("key {option:?} in section [{section}] cannot be expanded in {MAX_DEPTH} steps (a reference cycle?); raw value {raw:?}")]
    TooDeep {
        option: String,
        section: String,
        raw: String,
    },
}

/// Expands `raw`, the value of `option` in `section`, looking names up with `lookup`.
pub fn interpolate<'a>(
    option: &str,
    section: &str,
    raw: &str,
    lookup: &dyn Fn(&str) -> Option<&'a str>,
) -> Result<String, InterpolateError> {
    let mut out = String::with_capacity(raw.len());
    expand(option, section, raw, raw, lookup, 1, &mut out)?;
    Ok(out)
}

fn expand<'a>(
    option: &str,
    section: &str,
    raw: &str,
    mut rest: &str,
    lookup: &dyn Fn(&str) -> Option<&'a str>,
    depth: usize,
    out: &mut String,
) -> Result<(), InterpolateError> {
    if depth > MAX_DEPTH {
        return Err(InterpolateError::TooDeep {
            option: option.to_owned(),
            section: section.to_owned(),
            raw: raw.to_owned(),
        });
    }
    while !rest.is_empty() {
        let Some(p) = rest.find('%') else {
            out.push_str(rest);
            return Ok(());
        };
        out.push_str(&rest[..p]);
        rest = &rest[p..];
        let after = &rest[1..];
        if let Some(tail) = after.strip_prefix('%') {
            out.push('%');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('(') {
            // Python's `%\(([^)]+)\)s`.
            let name_end = tail.find(')').filter(|&end| end > 0);
            let Some(end) = name_end.filter(|&end| tail[end + 1..].starts_with('s')) else {
                return Err(InterpolateError::BadReference {
                    option: option.to_owned(),
                    section: section.to_owned(),
                    raw: raw.to_owned(),
                    rest: rest.to_owned(),
                });
            };
            let name = &tail[..end];
            rest = &tail[end + 2..];
            let Some(value) = lookup(name) else {
                return Err(InterpolateError::Missing {
                    option: option.to_owned(),
                    section: section.to_owned(),
                    raw: raw.to_owned(),
                    name: name.to_owned(),
                });
            };
            if value.contains('%') {
                expand(option, section, raw, value, lookup, depth + 1, out)?;
            } else {
                out.push_str(value);
            }
        } else {
            return Err(InterpolateError::StrayPercent {
                option: option.to_owned(),
                section: section.to_owned(),
                raw: raw.to_owned(),
                rest: rest.to_owned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run(raw: &str, vars: &[(&str, &str)]) -> Result<String, InterpolateError> {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        interpolate("k", "app:main", raw, &|n| map.get(n).copied())
    }

    #[test]
    fn plain_text_and_escapes() {
        assert_eq!(run("plain", &[]).unwrap(), "plain");
        assert_eq!(run("100%%", &[]).unwrap(), "100%");
        assert_eq!(run("%(a)s/x", &[("a", "/srv")]).unwrap(), "/srv/x");
    }

    #[test]
    fn nested_values_are_expanded_and_unescaped() {
        assert_eq!(run("%(a)s", &[("a", "%(b)s!"), ("b", "B")]).unwrap(), "B!");
        assert_eq!(run("%(a)s", &[("a", "50%%")]).unwrap(), "50%");
    }

    #[test]
    fn errors() {
        assert!(matches!(
            run("100%", &[]),
            Err(InterpolateError::StrayPercent { .. })
        ));
        assert!(matches!(
            run("%(foo)", &[]),
            Err(InterpolateError::BadReference { .. })
        ));
        assert!(matches!(
            run("%(y)d", &[("y", "1")]),
            Err(InterpolateError::BadReference { .. })
        ));
        assert!(matches!(
            run("%()s", &[]),
            Err(InterpolateError::BadReference { .. })
        ));
        assert!(
            matches!(run("%(nope)s", &[]), Err(InterpolateError::Missing { name, .. }) if name == "nope")
        );
        assert!(matches!(
            run("%(a)s", &[("a", "%(b)s"), ("b", "%(a)s")]),
            Err(InterpolateError::TooDeep { .. })
        ));
    }

    #[test]
    fn depth_limit_is_ten_levels() {
        // k -> v1 -> ... : nine nested expansions succeed, more fail.
        let chain = |n: usize| -> Vec<(String, String)> {
            (1..=n)
                .map(|i| {
                    let v = if i == n {
                        "end".to_owned()
                    } else {
                        format!("%(v{})s", i + 1)
                    };
                    (format!("v{i}"), v)
                })
                .collect()
        };
        let ok = chain(9);
        let map: HashMap<&str, &str> = ok.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(
            interpolate("k", "s", "%(v1)s", &|n| map.get(n).copied()).unwrap(),
            "end"
        );
        // Python 3.11: a chain of 10 still expands, 11 does not (checked with configparser).
        let ten = chain(10);
        let map: HashMap<&str, &str> = ten.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(
            interpolate("k", "s", "%(v1)s", &|n| map.get(n).copied()).unwrap(),
            "end"
        );
        let bad = chain(11);
        let map: HashMap<&str, &str> = bad.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert!(interpolate("k", "s", "%(v1)s", &|n| map.get(n).copied()).is_err());
    }
}
