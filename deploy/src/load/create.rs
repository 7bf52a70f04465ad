//! Creation: contexts become plan nodes, in PasteDeploy's order (spec §2.12–2.16).
//!
//! PasteDeploy calls factories only after every context is resolved; the one place where
//! creation resolves more config is a composite, whose factory asks its loader for the apps it
//! names. Here the registry's [`ChildFinder`](crate::registry::ChildFinder) says which names
//! those are, and each is resolved and created now, with the composite's final `global_conf`, so
//! the plan holds the whole tree.

use super::context::{Ctx, Scope, Shape, Target};
use super::Loader;
use crate::error::{LoadError, LoadErrorKind};
use crate::location::Location;
use crate::plan::{EggName, Factory, FilterChain, Node, ServerNode};
use crate::registry::{ChildFinder, ObjectType, Protocol};
use indexmap::IndexMap;
use std::rc::Rc;

impl Loader<'_> {
    /// The app a context makes.
    pub(crate) fn create_app(&mut self, ctx: Ctx) -> Result<Node, LoadError> {
        match ctx.shape {
            Shape::Factory(_) => {
                let scope = ctx.scope.clone();
                let frames = ctx.frames.clone();
                let (factory, children) = self.factory(ctx)?;
                if !factory.protocol.is_composite() {
                    return Ok(Node::App(factory));
                }
                for frame in &frames {
                    self.enter(frame.clone())?;
                }
                let apps = self.composite_children(&factory, children, &scope);
                for _ in &frames {
                    self.leave();
                }
                Ok(Node::Composite {
                    apps: apps?,
                    factory,
                })
            }
            Shape::Pipeline { app, filters } => {
                let app = self.create_app(*app)?;
                let chains = filters
                    .into_iter()
                    .map(|f| self.create_filter(f))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(chains.iter().rev().fold(app, |app, chain| chain.apply(app)))
            }
            Shape::FilterApp { next, filter } => {
                let app = self.create_app(*next)?;
                Ok(self.create_filter(*filter)?.apply(app))
            }
            Shape::FilterWith { filter, next } => {
                let chain = self.create_filter(*filter)?;
                Ok(chain.apply(self.create_app(*next)?))
            }
        }
    }

    /// The filters a filter context makes, innermost first.
    pub(crate) fn create_filter(&mut self, ctx: Ctx) -> Result<FilterChain, LoadError> {
        match ctx.shape {
            Shape::FilterWith { filter, next } => {
                let outer = self.create_filter(*filter)?;
                let mut chain = self.create_filter(*next)?;
                chain.filters.extend(outer.filters);
                Ok(chain)
            }
            Shape::Factory(_) => Ok(FilterChain {
                filters: vec![self.factory(ctx)?.0],
            }),
            Shape::Pipeline { .. } | Shape::FilterApp { .. } => {
                unreachable!("pipelines and filter-apps are only looked up as apps")
            }
        }
    }

    /// The server a server context makes.
    pub(crate) fn create_server(&mut self, ctx: Ctx) -> Result<ServerNode, LoadError> {
        Ok(ServerNode {
            factory: self.factory(ctx)?.0,
        })
    }

    /// The factory call of a factory context. A `call:` target that no `use` gave a protocol is
    /// called as the object type's plain factory (PasteDeploy fails with "Protocol None
    /// unknown"; spec §2.20 #8).
    fn factory(&mut self, ctx: Ctx) -> Result<(Factory, Option<ChildFinder>), LoadError> {
        let Shape::Factory(mut target) = ctx.shape else {
            unreachable!("factory() is only called on factory contexts");
        };
        let protocol = ctx.protocol.unwrap_or(match ctx.object_type {
            ObjectType::App => Protocol::AppFactory,
            ObjectType::Filter => Protocol::FilterFactory,
            ObjectType::Server => Protocol::ServerFactory,
        });
        self.resolve_call(&mut target, protocol)?;
        let Target::Entry(entry, call) = target else {
            unreachable!("resolve_call leaves an entry point");
        };
        let local = ctx.local.borrow();
        let origin = ctx.frames.last();
        let factory = Factory {
            egg: EggName {
                dist: entry.dist.clone(),
                name: entry.name.clone(),
            },
            protocol,
            runtime: entry.runtime,
            global_conf: ctx.global.borrow().clone(),
            local_conf: local
                .iter()
                .map(|(k, s)| (k.clone(), s.value.clone()))
                .collect(),
            call,
            section: origin.map(|f| f.section.clone()),
            file: origin.map(|f| f.at.path()),
            line: origin.map(|f| f.at.line),
            key_locations: local
                .iter()
                .filter_map(|(k, s)| s.at.clone().map(|at| (k.clone(), at)))
                .collect(),
        };
        Ok((factory, entry.children))
    }

    /// The apps a composite's factory asks its loader for.
    fn composite_children(
        &mut self,
        factory: &Factory,
        children: Option<ChildFinder>,
        scope: &Scope,
    ) -> Result<IndexMap<String, Node>, LoadError> {
        let section = factory.section.clone().unwrap_or_default();
        let Some(finder) = children else {
            return Ok(IndexMap::new());
        };
        let names = finder(&factory.local_conf, &factory.global_conf).map_err(|message| {
            LoadError::from(LoadErrorKind::Composite {
                section: section.clone(),
                egg: factory.egg.to_string(),
                message,
            })
            .or_at(factory_location(factory).as_ref())
        })?;
        let mut apps = IndexMap::new();
        for name in names {
            if apps.contains_key(&name) {
                continue;
            }
            let cause = factory
                .local_conf
                .iter()
                .find(|(_, v)| **v == name)
                .and_then(|(k, _)| factory.key_location(k))
                .cloned();
            let global = Some(Rc::new(std::cell::RefCell::new(
                factory.global_conf.clone(),
            )));
            let ctx = match scope {
                Scope::Config(file) => {
                    self.get_context(file, ObjectType::App, &name, global, cause.as_ref())
                }
                Scope::Egg(_) if crate::uri::is_uri(&name) => self
                    .uri_context(ObjectType::App, &name, None, std::path::Path::new(""), global)
                    .map_err(|e| e.or_at(cause.as_ref())),
                Scope::Egg(dist) => self
                    .egg_context(ObjectType::App, dist, &name, global)
                    .map_err(|e| e.or_at(cause.as_ref())),
                Scope::Func => Err(LoadError::from(LoadErrorKind::Composite {
                    section: section.clone(),
                    egg: factory.egg.to_string(),
                    message: format!(
                        "a composite loaded directly through call: has no file to find '{name}' in; name it in a [composite:...] section"
                    ),
                })),
            }?;
            let node = self.create_app(ctx).map_err(|e| e.or_at(cause.as_ref()))?;
            apps.insert(name, node);
        }
        Ok(apps)
    }
}

/// The header line of the section a factory was configured in.
fn factory_location(factory: &Factory) -> Option<Location> {
    let file = factory.file.as_ref()?;
    Some(Location::new(
        &std::sync::Arc::from(file.as_path()),
        factory.line?,
    ))
}
