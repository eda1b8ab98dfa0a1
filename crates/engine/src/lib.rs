//! Chasqui's workflow engine: workflow graphs (Kapso's `{nodes, edges}` definition), their
//! validation, and the interpreter that runs them as a pure state machine; the caller
//! persists its state and performs its actions (`chasqui-app`'s executions).

pub mod definition;
pub mod nodes;
pub mod run;

pub use definition::{Definition, NODE_TYPES, validate};
pub use run::{Action, Definitions, Frame, Logged, Machine, Resume, State, World};
