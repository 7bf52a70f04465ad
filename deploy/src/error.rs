//! Everything that can go wrong while turning a deployment file into a plan.
//!
//! A [`LoadError`] is the kind of failure plus, where there is one, the file and line that led
//! to it (the key whose value named a missing section, the line with bad syntax). It displays
//! as `PATH:LINE: what is wrong`. The message texts follow PasteDeploy's (spec §2.18), so that a
//! user who searches for one finds the same explanations; where PasteDeploy's text is wrong or
//! empty (its entry-point lists, its bare `KeyError`), ours says more.

use crate::ini::{InterpolateError, ParseError};
use crate::location::Location;
use std::fmt;
use std::path::PathBuf;
use thiserror::Error;

/// A failure to load, with the place in the config that caused it.
#[derive(Debug, Error)]
pub struct LoadError {
    /// The key or line that led to the failure, when one is known.
    pub at: Option<Location>,
    /// What failed (boxed: errors travel far up `Result`s that are otherwise small).
    kind: Box<LoadErrorKind>,
}

impl LoadError {
    /// A failure at a place in the config.
    pub fn new(kind: LoadErrorKind, at: Option<Location>) -> Self {
        LoadError {
            at,
            kind: Box::new(kind),
        }
    }

    /// What failed.
    pub fn kind(&self) -> &LoadErrorKind {
        &self.kind
    }

    /// Attaches `at` unless a more precise location is already known.
    pub fn or_at(mut self, at: Option<&Location>) -> Self {
        if self.at.is_none() {
            self.at = at.cloned();
        }
        self
    }

    /// The location to show first: the attached one, or the first bad line of a parse error.
    pub fn location(&self) -> Option<&Location> {
        match (&self.at, self.kind.as_ref()) {
            (Some(at), _) => Some(at),
            (None, LoadErrorKind::Parse(e)) => Some(e.location()),
            (None, _) => None,
        }
    }
}

impl From<LoadErrorKind> for LoadError {
    fn from(kind: LoadErrorKind) -> Self {
        LoadError::new(kind, None)
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.at {
            Some(at) => write!(f, "{at}: {}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

/// Joins names as PasteDeploy prints prefix lists: `'app' or 'application'`.
pub(crate) fn quoted_or(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The kinds of load failure.
#[derive(Debug, Error)]
pub enum LoadErrorKind {
    /// A config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A config file is not valid UTF-8.
    #[error("config file {} is not valid UTF-8 (line {line})", path.display())]
    NotUtf8 { path: PathBuf, line: u32 },
    /// A config file is not valid INI.
    #[error("{0}")]
    Parse(ParseError),
    /// A value's `%(name)s` could not be expanded.
    #[error("{0}")]
    Interpolate(InterpolateError),
    /// A URI without `scheme:`.
    #[error("URI has no scheme: '{0}'")]
    NoScheme(String),
    /// A URI whose scheme is not `config`, `egg` or `call`.
    #[error("URI scheme not known: '{0}' (from config, egg, call)")]
    UnknownScheme(String),
    /// A relative `config:` path with nothing to resolve it against.
    #[error("Cannot resolve relative uri '{0}'; no relative_to keyword argument given")]
    RelativeUri(String),
    /// No section of a fitting kind has the name.
    #[error("No section '{name}' (prefixed by {}) found in config {}", quoted_or(prefixes), file.display())]
    NoSection {
        name: String,
        prefixes: &'static [&'static str],
        file: PathBuf,
    },
    /// Sections of two different kinds have the name.
    #[error("Ambiguous section names [{}] for section '{name}' (prefixed by {}) found in config {}", sections.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", "), quoted_or(prefixes), file.display())]
    AmbiguousSection {
        sections: Vec<String>,
        name: String,
        prefixes: &'static [&'static str],
        file: PathBuf,
    },
    /// A section names two factories of different kinds.
    #[error("Multiple protocols given in section '{section}': [{}]", found.iter().map(|(p, v)| format!("('{p}', '{v}')")).collect::<Vec<_>>().join(", "))]
    MultipleProtocols {
        section: String,
        found: Vec<(String, String)>,
    },
    /// A section with neither `use` nor a `paste.*_factory` key.
    #[error("No loader given in section '{section}' (it needs `use = ...` or a `{expected}` key)")]
    NoLoader {
        section: String,
        expected: &'static str,
    },
    /// A pipeline section without `pipeline`.
    #[error("The [{section}] section in {} is missing a 'pipeline' setting", file.display())]
    PipelineMissing { section: String, file: PathBuf },
    /// A pipeline section with other keys.
    #[error("The [{section}] pipeline section in {} has extra (disallowed) settings: {}", file.display(), keys.join(", "))]
    PipelineExtra {
        section: String,
        file: PathBuf,
        keys: Vec<String>,
    },
    /// `pipeline =` with nothing in it.
    #[error("The [{section}] section in {} has an empty 'pipeline' setting (it needs at least an app)", file.display())]
    PipelineEmpty { section: String, file: PathBuf },
    /// A filter-app section without `next`.
    #[error("The [{section}] section in {} is missing a 'next' setting", file.display())]
    FilterAppNoNext { section: String, file: PathBuf },
    /// `get local = name` where `name` is no global.
    #[error("`get {local}` reads global '{name}', which is not set (define it in [DEFAULT], with `set {name} = ...`, or on the command line as {name}=VALUE)")]
    GetUnknown { local: String, name: String },
    /// An `egg:` or `require` naming a distribution nobody registered.
    #[error("No package metadata was found for {name} (known distributions: {}){}", known.join(", "), notes.iter().map(|n| format!("; {n}")).collect::<String>())]
    NoDistribution {
        name: String,
        known: Vec<String>,
        /// Why a source of eggs could not be read (a Python environment that failed to start).
        notes: Vec<String>,
    },
    /// An egg without the entry point.
    #[error("Entry point '{name}' not found in egg '{dist}' (protocols: {}; entry_points: {})", protocols.join(", "), available.join(", "))]
    EntryPointNotFound {
        name: String,
        dist: String,
        protocols: Vec<&'static str>,
        available: Vec<String>,
    },
    /// An egg whose entry point is in two protocol groups of the object type.
    #[error("Ambiguous entry points for '{name}' in egg '{dist}' (protocols: {})", protocols.join(", "))]
    AmbiguousEntryPoint {
        name: String,
        dist: String,
        protocols: Vec<&'static str>,
    },
    /// `call:` without `module:function`.
    #[error("Configuration not in format module:function: '{0}'")]
    CallFormat(String),
    /// A `call:` target or `paste.*_factory = module:attr` that no egg provides.
    #[error("no factory '{target}' is registered as a {protocol}: it is no built-in egg's Python name{}", if notes.is_empty() { ", and this build loads no Python code (build serve with the `python` feature)".to_owned() } else { notes.iter().map(|n| format!("; {n}")).collect::<String>() })]
    UnknownSymbol {
        target: String,
        protocol: &'static str,
        /// What the Python environment said, when one was asked.
        notes: Vec<String>,
    },
    /// A chain of references that leads back to itself.
    #[error("reference cycle: {}", chain.join(" -> "))]
    Cycle { chain: Vec<String> },
    /// References nested deeper than the loader follows.
    #[error("sections refer to sections more than {depth} levels deep (starting at {first}); is there a runaway chain?")]
    TooDeep { depth: usize, first: String },
    /// A composite whose keys its factory rejects.
    #[error("[{section}] ({egg}): {message}")]
    Composite {
        section: String,
        egg: String,
        message: String,
    },
    /// A Rust app or filter placed under a Python filter or composite.
    #[error("[{inner}] ({inner_egg}) is Rust code and cannot run inside the Python {outer_kind} [{outer}] ({outer_egg}): Python filters and composites can only wrap Python apps; put the Rust filters outside (before) the Python ones in the pipeline")]
    RustInsidePython {
        outer: String,
        outer_kind: &'static str,
        outer_egg: String,
        inner: String,
        inner_egg: String,
    },
    /// A `VAR=VALUE` argument without `=`.
    #[error("Variable assignment '{0}' invalid (no \"=\")")]
    BadVariable(String),
}
