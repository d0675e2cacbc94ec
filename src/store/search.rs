//! Finding members: by canonical phone (the `p` keys), and by a text that may be a name
//! prefix (any script, case-insensitive), a phone suffix of 4 or more digits, or a card
//! prefix, with results in member id order and a cursor that stays right as members
//! are added.
//!
//! Three indexes hold, per member, a key that ends in the member id (so each scans in
//! member id order) and a value to filter by:
//! - `N` + each prefix of the lower-cased name up to `NAME_PREFIX` characters -> the
//!   whole lower-cased name (a longer query scans its first characters and filters);
//! - `S` + the phone's last 4 digits -> the phone (a longer suffix filters);
//! - `B` + a card's first 4 characters + 0 + member id + 0 + card -> () (active cards).
//!
//! They are kept by `apply` (a member's old keys replaced by its new ones once a step
//! ends). A merged member is in none of them.

use super::k;
use crate::model::{CardStatus, MemberState};

/// A member's index keys with their values.
pub(super) type IndexKeys = Vec<(Vec<u8>, Vec<u8>)>;

pub(super) const NAME: u8 = b'N';
pub(super) const PHONE_SUFFIX: u8 = b'S';
pub(super) const CARD_PREFIX: u8 = b'B';

/// Characters of a name indexed as prefixes.
pub(super) const NAME_PREFIX: usize = 4;
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
    let mut prefix = String::new();
    for c in folded.chars().take(NAME_PREFIX) {
        prefix.push(c);
        out.push((with_id(k(NAME, prefix.as_bytes()), id), folded.as_bytes().to_vec()));
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
        }
    }
    out
}

/// What a query text is searched as.
pub(super) struct Query {
    /// The name index's key prefix (up to `NAME_PREFIX` folded characters) and the
    /// whole folded text the name must start with.
    pub name: (Vec<u8>, String),
    /// Digits of 4 or more: the suffix index's key prefix and the digits.
    pub phone: Option<(Vec<u8>, String)>,
    /// A card number of 4 or more characters: the card index's key prefix and it.
    pub card: Option<(Vec<u8>, String)>,
}

impl Query {
    pub fn new(text: &str) -> Query {
        let folded = fold(text.trim());
        let head: String = folded.chars().take(NAME_PREFIX).collect();
        let mut name_key = k(NAME, head.as_bytes());
        name_key.push(0);
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
            (key, card)
        });
        Query {
            name: (name_key, folded),
            phone,
            card,
        }
    }
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
        assert!(keys.contains(&b"S0001\0m-1".to_vec()));
        assert!(keys.contains(&b"B04A1\0m-1\x0004A1B2C3".to_vec()));
        assert_eq!(keys.len(), 6, "4 name prefixes, the phone, one active card");
        let merged = MemberState {
            merged_into: Some("m-2".into()),
            ..m
        };
        assert!(keys_of(&merged).is_empty());
        assert_eq!(fold("ÄNN 王"), "änn 王");
        let q = Query::new("0001");
        assert_eq!(q.phone.unwrap().1, "0001");
        assert_eq!(q.card.unwrap().1, "0001");
        assert!(Query::new("王").phone.is_none());
    }
}
