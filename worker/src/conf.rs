//! Reading an egg's settings: typed access to `local_conf` values with errors that name the key,
//! so the pipeline builder can point at the line it was written on.

use deploy::converters::{asbool, asint};
use deploy::plan::Conf;
use thiserror::Error;

/// Why an egg's factory refused its settings.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}{message}", key.as_ref().map(|k| format!("{k}: ")).unwrap_or_default())]
pub struct EggError {
    /// The key at fault, when one is.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl EggError {
    /// A problem with one key.
    pub fn key(key: &str, message: impl Into<String>) -> Self {
        EggError {
            key: Some(key.to_owned()),
            message: message.into(),
        }
    }

    /// A problem with the settings as a whole.
    pub fn new(message: impl Into<String>) -> Self {
        EggError {
            key: None,
            message: message.into(),
        }
    }
}

/// Typed reads of a configuration.
pub trait ConfExt {
    /// A boolean (`asbool`), or `default` when the key is absent.
    fn flag(&self, key: &str, default: bool) -> Result<bool, EggError>;
    /// An integer (`asint`), or `default`.
    fn int(&self, key: &str, default: i64) -> Result<i64, EggError>;
    /// A string, or `default`.
    fn text<'a>(&'a self, key: &str, default: &'a str) -> &'a str;
}

impl ConfExt for Conf {
    fn flag(&self, key: &str, default: bool) -> Result<bool, EggError> {
        self.get(key).map_or(Ok(default), |v| {
            asbool(v).map_err(|e| EggError::key(key, e.to_string()))
        })
    }

    fn int(&self, key: &str, default: i64) -> Result<i64, EggError> {
        self.get(key).map_or(Ok(default), |v| {
            asint(v).map_err(|e| EggError::key(key, e.to_string()))
        })
    }

    fn text<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.get(key).map_or(default, String::as_str)
    }
}
