//! Finding members: by canonical phone (the `p` keys), and by a text that may be a name
//! prefix (any script, case-insensitive), a phone suffix of 4 or more digits, or a card
//! prefix, with results in member id order and a cursor that stays right as members
//! are added.
//!
//! A prefix that few members share is read whole from an index in name (or card) order
//! and sorted by member id; one that many share is scanned in member id order from an
//! index keyed by its first characters, filtering, where matches are dense enough that
//! a page is found soon. Per member:
//! - `A` + the lower-cased name + 0 + member id -> (): names in order;
//! - `b` + an active card + 0 + member id -> (): cards in order;
//! - `N` + the name's first L characters (L in `NAME_LEVELS`) + 0 + member id -> the
//!   whole lower-cased name (a longer query scans its longest level and filters);
//! - `S` + the phone's last 4 digits -> the phone (a longer suffix filters);
//! - `B` + a card's first 4 characters + 0 + member id + 0 + card -> () (active cards).
//!
//! They are kept by `apply` (a member's old keys replaced by its new ones once a step
//! ends). A merged member is in none of them.

use super::k;
use crate::model::{CardStatus, MemberState};

/// A member's index keys with their values.
pub(super) type IndexKeys = Vec<(Vec<u8>, Vec<u8>)>;

pub(super) const NAME_ORDER: u8 = b'A';
pub(super) const CARD_ORDER: u8 = b'b';
pub(super) const NAME: u8 = b'N';
pub(super) const PHONE_SUFFIX: u8 = b'S';
pub(super) const CARD_PREFIX: u8 = b'B';

/// Lengths (in characters) of the name prefixes indexed in member id order: every
/// length up to 4, then sparser, so that a long query shared by many members (a chain
/// whose names share a first word) still scans a level where its matches are dense.
pub(super) const NAME_LEVELS: [usize; 6] = [1, 2, 3, 4, 6, 8];
/// Matches of a prefix read whole from the ordered indexes and sorted: beyond this many,
/// the prefix is common enough for a scan in member id order to fill a page quickly.
pub(super) const ORDERED_READ: usize = 2048;
/// Digits of a phone suffix, and characters of a card prefix, indexed.
pub(super) const SUFFIX: usize = 4;

/// A name as searched: lower case (every script that has case).
pub fn fold(name: &str) -> String {
    name.chars().flat_map(char::to_lowercase).collect()
}

fn with_id(mut key: Vec<u8>, member_id: &str) -> Vec<u8> {
    key.push(0);
    key.extend_from_slice(member_id.as_bytes());
    key
}

/// The index keys (and values) a member has.
pub(super) fn keys_of(m: &MemberState) -> IndexKeys {
    if m.merged_into.is_some() {
        return vec![];
    }
    let id = &m.member_id;
    let mut out = Vec::new();
    let folded = fold(&m.name);
    if !folded.is_empty() {
        out.push((with_id(k(NAME_ORDER, folded.as_bytes()), id), vec![]));
    }
    for level in NAME_LEVELS {
        let Some((at, _)) = folded.char_indices().nth(level - 1) else {
            break;
        };
        let end = at + folded[at..].chars().next().map_or(0, char::len_utf8);
        out.push((
            with_id(k(NAME, &folded.as_bytes()[..end]), id),
            folded.as_bytes().to_vec(),
        ));
    }
    if m.phone.len() >= SUFFIX {
        let last = &m.phone[m.phone.len() - SUFFIX..];
        out.push((
            with_id(k(PHONE_SUFFIX, last.as_bytes()), id),
            m.phone.as_bytes().to_vec(),
        ));
    }
    for (card, status) in &m.cards {
        if *status == CardStatus::Active && card.len() >= SUFFIX {
            let mut key = with_id(k(CARD_PREFIX, &card.as_bytes()[..SUFFIX]), id);
            key.push(0);
            key.extend_from_slice(card.as_bytes());
            out.push((key, vec![]));
            out.push((with_id(k(CARD_ORDER, card.as_bytes()), id), vec![]));
        }
    }
    out
}

/// What a query text is searched as.
pub(super) struct Query {
    /// The folded text a name must start with: the ordered index's key prefix (`A` +
    /// it), and the level index's (its longest level, then 0).
    pub name: Option<(Vec<u8>, Vec<u8>, String)>,
    /// Digits of 4 or more: the suffix index's key prefix and the digits.
    pub phone: Option<(Vec<u8>, String)>,
    /// A card number of 4 or more characters: the ordered index's key prefix, the
    /// level index's, and the card.
    pub card: Option<(Vec<u8>, Vec<u8>, String)>,
}

impl Query {
    pub fn new(text: &str) -> Query {
        let folded = fold(text.trim());
        let chars = folded.chars().count();
        let name = NAME_LEVELS.iter().rev().find(|&&l| l <= chars).map(|&level| {
            let head: String = folded.chars().take(level).collect();
            let mut level_key = k(NAME, head.as_bytes());
            level_key.push(0);
            (k(NAME_ORDER, folded.as_bytes()), level_key, folded.clone())
        });
        let digits: String = text.chars().filter(|c| c.is_ascii_digit()).collect();
        let phone =
            (digits.len() >= SUFFIX && text.chars().all(|c| c.is_ascii_digit() || " -+".contains(c))).then(|| {
                let mut key = k(PHONE_SUFFIX, &digits.as_bytes()[digits.len() - SUFFIX..]);
                key.push(0);
                (key, digits.clone())
            });
        let card = crate::model::canonical_card(text).ok().map(|card| {
            let mut key = k(CARD_PREFIX, &card.as_bytes()[..SUFFIX]);
            key.push(0);
            (k(CARD_ORDER, card.as_bytes()), key, card)
        });
        Query { name, phone, card }
    }
}

/// The member id at the end of an ordered index key (after its last 0: names and cards
/// hold no 0).
pub(super) fn id_at_end(key: &[u8]) -> &[u8] {
    let at = key.iter().rposition(|&b| b == 0).map_or(key.len(), |i| i + 1);
    &key[at..]
}

/// The member id in an index key that starts with `prefix` (ends at the next 0).
pub(super) fn id_in(key: &[u8], prefix: usize) -> &[u8] {
    let rest = &key[prefix..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    &rest[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cover_name_prefixes_the_phone_suffix_and_active_cards() {
        let m = MemberState {
            member_id: "m-1".into(),
            name: "Zoë Ng".into(),
            phone: "8613800000001".into(),
            cards: vec![
                ("04A1B2C3".into(), CardStatus::Active),
                ("05B0".into(), CardStatus::Blocked),
            ],
            ..MemberState::default()
        };
        let keys: Vec<Vec<u8>> = keys_of(&m).into_iter().map(|(k, _)| k).collect();
        assert!(keys.contains(&b"Nz\0m-1".to_vec()));
        assert!(keys.contains(&"Nzoë \0m-1".as_bytes().to_vec()));
        assert!(keys.contains(&"Nzoë ng\0m-1".as_bytes().to_vec()));
        assert!(keys.contains(&"Azoë ng\0m-1".as_bytes().to_vec()));
        assert!(keys.contains(&b"S0001\0m-1".to_vec()));
        assert!(keys.contains(&b"B04A1\0m-1\x0004A1B2C3".to_vec()));
        assert!(keys.contains(&b"b04A1B2C3\0m-1".to_vec()));
        assert_eq!(
            keys.len(),
            9,
            "the name, its 5 levels (a 6-character name has no 8th), the phone, one active card twice"
        );
        let merged = MemberState {
            merged_into: Some("m-2".into()),
            ..m
        };
        assert!(keys_of(&merged).is_empty());
        assert_eq!(fold("ÄNN 王"), "änn 王");
        let q = Query::new("0001");
        assert_eq!(q.phone.unwrap().1, "0001");
        assert_eq!(q.card.unwrap().2, "0001");
        assert!(Query::new("王").phone.is_none());
        // The longest level a query covers: 7 characters scan the 6-character level.
        let (ordered, level, text) = Query::new("Zoë Ngu").name.unwrap();
        assert_eq!(ordered, "Azoë ngu".as_bytes());
        assert_eq!(level, "Nzoë ng\0".as_bytes());
        assert_eq!(text, "zoë ngu");
        assert!(Query::new("  ").name.is_none());
        assert_eq!(id_at_end(b"Aann\0m-7"), b"m-7");
    }
}
