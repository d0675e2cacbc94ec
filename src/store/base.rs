//! The grain between `apply` and where the state is kept: [`StateBase`], what a step of
//! `apply` reads, and [`apply_step`], a step of records turned into key/value changes
//! without writing them. The sled [`Store`] is one base; the hub on PostgreSQL reads the
//! same keys from a table inside its transaction and writes the changes back there, so
//! both run the same pure transitions on the same encodings.

use super::{
    apply, dec, feed_key, k, key, record_page_key, terminal_key, FeedKind, GroupState, HashPage, HubTerminal, Store,
};
use crate::error::Result;
use crate::model::{CouponState, MemberState};
use crate::record::Record;

/// What `apply` reads: values by key, keys by prefix, and the records the state points
/// back to (a checkout is read back from the record that holds it).
pub trait StateBase {
    /// `f` of the value of `key`, if there is one (a base may decode without copying).
    fn visit(&self, key: &[u8], f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<bool>;
    /// The keys under `prefix`, in byte order.
    fn keys_with_prefix(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>>;
    /// `f` of each key and value in `[lo, hi)`, highest key first, while it answers true
    /// (a bounded page of an index read newest first: the audit view).
    fn range_rev(&self, lo: &[u8], hi: &[u8], f: &mut Visit) -> Result<()>;
    /// Record `seq` of the base's own journal, decoded (a pushed record unwrapped).
    fn journal_record(&self, seq: u64) -> Result<Record>;
    /// The last seq of the base's own journal.
    fn last_seq(&self) -> u64;
    /// The terminal id and epoch of that journal, once known.
    fn identity(&self) -> Result<Option<(String, u64)>>;
    /// The hub keeps a change feed and the overspent index; a terminal does not.
    fn hub(&self) -> bool;
    /// A base that answered some read without knowing (one that fetches what a step
    /// asked for and runs it again): what the step concluded is not yet to be believed
    /// or logged.
    fn tentative(&self) -> bool {
        false
    }
}

/// What a range read calls with each key and value: true to go on.
pub type Visit<'a> = dyn FnMut(&[u8], &[u8]) -> Result<bool> + 'a;

/// A value of `base`, decoded.
pub fn get<T: serde::de::DeserializeOwned>(base: &dyn StateBase, what: &str, key: &[u8]) -> Result<Option<T>> {
    let mut out = None;
    base.visit(key, &mut |b| {
        out = Some(dec(what, b)?);
        Ok(())
    })?;
    Ok(out)
}

impl StateBase for Store {
    fn visit(&self, key: &[u8], f: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<bool> {
        self.checked(self.shared.overlay.get_with(&self.shared.db, key, |v| match v {
            Some(b) => f(b).map(|_| true),
            None => Ok(false),
        }))
    }

    fn keys_with_prefix(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>> {
        Store::keys_with_prefix(self, prefix)
    }

    fn range_rev(&self, lo: &[u8], hi: &[u8], f: &mut Visit) -> Result<()> {
        if lo >= hi {
            return Ok(());
        }
        let db = &self.shared.db;
        // Under the overlay's writing lock, after what is pending: no batch lands inside.
        // The caller's refusal is its own; only the store's errors are store faults.
        let mut answer = Ok(());
        self.checked(self.shared.overlay.settled(db, || {
            for kv in db.range(lo..hi).rev() {
                let (key, v) = kv?;
                match f(&key, &v) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        answer = Err(e);
                        break;
                    }
                }
            }
            Ok(())
        }))?;
        answer
    }

    fn journal_record(&self, seq: u64) -> Result<Record> {
        Store::journal_record(self, seq)
    }

    fn last_seq(&self) -> u64 {
        self.journal.last_seq()
    }

    fn identity(&self) -> Result<Option<(String, u64)>> {
        Store::identity(self)
    }

    fn hub(&self) -> bool {
        self.hub
    }
}

/// Changes by key, `None` to remove: what a step leaves to be written.
pub type Writes = std::collections::HashMap<Vec<u8>, Option<Vec<u8>>, fxhash::FxBuildHasher>;

/// Applies hub records `first`, `first + 1`, ... to the state `base` holds, as one step,
/// and returns the key/value changes (the applied position is the caller's to keep).
pub fn apply_step(base: &dyn StateBase, first: u64, recs: &[Record]) -> Result<Writes> {
    apply::step(base, first, recs)
}

// What the hub's storage reads of the state, by the same keys and encodings as `Store`.

pub fn member(base: &dyn StateBase, id: &str) -> Result<Option<MemberState>> {
    Ok(get::<super::MemberRec>(base, "member", &k(key::MEMBER, id.as_bytes()))?.map(|m| m.state))
}

pub fn phone_owner(base: &dyn StateBase, phone: &str) -> Result<Option<String>> {
    get(base, "phone", &k(key::PHONE, phone.as_bytes()))
}

pub fn coupon(base: &dyn StateBase, code: &str) -> Result<Option<CouponState>> {
    get(base, "coupon", &k(key::COUPON, code.as_bytes()))
}

pub fn group(base: &dyn StateBase, id: &str) -> Result<Option<GroupState>> {
    get(base, "group", &k(key::GROUP, id.as_bytes()))
}

pub fn published_ruleset(base: &dyn StateBase) -> Result<Option<(String, u32)>> {
    get(base, "published ruleset", key::RULESET)
}

pub fn hub_terminal(base: &dyn StateBase, terminal: &str, epoch: u64) -> Result<Option<HubTerminal>> {
    get(base, "terminal", &terminal_key(terminal, epoch))
}

pub fn record_hash(base: &dyn StateBase, terminal: &str, epoch: u64, seq: u64) -> Result<Option<[u8; 32]>> {
    let page: Option<HashPage> = get(base, "record hashes", &record_page_key(terminal, epoch, seq))?;
    Ok(page.and_then(|p| p.get(seq)).map(|(hash, _)| hash))
}

/// The feed keys after `cursor`: the range `[from, to)`.
pub fn feed_range(cursor: u64) -> (Vec<u8>, Vec<u8>) {
    (
        k(key::FEED, &cursor.saturating_add(1).to_be_bytes()),
        vec![key::FEED + 1],
    )
}

/// A feed key's (seq, kind, id).
pub fn parse_feed_key(k: &[u8]) -> Option<(u64, FeedKind, String)> {
    let seq = u64::from_be_bytes(k.get(1..9)?.try_into().ok()?);
    let kind = FeedKind::of(*k.get(9)?)?;
    Some((seq, kind, String::from_utf8_lossy(&k[10..]).into_owned()))
}

/// A feed key, for tests of the parse.
pub fn feed_key_of(seq: u64, kind: FeedKind, id: &str) -> Vec<u8> {
    feed_key(seq, kind, id)
}

/// The key prefixes of the hub's listings.
pub const TERMINALS: &[u8] = &[key::TERMINAL];
pub const NEGATIVE: &[u8] = &[key::NEGATIVE];
pub const LEDGER_PAGES: &[u8] = &[key::LEDGER];
pub const TX_NOTES: &[u8] = &[key::TX];

pub fn decode_terminal(v: &[u8]) -> Result<HubTerminal> {
    dec("terminal", v)
}

/// A negative-balance entry's (member id, balance).
pub fn decode_negative(k: &[u8], v: &[u8]) -> Result<(String, i64)> {
    Ok((String::from_utf8_lossy(&k[1..]).into_owned(), dec("balance", v)?))
}

/// What a written key says that the hub's relational projection keeps.
pub enum Projected {
    Member(Box<MemberState>),
    Terminal(HubTerminal),
    Coupon(String, CouponState),
    Group(Box<GroupState>),
    /// A page of a member's points ledger: the member, the number of its first entry,
    /// its entries oldest first.
    Ledger(String, u64, Vec<super::LedgerEntry>),
    /// What a transaction's note says of its refunds (a note without any is `None`
    /// from `project`: a redemption's lots alone are not projected).
    Refunds(String, TxRefunds),
}

/// A checkout's refunds so far, summed over them.
pub struct TxRefunds {
    pub refunds: i32,
    pub amount: i64,
    pub points_returned: i64,
    pub points_clawed_back: i64,
}

/// The member and first entry number of a ledger page's key.
pub fn ledger_page_of(k: &[u8]) -> Option<(String, u64)> {
    // 'L', the member id, 0, the page number (4 bytes).
    if k.first() != Some(&key::LEDGER) || k.len() < 6 || k[k.len() - 5] != 0 {
        return None;
    }
    let id = &k[1..k.len() - 5];
    let page = u32::from_be_bytes(k[k.len() - 4..].try_into().ok()?) as u64;
    Some((String::from_utf8_lossy(id).into_owned(), page * super::history::PAGE))
}

/// The projection of one write, if its key is of a kind the projection keeps.
pub fn project(k: &[u8], v: &[u8]) -> Result<Option<Projected>> {
    Ok(match k.first() {
        Some(&key::MEMBER) => Some(Projected::Member(Box::new(dec::<super::MemberRec>("member", v)?.state))),
        Some(&key::TERMINAL) => Some(Projected::Terminal(dec("terminal", v)?)),
        Some(&key::COUPON) => Some(Projected::Coupon(
            String::from_utf8_lossy(&k[1..]).into_owned(),
            dec("coupon", v)?,
        )),
        Some(&key::GROUP) => Some(Projected::Group(Box::new(dec("group", v)?))),
        Some(&key::LEDGER) => match ledger_page_of(k) {
            Some((member, first)) => Some(Projected::Ledger(member, first, super::history::decode_page(v)?)),
            None => None,
        },
        Some(&key::TX) => {
            let note: super::TxNote = dec("transaction", v)?;
            (!note.refund_ids.is_empty()).then(|| {
                Projected::Refunds(
                    String::from_utf8_lossy(&k[1..]).into_owned(),
                    TxRefunds {
                        refunds: note.refund_ids.len() as i32,
                        amount: note.refunded.amount,
                        points_returned: note.refunded.points_returned,
                        points_clawed_back: note.refunded.points_clawed_back,
                    },
                )
            })
        }
        _ => None,
    })
}

/// The member a canonical phone finds (a merged member is found by nothing).
pub fn member_by_phone(base: &dyn StateBase, phone: &str) -> Result<Option<MemberState>> {
    let Some(id) = phone_owner(base, phone)? else {
        return Ok(None);
    };
    Ok(member(base, &id)?.filter(|m| m.merged_into.is_none() && m.phone == phone))
}

/// A member's coupons, by code.
pub fn member_coupons(base: &dyn StateBase, member_id: &str) -> Result<Vec<(String, CouponState)>> {
    let mut prefix = k(key::MEMBER_COUPON, member_id.as_bytes());
    prefix.push(0);
    let mut out = Vec::new();
    for key in base.keys_with_prefix(&prefix)? {
        let code = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
        if let Some(c) = coupon(base, &code)? {
            out.push((code, c));
        }
    }
    Ok(out)
}

/// A deal's groups, oldest first.
pub fn deal_groups(base: &dyn StateBase, deal: &str) -> Result<Vec<GroupState>> {
    let ids: Vec<String> = get(base, "deal groups", &k(key::DEAL_GROUP, deal.as_bytes()))?.unwrap_or_default();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(g) = group(base, &id)? {
            out.push(g);
        }
    }
    Ok(out)
}

/// A member's points ledger, newest first (as `Store::ledger`).
pub fn ledger(
    base: &dyn StateBase,
    member_id: &str,
    before: Option<u64>,
    limit: usize,
) -> Result<super::history::Page<super::LedgerEntry>> {
    let len =
        get::<super::MemberRec>(base, "member", &k(key::MEMBER, member_id.as_bytes()))?.map_or(0, |m| m.ledger_len);
    pages(base, super::history::LEDGER, member_id, len, before, limit)
}

/// A member's transactions, newest first (as `Store::transactions`).
pub fn transactions(
    base: &dyn StateBase,
    member_id: &str,
    before: Option<u64>,
    limit: usize,
) -> Result<super::history::Page<super::TxSummary>> {
    let len =
        get::<super::MemberRec>(base, "member", &k(key::MEMBER, member_id.as_bytes()))?.map_or(0, |m| m.history_len);
    pages(base, super::history::HISTORY, member_id, len, before, limit)
}

fn pages<T: serde::de::DeserializeOwned>(
    base: &dyn StateBase,
    prefix: u8,
    member_id: &str,
    len: u64,
    before: Option<u64>,
    limit: usize,
) -> Result<super::history::Page<T>> {
    use super::history;
    history::newest_first(len, before, limit, |page| {
        let mut out = Ok(vec![]);
        base.visit(&history::page_key(prefix, member_id, page), &mut |bytes| {
            out = history::decode_page(bytes);
            Ok(())
        })?;
        out
    })
}

/// The install epochs of `terminal`'s streams the hub holds, in order.
fn epochs(base: &dyn StateBase, terminal: &str) -> Result<Vec<u64>> {
    // 'T', the terminal id, 0, the epoch (8 bytes).
    let mut prefix = k(key::TERMINAL, terminal.as_bytes());
    prefix.push(0);
    Ok(base
        .keys_with_prefix(&prefix)?
        .iter()
        .filter_map(|key| key.get(prefix.len()..).and_then(|e| <[u8; 8]>::try_from(e).ok()))
        .map(u64::from_be_bytes)
        .collect())
}

/// Hub: the terminal stream a transaction id comes from.
fn stream_of(base: &dyn StateBase, tx_id: &str) -> Result<Option<(String, u64)>> {
    let Some((terminal, epoch32, _)) = super::parse_tx_id(tx_id) else {
        return Ok(None);
    };
    Ok(epochs(base, terminal)?
        .into_iter()
        .find(|e| *e as u32 == epoch32)
        .map(|e| (terminal.to_string(), e)))
}

/// Hub: a checkout any terminal made, by id (as `Store::hub_tx`).
pub fn hub_tx(base: &dyn StateBase, tx_id: &str) -> Result<Option<super::TxState>> {
    match stream_of(base, tx_id)? {
        Some((terminal, epoch)) => apply::find_remote_tx(base, tx_id, &terminal, epoch),
        None => Ok(None),
    }
}

/// A checkout by id: on a terminal its own, on the hub any terminal's.
pub fn find_tx(base: &dyn StateBase, tx_id: &str) -> Result<Option<super::TxState>> {
    if base.hub() {
        hub_tx(base, tx_id)
    } else {
        apply::find_tx(base, tx_id)
    }
}

/// The journal record a transaction id names (checkout, refund, reward): on a terminal
/// its own, on the hub any terminal's (as `Store::tx_record`).
pub fn tx_record(base: &dyn StateBase, tx_id: &str) -> Result<Option<Record>> {
    if !base.hub() {
        return apply::find_record(base, tx_id, None);
    }
    match stream_of(base, tx_id)? {
        Some((terminal, epoch)) => apply::find_record(base, tx_id, Some((&terminal, epoch))),
        None => Ok(None),
    }
}

pub fn staff(base: &dyn StateBase, staff_id: &str) -> Result<Option<super::StaffState>> {
    get(base, "staff", &k(key::STAFF, staff_id.as_bytes()))
}

/// A terminal that has synced with the hub, or this node itself.
pub fn knows_terminal(base: &dyn StateBase, terminal: &str) -> Result<bool> {
    Ok(!epochs(base, terminal)?.is_empty() || base.identity()?.is_some_and(|(own, _)| own == terminal))
}

/// Hub: conflicts, resolved ones included, by id.
pub fn conflicts(base: &dyn StateBase) -> Result<Vec<super::Conflict>> {
    let mut out = Vec::new();
    for key in base.keys_with_prefix(&[key::CONFLICT])? {
        if let Some(c) = get(base, "conflict", &key)? {
            out.push(c);
        }
    }
    Ok(out)
}

pub fn conflict(base: &dyn StateBase, id: &str) -> Result<Option<super::Conflict>> {
    get(base, "conflict", &apply::conflict_key(id))
}

/// One index range a member search reads (as `Store::search`): keys in `[from, end)`
/// whose key and value pass `keep`, each naming a member id.
pub struct IndexScan {
    pub from: Vec<u8>,
    pub end: Vec<u8>,
    prefix_len: usize,
    test: IndexTest,
}

enum IndexTest {
    NameStarts(String),
    PhoneEnds(String),
    CardStarts(String),
}

impl IndexScan {
    pub fn keep(&self, k: &[u8], v: &[u8]) -> bool {
        match &self.test {
            IndexTest::NameStarts(name) => v.starts_with(name.as_bytes()),
            IndexTest::PhoneEnds(digits) => v.ends_with(digits.as_bytes()),
            IndexTest::CardStarts(card) => {
                let at = k.iter().rposition(|&b| b == 0).map_or(k.len(), |i| i + 1);
                k[at..].starts_with(card.as_bytes())
            }
        }
    }

    pub fn id<'a>(&self, k: &'a [u8]) -> &'a [u8] {
        super::search::id_in(k, self.prefix_len)
    }
}

/// The index ranges a search text reads, after member `after`.
pub fn search_scans(text: &str, after: Option<&str>) -> Vec<IndexScan> {
    let q = super::search::Query::new(text);
    let scan = |prefix: &[u8], test| {
        let mut from = prefix.to_vec();
        if let Some(after) = after {
            from.extend_from_slice(after.as_bytes());
            from.push(1);
        }
        let mut end = prefix.to_vec();
        *end.last_mut().expect("index prefixes end in 0") = 1;
        IndexScan {
            from,
            end,
            prefix_len: prefix.len(),
            test,
        }
    };
    let mut out = Vec::new();
    // The level indexes, scanned in member id order with a filter (the sled store
    // reads a rare prefix from the ordered indexes first: `Store::search`).
    if let Some((_, level, name)) = &q.name {
        out.push(scan(level, IndexTest::NameStarts(name.clone())));
    }
    if let Some((prefix, digits)) = &q.phone {
        out.push(scan(prefix, IndexTest::PhoneEnds(digits.clone())));
    }
    if let Some((_, level, card)) = &q.card {
        out.push(scan(level, IndexTest::CardStarts(card.clone())));
    }
    out
}
