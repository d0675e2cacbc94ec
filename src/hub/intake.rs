//! What the hub checks of a sync request before it trusts it, in this order: the
//! `Authorization` header names a known terminal (from the header alone, so a stranger's
//! body is never read); a place among the requests still unverified (bounded overall
//! and per peer address); the body, bounded in size and time. The signature over the
//! body is checked by the caller once the body is in.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use axum::body::Body as HttpBody;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;

use crate::error::{Code, Error, Result};
use crate::sync::wire;

/// The terminal a sync request claims to come from and its secret, from the
/// `Authorization` header alone: checked before a byte of the body is read.
pub fn claimed<'a>(secrets: &'a HashMap<String, Vec<u8>>, headers: &HeaderMap) -> Result<(String, Vec<u8>, &'a [u8])> {
    let refused = |why: &str| Error::new(Code::Unauthorized, why.to_string());
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| refused("a sync request must be signed"))?;
    let (terminal, sig) = wire::parse_auth(auth).ok_or_else(|| refused("malformed signature"))?;
    let secret = secrets.get(terminal).ok_or_else(|| {
        tracing::warn!("sync request from unknown terminal {terminal:?} refused");
        refused("unknown terminal")
    })?;
    Ok((terminal.to_string(), sig, secret))
}

/// Sync requests whose claimed terminal is known but whose signature (over the body)
/// is not checked yet: each holds a body of up to `MAX_PUSH_BODY` bytes in memory.
pub const UNVERIFIED_MAX: usize = 16;
/// Of those, from one address: a terminal sends one request at a time, so a peer
/// that holds more is not one, and cannot take every slot.
pub const UNVERIFIED_PER_PEER: usize = 4;
/// Time a sync request's body has to arrive (the terminal gives up on a whole
/// request after 30 s).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest ruleset an operator may publish (it becomes one journal record).
pub const MAX_RULESET_BODY: usize = 1 << 20;

/// Counts the unverified requests, overall and per peer address.
#[derive(Default)]
pub struct Unverified {
    held: std::sync::Mutex<(usize, HashMap<IpAddr, usize>)>,
}

pub struct UnverifiedSlot<'a> {
    of: &'a Unverified,
    peer: IpAddr,
}

impl Unverified {
    pub fn take(&self, peer: IpAddr) -> Option<UnverifiedSlot<'_>> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per_peer) = &mut *held;
        let mine = per_peer.entry(peer).or_default();
        if *total >= UNVERIFIED_MAX || *mine >= UNVERIFIED_PER_PEER {
            return None;
        }
        *mine += 1;
        *total += 1;
        Some(UnverifiedSlot { of: self, peer })
    }
}

impl Drop for UnverifiedSlot<'_> {
    fn drop(&mut self) {
        let mut held = self.of.held.lock().unwrap_or_else(|p| p.into_inner());
        let (total, per_peer) = &mut *held;
        *total -= 1;
        if let Some(n) = per_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                per_peer.remove(&self.peer);
            }
        }
    }
}

/// A refusal with a status of its own (the code's usual one does not fit).
pub struct Refusal(StatusCode, Error);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(self.1.to_json())).into_response()
    }
}

/// Reads a request body of at most `limit` bytes within `BODY_TIMEOUT`; a declared
/// length over the limit is refused before anything is read.
pub async fn read_body(headers: &HeaderMap, body: HttpBody, limit: usize) -> std::result::Result<Vec<u8>, Refusal> {
    let too_large = || {
        Refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            Error::invalid(format!("the request body is over {limit} bytes")),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let read = async {
        let mut buf = Vec::with_capacity(declared.unwrap_or(0) as usize);
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                Refusal(
                    StatusCode::BAD_REQUEST,
                    Error::invalid(format!("reading the request body: {e}")),
                )
            })?;
            if buf.len() + chunk.len() > limit {
                return Err(too_large());
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    };
    tokio::time::timeout(BODY_TIMEOUT, read).await.unwrap_or_else(|_| {
        Err(Refusal(
            StatusCode::REQUEST_TIMEOUT,
            Error::invalid(format!("the request body did not arrive within {BODY_TIMEOUT:?}")),
        ))
    })
}
