//! Python eggs as a source for the loader: the entry points and modules of a [`Listing`], and
//! [`PythonEggs`], which reads the environment only when the loader first asks it something
//! that no built-in egg answered.
//!
//! Every entry point found here is Python code ([`Runtime::Python`]); composites among them get
//! no child finder, because PasteDeploy loads their apps itself inside the worker.

use crate::env::{self, Environment};
use crate::listing::{self, Listing};
use deploy::registry::{EggSource, EntryPoint, Lookup, Protocol, Runtime};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The eggs of one listing.
#[derive(Debug, Clone)]
pub struct Listed {
    listing: Listing,
}

impl Listed {
    /// The eggs `listing` describes.
    pub fn new(listing: Listing) -> Self {
        Listed { listing }
    }

    fn entry(&self, dist: &str, protocol: Protocol, name: &str) -> Option<EntryPoint> {
        self.listing
            .entry_points
            .iter()
            .find(|e| e.dist == dist && e.group == protocol.group() && e.name == name)
            .map(|e| EntryPoint {
                dist: e.dist.clone(),
                protocol,
                name: e.name.clone(),
                children: None,
                runtime: Runtime::Python,
            })
    }
}

impl EggSource for Listed {
    fn distribution(&self, name: &str) -> Option<String> {
        let wanted = normalize(name);
        self.listing
            .distributions
            .iter()
            .find(|d| normalize(d) == wanted)
            .cloned()
    }

    fn distributions(&self) -> Vec<String> {
        // Only those with PasteDeploy entry points: a real environment has hundreds of others.
        let mut names: Vec<String> = Vec::new();
        for e in &self.listing.entry_points {
            if !names.contains(&e.dist) {
                names.push(e.dist.clone());
            }
        }
        names
    }

    fn entry_point(&self, dist: &str, protocol: Protocol, name: &str) -> Option<EntryPoint> {
        self.entry(dist, protocol, name)
    }

    fn entry_point_names(&self, dist: &str, protocol: Protocol) -> Vec<String> {
        self.listing
            .entry_points
            .iter()
            .filter(|e| e.dist == dist && e.group == protocol.group())
            .map(|e| e.name.clone())
            .collect()
    }

    fn symbol(&self, target: &str, protocol: Protocol) -> Option<EntryPoint> {
        let (module, attr) = target.split_once(':')?;
        let top = module.split('.').next()?;
        if module.is_empty() || attr.is_empty() || !self.listing.modules.iter().any(|m| m == top) {
            return None;
        }
        Some(EntryPoint {
            dist: module.to_owned(),
            protocol,
            name: attr.to_owned(),
            children: None,
            runtime: Runtime::Python,
        })
    }

    fn note(&self, about: Lookup<'_>) -> Option<String> {
        let python = self.listing.executable.display();
        Some(match about {
            Lookup::Distribution(_) => format!("searched the Python environment of {python}"),
            Lookup::Symbol(target) => format!(
                "no module '{}' is found in the Python environment of {python}",
                target.split([':', '.']).next().unwrap_or(target)
            ),
        })
    }
}

/// `importlib.metadata`'s name matching: case-insensitive, `-`, `_` and `.` alike.
fn normalize(name: &str) -> String {
    name.to_lowercase().replace(['-', '.'], "_")
}

/// The Python environment's eggs, read the first time the loader asks.
#[derive(Debug)]
pub struct PythonEggs {
    serve_exe: PathBuf,
    python: Option<PathBuf>,
    read: OnceLock<Result<(Environment, Listed), String>>,
}

impl PythonEggs {
    /// Eggs of the environment `--python` names (else `$VIRTUAL_ENV`, else `python3`), read by
    /// running `serve_exe python-eggs`.
    pub fn new(serve_exe: PathBuf, python: Option<PathBuf>) -> Self {
        PythonEggs {
            serve_exe,
            python,
            read: OnceLock::new(),
        }
    }

    /// Reads the environment now, if no lookup did yet: its description and listing.
    pub fn read(&self) -> Result<&(Environment, Listed), &str> {
        self.read
            .get_or_init(|| {
                let env = env::find(self.python.as_deref()).map_err(|e| e.to_string())?;
                let listing =
                    listing::read(&self.serve_exe, &env).map_err(|e| e.to_string())?;
                if listing.pastedeploy.is_none() {
                    return Err(format!(
                        "PasteDeploy is not installed in the Python environment of {} (workers load Python apps with it: {} -m pip install PasteDeploy)",
                        env.executable.display(),
                        env.executable.display()
                    ));
                }
                Ok((env, Listed::new(listing)))
            })
            .as_ref()
            .map_err(String::as_str)
    }

    /// The environment, once a lookup read it successfully.
    pub fn environment(&self) -> Option<&Environment> {
        self.read.get()?.as_ref().ok().map(|(env, _)| env)
    }

    fn listed(&self) -> Option<&Listed> {
        self.read().ok().map(|(_, listed)| listed)
    }
}

impl EggSource for PythonEggs {
    fn distribution(&self, name: &str) -> Option<String> {
        self.listed()?.distribution(name)
    }

    fn distributions(&self) -> Vec<String> {
        self.listed().map(Listed::distributions).unwrap_or_default()
    }

    fn entry_point(&self, dist: &str, protocol: Protocol, name: &str) -> Option<EntryPoint> {
        self.listed()?.entry_point(dist, protocol, name)
    }

    fn entry_point_names(&self, dist: &str, protocol: Protocol) -> Vec<String> {
        self.listed()
            .map(|l| l.entry_point_names(dist, protocol))
            .unwrap_or_default()
    }

    fn symbol(&self, target: &str, protocol: Protocol) -> Option<EntryPoint> {
        self.listed()?.symbol(target, protocol)
    }

    fn note(&self, about: Lookup<'_>) -> Option<String> {
        match self.read() {
            Ok((_, listed)) => listed.note(about),
            Err(e) => Some(format!("Python eggs were not searched: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::listing::Listed as Entry;

    fn listed() -> Listed {
        Listed::new(Listing {
            executable: "/venv/bin/python".into(),
            version: crate::BUILT_FOR.into(),
            distributions: vec!["zope.interface".into(), "MyProject".into()],
            entry_points: vec![Entry {
                dist: "MyProject".into(),
                group: "paste.app_factory".into(),
                name: "main".into(),
                value: "myproject:main".into(),
            }],
            modules: vec!["myproject".into(), "os".into()],
            pastedeploy: Some("3.1.0".into()),
        })
    }

    #[test]
    fn entry_points_are_python_code() {
        let eggs = listed();
        assert_eq!(eggs.distribution("myproject").as_deref(), Some("MyProject"));
        assert_eq!(
            eggs.distribution("zope-interface").as_deref(),
            Some("zope.interface")
        );
        let entry = eggs
            .entry_point("MyProject", Protocol::AppFactory, "main")
            .unwrap();
        assert_eq!(entry.runtime, Runtime::Python);
        assert!(eggs
            .entry_point("MyProject", Protocol::FilterFactory, "main")
            .is_none());
        assert_eq!(eggs.distributions(), vec!["MyProject".to_owned()]);
    }

    #[test]
    fn symbols_need_their_top_level_module() {
        let eggs = listed();
        let entry = eggs
            .symbol("myproject.wsgi:application", Protocol::AppFactory)
            .unwrap();
        assert_eq!(
            (entry.dist.as_str(), entry.name.as_str()),
            ("myproject.wsgi", "application")
        );
        assert!(eggs.symbol("nothere:app", Protocol::AppFactory).is_none());
        assert!(eggs.symbol("myproject", Protocol::AppFactory).is_none());
        assert_eq!(
            eggs.note(Lookup::Symbol("nothere.x:app")).unwrap(),
            "no module 'nothere' is found in the Python environment of /venv/bin/python"
        );
    }

    #[test]
    fn an_environment_that_cannot_be_read_says_why() {
        let eggs = PythonEggs::new(
            "/nonexistent/serve".into(),
            Some("/nonexistent/venv".into()),
        );
        assert!(eggs.distribution("anything").is_none());
        let note = eggs.note(Lookup::Distribution("anything")).unwrap();
        assert!(
            note.starts_with("Python eggs were not searched: "),
            "{note}"
        );
        assert!(note.contains("/nonexistent/venv"), "{note}");
    }
}
