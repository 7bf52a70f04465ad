//! The INI dialect of Python's `configparser.ConfigParser` as PasteDeploy configures it.
//!
//! This is a line-by-line port of CPython 3.11's `RawConfigParser._read` with PasteDeploy's
//! settings (spec §1.1–1.2): `=` and `:` split a key from its value at the first one of them;
//! only whole lines that start with `#` or `;` are comments; a line indented deeper than the key
//! line it follows continues the value; blank lines inside a value are kept and comment lines
//! dropped; keys and section names keep their case; a section or a key defined twice is an error;
//! `[DEFAULT]` blocks merge. Values are kept raw: `%(name)s` is expanded later, and only for the
//! keys that are read (see [`super::interpolate`]). The one deliberate difference from Python is
//! that a UTF-8 byte-order mark at the start of the file is skipped instead of being an error.

use super::{Entry, IniFile, Section};
use crate::location::Location;
use indexmap::IndexMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use thiserror::Error;

/// The name of the section whose keys every other section sees.
pub const DEFAULT_SECTION: &str = "DEFAULT";

/// What is wrong with one line of an INI file.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LineProblem {
    /// Text that is not a comment before the first `[section]` header.
    #[error("text before the first [section] header: {0:?}")]
    BeforeFirstSection(String),
    /// A line that is neither a header, a comment, a continuation nor `key = value`.
    #[error("line has no '=' or ':' (and is not a [section] header or a continuation): {0:?}")]
    NoDelimiter(String),
    /// A line that starts with its delimiter.
    #[error("key is empty: {0:?}")]
    EmptyKey(String),
    /// A `[section]` header seen twice in one file.
    #[error("section [{name}] already exists (first at line {first})")]
    DuplicateSection { name: String, first: u32 },
    /// A key seen twice in one section.
    #[error("key {key:?} in section [{section}] already exists (first at line {first})")]
    DuplicateKey {
        key: String,
        section: String,
        first: u32,
    },
}

impl LineProblem {
    /// Python's configparser stops reading at these; the others are collected to the end.
    fn is_fatal(&self) -> bool {
        !matches!(self, LineProblem::NoDelimiter(_) | LineProblem::EmptyKey(_))
    }
}

/// A file that is not valid INI, with every bad line found (Python reports them all at once).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct ParseError {
    /// The bad lines, in file order; never empty.
    pub problems: Vec<(Location, LineProblem)>,
}

impl ParseError {
    /// The first bad line.
    pub fn location(&self) -> &Location {
        &self.problems[0].0
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (at, problem)) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{at}: {problem}")?;
        }
        Ok(())
    }
}

/// Python's `str.isspace()`, which `strip()` and the indentation regex use.
pub(crate) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.strip()`.
pub(crate) fn py_strip(s: &str) -> &str {
    s.trim_matches(is_py_space)
}

/// Python's `str.split()` with no argument: runs of Python whitespace separate words.
pub fn py_split(s: &str) -> impl Iterator<Item = &str> {
    s.split(is_py_space).filter(|w| !w.is_empty())
}

/// Splits text into lines the way Python's universal-newline reading does: `\n`, `\r\n` and a
/// lone `\r` each end a line.
fn universal_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.find(['\n', '\r']) {
            None => {
                let line = rest;
                rest = "";
                Some(line)
            }
            Some(i) => {
                let line = &rest[..i];
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
                Some(line)
            }
        }
    })
}

/// The content of a `[header]` line (already stripped), as Python's `\[(?P<header>.+)\]`
/// matched at the start: everything up to the last `]`, which must leave at least one character.
fn section_header(stripped: &str) -> Option<&str> {
    let inner = stripped.strip_prefix('[')?;
    let end = inner.rfind(']')?;
    (end > 0).then(|| &inner[..end])
}

/// Which block new keys go to.
enum Current {
    Defaults,
    Section(usize),
}

/// Parses `text`, read from `path`, into sections. `path` is only used for locations.
pub fn parse(path: &Path, text: &str) -> Result<IniFile, ParseError> {
    let file: Arc<Path> = Arc::from(path);
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut defaults: IndexMap<String, Entry> = IndexMap::new();
    let mut sections: Vec<Section> = Vec::new();
    let mut section_index: IndexMap<String, usize> = IndexMap::new();
    let mut current: Option<Current> = None;
    let mut open: Option<String> = None; // the key whose value is being read
    let mut indent_level = 0usize;
    // Values as lists of lines, joined at the end like `_join_multiline_values`.
    let mut problems: Vec<(Location, LineProblem)> = Vec::new();

    for (index, line) in universal_lines(text).enumerate() {
        let lineno = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let stripped = py_strip(line);
        let is_comment = stripped.starts_with('#') || stripped.starts_with(';');
        if stripped.is_empty() || is_comment {
            // A blank line inside a value is kept; a comment line is dropped.
            if !is_comment {
                if let (Some(cur), Some(key)) = (&current, &open) {
                    if let Some(entry) = block(&mut defaults, &mut sections, cur).get_mut(key) {
                        entry.lines.push(String::new());
                    }
                }
            }
            continue;
        }
        let indent = line.chars().take_while(|c| is_py_space(*c)).count();
        if let (Some(cur), Some(key)) = (&current, &open) {
            if indent > indent_level {
                if let Some(entry) = block(&mut defaults, &mut sections, cur).get_mut(key) {
                    entry.lines.push(stripped.to_owned());
                }
                continue;
            }
        }
        indent_level = indent;
        if let Some(name) = section_header(stripped) {
            open = None;
            if name == DEFAULT_SECTION {
                current = Some(Current::Defaults);
            } else if let Some(&i) = section_index.get(name) {
                problems.push((
                    Location::new(&file, lineno),
                    LineProblem::DuplicateSection {
                        name: name.to_owned(),
                        first: sections[i].line,
                    },
                ));
                break;
            } else {
                section_index.insert(name.to_owned(), sections.len());
                sections.push(Section {
                    name: name.to_owned(),
                    line: lineno,
                    entries: IndexMap::new(),
                });
                current = Some(Current::Section(sections.len() - 1));
            }
            continue;
        }
        let Some(cur) = &current else {
            problems.push((
                Location::new(&file, lineno),
                LineProblem::BeforeFirstSection(line.to_owned()),
            ));
            break;
        };
        let Some(split) = stripped.find(['=', ':']) else {
            problems.push((
                Location::new(&file, lineno),
                LineProblem::NoDelimiter(line.to_owned()),
            ));
            continue;
        };
        let key = stripped[..split].trim_end_matches(is_py_space);
        let value = py_strip(&stripped[split + 1..]);
        if key.is_empty() {
            problems.push((
                Location::new(&file, lineno),
                LineProblem::EmptyKey(line.to_owned()),
            ));
            // Python stores the value under the empty key, so what follows continues it.
            open = None;
            continue;
        }
        let section_name = match cur {
            Current::Defaults => DEFAULT_SECTION,
            Current::Section(i) => sections[*i].name.as_str(),
        }
        .to_owned();
        let entries = block(&mut defaults, &mut sections, cur);
        if let Some(first) = entries.get(key) {
            problems.push((
                Location::new(&file, lineno),
                LineProblem::DuplicateKey {
                    key: key.to_owned(),
                    section: section_name,
                    first: first.at.line,
                },
            ));
            break;
        }
        entries.insert(
            key.to_owned(),
            Entry {
                value: String::new(),
                lines: vec![value.to_owned()],
                at: Location::new(&file, lineno),
            },
        );
        open = Some(key.to_owned());
    }

    if !problems.is_empty() {
        // Python raises a fatal problem at once, dropping what it had collected; we keep them
        // all, in line order, so the first line of the error is the first bad line.
        debug_assert!(problems.iter().filter(|(_, p)| p.is_fatal()).count() <= 1);
        return Err(ParseError { problems });
    }
    let join = |entries: &mut IndexMap<String, Entry>| {
        for entry in entries.values_mut() {
            let joined = entry.lines.join("\n");
            entry.value = joined.trim_end_matches(is_py_space).to_owned();
            entry.lines = Vec::new();
        }
    };
    join(&mut defaults);
    for section in &mut sections {
        join(&mut section.entries);
    }
    Ok(IniFile {
        path: file,
        defaults,
        sections: sections.into_iter().map(|s| (s.name.clone(), s)).collect(),
    })
}

fn block<'a>(
    defaults: &'a mut IndexMap<String, Entry>,
    sections: &'a mut [Section],
    current: &Current,
) -> &'a mut IndexMap<String, Entry> {
    match current {
        Current::Defaults => defaults,
        Current::Section(i) => &mut sections[*i].entries,
    }
}
