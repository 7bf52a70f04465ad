//! Contexts: what PasteDeploy's `get_context` resolves before any factory runs.
//!
//! A context is a factory to call (or a pipeline, filter-app or filter-with to compose) plus
//! the `global_conf` and `local_conf` dictionaries it will receive. PasteDeploy shares those
//! dictionaries between contexts in places (an `egg:` context takes its caller's `global_conf`
//! object; an explicit factory shares its section's `local_conf`) and later updates reach every
//! sharer. To reproduce its results exactly, contexts here hold the dictionaries behind
//! `Rc<RefCell<...>>` and update them in the same order, at the same places (spec §2.7–2.14).

use super::config_file::{section_kind, ConfigFile};
use super::Loader;
use crate::error::{LoadError, LoadErrorKind};
use crate::ini::parse::{py_split, py_strip};
use crate::location::Location;
use crate::plan::Conf;
use crate::registry::{EntryPoint, Lookup, ObjectType, Protocol};
use crate::uri::{is_uri, parse_uri, Scheme};
use indexmap::IndexMap;
use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

/// A value of `local_conf` and the line it came from.
#[derive(Debug, Clone)]
pub(crate) struct Setting {
    pub value: String,
    pub at: Option<Location>,
}

pub(crate) type Global = Rc<RefCell<Conf>>;
pub(crate) type Local = Rc<RefCell<IndexMap<String, Setting>>>;

fn shared<T>(value: T) -> Rc<RefCell<T>> {
    Rc::new(RefCell::new(value))
}

/// The factory a context calls.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// A known entry point, and the `module:attr` it was named by, if any.
    Entry(EntryPoint, Option<String>),
    /// A `call:module:attr` whose protocol is not known yet (it comes from the section kind).
    Call(String),
}

/// What a context makes.
#[derive(Debug)]
pub(crate) enum Shape {
    Factory(Target),
    Pipeline { app: Box<Ctx>, filters: Vec<Ctx> },
    FilterApp { next: Box<Ctx>, filter: Box<Ctx> },
    FilterWith { filter: Box<Ctx>, next: Box<Ctx> },
}

/// Where names a composite asks for are resolved.
#[derive(Debug, Clone)]
pub(crate) enum Scope {
    /// In a file (sections, or URIs relative to it).
    Config(Rc<ConfigFile>),
    /// Other entry points of the same distribution.
    Egg(String),
    /// Nowhere: a `call:` loaded directly.
    Func,
}

/// A section on the way to a context, for cycle detection and messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frame {
    pub file: std::path::PathBuf,
    pub section: String,
    pub at: Location,
}

impl Frame {
    pub fn label(&self) -> String {
        format!("[{}] ({})", self.section, self.at)
    }
}

#[derive(Debug)]
pub(crate) struct Ctx {
    /// What the context yields: App for apps, composites, pipelines and filter-apps.
    pub object_type: ObjectType,
    pub shape: Shape,
    pub protocol: Option<Protocol>,
    pub global: Global,
    pub local: Local,
    pub scope: Scope,
    /// The sections that led to this context, innermost first.
    pub frames: Vec<Frame>,
}

impl Ctx {
    /// A pipeline or filter-app of a section of `file`: an app made of other contexts.
    fn composed(shape: Shape, global: &Global, local: &Local, file: &Rc<ConfigFile>) -> Ctx {
        Ctx {
            object_type: ObjectType::App,
            shape,
            protocol: None,
            global: Rc::clone(global),
            local: Rc::clone(local),
            scope: Scope::Config(Rc::clone(file)),
            frames: Vec::new(),
        }
    }
}

impl Loader<'_> {
    /// `loadcontext`: resolves a URI relative to `relative_to`.
    pub(crate) fn uri_context(
        &mut self,
        object_type: ObjectType,
        uri: &str,
        name: Option<&str>,
        relative_to: &Path,
        caller: Option<Global>,
    ) -> Result<Ctx, LoadError> {
        let uri = parse_uri(uri, name)?;
        match uri.scheme {
            Scheme::Config => {
                let path = crate::uri::config_path(&uri.spec, relative_to);
                let caller_conf = caller.as_ref().map(|g| g.borrow().clone());
                let file = self.open(&path, caller_conf.as_ref())?;
                self.get_context(&file, object_type, &uri.name, caller, None)
            }
            Scheme::Egg => self.egg_context(object_type, &uri.spec, &uri.name, caller),
            Scheme::Call => {
                if uri.spec.matches(':').count() != 1 {
                    return Err(LoadErrorKind::CallFormat(uri.spec).into());
                }
                Ok(Ctx {
                    object_type,
                    shape: Shape::Factory(Target::Call(uri.spec)),
                    protocol: None,
                    global: non_empty_or_fresh(caller),
                    local: shared(IndexMap::new()),
                    scope: Scope::Func,
                    frames: Vec::new(),
                })
            }
        }
    }

    /// `EggLoader.get_context`: the entry point `name` of `spec` for an object type.
    pub(crate) fn egg_context(
        &mut self,
        object_type: ObjectType,
        spec: &str,
        name: &str,
        caller: Option<Global>,
    ) -> Result<Ctx, LoadError> {
        // Sources that have the distribution are asked in order, and the first that has the
        // entry point answers: a built-in `Paste#urlmap` does not hide the `Paste#translogger`
        // of a Python environment, and a Python source is not asked while a built-in answers.
        let mut spelled: Option<String> = None;
        let mut available: Vec<String> = Vec::new();
        let mut found: Vec<EntryPoint> = Vec::new();
        for (source, dist) in self.registry.distribution_sources(spec) {
            spelled.get_or_insert_with(|| dist.clone());
            for group in object_type.protocols() {
                if let Some(entry) = group
                    .iter()
                    .find_map(|protocol| source.entry_point(&dist, *protocol, name))
                {
                    found.push(entry);
                }
            }
            if !found.is_empty() {
                break;
            }
            for name in object_type
                .all_protocols()
                .iter()
                .flat_map(|p| source.entry_point_names(&dist, *p))
            {
                if !available.contains(&name) {
                    available.push(name);
                }
            }
        }
        let Some(dist) = spelled else {
            return Err(LoadErrorKind::NoDistribution {
                name: spec.to_owned(),
                known: self.registry.distributions(),
                notes: self.registry.notes_about(Lookup::Distribution(spec)),
            }
            .into());
        };
        let entry = match found.len() {
            1 => found.remove(0),
            0 => {
                let protocols = object_type.all_protocols();
                return Err(LoadErrorKind::EntryPointNotFound {
                    name: name.to_owned(),
                    dist: spec.to_owned(),
                    available,
                    protocols: protocols.iter().map(|p| p.group()).collect(),
                }
                .into());
            }
            _ => {
                return Err(LoadErrorKind::AmbiguousEntryPoint {
                    name: name.to_owned(),
                    dist: spec.to_owned(),
                    protocols: found.iter().map(|e| e.protocol.group()).collect(),
                }
                .into())
            }
        };
        Ok(Ctx {
            object_type,
            protocol: Some(entry.protocol),
            shape: Shape::Factory(Target::Entry(entry, None)),
            global: non_empty_or_fresh(caller),
            local: shared(IndexMap::new()),
            scope: Scope::Egg(dist),
            frames: Vec::new(),
        })
    }

    /// `ConfigLoader.get_context`: a name in `file` (a section or a URI relative to the file).
    /// `cause` is the key whose value is `name`, for messages.
    pub(crate) fn get_context(
        &mut self,
        file: &Rc<ConfigFile>,
        object_type: ObjectType,
        name: &str,
        caller: Option<Global>,
        cause: Option<&Location>,
    ) -> Result<Ctx, LoadError> {
        if is_uri(name) {
            return self
                .uri_context(object_type, name, None, &file.dir(), caller)
                .map_err(|e| e.or_at(cause));
        }
        let section = file
            .find_section(object_type, name)
            .map_err(|e| e.or_at(cause))?;
        let frame = Frame {
            file: file.abs.clone(),
            section: section.clone(),
            at: file.header(&section),
        };
        self.enter(frame.clone())?;
        let result = self.section_context(file, object_type, &section, caller, frame);
        self.leave();
        result
    }

    /// The body of `get_context` once the section is found (spec §2.7).
    fn section_context(
        &mut self,
        file: &Rc<ConfigFile>,
        object_type: ObjectType,
        section_name: &str,
        caller: Option<Global>,
        frame: Frame,
    ) -> Result<Ctx, LoadError> {
        let section = &file.ini.sections[section_name];
        let defaults = file.interpolated_defaults()?;
        let mut global = defaults.clone();
        if let Some(caller) = &caller {
            global.extend(caller.borrow().iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let mut local: IndexMap<String, Setting> = IndexMap::new();
        let mut additions = Conf::new();
        let mut gets: IndexMap<String, Setting> = IndexMap::new();
        let own = section
            .entries
            .iter()
            .map(|(k, e)| (k, &e.value, Some(&e.at)));
        let inherited = file
            .defaults
            .iter()
            .filter(|(k, _)| !section.entries.contains_key(*k))
            .map(|(k, d)| (k, &d.raw, d.at.as_ref()));
        for (key, raw, at) in own.chain(inherited) {
            if let Some(name) = key.strip_prefix("set ") {
                let value = file.value(section, key, raw, at)?;
                global.insert(py_strip(name).to_owned(), value.clone());
                additions.insert(py_strip(name).to_owned(), value);
            } else if let Some(name) = key.strip_prefix("get ") {
                let value = file.value(section, key, raw, at)?;
                gets.insert(
                    py_strip(name).to_owned(),
                    Setting {
                        value,
                        at: at.cloned(),
                    },
                );
            } else if !defaults.contains_key(key) {
                let value = file.value(section, key, raw, at)?;
                local.insert(
                    key.clone(),
                    Setting {
                        value,
                        at: at.cloned(),
                    },
                );
            }
        }
        for (local_name, get) in gets {
            let Some(value) = global.get(&get.value) else {
                return Err(LoadError::from(LoadErrorKind::GetUnknown {
                    local: local_name,
                    name: get.value,
                })
                .or_at(get.at.as_ref()));
            };
            local.insert(
                local_name,
                Setting {
                    value: value.clone(),
                    at: get.at,
                },
            );
        }
        let filter_with = match object_type {
            ObjectType::App | ObjectType::Filter => local.shift_remove("filter-with"),
            ObjectType::Server => None,
        };
        if let Some(require) = local.shift_remove("require") {
            for dist in py_split(&require.value) {
                if self.registry.distribution(dist).is_none() {
                    return Err(LoadError::from(LoadErrorKind::NoDistribution {
                        name: dist.to_owned(),
                        known: self.registry.distributions(),
                        notes: self.registry.notes_about(Lookup::Distribution(dist)),
                    })
                    .or_at(require.at.as_ref()));
                }
            }
        }
        let global = shared(global);
        let local = shared(local);
        let mut ctx = match section_kind(section_name) {
            "filter-app" => {
                self.filter_app_context(file, section_name, &global, &local, &additions)?
            }
            "pipeline" => self.pipeline_context(file, section_name, &global, &local)?,
            _ if local.borrow().contains_key("use") => {
                self.use_context(file, object_type, section_name, &global, &local, &additions)?
            }
            _ => self.explicit_context(file, object_type, section_name, &global, &local)?,
        };
        ctx.frames.push(frame.clone());
        let Some(filter_with) = filter_with else {
            return Ok(ctx);
        };
        let filter = self.get_context(
            file,
            ObjectType::Filter,
            &filter_with.value,
            Some(Rc::clone(&global)),
            filter_with.at.as_ref(),
        )?;
        Ok(Ctx {
            // Deliberate fix (spec §2.20 #6): a pipeline or filter-app wrapped by filter-with
            // is an app, so the result is the filtered app, not a filter.
            object_type: ctx.object_type,
            shape: Shape::FilterWith {
                filter: Box::new(filter),
                next: Box::new(ctx),
            },
            protocol: None,
            global,
            local,
            scope: Scope::Config(Rc::clone(file)),
            frames: vec![frame],
        })
    }

    /// `[filter-app:NAME]`: the filter from this section, applied to `next` (spec §2.13).
    fn filter_app_context(
        &mut self,
        file: &Rc<ConfigFile>,
        section: &str,
        global: &Global,
        local: &Local,
        additions: &Conf,
    ) -> Result<Ctx, LoadError> {
        let next = local.borrow_mut().shift_remove("next");
        let Some(next) = next else {
            return Err(LoadError::from(LoadErrorKind::FilterAppNoNext {
                section: section.to_owned(),
                file: file.path.to_path_buf(),
            })
            .or_at(Some(&file.header(section))));
        };
        let next_ctx = self.get_context(
            file,
            ObjectType::App,
            &next.value,
            Some(Rc::clone(global)),
            next.at.as_ref(),
        )?;
        let has_use = local.borrow().contains_key("use");
        let filter = if has_use {
            self.use_context(file, ObjectType::Filter, section, global, local, additions)?
        } else {
            self.explicit_context(file, ObjectType::Filter, section, global, local)?
        };
        let shape = Shape::FilterApp {
            next: Box::new(next_ctx),
            filter: Box::new(filter),
        };
        Ok(Ctx::composed(shape, global, local, file))
    }

    /// `[pipeline:NAME]`: filters then an app, nothing else (spec §2.12).
    fn pipeline_context(
        &mut self,
        file: &Rc<ConfigFile>,
        section: &str,
        global: &Global,
        local: &Local,
    ) -> Result<Ctx, LoadError> {
        let pipeline = local.borrow_mut().shift_remove("pipeline");
        let Some(pipeline) = pipeline else {
            return Err(LoadError::from(LoadErrorKind::PipelineMissing {
                section: section.to_owned(),
                file: file.path.to_path_buf(),
            })
            .or_at(Some(&file.header(section))));
        };
        if !local.borrow().is_empty() {
            let first = local.borrow().values().find_map(|s| s.at.clone());
            return Err(LoadError::from(LoadErrorKind::PipelineExtra {
                section: section.to_owned(),
                file: file.path.to_path_buf(),
                keys: local.borrow().keys().cloned().collect(),
            })
            .or_at(first.as_ref()));
        }
        let names: Vec<&str> = py_split(&pipeline.value).collect();
        let Some((app_name, filter_names)) = names.split_last() else {
            return Err(LoadError::from(LoadErrorKind::PipelineEmpty {
                section: section.to_owned(),
                file: file.path.to_path_buf(),
            })
            .or_at(pipeline.at.as_ref()));
        };
        let at = pipeline.at.as_ref();
        let app = self.get_context(file, ObjectType::App, app_name, Some(Rc::clone(global)), at)?;
        let filters = filter_names
            .iter()
            .map(|name| {
                self.get_context(file, ObjectType::Filter, name, Some(Rc::clone(global)), at)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let shape = Shape::Pipeline {
            app: Box::new(app),
            filters,
        };
        Ok(Ctx::composed(shape, global, local, file))
    }

    /// `use = NAME`: the named context, with this section's `set`s and keys laid over it
    /// (spec §2.8).
    fn use_context(
        &mut self,
        file: &Rc<ConfigFile>,
        object_type: ObjectType,
        section: &str,
        global: &Global,
        local: &Local,
        additions: &Conf,
    ) -> Result<Ctx, LoadError> {
        let used = local.borrow_mut().shift_remove("use");
        let Some(used) = used else {
            unreachable!("use_context is only called for sections with `use`");
        };
        let mut ctx = self.get_context(
            file,
            object_type,
            &used.value,
            Some(Rc::clone(global)),
            used.at.as_ref(),
        )?;
        let local_items = local.borrow().clone();
        let top_file = global.borrow().get("__file__").cloned();
        let merge = |target: &Ctx| {
            let mut g = target.global.borrow_mut();
            g.extend(additions.iter().map(|(k, v)| (k.clone(), v.clone())));
            if let Some(top) = &top_file {
                g.insert("__file__".to_owned(), top.clone());
            }
            drop(g);
            target
                .local
                .borrow_mut()
                .extend(local_items.iter().map(|(k, v)| (k.clone(), v.clone())));
        };
        merge(&ctx);
        // Deliberate fix (spec §2.20 #7): when the used section has filter-with, the keys of
        // this section reach the wrapped factory too, not only the wrapper.
        let mut inner = &ctx;
        while let Shape::FilterWith { next, .. } = &inner.shape {
            inner = next;
        }
        if !Rc::ptr_eq(&inner.local, &ctx.local) {
            merge(inner);
        }
        ctx.scope = Scope::Config(Rc::clone(file));
        if ctx.protocol.is_none() {
            if let Shape::Factory(target) = &mut ctx.shape {
                let protocol = protocol_for_section(section);
                ctx.protocol = Some(protocol);
                self.resolve_call(target, protocol)
                    .map_err(|e| e.or_at(used.at.as_ref()))?;
            }
        }
        Ok(ctx)
    }

    /// A section that names its factory with a `paste.*_factory = module:attr` key (spec §2.9).
    fn explicit_context(
        &mut self,
        file: &Rc<ConfigFile>,
        object_type: ObjectType,
        section: &str,
        global: &Global,
        local: &Local,
    ) -> Result<Ctx, LoadError> {
        let mut found: Vec<(Protocol, Setting)> = Vec::new();
        for group in object_type.protocols() {
            let hit = group.iter().find_map(|protocol| {
                let local = local.borrow();
                local.get(protocol.group()).map(|s| (*protocol, s.clone()))
            });
            found.extend(hit);
        }
        if found.len() > 1 {
            return Err(LoadError::from(LoadErrorKind::MultipleProtocols {
                section: section.to_owned(),
                found: found
                    .iter()
                    .map(|(p, s)| (p.group().to_owned(), s.value.clone()))
                    .collect(),
            })
            .or_at(found[1].1.at.as_ref()));
        }
        let Some((protocol, setting)) = found.pop() else {
            return Err(LoadError::from(LoadErrorKind::NoLoader {
                section: section.to_owned(),
                expected: object_type.protocols()[0][0].group(),
            })
            .or_at(Some(&file.header(section))));
        };
        local.borrow_mut().shift_remove(protocol.group());
        let mut target = Target::Call(setting.value.clone());
        self.resolve_call(&mut target, protocol)
            .map_err(|e| e.or_at(setting.at.as_ref()))?;
        Ok(Ctx {
            object_type,
            shape: Shape::Factory(target),
            protocol: Some(protocol),
            global: Rc::clone(global),
            local: Rc::clone(local),
            scope: Scope::Config(Rc::clone(file)),
            frames: Vec::new(),
        })
    }

    /// Turns a `call:`/explicit `module:attr` into the registered factory for `protocol`.
    pub(crate) fn resolve_call(
        &self,
        target: &mut Target,
        protocol: Protocol,
    ) -> Result<(), LoadError> {
        let Target::Call(spec) = target else {
            return Ok(());
        };
        let entry = self
            .registry
            .symbol(spec, protocol)
            .or_else(|| protocol.alias().and_then(|a| self.registry.symbol(spec, a)));
        match entry {
            Some(entry) => {
                *target = Target::Entry(entry, Some(spec.clone()));
                Ok(())
            }
            None => Err(LoadErrorKind::UnknownSymbol {
                target: spec.clone(),
                protocol: protocol.group(),
                notes: self.registry.notes_about(Lookup::Symbol(spec)),
            }
            .into()),
        }
    }
}

/// The protocol a `call:` target gets from the kind of the section that uses it (spec §2.8).
/// A `[filter-app:]` section calls it as a filter factory (PasteDeploy asks for the
/// nonexistent `paste.filter-app_factory` and fails; spec §2.20 #8).
fn protocol_for_section(section: &str) -> Protocol {
    match section_kind(section) {
        "app" | "application" => Protocol::AppFactory,
        "composite" | "composit" => Protocol::CompositFactory,
        "server" => Protocol::ServerFactory,
        _ => Protocol::FilterFactory,
    }
}

/// `global_conf or {}`: the caller's dictionary itself unless it is missing or empty.
fn non_empty_or_fresh(caller: Option<Global>) -> Global {
    caller
        .filter(|g| !g.borrow().is_empty())
        .unwrap_or_else(|| shared(Conf::new()))
}
