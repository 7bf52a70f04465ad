//! The config language of `serve`: PasteDeploy deployment files, read exactly as Python's
//! PasteDeploy 3.1 reads them.
//!
//! Text becomes a [`plan::Plan`] in three steps. [`ini`] parses the INI dialect (Python's
//! `configparser` as PasteDeploy sets it up) and keeps the file and line of every key.
//! [`load`] applies PasteDeploy's loading rules — section kinds, `use`, `config:`/`egg:`/`call:`
//! URIs, `set`/`get`, `[DEFAULT]`, pipelines, `filter-app`, `filter-with` — and looks factories
//! up in a [`registry::Registry`] of eggs. The resulting plan is plain data: the tree of
//! factories with the `global_conf` and `local_conf` each one receives. Nothing here opens a
//! socket or starts a runtime; the worker builds a pipeline from the plan.

pub mod converters;
pub mod error;
pub mod ini;
pub mod load;
pub mod location;
pub mod plan;
pub mod registry;
pub mod uri;

pub use error::{LoadError, LoadErrorKind};
pub use load::{load, Request};
pub use location::Location;
pub use plan::{Conf, Node, Plan};
pub use registry::{ObjectType, Protocol, Registry, Runtime};
