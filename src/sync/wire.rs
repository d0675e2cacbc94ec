//! What travels between a terminal and the hub: postcard bodies over HTTP, each signed
//! with the terminal's secret (HMAC-SHA256 over the terminal id, the path and the body).
//!
//! Every reply carries the hub's clock, so a terminal without a real-time clock can
//! tell how far off its own is.

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::model::Ts;
use crate::record::{
    CouponSnapshot, CouponSnapshotV2, GroupSnapshot, HubPull, HubPullV3, MemberSnapshot, MemberSnapshotV2,
};

pub const PUSH_PATH: &str = "/v1/sync/push";
/// 0.1's pull, still served to 0.1 terminals (its member snapshots are 0.1's).
pub const PULL_PATH: &str = "/v1/sync/pull";
/// 0.2's pull: the same exchange with 0.2's member snapshots.
pub const PULL_V2_PATH: &str = "/v1/sync/pull2";
/// `Authorization: LOYALTYD-HMAC terminal=<id>,sig=<hex>`.
pub const AUTH_SCHEME: &str = "LOYALTYD-HMAC";
pub const CONTENT_TYPE: &str = "application/x-loyaltyd-postcard";
/// Records per push, and the payload bytes a push stays under (the terminal's batch).
pub const PUSH_RECORDS: usize = 5000;
pub const PUSH_BYTES: usize = 4 << 20;
/// Largest push body the hub reads: a full batch, plus postcard's framing (at most
/// 10 + 3 bytes of seq and length per record) and the header fields.
pub const MAX_PUSH_BODY: usize = PUSH_BYTES + PUSH_RECORDS * 16 + 1024;
/// Members a terminal asks for by id in one pull (the hub looks at no more).
pub const PULL_ASKED: usize = 256;
/// Largest pull body the hub reads: `PULL_ASKED` ids fit many times over; the slack is
/// for 0.1 terminals, which sent every stale member's id.
pub const MAX_PULL_BODY: usize = 1 << 20;
/// Largest answer a terminal reads from the hub (a pull aims at 512 KiB).
pub const MAX_REPLY: usize = 16 << 20;

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

/// A pull's answer (`PULL_V2_PATH`): 0.2's member and coupon snapshots and the groups the
/// hub decided.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullReply {
    pub cursor: u64,
    /// What the hub had acknowledged of this terminal stream before it read the
    /// snapshots: every snapshot covers this terminal's records up to here.
    pub acked: u64,
    pub members: Vec<MemberSnapshotV2>,
    pub coupons: Vec<(String, CouponSnapshotV2)>,
    pub blocked_cards: Vec<String>,
    pub ruleset: Option<String>,
    pub groups: Vec<GroupSnapshot>,
    /// More changes wait: pull again at once.
    pub more: bool,
    pub hub_time: Ts,
}

/// A pull's answer as 0.1 spoke it (`PULL_PATH`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullReplyV1 {
    pub cursor: u64,
    pub acked: u64,
    pub members: Vec<MemberSnapshot>,
    pub coupons: Vec<(String, CouponSnapshot)>,
    pub blocked_cards: Vec<String>,
    pub ruleset: Option<String>,
    pub more: bool,
    pub hub_time: Ts,
}

impl PullReply {
    /// The answer as a 0.1 terminal reads it: no groups, no coupon issuers.
    pub fn into_v1(self) -> PullReplyV1 {
        PullReplyV1 {
            cursor: self.cursor,
            acked: self.acked,
            members: self.members.into_iter().map(MemberSnapshotV2::into_v1).collect(),
            coupons: self
                .coupons
                .into_iter()
                .map(|(code, c)| {
                    let c = CouponSnapshot {
                        type_id: c.type_id,
                        member_id: c.member_id,
                        issued: c.issued,
                        valid_until: c.valid_until,
                        used_by: c.used_by,
                    };
                    (code, c)
                })
                .collect(),
            blocked_cards: self.blocked_cards,
            ruleset: self.ruleset,
            more: self.more,
            hub_time: self.hub_time,
        }
    }
}

impl PullReplyV1 {
    /// A 0.1 hub's answer in 0.2's form.
    pub fn into_v2(self) -> PullReply {
        let pull = HubPull {
            cursor: self.cursor,
            acked: self.acked,
            members: self.members,
            coupons: self.coupons,
            blocked_cards: self.blocked_cards,
            ruleset: self.ruleset,
        };
        let p: HubPullV3 = pull.into_v2().into();
        PullReply {
            cursor: p.cursor,
            acked: p.acked,
            members: p.members,
            coupons: p.coupons,
            blocked_cards: p.blocked_cards,
            ruleset: p.ruleset,
            groups: vec![],
            more: self.more,
            hub_time: self.hub_time,
        }
    }
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
    fn a_full_push_batch_fits_the_hubs_body_bound() {
        // The worst framing: the largest seqs and lengths, the longest terminal id.
        let per = PUSH_BYTES / PUSH_RECORDS;
        let records = (0..PUSH_RECORDS as u64)
            .map(|i| (u64::MAX - i, vec![0xa5; per]))
            .collect();
        let push = PushRequest {
            terminal_id: "T".repeat(32),
            epoch: u64::MAX,
            from: u64::MAX - PUSH_RECORDS as u64,
            upto: u64::MAX,
            records,
        };
        let len = postcard::to_allocvec(&push).unwrap().len();
        assert!(len <= MAX_PUSH_BODY, "{len} > {MAX_PUSH_BODY}");
        let one = PushRequest {
            records: vec![(u64::MAX, vec![0; crate::journal::MAX_PAYLOAD])],
            ..push
        };
        assert!(postcard::to_allocvec(&one).unwrap().len() <= MAX_PUSH_BODY);
        let pull = PullRequest {
            terminal_id: "T".repeat(32),
            epoch: u64::MAX,
            cursor: u64::MAX,
            members: vec!["m-0123456789abcdef".into(); PULL_ASKED],
        };
        assert!(postcard::to_allocvec(&pull).unwrap().len() * 10 <= MAX_PULL_BODY);
    }

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
