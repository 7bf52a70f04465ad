//! The resolved plan: what a deployment file describes, as plain data.
//!
//! A plan is the tree of factories the loader resolved, each with the `global_conf` and
//! `local_conf` it will be called with, and the server section's settings. It names factories by
//! (distribution, entry-point group, name), never by function pointer, so it can be printed by
//! `serve check --json`, handed from the supervisor to a worker, and compared between reloads.

use crate::location::Location;
use crate::registry::{Protocol, Runtime};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// A factory's configuration: string keys to string values, in the order PasteDeploy builds it.
pub type Conf = IndexMap<String, String>;

/// A factory named as `DIST#NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct EggName {
    /// The distribution, spelled as the registry spells it.
    pub dist: String,
    /// The entry-point name.
    pub name: String,
}

impl fmt::Display for EggName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.dist, self.name)
    }
}

impl From<EggName> for String {
    fn from(egg: EggName) -> String {
        egg.to_string()
    }
}

impl TryFrom<String> for EggName {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let (dist, name) = text
            .split_once('#')
            .ok_or_else(|| format!("egg name without '#': {text:?}"))?;
        Ok(EggName {
            dist: dist.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// One factory call: which factory, how it is called, and with what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Factory {
    /// The factory.
    pub egg: EggName,
    /// The entry-point group, which says how it is called.
    pub protocol: Protocol,
    /// The `global_conf` argument.
    pub global_conf: Conf,
    /// The keyword arguments.
    pub local_conf: Conf,
    /// What runs it: left out for Rust, `"python"` for a Python factory.
    #[serde(default, skip_serializing_if = "Runtime::is_rust")]
    pub runtime: Runtime,
    /// The Python-style `module:attr` the file named it by, for `call:` and `paste.*_factory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    /// The section it was configured in (the innermost one, for `use` chains).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
    /// The file of that section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// The line of that section's header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// Where each `local_conf` key was written.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub key_locations: IndexMap<String, Location>,
}

impl Factory {
    /// Where the key `key` of `local_conf` was written, for error messages.
    pub fn key_location(&self, key: &str) -> Option<&Location> {
        self.key_locations.get(key)
    }
}

/// An application in the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Node {
    /// An app factory's app.
    App(Factory),
    /// A composite's app, with the apps its factory asked its loader for, by the name asked.
    Composite {
        #[serde(flatten)]
        factory: Factory,
        apps: IndexMap<String, Node>,
    },
    /// A filter applied to an app.
    Filter {
        #[serde(flatten)]
        factory: Factory,
        app: Box<Node>,
    },
}

impl Node {
    /// The first Rust factory that sits under a Python filter or composite, with that Python
    /// factory: Python code is handed Python apps only (a Rust app inside a Python filter
    /// would need a Rust service wrapped as a WSGI callable, which does not exist).
    pub fn rust_under_python(&self) -> Option<(&Factory, &Factory)> {
        let (factory, below): (&Factory, Vec<&Node>) = match self {
            Node::App(_) => return None,
            Node::Filter { factory, app } => (factory, vec![app.as_ref()]),
            Node::Composite { factory, apps } => (factory, apps.values().collect()),
        };
        if factory.runtime == Runtime::Python {
            if let Some(rust) = below.iter().find_map(|node| node.first_rust()) {
                return Some((factory, rust));
            }
        }
        below.into_iter().find_map(Node::rust_under_python)
    }

    /// The first factory in this subtree that is Rust code, outermost first.
    fn first_rust(&self) -> Option<&Factory> {
        if self.factory().runtime == Runtime::Rust {
            return Some(self.factory());
        }
        match self {
            Node::App(_) => None,
            Node::Filter { app, .. } => app.first_rust(),
            Node::Composite { apps, .. } => apps.values().find_map(Node::first_rust),
        }
    }

    /// Whether any factory in this subtree is Python code.
    pub fn has_python(&self) -> bool {
        self.factory().runtime == Runtime::Python
            || match self {
                Node::App(_) => false,
                Node::Filter { app, .. } => app.has_python(),
                Node::Composite { apps, .. } => apps.values().any(Node::has_python),
            }
    }

    /// The factory of this node.
    pub fn factory(&self) -> &Factory {
        match self {
            Node::App(factory) => factory,
            Node::Composite { factory, .. } | Node::Filter { factory, .. } => factory,
        }
    }
}

/// A server section's factory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename = "server")]
pub struct ServerNode {
    /// The server factory.
    #[serde(flatten)]
    pub factory: Factory,
}

/// Filters, innermost first, as `loadfilter` returns them: applying the plan to an app wraps
/// it in each in turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilterChain {
    /// The filters; the first is applied first (ends up innermost).
    pub filters: Vec<Factory>,
}

impl FilterChain {
    /// The app wrapped in every filter.
    pub fn apply(&self, app: Node) -> Node {
        self.filters.iter().fold(app, |app, factory| Node::Filter {
            factory: factory.clone(),
            app: Box::new(app),
        })
    }
}

/// Everything one load of a deployment file resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The application pipeline.
    pub app: Node,
    /// The server, or none when the file has no server section and none was asked for.
    pub server: Option<ServerNode>,
    /// Every config file the load read, absolute: the files to watch for a reload.
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// The interpreter of the Python environment the plan's Python eggs come from, when it
    /// has any (the loader leaves it empty; whoever reads the environment fills it in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<PathBuf>,
}
