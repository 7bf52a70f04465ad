//! The eggs a worker can build: each registered under the distribution and entry-point names
//! that deployment files use, with the code that makes it.
//!
//! [`Eggs`] holds both halves: the names, as the `deploy` crate's [`EggTable`] (so the loader
//! resolves plans against exactly the eggs that exist), and the factories. Built in:
//! `minimal#main` is the example app and filter of the PasteDeploy tutorial the project grew
//! from; `Paste#urlmap`, `Paste#cascade` and `PasteDeploy#prefix` are the composites and filter
//! of Paste and PasteDeploy; `serve#http` is the server, and `Paste#http`, `waitress#main` and
//! `gunicorn#main` are accepted as its aliases so Pyramid deployment files load unchanged. Each
//! is also reachable by its Python path (`call:paste.urlmap:urlmap_factory`, ...). A program
//! that embeds `serve` adds its own with [`Eggs::app`], [`Eggs::filter`] and the like.

pub mod cascade;
pub mod minimal;
pub mod prefix;
pub mod serve;
pub mod urlmap;

use crate::app::{App, Filter};
use crate::conf::EggError;
use crate::settings::ServerSettings;
use deploy::plan::Conf;
use deploy::registry::{ChildFinder, EggTable, Protocol, Registry};
use indexmap::IndexMap;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// The apps a composite's section names, built, by the name it used.
#[derive(Clone, Default)]
pub struct Children {
    apps: IndexMap<String, App>,
}

impl fmt::Debug for Children {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.apps.keys()).finish()
    }
}

impl Children {
    /// Children from built apps.
    pub fn new(apps: IndexMap<String, App>) -> Self {
        Children { apps }
    }

    /// The app a name (a section or URI) refers to.
    pub fn get_app(&self, name: &str) -> Result<App, EggError> {
        self.apps.get(name).cloned().ok_or_else(|| {
            EggError::new(format!(
                "no app named '{name}' was loaded for this composite"
            ))
        })
    }
}

type AppFn = dyn Fn(&Conf, &Conf) -> Result<App, EggError> + Send + Sync;
type CompositeFn = dyn Fn(&Children, &Conf, &Conf) -> Result<App, EggError> + Send + Sync;
type FilterFn = dyn Fn(&Conf, &Conf) -> Result<Filter, EggError> + Send + Sync;
type FilterAppFn = dyn Fn(App, &Conf, &Conf) -> Result<App, EggError> + Send + Sync;
type ServerFn = dyn Fn(&Conf, &Conf) -> Result<ServerSettings, EggError> + Send + Sync;

/// Builds a plan node whose factories are Python code (the node and everything under it) into
/// an app: the hook of the embedded Python host.
pub type PythonFn = dyn Fn(&deploy::Node) -> Result<App, EggError> + Send + Sync;

/// The code behind one entry point, by protocol.
#[derive(Clone)]
pub enum Factory {
    /// `paste.app_factory`.
    App(Arc<AppFn>),
    /// `paste.composite_factory`.
    Composite(Arc<CompositeFn>),
    /// `paste.filter_factory`.
    Filter(Arc<FilterFn>),
    /// `paste.filter_app_factory`.
    FilterApp(Arc<FilterAppFn>),
    /// `paste.server_factory` and `paste.server_runner`.
    Server(Arc<ServerFn>),
}

impl fmt::Debug for Factory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Factory::App(_) => "Factory::App",
            Factory::Composite(_) => "Factory::Composite",
            Factory::Filter(_) => "Factory::Filter",
            Factory::FilterApp(_) => "Factory::FilterApp",
            Factory::Server(_) => "Factory::Server",
        })
    }
}

/// Names and factories of every egg a worker can build.
#[derive(Clone, Default)]
pub struct Eggs {
    table: EggTable,
    factories: HashMap<(String, Protocol, String), Factory>,
    python: Option<Arc<PythonFn>>,
}

impl fmt::Debug for Eggs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Eggs")
            .field("table", &self.table)
            .field("factories", &self.factories.len())
            .field("python", &self.python.is_some())
            .finish()
    }
}

impl Eggs {
    /// No eggs at all.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The built-in eggs.
    pub fn builtin() -> Self {
        let mut eggs = Eggs::empty();
        minimal::register(&mut eggs);
        urlmap::register(&mut eggs);
        cascade::register(&mut eggs);
        prefix::register(&mut eggs);
        serve::register(&mut eggs);
        crate::settings::register(&mut eggs);
        eggs
    }

    fn insert(
        &mut self,
        dist: &str,
        protocol: Protocol,
        name: &str,
        children: Option<ChildFinder>,
        factory: Factory,
    ) -> &mut Self {
        self.table
            .register_composite(dist, protocol, name, children);
        self.factories
            .insert((dist.to_owned(), protocol, name.to_owned()), factory);
        self
    }

    /// Registers an app factory: `egg:DIST#NAME` in `[app:...]`.
    pub fn app(
        &mut self,
        dist: &str,
        name: &str,
        factory: impl Fn(&Conf, &Conf) -> Result<App, EggError> + Send + Sync + 'static,
    ) -> &mut Self {
        self.insert(
            dist,
            Protocol::AppFactory,
            name,
            None,
            Factory::App(Arc::new(factory)),
        )
    }

    /// Registers a composite factory with the finder of the apps it loads.
    pub fn composite(
        &mut self,
        dist: &str,
        name: &str,
        children: ChildFinder,
        factory: impl Fn(&Children, &Conf, &Conf) -> Result<App, EggError> + Send + Sync + 'static,
    ) -> &mut Self {
        self.insert(
            dist,
            Protocol::CompositeFactory,
            name,
            Some(children),
            Factory::Composite(Arc::new(factory)),
        )
    }

    /// Registers a filter factory: `egg:DIST#NAME` in `[filter:...]`.
    pub fn filter(
        &mut self,
        dist: &str,
        name: &str,
        factory: impl Fn(&Conf, &Conf) -> Result<Filter, EggError> + Send + Sync + 'static,
    ) -> &mut Self {
        self.insert(
            dist,
            Protocol::FilterFactory,
            name,
            None,
            Factory::Filter(Arc::new(factory)),
        )
    }

    /// Registers a filter-app factory (the app comes first, as in `paste.filter_app_factory`).
    pub fn filter_app(
        &mut self,
        dist: &str,
        name: &str,
        factory: impl Fn(App, &Conf, &Conf) -> Result<App, EggError> + Send + Sync + 'static,
    ) -> &mut Self {
        self.insert(
            dist,
            Protocol::FilterAppFactory,
            name,
            None,
            Factory::FilterApp(Arc::new(factory)),
        )
    }

    /// Registers a server under a group (`paste.server_factory` or `paste.server_runner`).
    pub fn server(
        &mut self,
        dist: &str,
        protocol: Protocol,
        name: &str,
        factory: impl Fn(&Conf, &Conf) -> Result<ServerSettings, EggError> + Send + Sync + 'static,
    ) -> &mut Self {
        self.insert(
            dist,
            protocol,
            name,
            None,
            Factory::Server(Arc::new(factory)),
        )
    }

    /// Makes a Python-style `module:attr` name stand for a registered egg.
    pub fn symbol(
        &mut self,
        target: &str,
        protocol: Protocol,
        dist: &str,
        name: &str,
    ) -> &mut Self {
        self.table.register_symbol(target, protocol, dist, name);
        self
    }

    /// The code of `dist#name` in a group.
    pub fn factory(&self, dist: &str, protocol: Protocol, name: &str) -> Option<&Factory> {
        let key = (dist.to_owned(), protocol, name.to_owned());
        self.factories.get(&key).or_else(|| {
            // The legacy `composit` group names the same composites.
            self.factories.get(&(key.0, protocol.alias()?, key.2))
        })
    }

    /// Hands the plan's Python segments (a Python node and everything under it) to `host`.
    pub fn with_python(
        &mut self,
        host: impl Fn(&deploy::Node) -> Result<App, EggError> + Send + Sync + 'static,
    ) -> &mut Self {
        self.python = Some(Arc::new(host));
        self
    }

    /// The Python host, when this worker has one.
    pub fn python(&self) -> Option<&PythonFn> {
        self.python.as_deref()
    }

    /// The names, for the loader.
    pub fn table(&self) -> &EggTable {
        &self.table
    }

    /// A loader registry of these eggs.
    pub fn registry(&self) -> Registry {
        Registry::new().with_source(Arc::new(self.table.clone()))
    }
}

/// A registry of the built-in eggs.
pub fn registry() -> Registry {
    Eggs::builtin().registry()
}

#[cfg(test)]
mod tests {
    use super::*;
    use deploy::registry::EggSource;

    #[test]
    fn every_builtin_symbol_names_a_registered_entry_point() {
        let eggs = Eggs::builtin();
        for (target, protocol) in [
            ("minimal:main", Protocol::AppFactory),
            ("minimal:middleware", Protocol::FilterFactory),
            ("paste.urlmap:urlmap_factory", Protocol::CompositeFactory),
            ("paste.cascade:make_cascade", Protocol::CompositeFactory),
            (
                "paste.deploy.config:make_prefix_middleware",
                Protocol::FilterAppFactory,
            ),
            ("paste.httpserver:server_runner", Protocol::ServerRunner),
            ("waitress:serve_paste", Protocol::ServerRunner),
            ("gunicorn.app.pasterapp:serve", Protocol::ServerRunner),
        ] {
            let entry = eggs.table().symbol(target, protocol).expect(target);
            assert!(
                eggs.factory(&entry.dist, entry.protocol, &entry.name)
                    .is_some(),
                "{target}"
            );
        }
    }

    #[test]
    fn every_registered_name_has_code() {
        let eggs = Eggs::builtin();
        for entry in eggs.table().entries() {
            assert!(
                eggs.factory(&entry.dist, entry.protocol, &entry.name)
                    .is_some(),
                "{entry:?}"
            );
        }
        assert_eq!(eggs.table().distribution("paste").as_deref(), Some("Paste"));
    }
}
