//! loyaltyd: an offline-first member-card loyalty terminal, and the hub it syncs with.
//!
//! See ARCHITECTURE.md for the bird's-eye view and the invariants the modules keep.

pub mod alloc;
pub mod api;
pub mod cli;
pub mod config;
pub mod console;
pub mod daemon;
pub mod engine;
pub mod error;
pub mod feedback;
pub mod hub;
pub mod identity;
pub mod journal;
pub mod metrics;
pub mod model;
pub mod os;
pub mod pin;
pub mod reader;
pub mod record;
pub mod rules;
pub mod service;
pub mod state;
pub mod store;
pub mod sync;
pub mod views;

pub use error::{Code, Error, Result};
