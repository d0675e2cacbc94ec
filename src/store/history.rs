//! Per-member history, kept as records apply: the points ledger (every change of the
//! balance, with its kind, the balance after it, the transaction or reason, and who)
//! and the member's transactions. Both are read newest first, a page at a time,
//! independent of how long the journal is: entries live in pages of `PAGE` under the
//! member (`L`/`H` + member id + 0 + page number), each page appended to without
//! decoding what it holds (like the idempotency buckets).

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::{k, VERSION};
use crate::error::{Error, Result};
use crate::model::Ts;

/// Entries of a list, newest first, each with its number, and where the next page
/// starts (None at the oldest).
pub type Page<T> = (Vec<(u64, T)>, Option<u64>);

/// Entries per page.
pub(super) const PAGE: u64 = 32;

/// What a ledger entry is (interface.md: `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerKind {
    Earn,
    Redeem,
    Reward,
    Expire,
    Clawback,
    Return,
    Adjust,
    Activity,
    Gift,
}

impl LedgerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LedgerKind::Earn => "earn",
            LedgerKind::Redeem => "redeem",
            LedgerKind::Reward => "reward",
            LedgerKind::Expire => "expire",
            LedgerKind::Clawback => "clawback",
            LedgerKind::Return => "return",
            LedgerKind::Adjust => "adjust",
            LedgerKind::Activity => "activity",
            LedgerKind::Gift => "gift",
        }
    }
}

/// One change of a member's balance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub at: Ts,
    pub kind: LedgerKind,
    pub points: i64,
    pub balance_after: i64,
    pub tx_id: Option<String>,
    pub reason: Option<String>,
    pub by: Option<String>,
}

/// One of a member's checkouts, as their history lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxSummary {
    pub tx_id: String,
    pub at: Ts,
    pub total: i64,
    pub points_earned: i64,
    pub points_redeemed: i64,
    pub terminal_id: String,
    /// The member's balance right after it (what its receipt said).
    pub balance_after: i64,
    pub by: Option<String>,
}

pub(super) const LEDGER: u8 = b'L';
pub(super) const HISTORY: u8 = b'H';

/// The key of page `page` of a member's ledger or history.
pub(super) fn page_key(prefix: u8, member_id: &str, page: u64) -> Vec<u8> {
    let mut v = k(prefix, member_id.as_bytes());
    v.push(0);
    v.extend_from_slice(&(page as u32).to_be_bytes());
    v
}

/// A page's bytes with one more entry appended.
pub(super) fn append<T: Serialize>(page: Option<Vec<u8>>, entry: &T) -> Vec<u8> {
    let bytes = page.unwrap_or_else(|| vec![VERSION]);
    postcard::to_extend(entry, bytes).expect("state always encodes")
}

/// The entries of a page, oldest first.
pub(super) fn decode_page<T: DeserializeOwned>(bytes: &[u8]) -> Result<Vec<T>> {
    let Some((&VERSION, mut rest)) = bytes.split_first() else {
        return Err(Error::internal(
            "state store: a history page has an unknown encoding version",
        ));
    };
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (e, next) = postcard::take_from_bytes::<T>(rest)
            .map_err(|e| Error::internal(format!("state store: bad history page: {e}")))?;
        out.push(e);
        rest = next;
    }
    Ok(out)
}

/// Entries `before - 1, before - 2, ...` (newest first) of a list of `len` entries,
/// at most `limit`, read through `page` (page number -> its entries); and where the
/// next page starts (None at the oldest). Entry `i` is in page `i / PAGE`.
pub(super) fn newest_first<T>(
    len: u64,
    before: Option<u64>,
    limit: usize,
    mut page: impl FnMut(u64) -> Result<Vec<T>>,
) -> Result<Page<T>> {
    let mut end = before.unwrap_or(len).min(len);
    let mut out = Vec::new();
    while end > 0 && out.len() < limit {
        let p = (end - 1) / PAGE;
        let mut entries = page(p)?;
        let first = p * PAGE;
        entries.truncate((end - first) as usize);
        while let Some(e) = entries.pop() {
            if out.len() == limit {
                break;
            }
            end -= 1;
            out.push((end, e));
        }
        if entries.is_empty() && out.len() < limit {
            end = first;
        }
    }
    let next = (end > 0 && !out.is_empty()).then_some(end);
    Ok((out, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_read_newest_first_with_stable_cursors() {
        let pages: Vec<Vec<u64>> = (0..4)
            .map(|p| (p * PAGE..((p + 1) * PAGE).min(100)).collect())
            .collect();
        let read = |p: u64| Ok(pages[p as usize].clone());
        let (first, next) = newest_first(100, None, 20, read).unwrap();
        assert_eq!(
            first.iter().map(|e| e.1).collect::<Vec<_>>(),
            (80..100).rev().collect::<Vec<_>>()
        );
        assert_eq!(next, Some(80));
        // A cursor from before 50 more entries were added still means the same place.
        let (again, _) = newest_first(150, Some(80), 5, |p| Ok((p * PAGE..(p + 1) * PAGE).collect())).unwrap();
        assert_eq!(
            again.iter().map(|e| e.1).collect::<Vec<u64>>(),
            vec![79, 78, 77, 76, 75]
        );
        let mut all = Vec::new();
        let mut cursor = None;
        loop {
            let (got, next) = newest_first(100, cursor, 7, read).unwrap();
            all.extend(got.into_iter().map(|e| e.1));
            match next {
                Some(n) => cursor = Some(n),
                None => break,
            }
        }
        assert_eq!(all, (0..100).rev().collect::<Vec<_>>());
        let page = append(Some(append(None, &LedgerKind::Earn)), &LedgerKind::Gift);
        assert_eq!(
            decode_page::<LedgerKind>(&page).unwrap(),
            vec![LedgerKind::Earn, LedgerKind::Gift]
        );
    }
}
