//! State and what records do to it, as values: no sled, no journal, no clock.
//!
//! `convert` turns the journal's frozen record types into the domain's types and
//! back; the store loads values, calls in here, and writes what comes out.

pub mod convert;
pub mod member;
