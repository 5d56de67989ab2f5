//! recfusion: an embedded SQL engine for user profiles and recommendations.
//!
//! The engine is Apache DataFusion with recfusion's functions registered. This crate owns
//! everything about sessions, scripts and people: session setup ([`session`]), splitting and
//! templating SQL scripts ([`script`]), running statements and printing results ([`exec`],
//! [`print`], [`statement`]), attached SQLite files ([`sqlite`]), the interactive shell ([`command`], [`repl`]), and
//! running on a Ballista cluster ([`cluster`]). The SQL functions live in the `recfusion-udfs` crate.
#![deny(clippy::clone_on_ref_ptr)]

pub mod allocation;
pub mod cluster;
pub mod command;
pub mod exec;
mod file_errors;
mod function_errors;
mod nested_text;
mod nesting;
pub mod print;
pub mod repl;
pub mod script;
pub mod server_log;
pub mod session;
pub mod sqlite;
pub mod statement;
mod yield_points;

pub use recfusion_udfs as udfs;
pub use session::{SessionOptions, new_cluster_session, new_session};
pub use statement::execute_sql;
