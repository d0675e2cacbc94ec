//! Running the hub's synchronous apply over state that lives in PostgreSQL without a round
//! trip per key: a step runs over what has been fetched so far, noting every key, prefix
//! and record it asked for and did not have (answered as absent); those are then fetched
//! in one pipelined batch and the step runs again, until it asks for nothing new. Only
//! the last run, which read nothing it did not know, counts. A step's reads depend on
//! what it read before (card, then member, then its pages), so a push takes a few rounds,
//! not one per key.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use deadpool_postgres::GenericClient;

use super::pg_error;
use crate::error::{Error, Result};
use crate::record::{Body, Record};
use crate::store::base::{StateBase, Visit};

/// What has been read from the database in this transaction (absent keys included).
#[derive(Default)]
pub struct Fetched {
    values: HashMap<Vec<u8>, Option<Vec<u8>>>,
    prefixes: HashMap<Vec<u8>, Vec<Vec<u8>>>,
    records: HashMap<u64, Record>,
    /// Ranges read highest key first: the entries fetched so far, and whether they are
    /// all the range holds.
    ranges: HashMap<Range, (Entries, bool)>,
}

type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// A key range `[lo, hi)`.
type Range = (Vec<u8>, Vec<u8>);

/// The entries a range read fetches first; a step that wants more gets twice as many
/// each round (an audit page of 20,000 entries looked at takes 8 rounds, not 80).
const RANGE_FIRST: usize = 256;

#[derive(Default)]
struct Missing {
    keys: BTreeSet<Vec<u8>>,
    prefixes: BTreeSet<Vec<u8>>,
    records: BTreeSet<u64>,
    /// Ranges and how many of their highest entries to fetch.
    ranges: HashMap<Range, usize>,
}

impl Missing {
    fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.prefixes.is_empty() && self.records.is_empty() && self.ranges.is_empty()
    }
}

/// A [`StateBase`] over [`Fetched`] that notes what it lacked.
struct Tentative<'a> {
    fetched: &'a Fetched,
    missing: RefCell<Missing>,
    head: u64,
}

impl StateBase for Tentative<'_> {
    fn visit(&self, key: &[u8], f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<bool> {
        match self.fetched.values.get(key) {
            Some(Some(v)) => f(v).map(|_| true),
            Some(None) => Ok(false),
            None => {
                self.missing.borrow_mut().keys.insert(key.to_vec());
                Ok(false)
            }
        }
    }

    fn keys_with_prefix(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        match self.fetched.prefixes.get(prefix) {
            Some(keys) => Ok(keys.clone()),
            None => {
                self.missing.borrow_mut().prefixes.insert(prefix.to_vec());
                Ok(vec![])
            }
        }
    }

    fn range_rev(&self, lo: &[u8], hi: &[u8], f: &mut Visit) -> Result<()> {
        if lo >= hi {
            return Ok(());
        }
        let range = (lo.to_vec(), hi.to_vec());
        let (entries, complete) = match self.fetched.ranges.get(&range) {
            Some((entries, complete)) => (entries.as_slice(), *complete),
            None => (&[][..], false),
        };
        for (k, v) in entries {
            if !f(k, v)? {
                return Ok(());
            }
        }
        if !complete {
            let want = (entries.len() * 2).max(RANGE_FIRST);
            self.missing.borrow_mut().ranges.insert(range, want);
        }
        Ok(())
    }

    fn journal_record(&self, seq: u64) -> Result<Record> {
        match self.fetched.records.get(&seq) {
            Some(r) => Ok(r.clone()),
            None => {
                self.missing.borrow_mut().records.insert(seq);
                Err(Error::internal(format!("hub record {seq} is not fetched yet")))
            }
        }
    }

    fn last_seq(&self) -> u64 {
        self.head
    }

    fn identity(&self) -> Result<Option<(String, u64)>> {
        Ok(Some(("hub".to_string(), 0)))
    }

    fn hub(&self) -> bool {
        true
    }

    fn tentative(&self) -> bool {
        !self.missing.borrow().is_empty()
    }
}

/// Rounds a step may take before it is taken for one that never settles.
const MAX_ROUNDS: usize = 32;

/// Runs `step` over the state as `db` holds it (a transaction, or a plain client for a
/// read of committed state) with `head` the last hub seq, fetching what it asks for.
pub async fn run<T>(
    db: &impl GenericClient,
    fetched: &mut Fetched,
    head: u64,
    mut step: impl FnMut(&dyn StateBase) -> Result<T>,
) -> Result<T> {
    for _ in 0..MAX_ROUNDS {
        let base = Tentative {
            fetched,
            missing: RefCell::default(),
            head,
        };
        let out = step(&base);
        let missing = base.missing.into_inner();
        if missing.is_empty() {
            return out;
        }
        fetch(db, fetched, missing).await?;
    }
    Err(Error::internal("a hub step kept asking for more state"))
}

/// The first key after every key that starts with `prefix`, if there is one.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

async fn fetch(db: &impl GenericClient, fetched: &mut Fetched, missing: Missing) -> Result<()> {
    let keys: Vec<Vec<u8>> = missing.keys.into_iter().collect();
    let seqs: Vec<i64> = missing.records.iter().map(|s| *s as i64).collect();
    let values = async {
        if keys.is_empty() {
            return Ok(vec![]);
        }
        let st = db
            .prepare_typed(
                "SELECT key, value FROM hub_kv WHERE key = ANY($1)",
                &[tokio_postgres::types::Type::BYTEA_ARRAY],
            )
            .await?;
        db.query(&st, &[&keys]).await
    };
    let records = async {
        if seqs.is_empty() {
            return Ok(vec![]);
        }
        db.query("SELECT seq, record FROM hub_journal WHERE seq = ANY($1)", &[&seqs])
            .await
    };
    let prefixes = futures_util::future::try_join_all(missing.prefixes.iter().map(|p| async move {
        let rows = match prefix_end(p) {
            Some(end) => {
                db.query(
                    "SELECT key FROM hub_kv WHERE key >= $1 AND key < $2 ORDER BY key",
                    &[p, &end],
                )
                .await?
            }
            None => {
                db.query("SELECT key FROM hub_kv WHERE key >= $1 ORDER BY key", &[p])
                    .await?
            }
        };
        Ok::<_, tokio_postgres::Error>((p.clone(), rows.iter().map(|r| r.get(0)).collect::<Vec<Vec<u8>>>()))
    }));
    let ranges = futures_util::future::try_join_all(missing.ranges.iter().map(|(range, want)| async move {
        let rows = db
            .query(
                "SELECT key, value FROM hub_kv WHERE key >= $1 AND key < $2 ORDER BY key DESC LIMIT $3",
                &[&range.0, &range.1, &(*want as i64)],
            )
            .await?;
        let entries: Entries = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let complete = entries.len() < *want;
        Ok::<_, tokio_postgres::Error>((range.clone(), (entries, complete)))
    }));
    let (values, records, prefixes, ranges) = futures_util::future::try_join4(values, records, prefixes, ranges)
        .await
        .map_err(pg_error)?;
    fetched.ranges.extend(ranges);
    for k in keys {
        fetched.values.entry(k).or_insert(None);
    }
    for row in values {
        fetched.values.insert(row.get(0), Some(row.get(1)));
    }
    for row in records {
        let seq: i64 = row.get(0);
        let bytes: Vec<u8> = row.get(1);
        let rec = Record::decode(&bytes)?;
        let rec = match rec.body {
            Body::Remote(r) => Record::decode(&r.payload)?,
            _ => rec,
        };
        fetched.records.insert(seq as u64, rec);
    }
    for seq in missing.records {
        if !fetched.records.contains_key(&seq) {
            return Err(Error::internal(format!("the hub's journal has no record {seq}")));
        }
    }
    fetched.prefixes.extend(prefixes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn a_prefix_ends_at_its_successor() {
        assert_eq!(prefix_end(b"T"), Some(b"U".to_vec()));
        assert_eq!(prefix_end(&[b'a', 0xff]), Some(vec![b'b']));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
    }
}
