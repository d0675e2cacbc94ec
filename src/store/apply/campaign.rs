//! Campaigns: coupons issued with their issuer (bought with points too), group-buy
//! joins and formation, what a checkout does to campaign state (coupons it issued,
//! gifts, group-buy units used), the groups a pull brings, the daily trigger pass.

use super::{balance_of, Changes, Origin};
use crate::error::Result;
use crate::model::CouponState;
use crate::record::{CheckoutV3, CouponIssueV2, GroupJoin, GroupSnapshot, IssuedCoupon, Record};
use crate::store::apply::sale::member_coupon_key;
use crate::store::history::LedgerKind;
use crate::store::{k, key, Acked, FeedKind, GroupState};

/// A coupon now held by `member_id`.
fn put_coupon(ch: &mut Changes, o: Origin, day: crate::model::DayNo, code: &str, cs: CouponState) -> Result<()> {
    ch.put(member_coupon_key(&cs.member_id, code), &());
    ch.put(k(key::COUPON, code.as_bytes()), &cs);
    ch.feed(FeedKind::Coupon, code, o)?;
    ch.daily(day, |d| d.coupons_issued += 1)
}

pub(super) fn coupon_issue(ch: &mut Changes, o: Origin, rec: &Record, c: &CouponIssueV2) -> Result<Option<String>> {
    let cs = CouponState {
        type_id: c.type_id.clone(),
        member_id: c.member_id.clone(),
        issued: c.issued,
        valid_until: c.valid_until,
        used_by: None,
        issued_by: c.issued_by.clone(),
    };
    put_coupon(ch, o, rec.day, &c.code, cs)?;
    if let Some(fired) = &c.occurrence {
        let fk = k(key::FIRED, c.member_id.as_bytes());
        let mut all: Vec<(String, crate::record::Occurrence)> = ch.get("fired triggers", &fk)?.unwrap_or_default();
        if !all.contains(fired) {
            all.push(fired.clone());
        }
        ch.put(fk, &all);
    }
    if c.points > 0 {
        // Bought with points: they leave like a reward's, first-expiring first, and
        // count against the offline redemption cap like any redemption.
        let mut m = ch.live_member(&c.member_id, o)?;
        let before = balance_of(&m.state);
        m.state.on_reward(c.points, c.pin_verified);
        if o.local {
            let acked: Acked = ch.get("acknowledgement", key::ACKED)?.unwrap_or_default();
            m.note_offline_redemption(acked.seq, o.seq, c.points);
        }
        let reason = format!("coupon {}", c.type_id);
        ch.ledger(
            &mut m,
            rec,
            before,
            &[(LedgerKind::Redeem, -c.points, None, Some(&reason))],
        )?;
        ch.put_member(m, o)?;
    }
    Ok(Some(c.member_id.clone()))
}

/// What a checkout does to campaigns: the coupons it issued, the group-buy units it used.
pub(super) fn after_checkout(ch: &mut Changes, o: Origin, rec: &Record, c: &CheckoutV3) -> Result<()> {
    for IssuedCoupon {
        code,
        type_id,
        issued,
        valid_until,
        issued_by,
    } in &c.coupons_issued
    {
        let cs = CouponState {
            type_id: type_id.clone(),
            member_id: c.member_id.clone(),
            issued: *issued,
            valid_until: *valid_until,
            used_by: None,
            issued_by: issued_by.clone(),
        };
        put_coupon(ch, o, rec.day, code, cs)?;
    }
    for used in &c.group_buys {
        let gk = k(key::GROUP, used.group_id.as_bytes());
        if let Some(mut g) = ch.get::<GroupState>("group", &gk)? {
            if !g.used.iter().any(|(m, _)| *m == c.member_id) {
                g.used.push((c.member_id.clone(), c.tx_id.clone()));
            }
            ch.put(gk, &g);
            ch.feed(FeedKind::Group, &used.group_id, o)?;
        }
    }
    Ok(())
}

/// `group_id` is among the groups `member_id` joined.
fn note_member_group(ch: &mut Changes, member_id: &str, group_id: &str) -> Result<()> {
    let mk = k(key::MEMBER_GROUP, member_id.as_bytes());
    let mut ids: Vec<String> = ch.get("member groups", &mk)?.unwrap_or_default();
    if !ids.iter().any(|g| g == group_id) {
        ids.push(group_id.to_string());
        ch.put(mk, &ids);
    }
    Ok(())
}

fn note_deal_group(ch: &mut Changes, deal: &str, group_id: &str) -> Result<()> {
    let dk = k(key::DEAL_GROUP, deal.as_bytes());
    let mut ids: Vec<String> = ch.get("deal groups", &dk)?.unwrap_or_default();
    if !ids.iter().any(|g| g == group_id) {
        ids.push(group_id.to_string());
        ch.put(dk, &ids);
    }
    Ok(())
}

/// A join. Where formation is decided (the hub, for what terminals pushed; a terminal
/// without a hub, for its own), the join is taken in this node's order: in while the
/// group has room and is open at the join's instant, refused otherwise; the join that
/// fills the group forms it. On a terminal of a chain it waits for the hub's word.
pub(super) fn group_join(ch: &mut Changes, o: Origin, rec: &Record, j: &GroupJoin) -> Result<Option<String>> {
    let gk = k(key::GROUP, j.group_id.as_bytes());
    let mut g = match ch.get::<GroupState>("group", &gk)? {
        Some(g) => g,
        None => {
            note_deal_group(ch, &j.deal, &j.group_id)?;
            GroupState {
                group_id: j.group_id.clone(),
                deal: j.deal.clone(),
                sku: j.sku.clone(),
                group_price_minor: j.group_price_minor,
                size: j.size,
                opened_at: rec.at,
                expires_at: j.expires_at,
                members: vec![],
                pending: vec![],
                refused: vec![],
                formed_at: None,
                used: vec![],
            }
        }
    };
    let member = &j.member_id;
    let decides_here = !o.local || j.decides;
    if !g.has(member) && !g.refused.contains(member) {
        if !decides_here {
            g.pending.push((member.clone(), o.seq));
        } else if g.formed_at.is_some() || g.members.len() >= g.size as usize || rec.at >= g.expires_at {
            g.refused.push(member.clone());
        } else {
            g.members.push(member.clone());
            if g.members.len() >= g.size as usize {
                g.formed_at = Some(rec.at);
            }
        }
    }
    note_member_group(ch, member, &j.group_id)?;
    ch.put(gk, &g);
    ch.feed(FeedKind::Group, &j.group_id, o)?;
    Ok(Some(member.clone()))
}

/// Terminal: the groups a pull brought replace ours, keeping the joins made here that
/// the hub had not acknowledged when it answered.
pub(super) fn pulled_groups(ch: &mut Changes, acked: u64, groups: &[GroupSnapshot]) -> Result<()> {
    for snap in groups {
        let gk = k(key::GROUP, snap.group_id.as_bytes());
        let local: Option<GroupState> = ch.get("group", &gk)?;
        if local.is_none() {
            note_deal_group(ch, &snap.deal, &snap.group_id)?;
        }
        let answered = |m: &String| snap.members.contains(m) || snap.refused.contains(m);
        let pending = local
            .map(|l| l.pending)
            .unwrap_or_default()
            .into_iter()
            .filter(|(m, seq)| *seq > acked && !answered(m))
            .collect();
        for m in snap.members.iter().chain(&snap.refused) {
            note_member_group(ch, m, &snap.group_id)?;
        }
        let g = GroupState {
            group_id: snap.group_id.clone(),
            deal: snap.deal.clone(),
            sku: snap.sku.clone(),
            group_price_minor: snap.group_price_minor,
            size: snap.size,
            opened_at: snap.opened_at,
            expires_at: snap.expires_at,
            members: snap.members.clone(),
            pending,
            refused: snap.refused.clone(),
            formed_at: snap.formed_at,
            used: snap.used.clone(),
        };
        ch.put(gk, &g);
    }
    Ok(())
}
