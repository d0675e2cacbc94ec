//! Sales: quotes, checkouts and refunds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{At, Engine, Keyed, Step};
use crate::error::{Code, Error, Result};
use crate::model::{self, canonical_card, day_no, validate_lines, Line, MemberState, Role};
use crate::record::{self, Body};
use crate::rules::refund::{self, Paid};
use crate::rules::{self, local_date, PinCheck, Priced, Request, Ruleset};
use crate::store::Store;
use crate::views::{MemberView, Receipt, RefundView};

/// A sale to quote or commit.
// The `schema` bounds are the checks below and in `model`, for GET /v1/openapi.json.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Sale {
    #[schema(schema_with = crate::views::schema::card)]
    pub card: String,
    #[schema(min_items = 1, max_items = 500)]
    pub lines: Vec<Line>,
    #[serde(default)]
    #[schema(schema_with = crate::views::schema::redeem_points)]
    pub redeem_points: Option<i64>,
    #[serde(default)]
    #[schema(schema_with = crate::views::schema::pin)]
    pub pin: Option<String>,
    #[serde(default)]
    pub coupon: Option<String>,
}

/// A sale priced against the state: the member, the records that must come before the
/// checkout (expiry), the group of each group-buy unit offered to the rules, the price.
struct PricedSale {
    member: MemberState,
    pre: Vec<Body>,
    unit_groups: Vec<String>,
    priced: Result<Priced>,
}

/// What a checkout record is made from.
struct PricedCheckout<'a> {
    priced: Priced,
    member: &'a MemberState,
    card: &'a str,
    unit_groups: Vec<String>,
    coupons_issued: Vec<record::IssuedCoupon>,
}

/// Quotes that checked a PIN, per member: when the current minute began and how many.
/// A quote with a PIN is a PIN check (a wrong one counts towards the lock like any
/// other); this bounds how fast quotes can make them, argon2 being slow on purpose.
pub(super) type PinChecks = Mutex<HashMap<String, (Instant, u32)>>;

/// PIN-checking quotes per member per minute.
const QUOTE_PIN_CHECKS: u32 = 10;
const PIN_CHECK_WINDOW: Duration = Duration::from_secs(60);

/// A PIN checked ahead of the writer lock against the member's hash `phc`.
pub(super) struct PinAhead {
    phc: String,
    right: bool,
}

/// What makes two checkout requests "the same" for idempotency: the card, the lines, the
/// redemption and the coupon (not the instant, which a retry changes; not the PIN). The
/// same hash as 0.1 made, so that keys from before an upgrade still replay.
fn request_hash(card: &str, sale: &Sale) -> [u8; 32] {
    let canonical = (
        card,
        &sale.lines,
        sale.redeem_points.unwrap_or(0),
        sale.coupon.as_ref().map(|c| c.trim().to_ascii_uppercase()),
    );
    Sha256::digest(postcard::to_allocvec(&canonical).expect("request encodes")).into()
}

impl Engine {
    /// Checks a PIN before the writer lock is taken: argon2 is slow on purpose (tens of
    /// milliseconds, more on a Pi), and other commits must not wait for it. The answer
    /// holds for the hash it was checked against; under the lock it is used only if the
    /// member's hash is still that one.
    pub(super) fn pin_ahead(&self, card: &str, pin: Option<&str>) -> Option<PinAhead> {
        let pin = pin.filter(|p| model::validate_pin(p).is_ok())?;
        let (m, _) = self.member_by_card(card).ok()?;
        let phc = m.pin_hash?;
        let right = crate::pin::verify(pin, &phc);
        Some(PinAhead { phc, right })
    }

    /// The one PIN check of a request: the answer checked ahead when it is for the
    /// member's current hash, else argon2 now.
    pub(super) fn pin_check<'a>(
        pin: Option<&'a str>,
        member: &'a MemberState,
        ahead: Option<&'a PinAhead>,
    ) -> impl FnMut() -> PinCheck + 'a {
        move || match (pin, &member.pin_hash) {
            (None, _) => PinCheck::NotGiven,
            (Some(_), None) => PinCheck::NoPinSet,
            (Some(pin), Some(hash)) => {
                let right = match ahead {
                    Some(a) if a.phc == *hash => a.right,
                    _ => crate::pin::verify(pin, hash),
                };
                if right {
                    PinCheck::Right
                } else {
                    PinCheck::Wrong
                }
            }
        }
    }

    /// Records a wrong PIN (it counts towards the lock), then hands back the refusal.
    fn pin_failed(&self, member_id: &str, at: &At, refusal: Error) -> Error {
        let body = Body::PinFail {
            member_id: member_id.to_string(),
        };
        match self.commit_plain(at, |_, _| Ok((vec![body], ())), |_, _, _| Ok(())) {
            Ok(()) => refusal,
            Err(e) => e,
        }
    }

    /// Counts a PIN check by a quote for `member_id`; refused past the limit.
    fn limit_pin_checks(&self, member_id: &str) -> Result<()> {
        let mut checks = self.pin_checks.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if checks.len() > 4096 {
            checks.retain(|_, (start, _)| now.duration_since(*start) < PIN_CHECK_WINDOW);
        }
        let entry = checks.entry(member_id.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= PIN_CHECK_WINDOW {
            *entry = (now, 0);
        }
        if entry.1 >= QUOTE_PIN_CHECKS {
            return Err(Error::new(
                Code::PinLocked,
                format!("this member's PIN was checked {QUOTE_PIN_CHECKS} times in a minute; try again shortly"),
            ));
        }
        entry.1 += 1;
        Ok(())
    }

    /// Prices a sale against the current state. Returns the member, the records that
    /// must precede the checkout (expiry), the group each usable group-buy unit comes
    /// from, and the refusal-or-price.
    fn price_sale(
        &self,
        store: &Store,
        rules: &Ruleset,
        sale: &Sale,
        card: &str,
        at: &At,
        pin_ahead: Option<&PinAhead>,
    ) -> Result<PricedSale> {
        let redeem = sale.redeem_points.unwrap_or(0);
        if !(0..=model::MAX_POINTS_INPUT).contains(&redeem) {
            return Err(Error::invalid("redeem_points must be 0 or more"));
        }
        if let Some(pin) = &sale.pin {
            model::validate_pin(pin).map_err(|_| Error::new(Code::PinInvalid, "a PIN is 4 to 8 digits"))?;
        }
        let (mut member, offline_redeemed) = self.active_member_and_offline(card)?;
        let pre = self.expire_first(&mut member, at);
        let coupon_code = sale.coupon.as_ref().map(|c| c.trim().to_ascii_uppercase());
        let coupon = match &coupon_code {
            Some(code) => Some((
                code.as_str(),
                store.coupon(code)?.map(|c| rules::CouponView::of(code, &c)),
            )),
            None => None,
        };
        let (unit_groups, units): (Vec<String>, Vec<rules::GroupBuyUnit>) =
            store.group_units(&member.member_id, at.ts)?.into_iter().unzip();
        let req = Request {
            member: &member,
            lines: &sale.lines,
            coupon: coupon.as_ref().map(|(code, v)| (*code, v.as_ref())),
            redeem_points: redeem,
            at: at.ts,
            expiry_applies: at.trusted,
            offline_redeemed,
            pin_given: sale.pin.is_some(),
            facts: rules::CampaignFacts {
                group_buy_units: &units,
                tiers_reached: &member.tiers_reached,
            },
        };
        let priced = rules::price(
            rules,
            &req,
            &mut Self::pin_check(sale.pin.as_deref(), &member, pin_ahead),
        );
        Ok(PricedSale {
            member,
            pre,
            unit_groups,
            priced,
        })
    }

    /// The coupons a priced checkout issues: each tier gift's coupon and each trigger the
    /// checkout fires (a visit, a tier reached), with fresh codes (blank in a quote).
    fn coupons_of_checkout(
        &self,
        store: &Store,
        rules: &Ruleset,
        member: &MemberState,
        p: &Priced,
        codes: bool,
    ) -> Result<Vec<record::IssuedCoupon>> {
        let mut due: Vec<(String, String)> = p
            .gifts
            .iter()
            .filter_map(|g| Some((g.coupon.clone()?, format!("gift:{}", g.tier))))
            .collect();
        let visits_before = member.visits as i64;
        for f in rules::triggers::at_checkout(rules, p, visits_before, &member.tiers_reached, |_, _| false) {
            due.push((f.coupon().to_string(), f.issued_by()));
        }
        let mut out: Vec<record::IssuedCoupon> = Vec::with_capacity(due.len());
        for (type_id, issued_by) in due {
            let Some(ty) = rules.coupon_type(&type_id) else {
                // The ruleset's validation refuses a gift or trigger naming an unknown type.
                return Err(Error::internal(format!(
                    "{issued_by} names unknown coupon type {type_id}"
                )));
            };
            let code = match codes {
                true => loop {
                    let code = super::rewards::random_code(10);
                    if store.coupon(&code)?.is_none() && !out.iter().any(|c| c.code == code) {
                        break code;
                    }
                },
                false => String::new(),
            };
            out.push(record::IssuedCoupon {
                code,
                type_id,
                issued: p.day,
                valid_until: ty.valid_until(p.day),
                issued_by,
            });
        }
        Ok(out)
    }

    /// The checkout record of a priced sale: the one outcome a receipt, a quote and a
    /// replay are all built from.
    fn checkout_of(&self, rules: &Ruleset, sale: PricedCheckout, tx_id: String) -> record::CheckoutV3 {
        let PricedCheckout {
            priced: p,
            member,
            card,
            unit_groups,
            coupons_issued,
        } = sale;
        let before = rules::tier::index_of(rules, &p.tier_before);
        let after = rules::tier::index_of(rules, &p.tier_after);
        let tiers_reached = rules
            .tiers
            .get(before + 1..=after)
            .unwrap_or(&[])
            .iter()
            .map(|t| t.name.clone())
            .filter(|t| !member.tiers_reached.contains(t))
            .collect();
        record::CheckoutV3 {
            tx_id,
            member_id: member.member_id.clone(),
            card: card.to_string(),
            lines: p.lines.iter().map(Into::into).collect(),
            subtotal: p.subtotal,
            group_buy_discount: p.group_buy_discount,
            tier_discount: p.tier_discount,
            promotion: p.promotion,
            coupon: p.coupon,
            due: p.due,
            points_redeemed: p.points_redeemed,
            redeem_value: p.redeem_value,
            total: p.total,
            base: p.base,
            points_earned: p.points_earned,
            lot_expires_at: p.lot_expires_at,
            tier_before: p.tier_before,
            tier_after: p.tier_after,
            visit: p.visit,
            pin_verified: p.pin_verified,
            ruleset_version: rules.version,
            group_buys: p
                .group_buys
                .iter()
                .map(|g| record::GroupBuyUsed {
                    deal: g.deal.clone(),
                    group_id: unit_groups[g.unit].clone(),
                    line: g.line as u32,
                    off: g.off,
                })
                .collect(),
            gifts: p
                .gifts
                .iter()
                .filter(|g| g.points > 0)
                .map(|g| record::TierGiftV1 {
                    tier: g.tier.clone(),
                    points: g.points,
                })
                .collect(),
            gift_points: p.gift_points,
            coupons_issued,
            tiers_reached,
            campaigns: p
                .campaign_points
                .into_iter()
                .map(|(id, points)| record::CampaignEarn { id, points })
                .collect(),
        }
    }

    /// What a sale would come to; changes nothing but a wrong PIN's trace.
    pub fn quote(&self, sale: &Sale, at: At) -> Result<Receipt> {
        let card = canonical_card(&sale.card)?;
        validate_lines(&sale.lines)?;
        if sale.pin.is_some() {
            let (m, _) = self.member_by_card(&card)?;
            self.limit_pin_checks(&m.member_id)?;
        }
        let ahead = self.pin_ahead(&card, sale.pin.as_deref());
        let rules = self.rules();
        let PricedSale {
            member,
            unit_groups,
            priced,
            ..
        } = self.price_sale(&self.store, &rules, sale, &card, &at, ahead.as_ref())?;
        let p = match priced {
            Ok(p) => p,
            Err(e) if e.code == Code::PinInvalid && sale.pin.is_some() => {
                return Err(self.pin_failed(&member.member_id, &at, e))
            }
            Err(e) => return Err(e),
        };
        let max_redeem_points = p.max_redeem_points;
        let balance = member.balance_at(at.ts, at.trusted) - p.points_redeemed + p.points_earned + p.gift_points;
        let coupons_issued = self.coupons_of_checkout(&self.store, &rules, &member, &p, false)?;
        let sale = PricedCheckout {
            priced: p,
            member: &member,
            card: &card,
            unit_groups,
            coupons_issued,
        };
        let c = self.checkout_of(&rules, sale, String::new());
        let mut receipt = Receipt::of_checkout(&rules, &c, at.ts, balance, false);
        receipt.tx_id = None;
        receipt.max_redeem_points = Some(max_redeem_points);
        Ok(receipt)
    }

    /// Commits a sale. With an idempotency key, the same key again returns the first
    /// receipt marked as a replay; the same key with another request is refused.
    pub fn checkout(&self, sale: &Sale, key: Option<&str>, at: At) -> Result<Receipt> {
        let card = canonical_card(&sale.card)?;
        validate_lines(&sale.lines)?;
        let key = key
            .map(|k| Keyed::with_hash(k, request_hash(&card, sale)))
            .transpose()?;
        let ahead = self.pin_ahead(&card, sale.pin.as_deref());
        self.commit(
            &at,
            key.as_ref(),
            |store, rules| {
                let PricedSale {
                    member,
                    pre: mut bodies,
                    unit_groups,
                    priced,
                } = self.price_sale(store, rules, sale, &card, &at, ahead.as_ref())?;
                let p = match priced {
                    Ok(p) => p,
                    Err(e) if e.code == Code::PinInvalid && sale.pin.is_some() => {
                        // A wrong PIN is the one refusal that leaves a trace: it counts
                        // towards the lock.
                        bodies.push(Body::PinFail {
                            member_id: member.member_id.clone(),
                        });
                        return Ok(Step::Refused(bodies, e));
                    }
                    Err(e) => return Err(e),
                };
                let tx_id = self.tx_id(self.journal.last_seq() + 1 + bodies.len() as u64);
                let coupons_issued = self.coupons_of_checkout(store, rules, &member, &p, true)?;
                let sale = PricedCheckout {
                    priced: p,
                    member: &member,
                    card: &card,
                    unit_groups,
                    coupons_issued,
                };
                let c = self.checkout_of(rules, sale, tx_id);
                // The member this checkout leaves, by the transition apply makes: the
                // answer's balance needs no read of the store.
                let mut after = member;
                after.on_checkout(&c, at.ts, day_no(local_date(rules, at.ts)));
                bodies.push(Body::CheckoutV3(Box::new(c.clone())));
                Ok(Step::Done(bodies, (c, after.ledger_balance())))
            },
            |store, rules, (c, balance)| {
                debug_assert_eq!(
                    store.member(&c.member_id)?.map(|m| m.ledger_balance()),
                    Some(balance),
                    "the decided member and the applied one differ"
                );
                Ok(Receipt::of_checkout(rules, &c, at.ts, balance, false))
            },
            |_, rules, rec, first| match &rec.body {
                Body::CheckoutV3(c) => Ok(Receipt::of_checkout(rules, c, rec.at, first.balance_after, true)),
                _ => Err(Error::internal("an idempotency key answers another kind of change")),
            },
        )
    }

    /// Expiry first: lots gone at `at` leave through an `Expire` record before a change
    /// that reads the balance, when expiry applies.
    pub(super) fn expire_first(&self, member: &mut MemberState, at: &At) -> Vec<Body> {
        if at.trusted && member.has_expired_lots(at.ts) {
            member.on_expire(at.ts);
            vec![Body::Expire {
                member_id: member.member_id.clone(),
            }]
        } else {
            vec![]
        }
    }

    /// The answer to a refund: what it did, and the member's balance and tier after it.
    fn refund_view(rules: &Ruleset, r: &record::Refund, m: &MemberState, balance: i64, at: &At) -> RefundView {
        RefundView {
            refund_id: r.refund_id.clone(),
            tx_id: r.tx_id.clone(),
            amount: r.plan.amount,
            points_clawed_back: r.plan.points_clawed_back,
            points_returned: r.plan.points_returned,
            balance,
            tier: MemberView::new(rules, m, at.ts, at.trusted).tier,
        }
    }

    /// Refunds lines of a committed checkout, or all that is left of it.
    pub fn refund(&self, tx_id: &str, asked: &[(String, i64)], key: Option<&str>, at: At) -> Result<RefundView> {
        let key = key.map(|k| Keyed::new(k, "refund", &(tx_id, asked))).transpose()?;
        let member_of = |store: &Store, id: &str| {
            store
                .member(id)?
                .ok_or_else(|| Error::internal(format!("refunded member {id} vanished")))
        };
        self.commit(
            &at,
            key.as_ref(),
            |store, _| {
                let tx = store.tx(tx_id)?.ok_or_else(|| {
                    Error::new(
                        Code::UnknownTransaction,
                        format!("no transaction {tx_id} at this terminal"),
                    )
                })?;
                let c = &tx.rec;
                let paid = Paid {
                    total: c.total,
                    points_earned: c.points_earned,
                    points_redeemed: c.points_redeemed,
                    base: c.base,
                    visit: c.visit,
                };
                let lines: Vec<rules::PricedLine> = c.lines.iter().map(Into::into).collect();
                let plan = refund::plan(&lines, paid, &tx.refunded, asked)?;
                if let Some(limit) = self.cfg.refund_limit.filter(|l| plan.amount > *l) {
                    at.require(Role::Manager, &format!("a refund over {limit} (minor units)"))?;
                }
                let mut member = member_of(store, &c.member_id)?;
                let mut bodies = self.expire_first(&mut member, &at);
                let rec = record::Refund {
                    refund_id: self.tx_id(self.journal.last_seq() + 1 + bodies.len() as u64),
                    tx_id: tx_id.to_string(),
                    member_id: c.member_id.clone(),
                    plan: (&plan).into(),
                };
                bodies.push(Body::Refund(Box::new(rec.clone())));
                Ok(Step::Done(bodies, rec))
            },
            |store, rules, rec| {
                let m = member_of(store, &rec.member_id)?;
                Ok(Self::refund_view(rules, &rec, &m, m.ledger_balance(), &at))
            },
            |store, rules, rec, first| match &rec.body {
                Body::Refund(r) => {
                    let m = member_of(store, &r.member_id)?;
                    let then = At {
                        ts: rec.at,
                        trusted: true,
                        actor: at.actor.clone(),
                    };
                    Ok(Self::refund_view(rules, r, &m, first.balance_after, &then))
                }
                _ => Err(Error::internal("an idempotency key answers another kind of change")),
            },
        )
    }
}
