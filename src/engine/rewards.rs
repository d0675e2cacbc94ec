//! Coupons, catalog rewards, and the daily expiry pass.

use super::{At, Engine, Keyed, Step};
use crate::error::{Code, Error, Result};
use crate::model::{self, canonical_card, day_no};
use crate::record::{self, Body};
use crate::rules::{self, local_date};
use crate::views::{CouponView, RewardView};

/// Unambiguous upper-case code (no 0/O, 1/I) for coupons.
pub(super) fn random_code(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut b = vec![0u8; len];
    getrandom::getrandom(&mut b).expect("the OS random source works");
    b.iter()
        .map(|x| ALPHABET[(*x as usize) % ALPHABET.len()] as char)
        .collect()
}

impl Engine {
    pub fn issue_coupon(&self, card: &str, type_id: &str, key: Option<&str>, at: At) -> Result<CouponView> {
        let card = canonical_card(card)?;
        let key = key
            .map(|k| Keyed::new(k, "coupon issue", &(&card, type_id)))
            .transpose()?;
        let view = |code: &str, type_id: &str, valid_until| CouponView {
            code: code.to_string(),
            type_id: type_id.to_string(),
            valid_until: model::day_date(valid_until).to_string(),
        };
        self.commit(
            &at,
            key.as_ref(),
            |store, rules| {
                let m = self.active_member(&card)?;
                let ty = rules
                    .coupon_type(type_id)
                    .ok_or_else(|| Error::new(Code::CouponInvalid, format!("no coupon type {type_id}")))?;
                let issued = day_no(local_date(rules, at.ts));
                let valid_until = ty.valid_until(issued);
                let mut code = random_code(10);
                while store.coupon(&code)?.is_some() {
                    code = random_code(10);
                }
                let body = Body::CouponIssueV2(Box::new(record::CouponIssueV2 {
                    code: code.clone(),
                    type_id: type_id.to_string(),
                    member_id: m.member_id,
                    issued,
                    valid_until,
                    issued_by: "manual".to_string(),
                    points: 0,
                    occurrence: None,
                    pin_verified: false,
                }));
                Ok(Step::Done(vec![body], (code, valid_until)))
            },
            |_, _, (code, valid_until)| Ok(view(&code, type_id, valid_until)),
            |_, _, rec, _| match &rec.body {
                Body::CouponIssueV2(c) => Ok(view(&c.code, &c.type_id, c.valid_until)),
                _ => Err(Error::internal("an idempotency key answers another kind of change")),
            },
        )
    }

    /// Redeems points for a catalog reward, with the same checks as a checkout's
    /// redemption (`rules::authorise_redemption`) except the share cap (a reward is not
    /// paid in money).
    pub fn redeem_reward(
        &self,
        card: &str,
        sku: &str,
        pin: Option<&str>,
        key: Option<&str>,
        at: At,
    ) -> Result<RewardView> {
        let card = canonical_card(card)?;
        if let Some(pin) = pin {
            model::validate_pin(pin).map_err(|_| Error::new(Code::PinInvalid, "a PIN is 4 to 8 digits"))?;
        }
        let key = key.map(|k| Keyed::new(k, "reward redeem", &(&card, sku))).transpose()?;
        let ahead = self.pin_ahead(&card, pin);
        let view = |rec_id: &str, member_id: &str, points, balance, stock_left| RewardView {
            redemption_id: rec_id.to_string(),
            member_id: member_id.to_string(),
            sku: sku.to_string(),
            points,
            balance,
            stock_left,
        };
        self.commit(
            &at,
            key.as_ref(),
            |store, rules| {
                let (mut m, offline) = self.active_member_and_offline(&card)?;
                let reward = rules
                    .reward(sku)
                    .ok_or_else(|| Error::invalid(format!("the catalog has no reward {sku}")))?;
                let mut bodies = self.expire_first(&mut m, &at);
                let left = reward.stock - store.reward_used(sku)?;
                if left <= 0 {
                    return Err(Error::new(Code::RewardOutOfStock, format!("{sku} is out of stock")));
                }
                let balance = m.balance_at(at.ts, at.trusted);
                if reward.points > balance {
                    return Err(Error::new(
                        Code::InsufficientPoints,
                        format!("{sku} costs {} points, the balance is {balance}", reward.points),
                    ));
                }
                let mut check = Self::pin_check(pin, &m, ahead.as_ref());
                let pin_verified = match rules::authorise_redemption(
                    rules,
                    &m,
                    reward.points,
                    at.ts,
                    pin.is_some(),
                    &mut check,
                    offline,
                ) {
                    Ok(v) => v,
                    Err(e) if e.code == Code::PinInvalid => {
                        bodies.push(Body::PinFail {
                            member_id: m.member_id.clone(),
                        });
                        return Ok(Step::Refused(bodies, e));
                    }
                    Err(e) => return Err(e),
                };
                drop(check);
                let id = self.tx_id(self.journal.last_seq() + 1 + bodies.len() as u64);
                bodies.push(Body::RewardRedeem {
                    redemption_id: id.clone(),
                    member_id: m.member_id.clone(),
                    sku: sku.to_string(),
                    points: reward.points,
                    pin_verified,
                });
                Ok(Step::Done(bodies, (id, m.member_id, reward.points)))
            },
            |store, rules, (id, member_id, points)| {
                let m = store
                    .member(&member_id)?
                    .ok_or_else(|| Error::internal(format!("member {member_id} vanished")))?;
                let stock = rules.reward(sku).map_or(0, |r| r.stock);
                Ok(view(
                    &id,
                    &member_id,
                    points,
                    m.ledger_balance(),
                    stock - store.reward_used(sku)?,
                ))
            },
            |_, rules, rec, first| match &rec.body {
                Body::RewardRedeem {
                    redemption_id,
                    member_id,
                    points,
                    ..
                } => {
                    let stock = rules.reward(sku).map_or(0, |r| r.stock);
                    Ok(view(
                        redemption_id,
                        member_id,
                        *points,
                        first.balance_after,
                        stock - first.count_after,
                    ))
                }
                _ => Err(Error::internal("an idempotency key answers another kind of change")),
            },
        )
    }

    /// The daily expiry pass: an `expire` record for every member with lots gone at
    /// `at`. Does nothing while the clock is untrusted. Returns the members touched.
    pub fn expire_all(&self, at: At) -> Result<u64> {
        if !at.trusted {
            return Ok(0);
        }
        let mut due = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.store.members_after(after.as_deref(), 1000)?;
            let Some(last) = page.last() else { break };
            after = Some(last.member_id.clone());
            due.extend(
                page.iter()
                    .filter(|m| m.has_expired_lots(at.ts))
                    .map(|m| m.member_id.clone()),
            );
        }
        let n = due.len() as u64;
        for chunk in due.chunks(256) {
            self.commit_plain(
                &at,
                |store, _| {
                    // Re-check under the writer lock: a checkout may have expired them already.
                    let mut bodies = Vec::new();
                    for id in chunk {
                        if store.member(id)?.is_some_and(|m| m.has_expired_lots(at.ts)) {
                            bodies.push(Body::Expire { member_id: id.clone() });
                        }
                    }
                    Ok((bodies, ()))
                },
                |_, _, _| Ok(()),
            )?;
        }
        Ok(n)
    }
}
