//! Eggs: where `egg:DIST#NAME`, `call:module:attr` and `paste.app_factory = module:attr` find
//! their factories.
//!
//! PasteDeploy finds factories through Python entry points. Here an egg is a named bundle of
//! factories, looked up by (distribution, entry-point group, name) with Python's group names, so
//! existing files and error messages carry over. Distribution names match case-insensitively,
//! entry-point names exactly (spec §2.10). The registry only *names* factories: the plan it
//! helps build is data, and the worker turns each name into running code.
//!
//! A registry is a list of [`EggSource`]s asked in order. [`EggTable`] is the in-memory source
//! that the built-in eggs (and programs embedding `serve`) fill; a source that reads a Python
//! environment's entry points can sit beside it.

use crate::plan::Conf;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// What the loader is asked for: an app, a filter or a server (spec §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectType {
    /// An application (also what composites, pipelines and filter-apps make).
    App,
    /// A filter: something that wraps an app.
    Filter,
    /// A server.
    Server,
}

/// An entry-point group: how a factory is called (spec §2.16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// `paste.app_factory`: `(global_conf, **local_conf)` makes an app.
    #[serde(rename = "paste.app_factory")]
    AppFactory,
    /// `paste.composite_factory`: `(loader, global_conf, **local_conf)` makes an app from others.
    #[serde(rename = "paste.composite_factory")]
    CompositeFactory,
    /// `paste.composit_factory`: the legacy spelling of the composite group.
    #[serde(rename = "paste.composit_factory")]
    CompositFactory,
    /// `paste.filter_factory`: `(global_conf, **local_conf)` makes a filter.
    #[serde(rename = "paste.filter_factory")]
    FilterFactory,
    /// `paste.filter_app_factory`: `(app, global_conf, **local_conf)` wraps an app.
    #[serde(rename = "paste.filter_app_factory")]
    FilterAppFactory,
    /// `paste.server_factory`: `(global_conf, **local_conf)` makes a server.
    #[serde(rename = "paste.server_factory")]
    ServerFactory,
    /// `paste.server_runner`: `(app, global_conf, **local_conf)` serves an app.
    #[serde(rename = "paste.server_runner")]
    ServerRunner,
}

impl Protocol {
    /// Every protocol.
    pub const ALL: [Protocol; 7] = [
        Protocol::AppFactory,
        Protocol::CompositeFactory,
        Protocol::CompositFactory,
        Protocol::FilterFactory,
        Protocol::FilterAppFactory,
        Protocol::ServerFactory,
        Protocol::ServerRunner,
    ];

    /// The Python entry-point group name.
    pub fn group(self) -> &'static str {
        match self {
            Protocol::AppFactory => "paste.app_factory",
            Protocol::CompositeFactory => "paste.composite_factory",
            Protocol::CompositFactory => "paste.composit_factory",
            Protocol::FilterFactory => "paste.filter_factory",
            Protocol::FilterAppFactory => "paste.filter_app_factory",
            Protocol::ServerFactory => "paste.server_factory",
            Protocol::ServerRunner => "paste.server_runner",
        }
    }

    /// The protocol with this group name.
    pub fn from_group(group: &str) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.group() == group)
    }

    /// What the factory makes, once applied.
    pub fn object_type(self) -> ObjectType {
        match self {
            Protocol::AppFactory | Protocol::CompositeFactory | Protocol::CompositFactory => {
                ObjectType::App
            }
            Protocol::FilterFactory | Protocol::FilterAppFactory => ObjectType::Filter,
            Protocol::ServerFactory | Protocol::ServerRunner => ObjectType::Server,
        }
    }

    /// The other spelling of the same group: `composite` and the legacy `composit` name the
    /// same factories.
    pub fn alias(self) -> Option<Protocol> {
        match self {
            Protocol::CompositFactory => Some(Protocol::CompositeFactory),
            Protocol::CompositeFactory => Some(Protocol::CompositFactory),
            _ => None,
        }
    }

    /// Whether the factory receives a loader to build the apps it names.
    pub fn is_composite(self) -> bool {
        matches!(self, Protocol::CompositeFactory | Protocol::CompositFactory)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.group())
    }
}

impl ObjectType {
    /// Section prefixes in lookup groups: within a group the first that matches wins; matches in
    /// two groups are ambiguous.
    pub fn section_prefixes(self) -> &'static [&'static [&'static str]] {
        match self {
            ObjectType::App => &[
                &["app", "application"],
                &["composite", "composit"],
                &["pipeline"],
                &["filter-app"],
            ],
            ObjectType::Filter => &[&["filter"]],
            ObjectType::Server => &[&["server"]],
        }
    }

    /// Every prefix, flattened, for messages.
    pub fn all_prefixes(self) -> &'static [&'static str] {
        match self {
            ObjectType::App => &[
                "app",
                "application",
                "composite",
                "composit",
                "pipeline",
                "filter-app",
            ],
            ObjectType::Filter => &["filter"],
            ObjectType::Server => &["server"],
        }
    }

    /// Entry-point groups in lookup groups, as for section prefixes.
    pub fn protocols(self) -> &'static [&'static [Protocol]] {
        match self {
            ObjectType::App => &[
                &[Protocol::AppFactory],
                &[Protocol::CompositeFactory],
                &[Protocol::CompositFactory],
            ],
            ObjectType::Filter => &[&[Protocol::FilterFactory, Protocol::FilterAppFactory]],
            ObjectType::Server => &[&[Protocol::ServerFactory, Protocol::ServerRunner]],
        }
    }

    /// Every protocol of the type, flattened.
    pub fn all_protocols(self) -> Vec<Protocol> {
        self.protocols()
            .iter()
            .flat_map(|g| g.iter().copied())
            .collect()
    }
}

impl fmt::Display for ObjectType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectType::App => "app",
            ObjectType::Filter => "filter",
            ObjectType::Server => "server",
        })
    }
}

/// What runs a factory's code: the worker itself, or the Python interpreter it embeds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// Rust code built into `serve` (or into a program that embeds it).
    #[default]
    Rust,
    /// A Python factory, found in a Python environment's entry points or modules.
    Python,
}

impl Runtime {
    /// Whether this is the default, Rust (plans leave it out).
    pub fn is_rust(&self) -> bool {
        *self == Runtime::Rust
    }
}

/// Given a composite's `local_conf` and `global_conf`, the names (sections or URIs) of the apps
/// its factory will ask its loader for, or why its keys are wrong.
pub type ChildFinder = fn(local: &Conf, global: &Conf) -> Result<Vec<String>, String>;

/// One entry point of one distribution.
#[derive(Clone)]
pub struct EntryPoint {
    /// The distribution, spelled as registered.
    pub dist: String,
    /// The group.
    pub protocol: Protocol,
    /// The entry-point name.
    pub name: String,
    /// For composites: which apps the factory loads.
    pub children: Option<ChildFinder>,
    /// What runs the factory.
    pub runtime: Runtime,
}

impl fmt::Debug for EntryPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{} ({})", self.dist, self.name, self.protocol)?;
        if self.runtime == Runtime::Python {
            f.write_str(" [python]")?;
        }
        Ok(())
    }
}

/// A place eggs are found.
pub trait EggSource: Send + Sync + fmt::Debug {
    /// The registered spelling of a distribution, matched case-insensitively.
    fn distribution(&self, name: &str) -> Option<String>;
    /// Every distribution, for messages.
    fn distributions(&self) -> Vec<String>;
    /// The entry point `name` of `dist` (as spelled by [`EggSource::distribution`]) in a group.
    fn entry_point(&self, dist: &str, protocol: Protocol, name: &str) -> Option<EntryPoint>;
    /// Every entry-point name of `dist` in a group, for messages.
    fn entry_point_names(&self, dist: &str, protocol: Protocol) -> Vec<String>;
    /// The factory a Python-style `module:attr` reference names, called as `protocol`.
    fn symbol(&self, target: &str, protocol: Protocol) -> Option<EntryPoint>;
    /// What a user should know when a name was not found here: why the source could not be
    /// read, or what it holds besides entry points (for messages).
    fn note(&self, _about: Lookup<'_>) -> Option<String> {
        None
    }
}

/// What was looked up and not found, for [`EggSource::note`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// A distribution.
    Distribution(&'a str),
    /// A `module:attr` factory.
    Symbol(&'a str),
}

/// An in-memory [`EggSource`], filled with [`EggTable::register`].
#[derive(Debug, Default, Clone)]
pub struct EggTable {
    entries: Vec<EntryPoint>,
    symbols: Vec<(String, Protocol, String, String)>,
}

impl EggTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `dist#name` in a group. Registering the same triple again replaces it.
    pub fn register(&mut self, dist: &str, protocol: Protocol, name: &str) -> &mut Self {
        self.register_composite(dist, protocol, name, None)
    }

    /// Registers a composite (or anything) with the finder of the apps it loads.
    pub fn register_composite(
        &mut self,
        dist: &str,
        protocol: Protocol,
        name: &str,
        children: Option<ChildFinder>,
    ) -> &mut Self {
        self.entries
            .retain(|e| !(e.dist == dist && e.protocol == protocol && e.name == name));
        self.entries.push(EntryPoint {
            dist: dist.to_owned(),
            protocol,
            name: name.to_owned(),
            children,
            runtime: Runtime::Rust,
        });
        self
    }

    /// Makes `module:attr`, called as `protocol`, stand for `dist#name` (which must be
    /// registered in the same group), so `call:` and explicit `paste.*_factory` keys that name a
    /// built-in factory by its Python name work.
    pub fn register_symbol(
        &mut self,
        target: &str,
        protocol: Protocol,
        dist: &str,
        name: &str,
    ) -> &mut Self {
        self.symbols.push((
            target.to_owned(),
            protocol,
            dist.to_owned(),
            name.to_owned(),
        ));
        self
    }

    /// Every entry point.
    pub fn entries(&self) -> &[EntryPoint] {
        &self.entries
    }
}

impl EggSource for EggTable {
    fn distribution(&self, name: &str) -> Option<String> {
        let wanted = normalize_dist(name);
        self.entries
            .iter()
            .find(|e| normalize_dist(&e.dist) == wanted)
            .map(|e| e.dist.clone())
    }

    fn distributions(&self) -> Vec<String> {
        let mut names: Vec<String> = self.entries.iter().map(|e| e.dist.clone()).collect();
        names.sort_by_key(|n| n.to_lowercase());
        names.dedup();
        names
    }

    fn entry_point(&self, dist: &str, protocol: Protocol, name: &str) -> Option<EntryPoint> {
        self.entries
            .iter()
            .find(|e| e.dist == dist && e.protocol == protocol && e.name == name)
            .cloned()
    }

    fn entry_point_names(&self, dist: &str, protocol: Protocol) -> Vec<String> {
        self.entries
            .iter()
            .filter(|e| e.dist == dist && e.protocol == protocol)
            .map(|e| e.name.clone())
            .collect()
    }

    fn symbol(&self, target: &str, protocol: Protocol) -> Option<EntryPoint> {
        let (_, _, dist, name) = self
            .symbols
            .iter()
            .find(|(t, p, _, _)| t == target && *p == protocol)?;
        self.entry_point(dist, protocol, name)
    }
}

/// importlib.metadata's name matching: case-insensitive, with runs of `-`, `_` and `.` equal.
fn normalize_dist(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_sep {
                out.push('_');
            }
            in_sep = true;
        } else {
            out.extend(c.to_lowercase());
            in_sep = false;
        }
    }
    out
}

/// The sources the loader asks, in order.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    sources: Vec<Arc<dyn EggSource>>,
}

impl Registry {
    /// A registry with no eggs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a source, asked after the ones already added.
    pub fn with_source(mut self, source: Arc<dyn EggSource>) -> Self {
        self.sources.push(source);
        self
    }

    /// The source that has `name`, and its spelling of it.
    pub fn distribution(&self, name: &str) -> Option<(&dyn EggSource, String)> {
        self.sources
            .iter()
            .find_map(|s| s.distribution(name).map(|d| (s.as_ref(), d)))
    }

    /// Every source that has `name`, in order, with its spelling of it; a source is asked only
    /// when the iteration reaches it.
    pub fn distribution_sources<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = (&'a dyn EggSource, String)> + 'a {
        self.sources
            .iter()
            .filter_map(move |s| s.distribution(name).map(|d| (s.as_ref(), d)))
    }

    /// What the sources have to say about a name none of them has.
    pub fn notes_about(&self, about: Lookup<'_>) -> Vec<String> {
        self.sources.iter().filter_map(|s| s.note(about)).collect()
    }

    /// Every known distribution.
    pub fn distributions(&self) -> Vec<String> {
        self.sources
            .iter()
            .flat_map(|s| s.distributions())
            .collect()
    }

    /// The first source's factory for `module:attr` called as `protocol`.
    pub fn symbol(&self, target: &str, protocol: Protocol) -> Option<EntryPoint> {
        self.sources.iter().find_map(|s| s.symbol(target, protocol))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_names_match_like_importlib() {
        let mut table = EggTable::new();
        table.register("PasteDeploy", Protocol::FilterAppFactory, "prefix");
        table.register("zope.sqlalchemy", Protocol::AppFactory, "main");
        assert_eq!(
            table.distribution("pastedeploy").as_deref(),
            Some("PasteDeploy")
        );
        assert_eq!(
            table.distribution("PASTEDEPLOY").as_deref(),
            Some("PasteDeploy")
        );
        assert_eq!(
            table.distribution("zope_sqlalchemy").as_deref(),
            Some("zope.sqlalchemy")
        );
        assert_eq!(table.distribution("Paste"), None);
    }

    #[test]
    fn entry_names_are_exact() {
        let mut table = EggTable::new();
        table.register("ExpApp", Protocol::AppFactory, "app");
        assert!(table
            .entry_point("ExpApp", Protocol::AppFactory, "app")
            .is_some());
        assert!(table
            .entry_point("ExpApp", Protocol::AppFactory, "APP")
            .is_none());
        assert!(table
            .entry_point("ExpApp", Protocol::FilterFactory, "app")
            .is_none());
    }

    #[test]
    fn symbols_name_registered_entry_points() {
        let mut table = EggTable::new();
        table.register("minimal", Protocol::AppFactory, "main");
        table.register_symbol("minimal:main", Protocol::AppFactory, "minimal", "main");
        assert!(table.symbol("minimal:main", Protocol::AppFactory).is_some());
        assert!(table
            .symbol("minimal:main", Protocol::FilterFactory)
            .is_none());
    }
}
