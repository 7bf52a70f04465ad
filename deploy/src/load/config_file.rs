//! One config file as a PasteDeploy `ConfigLoader` sees it: the parsed INI, the defaults every
//! section sees (`here`, `__file__`, `[DEFAULT]`, then the caller's globals that `[DEFAULT]`
//! does not define), value interpolation against them, and finding a section by kind and name.

use crate::error::{LoadError, LoadErrorKind};
use crate::ini::{interpolate, IniFile, Section, DEFAULT_SECTION};
use crate::location::Location;
use crate::plan::Conf;
use crate::registry::ObjectType;
use crate::uri::{abspath, dirname};
use indexmap::IndexMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A default value before interpolation, with where it was written (none for `here`,
/// `__file__` and the caller's globals).
#[derive(Debug, Clone)]
pub(crate) struct DefaultValue {
    pub raw: String,
    pub at: Option<Location>,
}

/// A parsed file plus the defaults of one load of it.
#[derive(Debug)]
pub(crate) struct ConfigFile {
    /// The path as built from the including file (relative if the user's was).
    pub path: Arc<Path>,
    /// The absolute path, used to tell files apart.
    pub abs: PathBuf,
    pub ini: Arc<IniFile>,
    pub defaults: IndexMap<String, DefaultValue>,
}

impl ConfigFile {
    /// Sets up the defaults of `ini` as `ConfigLoader.__init__` and `update_defaults(...,
    /// overwrite=False)` do.
    pub fn new(ini: Arc<IniFile>, caller: Option<&Conf>) -> ConfigFile {
        let path = Arc::clone(&ini.path);
        let abs = abspath(&path);
        let mut defaults = IndexMap::new();
        let plain = |raw: String| DefaultValue { raw, at: None };
        defaults.insert(
            "here".to_owned(),
            plain(dirname(&abs).to_string_lossy().into_owned()),
        );
        defaults.insert(
            "__file__".to_owned(),
            plain(abs.to_string_lossy().into_owned()),
        );
        for (key, entry) in &ini.defaults {
            defaults.insert(
                key.clone(),
                DefaultValue {
                    raw: entry.value.clone(),
                    at: Some(entry.at.clone()),
                },
            );
        }
        for (key, value) in caller.into_iter().flatten() {
            defaults
                .entry(key.clone())
                .or_insert_with(|| plain(value.clone()));
        }
        ConfigFile {
            path,
            abs,
            ini,
            defaults,
        }
    }

    /// The header line of a section of this file.
    pub fn header(&self, section: &str) -> Location {
        Location::new(&self.path, self.ini.sections[section].line)
    }

    /// The directory `config:` URIs in this file are relative to.
    pub fn dir(&self) -> PathBuf {
        dirname(&self.path)
    }

    /// The defaults with their values interpolated against the defaults (PasteDeploy's
    /// `NicerConfigParser.defaults()`); an empty result falls back to the raw value.
    pub fn interpolated_defaults(&self) -> Result<Conf, LoadError> {
        let lookup = |name: &str| self.defaults.get(name).map(|d| d.raw.as_str());
        self.defaults
            .iter()
            .map(|(key, d)| {
                let value = interpolate(key, DEFAULT_SECTION, &d.raw, &lookup).map_err(|e| {
                    LoadError::from(LoadErrorKind::Interpolate(e)).or_at(d.at.as_ref())
                })?;
                Ok((
                    key.clone(),
                    if value.is_empty() {
                        d.raw.clone()
                    } else {
                        value
                    },
                ))
            })
            .collect()
    }

    /// The interpolated value of `key` (raw `raw`, written at `at`) read in `section`: names are
    /// looked up in the section's raw keys, then the defaults.
    pub fn value(
        &self,
        section: &Section,
        key: &str,
        raw: &str,
        at: Option<&Location>,
    ) -> Result<String, LoadError> {
        let lookup = |name: &str| {
            section
                .entries
                .get(name)
                .map(|e| e.value.as_str())
                .or_else(|| self.defaults.get(name).map(|d| d.raw.as_str()))
        };
        interpolate(key, &section.name, raw, &lookup)
            .map_err(|e| LoadError::from(LoadErrorKind::Interpolate(e)).or_at(at))
    }

    /// The section of kind `object_type` named `name` (spec §2.5). A bare `[app]`, `[server]`
    /// or `[filter]` (any bare prefix) answers for `main` when no `prefix:main` exists, as
    /// PasteDeploy's documentation promises and its code does not do.
    pub fn find_section(&self, object_type: ObjectType, name: &str) -> Result<String, LoadError> {
        let mut found = self.search(object_type, |section, prefix| {
            section
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_prefix(':'))
                .is_some_and(|rest| crate::ini::parse::py_strip(rest) == name)
        });
        if found.is_empty() && name == "main" {
            found = self.search(object_type, |section, prefix| section == prefix);
        }
        match found.len() {
            1 => Ok(found.remove(0)),
            0 => Err(LoadErrorKind::NoSection {
                name: name.to_owned(),
                prefixes: object_type.all_prefixes(),
                file: self.path.to_path_buf(),
            }
            .into()),
            _ => Err(LoadErrorKind::AmbiguousSection {
                sections: found,
                name: name.to_owned(),
                prefixes: object_type.all_prefixes(),
                file: self.path.to_path_buf(),
            }
            .into()),
        }
    }

    /// Sections matching `matches` for each prefix group: within a group the first prefix with
    /// a match wins; the groups' matches are all kept.
    fn search(&self, object_type: ObjectType, matches: impl Fn(&str, &str) -> bool) -> Vec<String> {
        let mut found = Vec::new();
        for group in object_type.section_prefixes() {
            for prefix in *group {
                let hits: Vec<String> = self
                    .ini
                    .sections
                    .keys()
                    .filter(|s| matches(s, prefix))
                    .cloned()
                    .collect();
                if !hits.is_empty() {
                    found.extend(hits);
                    break;
                }
            }
        }
        found
    }
}

/// The kind of a section: the text before its first colon (`app`, `pipeline`, ...), or the
/// whole name of a bare section.
pub(crate) fn section_kind(section: &str) -> &str {
    section.split_once(':').map_or(section, |(kind, _)| kind)
}
