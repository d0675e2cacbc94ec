//! Card readers: pure frame decoders here; the hardware drivers arrive with the daemon.

pub mod decode;
