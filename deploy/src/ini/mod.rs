//! The INI files `deploy.ini` is written in: parsed into sections of raw keys, each key with its
//! file and line, and expanded with `%(name)s` interpolation when the loader reads it.

pub mod interpolate;
pub mod parse;

use crate::location::Location;
use indexmap::IndexMap;
use std::path::Path;
use std::sync::Arc;

pub use interpolate::{interpolate, InterpolateError};
pub use parse::{parse, LineProblem, ParseError, DEFAULT_SECTION};

/// One parsed file: its `[DEFAULT]` keys and its other sections, in file order.
#[derive(Debug, Clone)]
pub struct IniFile {
    /// The path the file was read from, as the loader built it.
    pub path: Arc<Path>,
    /// The keys of every `[DEFAULT]` block, merged.
    pub defaults: IndexMap<String, Entry>,
    /// Every other section by its exact name (case and spaces kept).
    pub sections: IndexMap<String, Section>,
}

/// A `[name]` section.
#[derive(Debug, Clone)]
pub struct Section {
    /// The text between the brackets, untrimmed.
    pub name: String,
    /// The line of the header.
    pub line: u32,
    /// The keys, in file order.
    pub entries: IndexMap<String, Entry>,
}

/// One key's raw (not yet interpolated) value.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The value with continuation lines joined by `\n`, trailing whitespace removed.
    pub value: String,
    /// The lines of the value while it is being read; empty afterwards.
    pub(crate) lines: Vec<String>,
    /// The line of the key.
    pub at: Location,
}

impl IniFile {
    /// The raw value of `key` in `section` (`DEFAULT` for the defaults block).
    pub fn raw(&self, section: &str, key: &str) -> Option<&str> {
        let entries = if section == DEFAULT_SECTION {
            &self.defaults
        } else {
            &self.sections.get(section)?.entries
        };
        entries.get(key).map(|e| e.value.as_str())
    }
}
