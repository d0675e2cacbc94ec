//! The ruleset parser on arbitrary text, and pricing under every ruleset it accepts.
//!
//! Checks, beyond "no panic": a refusal names a field; an accepted ruleset prices a few
//! fixed sales (the README's, and one at `MAX_SUBTOTAL`) at instants from year 1 to 9999
//! for a member with a large balance, without panicking, and every receipt adds up (see
//! `check`). Redeeming the `max_redeem_points` a quote offers must be accepted. Points
//! that expire get an expiry after the instant they are earned, and a coupon of every
//! type issued on any of those dates ends on a date that exists (the engine prints it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use loyaltyd::model::{self, Birthday, DayBucket, Line, Lot, MemberState, Ts};
use loyaltyd::rules::{self, PinCheck, Priced, Request, Ruleset};

fn line(sku: &str, category: &str, qty: i64, unit_price: i64) -> Line {
    Line {
        sku: sku.into(),
        category: category.into(),
        qty,
        unit_price,
    }
}

fn member(at: Ts) -> MemberState {
    let day = model::day_no(model::ts_to(at).date_naive());
    MemberState {
        member_id: "m-fuzz".into(),
        name: "Fuzz".into(),
        phone: "13800000001".into(),
        birthday: Some(Birthday { month: 2, day: 29 }),
        pin_hash: None,
        cards: vec![("04A1B2C3".into(), model::CardStatus::Active)],
        created_at: 0,
        tier: "standard".into(),
        lots: vec![
            Lot {
                points: 500_000_000_000,
                earned_at: at - 1,
                expires_at: Some(at + 1),
            },
            Lot {
                points: 500_000_000_000,
                earned_at: at - 1,
                expires_at: None,
            },
        ],
        debt: 0,
        days: vec![DayBucket {
            day: day - 1,
            spend: 1_000_000_000_000,
            points: 1_000_000_000,
            visits: 1_000,
            activities: 0,
        }],
        pin_failures: 0,
        pin_failed_at: 0,
        active: true,
        ..MemberState::default()
    }
}

/// What every receipt satisfies whatever the rules.
fn check(p: &Priced, lines: &[Line]) {
    assert_eq!(p.subtotal, lines.iter().map(Line::amount).sum::<i64>());
    for l in &p.lines {
        for d in [l.d1, l.d2, l.d3] {
            assert!(d >= 0, "negative discount {l:?}");
        }
        assert!(l.net() >= 0, "a line costs less than nothing: {l:?}");
    }
    assert_eq!(p.due, p.lines.iter().map(|l| l.net()).sum::<i64>());
    assert!(0 <= p.total && p.total <= p.due && p.due <= p.subtotal, "{p:?}");
    assert_eq!(p.total, p.due - p.redeem_value);
    assert!(0 <= p.base && p.base <= p.total, "{p:?}");
    assert!(p.points_earned >= 0, "{p:?}");
    assert!(p.max_redeem_points >= 0, "{p:?}");
}

fn price(
    rules: &Ruleset,
    m: &MemberState,
    lines: &[Line],
    at: Ts,
    redeem: i64,
    offline: bool,
) -> loyaltyd::Result<Priced> {
    let req = Request {
        member: m,
        lines,
        coupon: None,
        redeem_points: redeem,
        at,
        expiry_applies: true,
        offline_redeemed: offline.then_some(100),
        pin_given: false,
        facts: Default::default(),
    };
    rules::price(rules, &req, &mut || PinCheck::Right)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let rules = match Ruleset::parse(text, "fuzz.toml") {
        Ok(r) => r,
        Err(e) => {
            assert!(!e.field.is_empty() && !e.reason.is_empty(), "{e:?}");
            return;
        }
    };
    let sales = [
        vec![
            line("rice", "grocery", 2, 3450),
            line("cigarettes", "tobacco", 1, 2500),
            line("oil", "grocery", 1, 5990),
        ],
        vec![line(
            "gold",
            "jewellery",
            model::MAX_QTY,
            model::MAX_SUBTOTAL / model::MAX_QTY,
        )],
        vec![line("free", "grocery", 1, 0)],
    ];
    for at in [
        "2026-11-24T10:00:00+08:00",
        "2026-12-05T23:59:59.999999+08:00",
        "2028-02-29T12:00:00Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
    ] {
        let at = model::parse_instant(at).expect("instant");
        let m = member(at);
        if rules.expiry.months > 0 {
            let expires = rules::lots::expires_at(&rules, at);
            assert!(
                expires.is_some_and(|e| e > at),
                "points earned at {at} expire at {expires:?}"
            );
        }
        let issued = model::day_no(rules::local_date(&rules, at));
        for ty in &rules.coupon_types {
            let until = ty.valid_until(issued);
            assert!(until >= issued);
            let _ = model::day_date(until).to_string();
        }
        for lines in &sales {
            for offline in [false, true] {
                let Ok(quote) = price(&rules, &m, lines, at, 0, offline) else {
                    continue;
                };
                check(&quote, lines);
                if quote.max_redeem_points > 0 {
                    let most = price(&rules, &m, lines, at, quote.max_redeem_points, offline)
                        .unwrap_or_else(|e| panic!("the quoted {} points are refused: {e}", quote.max_redeem_points));
                    check(&most, lines);
                }
            }
        }
    }
});
