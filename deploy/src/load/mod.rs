//! PasteDeploy's loading rules: from a URI and a name to a plan (spec §2).
//!
//! [`Loader`] is one load: it reads each file it needs (once per load; nothing is kept between
//! loads, so a reload always sees the files as they are now), resolves contexts as PasteDeploy's
//! `loadcontext`/`get_context` do, and creates plan nodes from them. It detects reference
//! cycles and reports the chain, where PasteDeploy recurses until Python gives up.
//! [`load`] is what the command line does: the server and the app of one `CONFIG_URI`, with
//! `VAR=VALUE` pairs as `pserve` passes them.

mod config_file;
mod context;
mod create;

use crate::error::{LoadError, LoadErrorKind};
use crate::ini;
use crate::location::Location;
use crate::plan::{Conf, FilterChain, Node, Plan, ServerNode};
use crate::registry::{ObjectType, Registry};
use crate::uri::{abspath, dirname, ConfigUri};
use config_file::ConfigFile;
use context::Frame;
use indexmap::IndexMap;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

/// How deep sections may refer to sections (`use`, `next`, pipelines, filter-with,
/// composites) before the load gives up with an error instead of exhausting the stack. Real
/// files nest a handful of levels; PasteDeploy stops at Python's recursion limit.
pub const MAX_NESTING: usize = 64;

/// One load of one or more deployment files.
#[derive(Debug)]
pub struct Loader<'r> {
    registry: &'r Registry,
    /// Every file read, by the path it was read from (as built: `a/../b.ini` and `b.ini` may
    /// be different files when `a` is a symlink), parsed once per load.
    parsed: IndexMap<PathBuf, Arc<ini::IniFile>>,
    /// The sections being resolved, outermost first.
    stack: Vec<Frame>,
}

impl<'r> Loader<'r> {
    /// A load that finds eggs in `registry`.
    pub fn new(registry: &'r Registry) -> Self {
        Loader {
            registry,
            parsed: IndexMap::new(),
            stack: Vec::new(),
        }
    }

    /// `loadapp(uri, name, relative_to, global_conf)`. An empty `relative_to` means the
    /// current directory.
    pub fn load_app(
        &mut self,
        uri: &str,
        name: Option<&str>,
        relative_to: &Path,
        global_conf: Option<&Conf>,
    ) -> Result<Node, LoadError> {
        let ctx = self.top_context(ObjectType::App, uri, name, relative_to, global_conf)?;
        self.create_app(ctx)
    }

    /// `loadfilter(...)`: the filters, innermost first.
    pub fn load_filter(
        &mut self,
        uri: &str,
        name: Option<&str>,
        relative_to: &Path,
        global_conf: Option<&Conf>,
    ) -> Result<FilterChain, LoadError> {
        let ctx = self.top_context(ObjectType::Filter, uri, name, relative_to, global_conf)?;
        self.create_filter(ctx)
    }

    /// `loadserver(...)`.
    pub fn load_server(
        &mut self,
        uri: &str,
        name: Option<&str>,
        relative_to: &Path,
        global_conf: Option<&Conf>,
    ) -> Result<ServerNode, LoadError> {
        let ctx = self.top_context(ObjectType::Server, uri, name, relative_to, global_conf)?;
        self.create_server(ctx)
    }

    /// `appconfig(...)`: the `(global_conf, local_conf)` of the app's context, without creating
    /// anything (for a filter-with, the app section's own config).
    pub fn app_config(
        &mut self,
        uri: &str,
        name: Option<&str>,
        relative_to: &Path,
        global_conf: Option<&Conf>,
    ) -> Result<(Conf, Conf), LoadError> {
        let ctx = self.top_context(ObjectType::App, uri, name, relative_to, global_conf)?;
        let global = ctx.global.borrow().clone();
        let local = ctx
            .local
            .borrow()
            .iter()
            .map(|(k, s)| (k.clone(), s.value.clone()))
            .collect();
        Ok((global, local))
    }

    /// The context a top-level `load*` call resolves.
    fn top_context(
        &mut self,
        object_type: ObjectType,
        uri: &str,
        name: Option<&str>,
        relative_to: &Path,
        global_conf: Option<&Conf>,
    ) -> Result<context::Ctx, LoadError> {
        let caller = global_conf.map(|g| Rc::new(RefCell::new(g.clone())));
        self.uri_context(object_type, uri, name, relative_to, caller)
    }

    /// Every config file this load has read, absolute and with symlinks resolved: the files
    /// to watch for a reload.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = Vec::new();
        for path in self.parsed.keys() {
            let real = std::fs::canonicalize(path).unwrap_or_else(|_| abspath(path));
            if !files.contains(&real) {
                files.push(real);
            }
        }
        files
    }

    /// Reads and parses `path` (once per load) and sets up its defaults for `caller`.
    fn open(&mut self, path: &Path, caller: Option<&Conf>) -> Result<Rc<ConfigFile>, LoadError> {
        let ini = match self.parsed.get(path) {
            Some(ini) => Arc::clone(ini),
            None => {
                let ini = Arc::new(read_ini(path)?);
                self.parsed.insert(path.to_path_buf(), Arc::clone(&ini));
                ini
            }
        };
        Ok(Rc::new(ConfigFile::new(ini, caller)))
    }

    /// Marks a section as being resolved; fails if it already is (a cycle), or if sections
    /// nest deeper than [`MAX_NESTING`].
    fn enter(&mut self, frame: Frame) -> Result<(), LoadError> {
        if self.stack.len() >= MAX_NESTING {
            return Err(LoadError::new(
                LoadErrorKind::TooDeep {
                    depth: MAX_NESTING,
                    first: self.stack[0].label(),
                },
                Some(frame.at.clone()),
            ));
        }
        let repeat = |f: &Frame| f.file == frame.file && f.section == frame.section;
        if let Some(start) = self.stack.iter().position(repeat) {
            let mut chain: Vec<String> = self.stack[start..].iter().map(Frame::label).collect();
            chain.push(frame.label());
            return Err(LoadError::new(
                LoadErrorKind::Cycle { chain },
                Some(frame.at.clone()),
            ));
        }
        self.stack.push(frame);
        Ok(())
    }

    fn leave(&mut self) {
        self.stack.pop();
    }
}

/// Reads and parses one INI file.
pub fn read_ini(path: &Path) -> Result<ini::IniFile, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadErrorKind::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
        let line = u32::try_from(line).unwrap_or(u32::MAX);
        LoadError::new(
            LoadErrorKind::NotUtf8 {
                path: path.to_path_buf(),
                line,
            },
            Some(Location::new(&Arc::from(path), line)),
        )
    })?;
    ini::parse(path, &text).map_err(|e| LoadErrorKind::Parse(e).into())
}

/// What the command line asks for: `serve check [-n NAME] [--server-name NAME] CONFIG_URI
/// [VAR=VALUE ...]`.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// `deploy.ini`, `deploy.ini#app`, `config:PATH` or `egg:DIST#NAME`.
    pub config_uri: String,
    /// The app to load; else the URI's fragment; else `main`.
    pub app_name: Option<String>,
    /// The server section; else `main` (and no server at all if the file has none).
    pub server_name: Option<String>,
    /// `VAR=VALUE` arguments.
    pub vars: Vec<String>,
}

impl Request {
    /// The global_conf the request passes, as plaster_pastedeploy builds it for `pserve`:
    /// `__file__` and `here` of the file, the URI's `?key=value` options, then the variables.
    pub fn global_conf(&self, uri: &ConfigUri) -> Result<Conf, LoadError> {
        let mut global = Conf::new();
        if let Some(file) = &uri.file {
            let abs = abspath(file);
            global.insert("__file__".into(), abs.to_string_lossy().into_owned());
            global.insert("here".into(), dirname(&abs).to_string_lossy().into_owned());
        }
        global.extend(uri.options.iter().cloned());
        for var in &self.vars {
            let Some((key, value)) = var.split_once('=') else {
                return Err(LoadErrorKind::BadVariable(var.clone()).into());
            };
            global.insert(key.to_owned(), value.to_owned());
        }
        Ok(global)
    }
}

/// Loads the server (first, as `pserve` does) and the app that a request names.
pub fn load(registry: &Registry, request: &Request) -> Result<Plan, LoadError> {
    let uri = ConfigUri::parse(&request.config_uri);
    let global = request.global_conf(&uri)?;
    let mut loader = Loader::new(registry);
    let here = Path::new("");
    let server_name = request.server_name.as_deref().unwrap_or("main");
    let server = match loader.load_server(&uri.uri, Some(server_name), here, Some(&global)) {
        Ok(server) => Some(server),
        Err(e) if request.server_name.is_none() && is_missing_main(&e) => None,
        Err(e) => return Err(e),
    };
    let app_name = request
        .app_name
        .as_deref()
        .or(uri.fragment.as_deref())
        .unwrap_or("main");
    let app = loader.load_app(&uri.uri, Some(app_name), here, Some(&global))?;
    if let Some((outer, inner)) = app.rust_under_python() {
        let section = |f: &crate::plan::Factory| f.section.clone().unwrap_or_default();
        let at = inner
            .file
            .as_ref()
            .zip(inner.line)
            .map(|(file, line)| Location::new(&std::sync::Arc::from(file.as_path()), line));
        return Err(LoadError::new(
            LoadErrorKind::RustInsidePython {
                outer: section(outer),
                outer_kind: if outer.protocol.is_composite() {
                    "composite"
                } else {
                    "filter"
                },
                outer_egg: outer.call.clone().unwrap_or_else(|| outer.egg.to_string()),
                inner: section(inner),
                inner_egg: inner.egg.to_string(),
            },
            at,
        ));
    }
    Ok(Plan {
        app,
        server,
        files: loader.files(),
        python: None,
    })
}

/// Whether a server lookup failed only because there is no `main` server to find.
fn is_missing_main(error: &LoadError) -> bool {
    match error.kind() {
        LoadErrorKind::NoSection { name, .. } => name == "main" && error.at.is_none(),
        LoadErrorKind::EntryPointNotFound { name, .. } => name == "main" && error.at.is_none(),
        _ => false,
    }
}
