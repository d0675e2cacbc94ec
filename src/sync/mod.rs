//! Sync between terminals and the hub (`../shared/spec/sync.md`).
//!
//! - `wire`: the messages and their signatures.
//! - `client`: the terminal's task that pushes its journal and pulls the hub's changes.
//!
//! The hub, which every terminal syncs with, is a daemon of its own (`crate::hub`).
//!
//! Exactly once: every record has an identity (terminal, install epoch, seq); the hub
//! stores each identity once and acknowledges the highest contiguous seq it holds, and
//! the terminal resends everything above what it has recorded as acknowledged. A
//! member's view on a terminal is the hub's snapshot plus the terminal's own records
//! the hub has not acknowledged yet: a snapshot replaces the local member only when it
//! covers every local change to it.

pub mod client;
pub mod wire;
