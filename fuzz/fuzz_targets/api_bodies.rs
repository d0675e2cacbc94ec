//! The POS API's request bodies, parsed as the handlers parse them, then the checks the
//! engine makes before it touches state, then the pure rules the request reaches.
//!
//! Input: a route name, a newline, and the body (JSON; for `daily` the `date` query
//! value). Checks, beyond "no panic":
//! - refusals carry a bad-input code (`invalid_input`, `invalid_card`, `pin_invalid` or a
//!   business refusal), never a fault code;
//! - `canonical_card` and canonical phones are idempotent, a parsed birthday or date
//!   prints back to itself;
//! - a sale that passes the checks prices (under config/rules.toml) to a receipt that
//!   adds up, and refunding it (part of it as asked, then the rest) gives back exactly
//!   what it paid, earned and redeemed.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use loyaltyd::api::{CouponBody, RefundBody, ReplaceBody, RewardBody, SwipeBody};
use loyaltyd::config::EMBEDDED_RULES;
use loyaltyd::engine::{NewMember, Sale};
use loyaltyd::identity::canonical_phone;
use loyaltyd::model::{self, Birthday, DayBucket, Line, Lot, MemberState, Ts};
use loyaltyd::rules::refund::{self, Paid, Refunded};
use loyaltyd::rules::{self, CouponView, PinCheck, Priced, PricedLine, Request, Ruleset};
use loyaltyd::{Code, Result};

fn rules() -> &'static Ruleset {
    static RULES: OnceLock<Ruleset> = OnceLock::new();
    RULES.get_or_init(|| Ruleset::parse(EMBEDDED_RULES, "config/rules.toml").expect("the shipped rules"))
}

/// 2026-11-24T10:00:00+08:00, the worked examples' instant.
const AT: Ts = 1_795_485_600_000_000;

fn member() -> MemberState {
    let day = model::day_no(rules::local_date(rules(), AT));
    MemberState {
        member_id: "m-fuzz".into(),
        name: "Ann".into(),
        phone: "13800000001".into(),
        birthday: Some(Birthday { month: 11, day: 24 }),
        pin_hash: Some("not checked here".into()),
        cards: vec![("04A1B2C3".into(), model::CardStatus::Active)],
        created_at: 0,
        tier: "standard".into(),
        lots: vec![
            Lot {
                points: 3_000,
                earned_at: AT - 10,
                expires_at: Some(AT + 10),
            },
            Lot {
                points: 1_000_000,
                earned_at: AT - 5,
                expires_at: None,
            },
        ],
        debt: 0,
        days: vec![DayBucket {
            day: day - 3,
            spend: 200_000,
            points: 2_000,
            visits: 3,
            activities: 0,
        }],
        pin_failures: 0,
        pin_failed_at: 0,
        active: true,
        ..MemberState::default()
    }
}

/// A bad request gets a bad-input code; a fault code here would be a mislabelled refusal.
fn refused<T>(r: Result<T>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            assert!(!e.code.is_fault() && e.code.http_status() < 500, "{e:?}");
            None
        }
    }
}

fn card(raw: &str) -> Option<String> {
    let c = refused(model::canonical_card(raw))?;
    assert_eq!(model::canonical_card(&c).expect("canonical again"), c);
    Some(c)
}

fn members(m: NewMember) -> Option<()> {
    // Engine::add_member, in its order, up to the PIN hash (no card: a virtual one).
    if let Some(c) = &m.card {
        card(c)?;
    }
    let name = m.name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return None;
    }
    let phone = refused(canonical_phone(&m.phone, "86"))?;
    // The stored digits read back as an international number (the "+" the Member shape
    // shows) are the same phone: canonical form is a fixed point.
    let shown = format!("+{phone}");
    assert_eq!(canonical_phone(&shown, "86").expect("canonical again"), phone);
    refused(model::check_tags(&m.tags))?;
    if let Some(b) = m.birthday.as_deref() {
        let b = refused(Birthday::parse(b))?;
        assert_eq!(Birthday::parse(&b.to_string()).expect("printed birthday"), b);
    }
    if let Some(pin) = m.pin.as_deref() {
        refused(model::validate_pin(pin))?;
    }
    Some(())
}

/// Engine::price_sale's checks, then rules::price as the engine calls it.
fn price(sale: &Sale, m: &MemberState) -> Option<Priced> {
    card(&sale.card)?;
    refused(model::validate_lines(&sale.lines))?;
    let redeem = sale.redeem_points.unwrap_or(0);
    if !(0..=model::MAX_POINTS_INPUT).contains(&redeem) {
        return None;
    }
    if let Some(pin) = &sale.pin {
        refused(model::validate_pin(pin))?;
    }
    let code = sale.coupon.as_ref().map(|c| c.trim().to_ascii_uppercase());
    // The store holds one coupon, WELCOME5, of this member; any other code is unknown.
    let held = CouponView {
        code: "WELCOME5".into(),
        type_id: "welcome5".into(),
        member_id: m.member_id.clone(),
        issued: model::day_no(rules::local_date(rules(), AT)) - 1,
        valid_until: model::day_no(rules::local_date(rules(), AT)) + 1,
        used: false,
    };
    let coupon = code.as_deref().map(|c| (c, (c == held.code).then_some(&held)));
    let req = Request {
        member: m,
        lines: &sale.lines,
        coupon,
        redeem_points: redeem,
        at: AT,
        expiry_applies: true,
        offline_redeemed: (sale.lines.len() % 2 == 1).then_some(0),
        pin_given: sale.pin.is_some(),
        facts: Default::default(),
    };
    let pin_right = sale.pin.as_deref() == Some("1234");
    let mut check_pin = || match (&sale.pin, pin_right) {
        (None, _) => PinCheck::NotGiven,
        (Some(_), true) => PinCheck::Right,
        (Some(_), false) => PinCheck::Wrong,
    };
    let p = refused(rules::price(rules(), &req, &mut check_pin))?;
    assert_eq!(p.subtotal, sale.lines.iter().map(Line::amount).sum::<i64>());
    assert_eq!(p.due, p.lines.iter().map(PricedLine::net).sum::<i64>());
    assert!(
        p.lines
            .iter()
            .all(|l| l.d1 >= 0 && l.d2 >= 0 && l.d3 >= 0 && l.net() >= 0),
        "{p:?}"
    );
    assert!(0 <= p.total && p.total <= p.due && p.due <= p.subtotal, "{p:?}");
    assert_eq!(p.total, p.due - p.redeem_value);
    assert!(p.points_earned >= 0 && (0..=p.total).contains(&p.base), "{p:?}");
    Some(p)
}

/// Refunds `asked` of a priced sale, then all that is left: the two must add up to
/// exactly what the sale paid, earned and redeemed.
fn refund_in_two(p: &Priced, asked: &[(String, i64)]) {
    let paid = Paid {
        total: p.total,
        points_earned: p.points_earned,
        points_redeemed: p.points_redeemed,
        base: p.base,
        visit: p.visit,
    };
    let mut done = Refunded::default();
    if !asked.is_empty() {
        let Some(first) = refused(refund::plan(&p.lines, paid, &done, asked)) else {
            return;
        };
        assert!((0..=paid.total).contains(&first.amount), "{first:?}");
        assert!(
            (0..=paid.points_earned).contains(&first.points_clawed_back),
            "{first:?}"
        );
        assert!((0..=paid.points_redeemed).contains(&first.points_returned), "{first:?}");
        done.add(p.lines.len(), &first);
        if first.last {
            return check_whole(&done, paid, p);
        }
    }
    let rest = refund::plan(&p.lines, paid, &done, &[]).expect("the rest of a sale refunds");
    assert!(rest.last);
    done.add(p.lines.len(), &rest);
    check_whole(&done, paid, p);
    let again = refund::plan(&p.lines, paid, &done, &[]).expect_err("nothing left to refund");
    assert_eq!(again.code, Code::RefundExceeds);
}

fn check_whole(done: &Refunded, paid: Paid, p: &Priced) {
    assert_eq!(done.amount, paid.total);
    assert_eq!(done.points_clawed_back, paid.points_earned);
    assert_eq!(done.points_returned, paid.points_redeemed);
    assert_eq!(done.base, paid.base);
    assert_eq!(done.visit, paid.visit);
    let qty: Vec<i64> = p.lines.iter().map(|l| l.line.qty).collect();
    assert_eq!(done.qty, qty);
}

/// The README's sale, priced: what the refund route's bodies are refunds of.
fn readme_sale() -> &'static Priced {
    static SALE: OnceLock<Priced> = OnceLock::new();
    SALE.get_or_init(|| {
        let sale: Sale = serde_json::from_str(
            r#"{"card": "04A1B2C3", "lines": [
                {"sku": "rice", "category": "grocery", "qty": 2, "unit_price": 3450},
                {"sku": "cigarettes", "category": "tobacco", "qty": 1, "unit_price": 2500},
                {"sku": "oil", "category": "grocery", "qty": 1, "unit_price": 5990}]}"#,
        )
        .expect("the README's sale");
        price(&sale, &member()).expect("the README's sale prices")
    })
}

fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    serde_json::from_slice(body).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let (route, body) = (&data[..split], &data[split + 1..]);
    match route {
        b"members" => {
            if let Some(m) = json::<NewMember>(body) {
                members(m);
            }
        }
        b"replace" => {
            if let Some(b) = json::<ReplaceBody>(body) {
                card(&b.new_card);
            }
        }
        b"quote" | b"commit" => {
            let Some(sale) = json::<Sale>(body) else {
                return;
            };
            if let Some(p) = price(&sale, &member()) {
                let first = p
                    .lines
                    .first()
                    .map(|l| (l.line.sku.clone(), 1))
                    .into_iter()
                    .collect::<Vec<_>>();
                refund_in_two(&p, &first);
            }
        }
        b"refund" => {
            if let Some(asked) = json::<RefundBody>(body).and_then(|b| refused(b.asked())) {
                refund_in_two(readme_sale(), &asked.1);
            }
        }
        b"coupons" => {
            if let Some(b) = json::<CouponBody>(body) {
                if card(&b.card).is_some() {
                    let _ = rules().coupon_type(&b.type_id);
                }
            }
        }
        b"rewards" => {
            if let Some(b) = json::<RewardBody>(body) {
                card(&b.card);
                let _ = rules().reward(&b.sku);
            }
        }
        b"swipe" => {
            if let Some(b) = json::<SwipeBody>(body) {
                card(&b.card);
            }
        }
        b"daily" => {
            if let Some(date) = std::str::from_utf8(body)
                .ok()
                .and_then(|s| refused(model::parse_date(s)))
            {
                let day = model::day_no(date);
                assert_eq!(model::day_date(day), date);
            }
        }
        _ => {}
    }
});
