//! The terminal side of sync (the outbox of records for the hub, acknowledgements,
//! what a pull brought) and the hub's ingest (`transact`).

use super::{At, Engine};
use crate::error::Result;
use crate::record::{Body, Record};
use crate::rules::Ruleset;
use crate::store::Store;

/// Pushable records as (seq, payload), and the seq up to which they cover the journal.
pub type OutboxBatch = (Vec<(u64, Vec<u8>)>, u64);

impl Engine {
    /// What the hub has acknowledged of this terminal's journal.
    pub fn acked(&self) -> Result<crate::store::Acked> {
        self.store.acked()
    }

    /// Records the hub's acknowledgement durably (through the journal, like any change).
    pub fn record_ack(&self, upto: u64, pushable: u64) -> Result<()> {
        let at = self.at(None);
        self.commit_plain(
            &at,
            |store, _| {
                let now = store.acked()?;
                Ok((
                    if upto > now.seq {
                        vec![Body::Acked { upto, pushable }]
                    } else {
                        vec![]
                    },
                    (),
                ))
            },
            |_, _, _| Ok(()),
        )
    }

    /// Records that go upstream and the hub has not acknowledged yet.
    pub fn outbox(&self) -> Result<u64> {
        self.store.outbox_len()
    }

    /// Up to `max` pushable records after `after`, as (seq, payload), and the seq up to
    /// which the batch covers the journal (local-only records in between included).
    pub fn outbox_batch(&self, after: u64, max: usize, max_bytes: usize) -> Result<OutboxBatch> {
        let mut out = Vec::new();
        let (mut upto, mut bytes) = (after, 0);
        for item in self.journal.read_from(after + 1)? {
            let (seq, payload) = item?;
            if out.len() >= max || bytes + payload.len() > max_bytes && !out.is_empty() {
                break;
            }
            upto = seq;
            if Record::decode(&payload)?.body.is_pushable() {
                bytes += payload.len();
                out.push((seq, payload));
            }
        }
        Ok((out, upto))
    }

    /// Applies what a pull brought, through the journal like any change.
    pub fn apply_pull(&self, pull: crate::record::HubPullV3) -> Result<()> {
        let ruleset = pull.ruleset.clone();
        let at = self.at(None);
        self.commit_plain(
            &at,
            |_, _| Ok((vec![Body::HubPullV3(Box::new(pull))], ())),
            |_, _, _| Ok(()),
        )?;
        if let Some(text) = ruleset {
            self.adopt_hub_ruleset(&text);
        }
        Ok(())
    }

    /// A change decided outside the engine (the hub's ingest): `decide` sees the state
    /// under the writer lock and returns the records to write and a result, which is
    /// returned once the records are durable.
    pub fn transact<R>(&self, at: At, decide: impl FnOnce(&Store, &Ruleset) -> Result<(Vec<Body>, R)>) -> Result<R> {
        self.commit_plain(&at, decide, |_, _, r| Ok(r))
    }

    /// How many records in `from..=to` go upstream.
    pub fn count_pushable(&self, from: u64, to: u64) -> Result<u64> {
        let mut n = 0;
        for item in self.journal.read_from(from)? {
            let (seq, payload) = item?;
            if seq > to {
                break;
            }
            n += u64::from(Record::decode(&payload)?.body.is_pushable());
        }
        Ok(n)
    }

    /// Sets what to call after every durable commit of records that go upstream (the
    /// sync task's wake-up). Set once, before the engine is shared.
    pub fn on_pushable_commit(&self, hook: Box<dyn Fn() + Send + Sync>) {
        let _ = self.on_commit.set(hook);
    }
}
