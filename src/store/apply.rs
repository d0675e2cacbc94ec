//! `Store::apply`: one journal record into the materialized state.

use std::collections::HashMap;

use super::{dec, enc, k, key, Applied, CouponState, Daily, Store, TxState};
use crate::error::{Error, Result};
use crate::model::{CardStatus, DayNo, MemberState};
use crate::record::{Body, Record};
use crate::rules::{lots, tier};

/// Changes of one record, collected first and written as one atomic batch.
struct Changes<'a> {
    store: &'a Store,
    /// Values read or written by this record, by key, so reads see earlier writes.
    cache: HashMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> Changes<'a> {
    fn read(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.cache.get(key) {
            return Ok(v.clone());
        }
        Ok(self.store.db.get(key)?.map(|v| v.to_vec()))
    }

    fn get<T: serde::de::DeserializeOwned>(&mut self, what: &str, key: &[u8]) -> Result<Option<T>> {
        match self.read(key)? {
            Some(v) => Ok(Some(dec(what, &v)?)),
            None => Ok(None),
        }
    }

    fn put<T: serde::Serialize>(&mut self, key: Vec<u8>, v: &T) {
        self.cache.insert(key, Some(enc(v)));
    }

    fn member(&mut self, id: &str) -> Result<MemberState> {
        self.get("member", &k(key::MEMBER, id.as_bytes()))?
            .ok_or_else(|| {
                Error::internal(format!(
                    "journal names member {id} that the state does not have"
                ))
            })
    }

    fn put_member(&mut self, m: &MemberState) {
        self.put(k(key::MEMBER, m.member_id.as_bytes()), m);
    }

    fn daily(&mut self, day: DayNo, f: impl FnOnce(&mut Daily)) -> Result<()> {
        let key = super::day_key(day);
        let mut d: Daily = self.get("daily totals", &key)?.unwrap_or_default();
        f(&mut d);
        self.put(key, &d);
        Ok(())
    }
}

impl Store {
    /// Applies record `seq` to the state, atomically with the new applied position.
    /// Records must come in journal order, each exactly once.
    pub fn apply(&self, seq: u64, rec: &Record) -> Result<()> {
        let applied = self.applied()?;
        if seq != applied.seq + 1 {
            return Err(Error::internal(format!(
                "state store is at record {} and was given record {seq}",
                applied.seq
            )));
        }
        let mut ch = Changes {
            store: self,
            cache: HashMap::new(),
        };
        apply_body(&mut ch, seq, rec)?;
        ch.put(key::APPLIED.to_vec(), &Applied { seq });
        let mut batch = sled::Batch::default();
        for (k, v) in ch.cache {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        self.db.apply_batch(batch)?;
        Ok(())
    }
}

fn apply_body(ch: &mut Changes, seq: u64, rec: &Record) -> Result<()> {
    let at = rec.at;
    match &rec.body {
        Body::Init { terminal_id, epoch } => {
            ch.put(key::IDENTITY.to_vec(), &(terminal_id.clone(), *epoch));
        }
        Body::MemberAdd {
            member_id,
            card,
            name,
            phone,
            birthday,
            pin_hash,
        } => {
            let m = MemberState {
                member_id: member_id.clone(),
                name: name.clone(),
                phone: phone.clone(),
                birthday: *birthday,
                pin_hash: pin_hash.clone(),
                cards: vec![(card.clone(), CardStatus::Active)],
                created_at: at,
                tier: String::new(),
                lots: vec![],
                debt: 0,
                days: vec![],
                pin_failures: 0,
                pin_failed_at: 0,
                unacked_redeem: vec![],
            };
            ch.put_member(&m);
            ch.put(k(key::CARD, card.as_bytes()), member_id);
            ch.put(k(key::PHONE, phone.as_bytes()), member_id);
            ch.daily(rec.day, |d| d.new_members += 1)?;
        }
        Body::CardBlock { card } => {
            let owner: String = ch
                .get("card", &k(key::CARD, card.as_bytes()))?
                .ok_or_else(|| Error::internal(format!("journal blocks unknown card {card}")))?;
            let mut m = ch.member(&owner)?;
            for (c, s) in &mut m.cards {
                if c == card {
                    *s = CardStatus::Blocked;
                }
            }
            ch.put_member(&m);
        }
        Body::CardReplace { old, new } => {
            let owner: String = ch
                .get("card", &k(key::CARD, old.as_bytes()))?
                .ok_or_else(|| Error::internal(format!("journal replaces unknown card {old}")))?;
            let mut m = ch.member(&owner)?;
            for (c, s) in &mut m.cards {
                if c == old {
                    *s = CardStatus::Blocked;
                }
            }
            m.cards.push((new.clone(), CardStatus::Active));
            ch.put_member(&m);
            ch.put(k(key::CARD, new.as_bytes()), &owner);
        }
        Body::Checkout(c) => {
            let mut m = ch.member(&c.member_id)?;
            let taken = lots::take(&mut m.lots, &mut m.debt, c.points_redeemed);
            if c.points_redeemed > 0 {
                m.unacked_redeem.push((seq, c.points_redeemed));
            }
            lots::credit(
                &mut m.lots,
                &mut m.debt,
                c.points_earned,
                at,
                c.lot_expires_at,
            );
            m.tier = c.tier_after.clone();
            tier::record(
                &mut m.days,
                rec.day,
                c.base,
                c.points_earned,
                c.visit as i64,
            );
            if c.pin_verified {
                m.pin_failures = 0;
            }
            if let Some((code, _)) = &c.coupon {
                let ck = k(key::COUPON, code.as_bytes());
                let mut cs: CouponState = ch.get("coupon", &ck)?.ok_or_else(|| {
                    Error::internal(format!("journal uses unknown coupon {code}"))
                })?;
                cs.used_by = Some(c.tx_id.clone());
                ch.put(ck, &cs);
            }
            if let Some((idem_key, hash)) = &c.idem {
                ch.put(k(key::IDEM, idem_key.as_bytes()), &(*hash, c.tx_id.clone()));
            }
            let tx = TxState {
                rec: (**c).clone(),
                seq,
                at,
                day: rec.day,
                taken,
                balance_after: m.ledger_balance(),
                refunded: Default::default(),
                refund_ids: vec![],
            };
            ch.put(k(key::TX, c.tx_id.as_bytes()), &tx);
            ch.put_member(&m);
            ch.daily(rec.day, |d| {
                d.checkouts += 1;
                d.subtotal += c.subtotal;
                d.discounts += c.subtotal - c.due;
                d.redeem_value += c.redeem_value;
                d.total += c.total;
                d.points_earned += c.points_earned;
                d.points_redeemed += c.points_redeemed;
                d.coupons_used += c.coupon.is_some() as i64;
            })?;
        }
        Body::Refund(r) => {
            let tk = k(key::TX, r.tx_id.as_bytes());
            let mut tx: TxState = ch.get("transaction", &tk)?.ok_or_else(|| {
                Error::internal(format!("journal refunds unknown transaction {}", r.tx_id))
            })?;
            let mut m = ch.member(&r.member_id)?;
            let p = &r.plan;
            lots::give_back(&mut m.lots, &mut m.debt, &tx.taken, p.points_returned);
            lots::clawback(
                &mut m.lots,
                &mut m.debt,
                p.points_clawed_back,
                tx.at,
                tx.rec.lot_expires_at,
            );
            tier::record(
                &mut m.days,
                tx.day,
                -p.base,
                -p.points_metric,
                -(p.visit as i64),
            );
            // Points given back no longer count against the offline redemption cap.
            if let Some(u) = m.unacked_redeem.iter_mut().find(|u| u.0 == tx.seq) {
                u.1 -= p.points_returned.min(u.1);
            }
            m.unacked_redeem.retain(|u| u.1 > 0);
            tx.refunded.add(tx.rec.lines.len(), p);
            tx.refund_ids.push(r.refund_id.clone());
            ch.put(tk, &tx);
            ch.put_member(&m);
            ch.daily(rec.day, |d| {
                d.refunds += 1;
                d.refunded_amount += p.amount;
                d.points_clawed_back += p.points_clawed_back;
                d.points_returned += p.points_returned;
            })?;
        }
        Body::CouponIssue {
            code,
            type_id,
            member_id,
            issued,
            valid_until,
        } => {
            let cs = CouponState {
                type_id: type_id.clone(),
                member_id: member_id.clone(),
                issued: *issued,
                valid_until: *valid_until,
                used_by: None,
            };
            ch.put(k(key::COUPON, code.as_bytes()), &cs);
            ch.daily(rec.day, |d| d.coupons_issued += 1)?;
        }
        Body::RewardRedeem {
            member_id,
            sku,
            points,
            pin_verified,
            ..
        } => {
            let mut m = ch.member(member_id)?;
            lots::take(&mut m.lots, &mut m.debt, *points);
            m.unacked_redeem.push((seq, *points));
            if *pin_verified {
                m.pin_failures = 0;
            }
            ch.put_member(&m);
            let rk = k(key::REWARD, sku.as_bytes());
            let used: i64 = ch.get("reward", &rk)?.unwrap_or(0);
            ch.put(rk, &(used + 1));
            ch.daily(rec.day, |d| {
                d.rewards_redeemed += 1;
                d.reward_points += points;
            })?;
        }
        Body::Expire { member_id } => {
            let mut m = ch.member(member_id)?;
            let gone = lots::expire(&mut m.lots, at);
            ch.put_member(&m);
            ch.daily(rec.day, |d| d.points_expired += gone)?;
        }
        Body::PinFail { member_id } => {
            let mut m = ch.member(member_id)?;
            if !m.pin_locked_at(at) && m.pin_failures >= crate::model::PIN_MAX_TRIES {
                // The lock has run out: a fresh set of tries.
                m.pin_failures = 0;
            }
            m.pin_failures += 1;
            m.pin_failed_at = at;
            ch.put_member(&m);
        }
    }
    Ok(())
}
