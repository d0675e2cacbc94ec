//! Sales and what follows them: checkouts, refunds, coupons, rewards, expiry, wrong PINs.

use super::{balance_of, Changes, Origin};
use crate::error::{Error, Result};
use crate::model::CouponState;
use crate::record::{Body, CheckoutV3, Record};
use crate::state;
use crate::store::history::{LedgerKind, TxSummary};
use crate::store::{k, key, Acked, FeedKind, TxNote};

/// Key of a member's coupon in the member's coupon index (`Q` + member + 0 + code).
pub(in crate::store) fn member_coupon_key(member_id: &str, code: &str) -> Vec<u8> {
    let mut v = k(key::MEMBER_COUPON, member_id.as_bytes());
    v.push(0);
    v.extend_from_slice(code.as_bytes());
    v
}

pub(super) fn apply(ch: &mut Changes, o: Origin, rec: &Record) -> Result<Option<String>> {
    let at = rec.at;
    match &rec.body {
        Body::CheckoutV3(c) => {
            let mut m = ch.live_member(&c.member_id, o)?;
            let before = balance_of(&m.state);
            let taken = m.state.on_checkout(c, at, rec.day);
            if o.local && c.points_redeemed > 0 {
                let acked: Acked = ch.get("acknowledgement", key::ACKED)?.unwrap_or_default();
                m.note_offline_redemption(acked.seq, o.seq, c.points_redeemed);
            }
            if let Some((code, _)) = &c.coupon {
                let ck = k(key::COUPON, code.as_bytes());
                if let Some(mut cs) = ch.get::<CouponState>("coupon", &ck)? {
                    cs.used_by = Some(c.tx_id.clone());
                    ch.put(ck, &cs);
                    ch.feed(FeedKind::Coupon, code, o)?;
                }
            }
            if !taken.is_empty() {
                let note = TxNote {
                    taken,
                    ..TxNote::default()
                };
                ch.put(k(key::TX, c.tx_id.as_bytes()), &note);
            }
            let tx = Some(c.tx_id.as_str());
            // Each tier's gift after what the sale earned, the order the lots formed in.
            let mut entries = vec![
                (LedgerKind::Redeem, -c.points_redeemed, tx, None),
                (LedgerKind::Earn, c.points_earned, tx, None),
            ];
            entries.extend(
                c.gifts
                    .iter()
                    .map(|g| (LedgerKind::Gift, g.points, tx, Some(g.tier.as_str()))),
            );
            ch.ledger(&mut m, rec, before, &entries)?;
            super::campaign::after_checkout(ch, o, rec, c)?;
            let summary = TxSummary {
                tx_id: c.tx_id.clone(),
                at,
                total: c.total,
                points_earned: c.points_earned,
                points_redeemed: c.points_redeemed,
                terminal_id: ch.terminal_of(o)?,
                balance_after: balance_of(&m.state),
                by: rec.by.clone(),
            };
            ch.history(&mut m, &summary)?;
            let id = m.state.member_id.clone();
            ch.report_checkout(rec.day, &mut m)?;
            ch.put_member(m, o)?;
            report_campaigns(ch, rec, c, &id)?;
            ch.report_day(rec.day, |d| {
                d.checkouts += 1;
                d.total += c.total;
            })?;
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
            Ok(Some(id))
        }
        Body::Refund(r) => {
            let mut tx = ch
                .tx(&r.tx_id, o.stream)?
                .ok_or_else(|| Error::internal(format!("journal refunds unknown transaction {}", r.tx_id)))?;
            let mut m = ch.live_member(&r.member_id, o)?;
            let before = balance_of(&m.state);
            let p = &r.plan;
            let of = state::member::Refunded {
                taken: &tx.taken,
                returned_before: tx.refunded.points_returned,
                checkout_at: tx.at,
                checkout_day: tx.day,
                lot_expires_at: tx.rec.lot_expires_at,
            };
            m.state.on_refund(&of, p);
            // Points given back no longer count against the offline redemption cap.
            m.note_returned(tx.seq, p.points_returned);
            let tx_id = Some(r.tx_id.as_str());
            ch.ledger(
                &mut m,
                rec,
                before,
                &[
                    (LedgerKind::Return, p.points_returned, tx_id, None),
                    (LedgerKind::Clawback, -p.points_clawed_back, tx_id, None),
                ],
            )?;
            tx.refunded.add(tx.rec.lines.len(), &p.into());
            tx.refund_ids.push(r.refund_id.clone());
            let note = TxNote {
                taken: tx.taken,
                refunded: tx.refunded,
                refund_ids: tx.refund_ids,
            };
            ch.put(k(key::TX, r.tx_id.as_bytes()), &note);
            let id = m.state.member_id.clone();
            ch.put_member(m, o)?;
            ch.report_day(rec.day, |d| d.refunded_amount += p.amount)?;
            ch.daily(rec.day, |d| {
                d.refunds += 1;
                d.refunded_amount += p.amount;
                d.points_clawed_back += p.points_clawed_back;
                d.points_returned += p.points_returned;
            })?;
            Ok(Some(id))
        }
        Body::RewardRedeem {
            member_id,
            sku,
            points,
            pin_verified,
            redemption_id,
        } => {
            let mut m = ch.live_member(member_id, o)?;
            let before = balance_of(&m.state);
            m.state.on_reward(*points, *pin_verified);
            if o.local {
                let acked: Acked = ch.get("acknowledgement", key::ACKED)?.unwrap_or_default();
                m.note_offline_redemption(acked.seq, o.seq, *points);
            }
            ch.ledger(
                &mut m,
                rec,
                before,
                &[(LedgerKind::Reward, -points, Some(redemption_id), Some(sku))],
            )?;
            let id = m.state.member_id.clone();
            ch.put_member(m, o)?;
            let rk = k(key::REWARD, sku.as_bytes());
            let used: i64 = ch.get("reward", &rk)?.unwrap_or(0);
            ch.put(rk, &(used + 1));
            ch.daily(rec.day, |d| {
                d.rewards_redeemed += 1;
                d.reward_points += points;
            })?;
            Ok(Some(id))
        }
        Body::Expire { member_id } => {
            let mut m = ch.live_member(member_id, o)?;
            let before = balance_of(&m.state);
            let gone = m.state.on_expire(at);
            ch.ledger(&mut m, rec, before, &[(LedgerKind::Expire, -gone, None, None)])?;
            let id = m.state.member_id.clone();
            ch.put_member(m, o)?;
            ch.daily(rec.day, |d| d.points_expired += gone)?;
            Ok(Some(id))
        }
        Body::PinFail { member_id } => {
            let mut m = ch.live_member(member_id, o)?;
            m.state.on_pin_fail(at);
            let id = m.state.member_id.clone();
            ch.put_member(m, o)?;
            Ok(Some(id))
        }
        other => Err(Error::internal(format!("not a sale record: {other:?}"))),
    }
}

/// What the checkout's promotion, coupon (its type and, for a trigger's coupon, the
/// trigger), group-buy deals and earn campaigns did, for the campaigns report. The
/// coupon's type and issuer come from the coupon as this store holds it (the record
/// names only the code).
fn report_campaigns(ch: &mut Changes, rec: &Record, c: &CheckoutV3, member_id: &str) -> Result<()> {
    use crate::store::report::{CampaignDay, CampaignKind};
    let row = |discount: i64, bonus_points: i64| CampaignDay {
        uses: 1,
        discount,
        bonus_points,
        sales: c.total,
    };
    let mut rows: Vec<(CampaignKind, String, CampaignDay)> = Vec::new();
    if let Some((id, off)) = &c.promotion {
        rows.push((CampaignKind::Promotion, id.clone(), row(*off, 0)));
    }
    if let Some((code, off)) = &c.coupon {
        if let Some(cs) = ch.get::<CouponState>("coupon", &k(key::COUPON, code.as_bytes()))? {
            rows.push((CampaignKind::Coupon, cs.type_id.clone(), row(*off, 0)));
            if let Some(trigger) = cs.issued_by.strip_prefix("trigger:") {
                rows.push((CampaignKind::Trigger, trigger.to_string(), row(*off, 0)));
            }
        }
    }
    for g in &c.group_buys {
        match rows
            .iter_mut()
            .find(|(kind, id, _)| *kind == CampaignKind::GroupBuy && *id == g.deal)
        {
            Some((_, _, d)) => d.discount += g.off,
            None => rows.push((CampaignKind::GroupBuy, g.deal.clone(), row(g.off, 0))),
        }
    }
    for e in &c.campaigns {
        rows.push((CampaignKind::Campaign, e.id.clone(), row(0, e.points)));
    }
    for (kind, id, add) in rows {
        ch.report_campaign(rec.day, member_id, kind, &id, add)?;
    }
    Ok(())
}
