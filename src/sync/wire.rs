//! What travels between a terminal and the hub: postcard bodies over HTTP, each signed
//! with the terminal's secret (HMAC-SHA256 over the terminal id, the path and the body).
//!
//! Every reply carries the hub's clock, so a terminal without a real-time clock can
//! tell how far off its own is.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::model::Ts;
use crate::record::{CouponSnapshot, MemberSnapshot};

pub const PUSH_PATH: &str = "/v1/sync/push";
pub const PULL_PATH: &str = "/v1/sync/pull";
/// `Authorization: LOYALTYD-HMAC terminal=<id>,sig=<hex>`.
pub const AUTH_SCHEME: &str = "LOYALTYD-HMAC";
pub const CONTENT_TYPE: &str = "application/x-loyaltyd-postcard";
/// Largest request body the hub reads (a push batch is capped well below it).
pub const MAX_BODY: usize = 16 << 20;

/// Records of one terminal stream that go upstream. The batch covers the journal from
/// `from` to `upto`: records in between that stay local (pull results, acknowledgements)
/// are not sent, so `records` need not be contiguous.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRequest {
    pub terminal_id: String,
    pub epoch: u64,
    pub from: u64,
    pub upto: u64,
    /// (seq, the journal payload exactly as the terminal wrote it).
    pub records: Vec<(u64, Vec<u8>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushReply {
    /// Everything of this stream up to here is durably on the hub.
    pub acked: u64,
    /// Records of this push the hub already held (sent again after a lost answer).
    pub duplicates: u64,
    pub hub_time: Ts,
}

/// What changed on the hub since `cursor`, plus the members this terminal asks for
/// again (their last snapshot came while it had changes the hub had not seen).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    pub terminal_id: String,
    pub epoch: u64,
    pub cursor: u64,
    pub members: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullReply {
    pub cursor: u64,
    /// What the hub had acknowledged of this terminal stream before it read the
    /// snapshots: every snapshot covers this terminal's records up to here.
    pub acked: u64,
    pub members: Vec<MemberSnapshot>,
    pub coupons: Vec<(String, CouponSnapshot)>,
    pub blocked_cards: Vec<String>,
    pub ruleset: Option<String>,
    /// More changes wait: pull again at once.
    pub more: bool,
    pub hub_time: Ts,
}

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], terminal: &str, path: &str, body: &[u8]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes a key of any length");
    m.update(terminal.as_bytes());
    m.update(b"\n");
    m.update(path.as_bytes());
    m.update(b"\n");
    m.update(body);
    m
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The `Authorization` header value for a request.
pub fn sign(secret: &[u8], terminal: &str, path: &str, body: &[u8]) -> String {
    let sig = mac(secret, terminal, path, body).finalize().into_bytes();
    format!("{AUTH_SCHEME} terminal={terminal},sig={}", hex(&sig))
}

/// The terminal id an `Authorization` header claims, and its signature.
pub fn parse_auth(header: &str) -> Option<(&str, Vec<u8>)> {
    let rest = header.strip_prefix(AUTH_SCHEME)?.trim_start();
    let (mut terminal, mut sig) = (None, None);
    for part in rest.split(',') {
        match part.trim().split_once('=') {
            Some(("terminal", v)) => terminal = Some(v),
            Some(("sig", v)) => sig = unhex(v),
            _ => return None,
        }
    }
    Some((terminal?, sig?))
}

/// Checks a signature in constant time.
pub fn verify(secret: &[u8], terminal: &str, path: &str, body: &[u8], sig: &[u8]) -> bool {
    mac(secret, terminal, path, body).verify_slice(sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_covers_terminal_path_and_body() {
        let h = sign(b"s3cret", "T1", PUSH_PATH, b"body");
        let (t, sig) = parse_auth(&h).unwrap();
        assert_eq!(t, "T1");
        assert!(verify(b"s3cret", "T1", PUSH_PATH, b"body", &sig));
        assert!(!verify(b"other", "T1", PUSH_PATH, b"body", &sig));
        assert!(!verify(b"s3cret", "T2", PUSH_PATH, b"body", &sig));
        assert!(!verify(b"s3cret", "T1", PULL_PATH, b"body", &sig));
        assert!(!verify(b"s3cret", "T1", PUSH_PATH, b"bodx", &sig));
        assert!(parse_auth("Bearer x").is_none());
        assert!(parse_auth("LOYALTYD-HMAC terminal=T1,sig=zz").is_none());
    }
}
