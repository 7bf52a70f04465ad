//! PasteDeploy's value converters (`paste.deploy.converters`): every config value is a string,
//! and factories turn them into booleans, integers and lists with these.

use thiserror::Error;

/// A value that does not convert.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConvertError {
    /// Not one of the true/false words.
    #[error("String is not true/false: {0:?} (use true/false, yes/no, on/off, y/n, t/f or 1/0)")]
    NotBool(String),
    /// Not an integer.
    #[error("Bad integer value: {0:?}")]
    NotInt(String),
}

/// `asbool`: after trimming and lower-casing, `true yes on y t 1` are true and
/// `false no off n f 0` are false; anything else is an error.
pub fn asbool(value: &str) -> Result<bool, ConvertError> {
    match value.trim().to_lowercase().as_str() {
        "true" | "yes" | "on" | "y" | "t" | "1" => Ok(true),
        "false" | "no" | "off" | "n" | "f" | "0" => Ok(false),
        _ => Err(ConvertError::NotBool(value.to_owned())),
    }
}

/// `asint`: Python's `int(value)` for a string: surrounding whitespace, a sign and `_` between
/// digits are allowed.
pub fn asint(value: &str) -> Result<i64, ConvertError> {
    let bad = || ConvertError::NotInt(value.to_owned());
    let text = value.trim();
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return Err(bad());
    }
    text.replace('_', "").parse().map_err(|_| bad())
}

/// `aslist`: splits on whitespace, or on `sep` with each item trimmed (empty items kept, as in
/// Python).
pub fn aslist(value: &str, sep: Option<&str>) -> Vec<String> {
    match sep {
        None => crate::ini::parse::py_split(value)
            .map(str::to_owned)
            .collect(),
        Some(sep) => value
            .split(sep)
            .map(|item| item.trim().to_owned())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_5_1_30_asbool_true_words() {
        for word in ["true", "yes", "on", "y", "t", "1", " TRUE ", "Yes"] {
            assert_eq!(asbool(word), Ok(true), "{word}");
        }
    }

    #[test]
    fn scenario_5_1_31_asbool_false_words() {
        for word in ["false", "no", "off", "n", "f", "0", "OFF"] {
            assert_eq!(asbool(word), Ok(false), "{word}");
        }
    }

    #[test]
    fn asbool_rejects_other_words() {
        assert!(asbool("maybe").is_err());
        assert!(asbool("").is_err());
    }

    #[test]
    fn asint_accepts_what_python_int_accepts() {
        assert_eq!(asint(" 42 "), Ok(42));
        assert_eq!(asint("-7"), Ok(-7));
        assert_eq!(asint("1_000"), Ok(1000));
        for bad in ["", "4.2", "0x10", "1__0", "_1", "abc", "+"] {
            assert!(asint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn aslist_splits() {
        assert_eq!(aslist(" a  b\n c ", None), ["a", "b", "c"]);
        assert_eq!(aslist("a, b,,c ", Some(",")), ["a", "b", "", "c"]);
    }
}
