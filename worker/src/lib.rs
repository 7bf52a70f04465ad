//! Everything that runs inside a `serve` worker. For now: the names of the built-in eggs, so
//! that plans naming them resolve; the eggs themselves and the HTTP server come next.

pub mod eggs;
