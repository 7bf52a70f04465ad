//! The built-in eggs: the factories `serve` ships, under the distribution and entry-point names
//! that deployment files already use.
//!
//! `minimal#main` is the example app and filter of the PasteDeploy tutorial the project grew
//! from; `Paste#urlmap`, `Paste#cascade` and `PasteDeploy#prefix` are the composites and filter
//! of Paste and PasteDeploy; `serve#http` is the server, and `Paste#http`, `waitress#main` and
//! `gunicorn#main` are accepted as its aliases so Pyramid deployment files load unchanged.
//! Each is also reachable by its Python path (`call:paste.urlmap:urlmap_factory`,
//! `paste.composite_factory = paste.urlmap:urlmap_factory`).

pub mod cascade;
pub mod urlmap;

use deploy::registry::{EggTable, Protocol, Registry};
use std::sync::Arc;

/// The table of built-in eggs.
pub fn builtin_eggs() -> EggTable {
    use Protocol::*;
    let mut table = EggTable::new();
    table
        .register("minimal", AppFactory, "main")
        .register_symbol("minimal:main", AppFactory, "minimal", "main")
        .register("minimal", FilterFactory, "main")
        .register_symbol("minimal:middleware", FilterFactory, "minimal", "main")
        .register_composite("Paste", CompositeFactory, "urlmap", Some(urlmap::children))
        .register_symbol(
            "paste.urlmap:urlmap_factory",
            CompositeFactory,
            "Paste",
            "urlmap",
        )
        .register_composite(
            "Paste",
            CompositeFactory,
            "cascade",
            Some(cascade::children),
        )
        .register_symbol(
            "paste.cascade:make_cascade",
            CompositeFactory,
            "Paste",
            "cascade",
        )
        .register("PasteDeploy", FilterAppFactory, "prefix")
        .register_symbol(
            "paste.deploy.config:make_prefix_middleware",
            FilterAppFactory,
            "PasteDeploy",
            "prefix",
        )
        .register("serve", ServerFactory, "http")
        .register("Paste", ServerRunner, "http")
        .register_symbol(
            "paste.httpserver:server_runner",
            ServerRunner,
            "Paste",
            "http",
        )
        .register("waitress", ServerRunner, "main")
        .register_symbol("waitress:serve_paste", ServerRunner, "waitress", "main")
        .register("gunicorn", ServerRunner, "main")
        .register_symbol(
            "gunicorn.app.pasterapp:serve",
            ServerRunner,
            "gunicorn",
            "main",
        );
    table
}

/// A registry of the built-in eggs.
pub fn registry() -> Registry {
    Registry::new().with_source(Arc::new(builtin_eggs()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use deploy::registry::EggSource;

    #[test]
    fn every_builtin_symbol_names_a_registered_entry_point() {
        let table = builtin_eggs();
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
            assert!(table.symbol(target, protocol).is_some(), "{target}");
        }
    }
}
