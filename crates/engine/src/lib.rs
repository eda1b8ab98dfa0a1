//! Chasqui's workflow engine: workflow graphs (Kapso's `{nodes, edges}` definition) and their
//! validation. The durable interpreter that runs them lands here next.

pub mod definition;

pub use definition::{Definition, NODE_TYPES, validate};
