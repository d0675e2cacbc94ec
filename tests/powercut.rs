//! Power cuts under the real daemon: its data dir on a FUSE filesystem of the test's own
//! (tests/support/powercut) that keeps every write in memory until it is made durable.

#[path = "support/powercut/mod.rs"]
mod powercut_fs;
