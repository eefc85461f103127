//! The reconciler function's handler, as a library so the local server and tests call the same code.

pub mod handler;
