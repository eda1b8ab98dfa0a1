//! Chasqui's storage: one connection layer over SQLite or PostgreSQL, the schema and its
//! migrations, one repository module per aggregate, and the job queue. SQL lives only here,
//! written once with `$N` placeholders for both databases (see `docs/architecture.md`).

pub mod accounts;
pub mod assignments;
pub mod checkpoint;
pub mod contacts;
pub mod conversations;
mod db;
pub mod env_vars;
pub mod events;
pub mod executions;
pub mod group;
pub mod idempotency;
pub mod inbox_embeds;
pub mod jobs;
pub mod lane;
pub mod media;
pub mod messages;
pub mod notifications;
pub mod notifier;
pub mod numbers;
pub mod plans;
pub mod projects;
mod query;
pub mod sql;
pub mod templates;
pub mod testing;
pub mod triggers;
pub mod users;
pub mod webhooks;
pub mod workflows;
pub mod write_stats;

pub use db::{Backend, Db, StoreError, redact_url};
pub use query::{Cursor, Page, decode_cursor, encode_cursor};
pub use sql::{Conn, Pool, Tx};

/// Result alias for storage calls.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
