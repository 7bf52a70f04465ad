//! Embedding `serve`: an axum app registered as an egg, served from a deployment file with a
//! built-in filter in front of it.
//!
//! ```sh
//! cargo run --example axum_app -- examples/axum.ini
//! curl -i http://127.0.0.1:8000/hello?name=you
//! ```
//!
//! `examples/axum.ini` uses `egg:myapp` (this program's app, configured by its section's
//! `greeting` key) behind `egg:serve#headers`; every `serve` feature (`check`, signals,
//! drain) works as for the built-in eggs.

use axum::extract::{Query, State};
use axum::routing::get;
use axum::Router;
use serve::app::from_service;
use serve::conf::ConfExt;
use serve::Eggs;
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;

async fn hello(
    State(greeting): State<Arc<str>>,
    Query(query): Query<HashMap<String, String>>,
) -> String {
    let name = query.get("name").map_or("world", String::as_str);
    format!("{greeting}, {name}!\n")
}

fn main() -> ExitCode {
    let mut eggs = Eggs::builtin();
    eggs.app("myapp", "main", |_global, local| {
        let greeting: Arc<str> = Arc::from(local.text("greeting", "Hello"));
        let router = Router::new()
            .route("/hello", get(hello))
            .with_state(greeting);
        Ok(from_service(router))
    });
    serve::main_with(eggs)
}
