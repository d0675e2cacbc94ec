//! Members and their cards: enrolment, lookups, blocking and replacing cards.

use super::{At, Engine, Keyed, Step};
use crate::error::{Code, Error, Result};
use crate::identity;
use crate::model::{self, canonical_card, check_text, day_no, Birthday, CardStatus, MemberState};
use crate::record::{self, Body, Record};
use crate::rules::{local_date, Ruleset};
use crate::state;
use crate::store::{Idem, Store};
use crate::views::{DailyView, MemberView};

/// A new member as the CLI and API give it. Without a card the member gets a virtual one.
// The `schema` bounds are `add_member`'s checks, for GET /v1/openapi.json; the name is
// trimmed before its length is checked, so no upper bound is declared.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    #[serde(default)]
    #[schema(schema_with = crate::views::schema::card_or_null, required = false)]
    pub card: Option<String>,
    #[schema(schema_with = crate::views::schema::name)]
    pub name: String,
    /// Any spelling of the phone (`+86 138-0000-0001`, `13800000001`): kept canonical.
    #[schema(schema_with = crate::views::schema::phone)]
    pub phone: String,
    #[serde(default)]
    #[schema(schema_with = crate::views::schema::birthday, required = false)]
    pub birthday: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::views::schema::pin, required = false)]
    pub pin: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::views::schema::tags, required = false)]
    pub tags: Vec<String>,
}

impl Engine {
    pub(super) fn member_by_card(&self, card: &str) -> Result<(MemberState, CardStatus)> {
        let owner = self
            .store
            .card_owner(card)?
            .ok_or_else(|| Error::new(Code::UnknownCard, format!("no member has card {card}")))?;
        let m = self
            .store
            .member(&owner)?
            .ok_or_else(|| Error::internal(format!("card {card} points at missing member {owner}")))?;
        let status = m
            .cards
            .iter()
            .find(|(c, _)| c == card)
            .map_or(CardStatus::Blocked, |c| c.1);
        Ok((m, status))
    }

    /// The member of an active card; blocked cards are refused.
    pub(super) fn active_member(&self, card: &str) -> Result<MemberState> {
        Ok(self.active_member_and_offline(card)?.0)
    }

    /// The member of an active card, and the points this terminal redeemed for them
    /// that the hub has not acknowledged (None when no offline cap applies), in one read.
    pub(super) fn active_member_and_offline(&self, card: &str) -> Result<(MemberState, Option<i64>)> {
        let owner = self
            .store
            .card_owner(card)?
            .ok_or_else(|| Error::new(Code::UnknownCard, format!("no member has card {card}")))?;
        let (m, offline) = self
            .store
            .member_and_offline(&owner)?
            .ok_or_else(|| Error::internal(format!("card {card} points at missing member {owner}")))?;
        if !m.cards.iter().any(|(c, s)| c == card && *s == CardStatus::Active) {
            return Err(Error::new(Code::CardBlocked, format!("card {card} is blocked")));
        }
        if let Some(into) = &m.merged_into {
            return Err(Error::new(
                Code::MemberInactive,
                format!("member {} was merged into {into}", m.member_id),
            ));
        }
        if !m.active {
            return Err(Error::new(
                Code::MemberInactive,
                format!("member {} is inactive", m.member_id),
            ));
        }
        Ok((m, self.cfg.offline_cap.then_some(offline)))
    }

    /// A member by card, as seen at `at` (blocked cards are shown too).
    pub fn show_member(&self, card: &str, at: At) -> Result<MemberView> {
        let card = canonical_card(card)?;
        let (m, _) = self.member_by_card(&card)?;
        Ok(MemberView::new(&self.rules(), &m, at.ts, at.trusted))
    }

    /// What a card read means: the member, or unknown/blocked.
    pub fn lookup_card(&self, card: &str) -> Result<(Option<MemberState>, Option<CardStatus>)> {
        match self.member_by_card(card) {
            Ok((m, s)) => Ok((Some(m), Some(s))),
            Err(e) if e.code == Code::UnknownCard => Ok((None, None)),
            Err(e) => Err(e),
        }
    }

    pub fn daily(&self, date: Option<chrono::NaiveDate>) -> Result<DailyView> {
        let rules = self.rules();
        let date = date.unwrap_or_else(|| local_date(&rules, self.now()));
        let day = day_no(date);
        Ok(DailyView::new(&rules, day, self.store.daily(day)?))
    }

    pub(super) fn member_view(&self, store: &Store, rules: &Ruleset, member_id: &str, at: &At) -> Result<MemberView> {
        let m = store
            .member(member_id)?
            .ok_or_else(|| Error::internal(format!("member {member_id} vanished")))?;
        Ok(MemberView::new(rules, &m, at.ts, at.trusted))
    }

    /// A card change asked again with its key answers with the member as they are now
    /// (their cards as the first call left them, unless changed since).
    pub(super) fn member_now(&self, store: &Store, rules: &Ruleset, rec: &Record, at: &At) -> Result<MemberView> {
        let card = match &rec.body {
            Body::CardBlock { card } | Body::CardUnblock { card } => card,
            Body::CardReplace { new, .. } => new,
            _ => return Err(Error::internal("an idempotency key answers another kind of change")),
        };
        let owner = store
            .card_owner(card)?
            .ok_or_else(|| Error::internal(format!("card {card} has no owner")))?;
        self.member_view(store, rules, &owner, at)
    }

    pub fn add_member(&self, req: NewMember, key: Option<&str>, at: At) -> Result<MemberView> {
        let card = req.card.as_deref().map(canonical_card).transpose()?;
        let name = check_text("name", req.name.trim(), 100)?.to_string();
        let phone = self.canonical_phone(&req.phone)?;
        let birthday = req.birthday.as_deref().map(Birthday::parse).transpose()?;
        let tags = model::check_tags(&req.tags)?;
        if let Some(pin) = req.pin.as_deref() {
            model::validate_pin(pin)?;
        }
        let key = key
            .map(|k| Keyed::new(k, "member add", &(&card, &name, &phone, birthday, &req.pin, &tags)))
            .transpose()?;
        // Hashed before the writer lock: argon2 is slow on purpose.
        let pin_hash = req.pin.as_deref().map(crate::pin::hash).transpose()?;
        let member_id = format!("m-{:016x}", super::random_u64());
        let terminal = self.cfg.terminal_id.clone();
        self.commit(
            &at,
            key.as_ref(),
            |store, rules| {
                let card = match &card {
                    Some(card) => {
                        if store.card_owner(card)?.is_some() {
                            return Err(Error::new(
                                Code::MemberExists,
                                format!("card {card} already belongs to a member"),
                            ));
                        }
                        card.clone()
                    }
                    None => free_virtual_card(store)?,
                };
                if store.member_by_phone(&phone)?.is_some() {
                    return Err(Error::new(
                        Code::PhoneTaken,
                        format!("phone {} already belongs to a member", identity::display_phone(&phone)),
                    ));
                }
                let body = Body::MemberAddV2(Box::new(record::MemberAddV2 {
                    member_id: member_id.clone(),
                    card,
                    name: name.clone(),
                    phone: phone.clone(),
                    birthday: birthday.map(Into::into),
                    pin_hash,
                    tags: tags.clone(),
                }));
                // Enrolment triggers' coupons go first: the last record of a change
                // is the one its idempotency key answers from.
                let day = day_no(local_date(rules, at.ts));
                let mut bodies = Self::enrolment_coupons(store, rules, &member_id, day)?;
                bodies.push(body);
                Ok(Step::Done(bodies, ()))
            },
            |store, rules, _| self.member_view(store, rules, &member_id, &at),
            |_, rules, rec, _: &Idem| {
                // The member as enrolled, as the first answer showed them.
                let m = state::member::enrolled(&rec.body, CardStatus::Active, rec.at, &terminal)
                    .ok_or_else(|| Error::internal("an idempotency key answers another kind of change"))?;
                Ok(MemberView::new(rules, &m, rec.at, at.trusted))
            },
        )
    }

    /// The upgrade to canonical phones (0.2): once per data directory, one record with
    /// every member's phone as it is now written (history is not rewritten). A phone
    /// that two 0.1 members wrote differently stays with the first.
    pub(super) fn canonicalise_phones(&self) -> Result<()> {
        if self.store.phones_canonical()? {
            return Ok(());
        }
        let mut phones = Vec::new();
        for id in self.store.member_ids()? {
            let Some(m) = self.store.member(&id)? else { continue };
            match self.canonical_phone(&m.phone) {
                Ok(p) if p != m.phone => phones.push((id, p)),
                Ok(_) => {}
                Err(_) => tracing::warn!(
                    "member {id}: phone {:?} is kept as it was (not a phone number)",
                    m.phone
                ),
            }
        }
        if !phones.is_empty() {
            tracing::info!("made {} members' phones canonical", phones.len());
        }
        let at = self.at(None).by(super::Actor::system());
        self.commit_plain(
            &at,
            |_, _| Ok((vec![Body::PhonesCanonical { phones }], ())),
            |_, _, _| Ok(()),
        )
    }

    /// A phone as typed, in the canonical form (the config's country code for national
    /// numbers).
    pub fn canonical_phone(&self, raw: &str) -> Result<String> {
        identity::canonical_phone(raw, &self.cfg.country_code)
    }

    pub fn block_card(&self, card: &str, key: Option<&str>, at: At) -> Result<MemberView> {
        let card = canonical_card(card)?;
        let key = key.map(|k| Keyed::new(k, "card block", &card)).transpose()?;
        self.commit(
            &at,
            key.as_ref(),
            |_, _| {
                let (m, status) = self.member_by_card(&card)?;
                let bodies = match status {
                    CardStatus::Blocked => vec![],
                    CardStatus::Active => vec![Body::CardBlock { card: card.clone() }],
                };
                Ok(Step::Done(bodies, m.member_id))
            },
            |store, rules, id| self.member_view(store, rules, &id, &at),
            |store, rules, rec, _| self.member_now(store, rules, rec, &at),
        )
    }

    /// Gives the member of `old` the card `new` in its place: `new` becomes the member's
    /// one active card, every other card of theirs is blocked.
    pub fn replace_card(&self, old: &str, new: &str, key: Option<&str>, at: At) -> Result<MemberView> {
        let (old, new) = (canonical_card(old)?, canonical_card(new)?);
        let key = key.map(|k| Keyed::new(k, "card replace", &(&old, &new))).transpose()?;
        self.commit(
            &at,
            key.as_ref(),
            |store, _| {
                let (m, _) = self.member_by_card(&old)?;
                if store.card_owner(&new)?.is_some() {
                    return Err(Error::new(
                        Code::MemberExists,
                        format!("card {new} already belongs to a member"),
                    ));
                }
                let body = Body::CardReplace {
                    old: old.clone(),
                    new: new.clone(),
                };
                Ok(Step::Done(vec![body], m.member_id))
            },
            |store, rules, id| self.member_view(store, rules, &id, &at),
            |store, rules, rec, _| self.member_now(store, rules, rec, &at),
        )
    }
}

/// A virtual card number no card holds yet.
fn free_virtual_card(store: &Store) -> Result<String> {
    for _ in 0..16 {
        let card = identity::virtual_card(super::random_u64());
        if store.card_owner(&card)?.is_none() {
            return Ok(card);
        }
    }
    Err(Error::internal("no free virtual card number in 16 draws"))
}
