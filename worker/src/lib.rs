//! Everything that runs inside a `serve` worker: the pipeline types, the built-in eggs, the
//! builder that turns a plan into a running app, and the HTTP server.

pub mod app;
pub mod body;
pub mod conf;
pub mod eggs;
pub mod identity;
pub mod pipeline;
pub mod server;
pub mod settings;
