//! How results read on a terminal (without `--json`).

use serde_json::Value;

use crate::views::Receipt;

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("-")
}

/// A member (the Member shape).
pub fn member_text(m: &Value) -> String {
    let cards: Vec<String> = m["cards"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| format!("{} ({})", str_of(c, "card"), str_of(c, "status")))
        .collect();
    let tags: Vec<&str> = m["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut s = format!(
        "{} {}  phone {}  birthday {}  {}\n  cards: {}\n  tier {} (qualifying {})  balance {} points  visits {}",
        str_of(m, "member_id"),
        str_of(m, "name"),
        str_of(m, "phone"),
        str_of(m, "birthday"),
        str_of(m, "status"),
        cards.join(", "),
        str_of(m, "tier"),
        m["qualifying"],
        m["balance"],
        m["visits"],
    );
    if !tags.is_empty() {
        s.push_str(&format!("\n  tags: {}", tags.join(", ")));
    }
    for l in m["lots"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "\n    {:>8} points earned {} expires {}",
            l["points"],
            str_of(l, "earned_at"),
            l["expires_at"].as_str().unwrap_or("never")
        ));
    }
    s
}

/// A page of members.
pub fn members_text(v: &Value) -> String {
    let members = v["members"].as_array().cloned().unwrap_or_default();
    if members.is_empty() {
        return "no member found".into();
    }
    let mut s: Vec<String> = members
        .iter()
        .map(|m| {
            let card = m["cards"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["status"] == "active"))
                .map_or("-", |c| str_of(c, "card"));
            format!(
                "{}  {:<16} {:<16} card {:<14} {:>8} points  {}",
                str_of(m, "member_id"),
                str_of(m, "name"),
                str_of(m, "phone"),
                card,
                m["balance"],
                str_of(m, "status")
            )
        })
        .collect();
    if let Some(n) = v["next"].as_str() {
        s.push(format!("more: --after {n}"));
    }
    s.join("\n")
}

/// A page of a member's transactions.
pub fn transactions_text(v: &Value) -> String {
    let mut s: Vec<String> = v["transactions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            format!(
                "{}  {}  total {:>8}  +{} -{} points  refunded {}  at {}",
                str_of(t, "at"),
                str_of(t, "tx_id"),
                t["total"],
                t["points_earned"],
                t["points_redeemed"],
                t["refunded"],
                str_of(t, "terminal_id")
            )
        })
        .collect();
    if s.is_empty() {
        s.push("no transactions".into());
    }
    if let Some(n) = v["next"].as_str() {
        s.push(format!("more: --after {n}"));
    }
    s.join("\n")
}

/// One ledger entry.
pub fn entry_text(e: &Value) -> String {
    format!(
        "{}  {:<8} {:>+8}  balance {:>8}  {}{}  by {}",
        str_of(e, "at"),
        str_of(e, "kind"),
        e["points"].as_i64().unwrap_or(0),
        e["balance_after"],
        e["tx_id"].as_str().unwrap_or(""),
        e["reason"].as_str().map(|r| format!(" ({r})")).unwrap_or_default(),
        e["by"].as_str().unwrap_or("-")
    )
}

/// A page of a member's points ledger.
pub fn ledger_text(v: &Value) -> String {
    let mut s: Vec<String> = v["entries"].as_array().into_iter().flatten().map(entry_text).collect();
    if s.is_empty() {
        s.push("no points yet".into());
    }
    if let Some(n) = v["next"].as_str() {
        s.push(format!("more: --after {n}"));
    }
    s.join("\n")
}

/// A staff account, or the list of them.
pub fn staff_text(v: &Value) -> String {
    let one = |s: &Value| {
        format!(
            "{:<16} {:<24} {:<8}{}",
            str_of(s, "staff_id"),
            str_of(s, "name"),
            str_of(s, "role"),
            if s["disabled"] == true { "  disabled" } else { "" }
        )
    };
    match v["staff"].as_array() {
        Some(list) if list.is_empty() => "no staff accounts".into(),
        Some(list) => list.iter().map(one).collect::<Vec<_>>().join("\n"),
        None => one(v),
    }
}

pub fn receipt_text(r: &Receipt, money: &dyn Fn(i64) -> String) -> String {
    let mut s = match &r.tx_id {
        Some(id) => format!("receipt {id}{}\n", if r.replayed { " (replayed)" } else { "" }),
        None => "quote\n".to_string(),
    };
    s.push_str(&format!("  member {} card {} at {}\n", r.member_id, r.card, r.at));
    for l in &r.lines {
        s.push_str(&format!(
            "  {:<16} {:<10} {:>4} x {:>10} = {:>12}\n",
            l.sku,
            l.category,
            l.qty,
            money(l.unit_price),
            money(l.net)
        ));
    }
    s.push_str(&format!("  subtotal {:>12}\n", money(r.subtotal)));
    for d in &r.discounts {
        s.push_str(&format!("  {} {} -{}\n", d.kind, d.id, money(d.amount)));
    }
    s.push_str(&format!("  due {:>12}\n", money(r.due)));
    if r.points_redeemed > 0 {
        s.push_str(&format!("  {} points -{}\n", r.points_redeemed, money(r.redeem_value)));
    }
    s.push_str(&format!(
        "  total {:>12}\n  points earned {}  balance {}  tier {} -> {}",
        money(r.total),
        r.points_earned,
        r.balance,
        r.tier_before,
        r.tier
    ));
    if let Some(m) = r.max_redeem_points {
        s.push_str(&format!("\n  up to {m} points could be redeemed on this sale"));
    }
    s
}

/// The daily report.
pub fn daily_text(r: &Value) -> String {
    let currency = str_of(r, "currency");
    let money = |k: &str| crate::views::money(r[k].as_i64().unwrap_or(0), currency);
    let n = |k: &str| r[k].as_i64().unwrap_or(0);
    format!(
        "{} ({})\n  checkouts {:>8}   sales {:>14}   discounts {:>12}\n  points earned {:>6}   redeemed {:>8}   expired {:>8}\n  refunds {:>10}   refunded {:>12}   new members {:>6}\n  coupons issued {:>5}   used {:>6}   rewards {:>8}",
        str_of(r, "date"),
        currency,
        n("checkouts"),
        money("total"),
        money("discounts"),
        n("points_earned"),
        n("points_redeemed") + n("reward_points"),
        n("points_expired"),
        n("refunds"),
        money("refunded_amount"),
        n("new_members"),
        n("coupons_issued"),
        n("coupons_used"),
        n("rewards_redeemed")
    )
}

/// One line for a group-buy group.
pub fn group_text(g: &crate::views::campaign::GroupView) -> String {
    format!(
        "group {} of {}: {} ({} of {} joined), until {}",
        g.group_id, g.deal, g.state, g.joined, g.size, g.expires_at
    )
}

/// A page of the audit view: a line per entry, then where the next page starts.
pub fn audit_text(v: &Value) -> String {
    let mut out = String::new();
    for e in v["entries"].as_array().into_iter().flatten() {
        let by = match (e["by"].as_str(), e["requested_by"].as_str()) {
            (Some(b), Some(r)) => format!("{b} (asked by {r})"),
            (Some(b), None) => b.to_string(),
            _ => "-".to_string(),
        };
        out.push_str(&format!(
            "{}  {:<8} {:<16} {:<20} {}\n",
            str_of(e, "at"),
            str_of(e, "terminal_id"),
            str_of(e, "action"),
            by,
            e["subject"].as_str().unwrap_or("")
        ));
    }
    match v["next"].as_str() {
        Some(c) => out.push_str(&format!("more: --cursor {c}")),
        None if out.is_empty() => out.push_str("no entries"),
        None => out.push_str("(end)"),
    }
    out
}
