//! A member at the till: finding them (by id, phone, or a search), fixing their details,
//! their status, their PIN, an unblocked card.

use super::{At, Engine, Keyed, Step};
use crate::error::{Code, Error, Result};
use crate::identity::display_phone;
use crate::model::{self, canonical_card, check_text, Birthday, CardStatus, MemberState, Role};
use crate::record::{self, Body};
use crate::store::Store;
use crate::views::MemberView;

/// The most members a search page holds, and how many it holds unless asked.
pub const SEARCH_MAX: usize = 100;
pub const SEARCH_DEFAULT: usize = 20;

/// An edit of a member as the CLI and API give it: each field present is replaced.
// The `schema` bounds are `edit_member`'s checks, for GET /v1/openapi.json.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberPatch {
    #[serde(default)]
    #[schema(schema_with = crate::views::schema::name_or_null, required = false)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::views::schema::phone_or_null, required = false)]
    pub phone: Option<String>,
    /// `null` clears the birthday; absent leaves it.
    #[serde(default, with = "serde_with_null")]
    #[schema(schema_with = crate::views::schema::birthday, required = false)]
    pub birthday: Option<Option<String>>,
    #[serde(default)]
    #[schema(schema_with = crate::views::schema::tags_or_null, required = false)]
    pub tags: Option<Vec<String>>,
}

/// `Option<Option<T>>` that tells an absent field (None) from `null` (Some(None)).
mod serde_with_null {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(d).map(Some)
    }

    pub fn serialize<S: Serializer, T: Serialize>(v: &Option<Option<T>>, s: S) -> Result<S::Ok, S::Error> {
        v.serialize(s)
    }
}

impl Engine {
    /// A member by id (a merged member too: its id still answers).
    pub fn member(&self, member_id: &str, at: &At) -> Result<MemberView> {
        let m = self.member_state(member_id)?;
        Ok(MemberView::new(&self.rules(), &m, at.ts, at.trusted))
    }

    pub(super) fn member_state(&self, member_id: &str) -> Result<MemberState> {
        self.store
            .member(member_id)?
            .ok_or_else(|| Error::new(Code::UnknownMember, format!("no member has id {member_id:?}")))
    }

    /// The member a phone finds (any spelling of it), if one.
    pub fn find_by_phone(&self, phone: &str, at: &At) -> Result<Vec<MemberView>> {
        let phone = self.canonical_phone(phone)?;
        let rules = self.rules();
        Ok(self
            .store
            .member_by_phone(&phone)?
            .map(|m| MemberView::new(&rules, &m, at.ts, at.trusted))
            .into_iter()
            .collect())
    }

    /// Members a text finds (a name prefix, a phone suffix of 4+ digits, a card prefix),
    /// in member id order after the cursor `after`; and the next page's cursor.
    pub fn search(
        &self,
        text: &str,
        after: Option<&str>,
        limit: Option<usize>,
        at: &At,
    ) -> Result<(Vec<MemberView>, Option<String>)> {
        let text = check_text("q", text.trim(), 100)?;
        let limit = limit.unwrap_or(SEARCH_DEFAULT);
        if !(1..=SEARCH_MAX).contains(&limit) {
            return Err(Error::invalid(format!("limit must be 1 to {SEARCH_MAX}")));
        }
        if let Some(a) = after {
            check_text("after", a, 64)?;
        }
        let rules = self.rules();
        let (members, next) = self.store.search(text, after, limit)?;
        let views = members
            .iter()
            .map(|m| MemberView::new(&rules, m, at.ts, at.trusted))
            .collect();
        Ok((views, next))
    }

    /// Changes a member's name, phone, birthday or tags.
    pub fn edit_member(&self, member_id: &str, patch: MemberPatch, key: Option<&str>, at: At) -> Result<MemberView> {
        let name = patch
            .name
            .as_deref()
            .map(|n| check_text("name", n.trim(), 100).map(str::to_string))
            .transpose()?;
        let phone = patch.phone.as_deref().map(|p| self.canonical_phone(p)).transpose()?;
        let birthday = match &patch.birthday {
            None => None,
            Some(None) => Some(None),
            Some(Some(b)) => Some(Some(Birthday::parse(b)?)),
        };
        let tags = patch.tags.as_deref().map(model::check_tags).transpose()?;
        let key = key
            .map(|k| Keyed::new(k, "member edit", &(member_id, &name, &phone, birthday, &tags)))
            .transpose()?;
        let id = member_id.to_string();
        self.commit(
            &at,
            key.as_ref(),
            |store, _| {
                let m = live(store, &id)?;
                if let Some(p) = &phone {
                    if store.member_by_phone(p)?.is_some_and(|o| o.member_id != id) {
                        return Err(Error::new(
                            Code::PhoneTaken,
                            format!("phone {} already belongs to another member", display_phone(p)),
                        ));
                    }
                }
                let edit = record::MemberEdit {
                    member_id: id.clone(),
                    name: name.filter(|n| *n != m.name),
                    phone: phone.filter(|p| *p != m.phone),
                    birthday: birthday.filter(|b| *b != m.birthday).map(|b| b.map(Into::into)),
                    tags: tags.filter(|t| *t != m.tags),
                };
                let unchanged =
                    edit.name.is_none() && edit.phone.is_none() && edit.birthday.is_none() && edit.tags.is_none();
                let bodies = if unchanged {
                    vec![]
                } else {
                    vec![Body::MemberEdit(Box::new(edit))]
                };
                Ok(Step::Done(bodies, ()))
            },
            |store, rules, _| self.member_view(store, rules, &id, &at),
            |store, rules, _, _| self.member_view(store, rules, &id, &at),
        )
    }

    /// Makes a member active or inactive (manager).
    pub fn set_status(&self, member_id: &str, active: bool, key: Option<&str>, at: At) -> Result<MemberView> {
        at.require(Role::Manager, "changing a member's status")?;
        let key = key
            .map(|k| Keyed::new(k, "member status", &(member_id, active)))
            .transpose()?;
        let id = member_id.to_string();
        self.commit(
            &at,
            key.as_ref(),
            |store, _| {
                let m = live(store, &id)?;
                let bodies = if m.active == active {
                    vec![]
                } else {
                    vec![Body::MemberStatus {
                        member_id: id.clone(),
                        active,
                    }]
                };
                Ok(Step::Done(bodies, ()))
            },
            |store, rules, _| self.member_view(store, rules, &id, &at),
            |store, rules, _, _| self.member_view(store, rules, &id, &at),
        )
    }

    /// A new PIN: with the old one (anyone), or without it as a reset by a manager,
    /// which also lifts a PIN lock. A wrong old PIN counts towards the lock.
    pub fn set_pin(
        &self,
        member_id: &str,
        old_pin: Option<&str>,
        new_pin: &str,
        key: Option<&str>,
        at: At,
    ) -> Result<MemberView> {
        model::validate_pin(new_pin)?;
        if old_pin.is_none() {
            at.require(Role::Manager, "resetting a PIN")?;
        }
        if let Some(old) = old_pin {
            model::validate_pin(old)?;
        }
        let key = key
            .map(|k| Keyed::new(k, "member pin", &(member_id, old_pin, new_pin)))
            .transpose()?;
        let m = self.member_state(member_id)?;
        // argon2 outside the writer lock; under it, the hash must still be the one checked.
        let checked = old_pin.map(|old| {
            (
                m.pin_hash.clone(),
                m.pin_hash.as_deref().is_some_and(|h| crate::pin::verify(old, h)),
            )
        });
        let new_hash = crate::pin::hash(new_pin)?;
        let id = member_id.to_string();
        self.commit(
            &at,
            key.as_ref(),
            |store, _| {
                let m = live(store, &id)?;
                let reset = match &checked {
                    None => true,
                    Some((hash, right)) => {
                        if m.pin_locked_at(at.ts) {
                            return Err(Error::new(
                                Code::PinLocked,
                                "too many wrong PINs; a manager can reset it",
                            ));
                        }
                        if m.pin_hash.is_none() {
                            return Err(Error::new(
                                Code::PinRequired,
                                "the member has no PIN to change; a manager sets one",
                            ));
                        }
                        if *hash != m.pin_hash || !right {
                            let fail = Body::PinFail { member_id: id.clone() };
                            return Ok(Step::Refused(
                                vec![fail],
                                Error::new(Code::PinInvalid, "the old PIN is wrong"),
                            ));
                        }
                        false
                    }
                };
                let body = Body::PinSet {
                    member_id: id.clone(),
                    pin_hash: new_hash,
                    reset,
                };
                Ok(Step::Done(vec![body], ()))
            },
            |store, rules, _| self.member_view(store, rules, &id, &at),
            |store, rules, _, _| self.member_view(store, rules, &id, &at),
        )
    }

    /// Unblocks a card (manager): refused while the member has another active card (a
    /// replacement), which would leave them two.
    pub fn unblock_card(&self, card: &str, key: Option<&str>, at: At) -> Result<MemberView> {
        at.require(Role::Manager, "unblocking a card")?;
        let card = canonical_card(card)?;
        let key = key.map(|k| Keyed::new(k, "card unblock", &card)).transpose()?;
        self.commit(
            &at,
            key.as_ref(),
            |_, _| {
                let (m, status) = self.member_by_card(&card)?;
                if status == CardStatus::Active {
                    return Ok(Step::Done(vec![], m.member_id));
                }
                if let Some((other, _)) = m.cards.iter().find(|(c, s)| *c != card && *s == CardStatus::Active) {
                    return Err(Error::invalid(format!(
                        "member {} has the active card {other}; block it before unblocking {card}",
                        m.member_id
                    )));
                }
                if m.merged_into.is_some() {
                    return Err(Error::new(
                        Code::MemberInactive,
                        format!("member {} was merged", m.member_id),
                    ));
                }
                Ok(Step::Done(vec![Body::CardUnblock { card: card.clone() }], m.member_id))
            },
            |store, rules, id| self.member_view(store, rules, &id, &at),
            |store, rules, rec, _| self.member_now(store, rules, rec, &at),
        )
    }
}

/// A member a change may be made to: one that exists and was not merged away.
pub(super) fn live(store: &Store, member_id: &str) -> Result<MemberState> {
    let m = store
        .member(member_id)?
        .ok_or_else(|| Error::new(Code::UnknownMember, format!("no member has id {member_id:?}")))?;
    if let Some(into) = &m.merged_into {
        return Err(Error::new(
            Code::MemberInactive,
            format!("member {member_id} was merged into {into}"),
        ));
    }
    Ok(m)
}
