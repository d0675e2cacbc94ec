//! Idempotency keys: the same key with the same request answers again what it answered
//! first; the same key with another request is refused.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Code, Error, Result};
use crate::record::IdemKey;
use crate::store::{Idem, Store};

/// An idempotency key with the hash of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyed(IdemKey);

/// The longest idempotency key taken.
pub const MAX_KEY: usize = 128;

impl Keyed {
    /// `key` for the operation `op` (a name of its own, so that a key used for one kind
    /// of change conflicts with any other kind) asked with `request`: the fields that
    /// make two requests the same, in a canonical form.
    pub fn new(key: &str, op: &str, request: &impl Serialize) -> Result<Keyed> {
        let mut h = Sha256::new();
        h.update(op.as_bytes());
        h.update([0]);
        h.update(postcard::to_allocvec(request).expect("requests encode"));
        Keyed::with_hash(key, h.finalize().into())
    }

    /// A key whose request hash the caller made (checkouts keep 0.1's hash, so that a
    /// key from before an upgrade still replays).
    pub(super) fn with_hash(key: &str, request: [u8; 32]) -> Result<Keyed> {
        if key.is_empty() || key.len() > MAX_KEY || key.chars().any(char::is_control) {
            return Err(Error::invalid(format!(
                "an idempotency key is 1 to {MAX_KEY} printable characters"
            )));
        }
        Ok(Keyed(IdemKey {
            key: key.to_string(),
            request,
        }))
    }

    pub fn key(&self) -> &str {
        &self.0.key
    }

    pub(super) fn idem(&self) -> IdemKey {
        self.0.clone()
    }

    /// What this key answered before, if it was used: refused if for another request.
    pub(super) fn seen(&self, store: &Store) -> Result<Option<Idem>> {
        match store.idem(&self.0.key)? {
            Some(first) if first.request != self.0.request => Err(Error::new(
                Code::IdempotencyConflict,
                format!("idempotency key {:?} was used for a different request", self.0.key),
            )),
            other => Ok(other),
        }
    }
}
