//! End-to-end tests of the offline CLI: the real `loyaltyd` binary, one temporary data
//! dir per test, the shipped config and ruleset (plus additions where a test needs them).

mod support;

use std::path::Path;

use serde_json::{json, Value};
use support::cli::{sale_args, tree, Term, M200_25};

const CARD: &str = "04A1B2C3";
const CARD2: &str = "04D5E6F7";
/// Tuesday, worked example 1.
const T1: &str = "2026-11-24T10:00:00+08:00";
/// When snapshots of members are taken (after every setup instant used below).
const SNAP: &str = "2026-11-30T00:00:00+08:00";

const EX1_LINES: [&str; 3] = ["rice,grocery,2,3450", "cigarettes,tobacco,1,2500", "oil,grocery,1,5990"];
/// A sale that earns 2288 points for a standard member (and makes it silver).
const BIG_LINE: &str = "tv,electronics,1,200000";

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("{v} is not an integer"))
}

/// A member who earned 2288 points on 2026-11-24 (tier silver from then on).
fn rich_member(t: &Term, card: &str, phone: &str, pin: Option<&str>) -> i64 {
    t.add_member(card, phone, pin);
    let r = t.checkout(card, T1, &[BIG_LINE], &[]);
    assert_eq!(r["points_earned"], 2288, "{r}");
    assert_eq!(r["tier"], "silver", "{r}");
    i(&r["balance"])
}

/// What must not change when a command is refused.
#[derive(Debug, PartialEq)]
struct Snapshot {
    members: Vec<Value>,
    records: u64,
    journal: Vec<u8>,
}

fn snapshot(t: &Term, cards: &[&str]) -> Snapshot {
    Snapshot {
        members: cards.iter().map(|c| t.show(c, SNAP)).collect(),
        records: t.records(),
        journal: std::fs::read(t.journal()).expect("journal"),
    }
}

/// Asserts `args` is refused with `code` (exit 1, JSON error, stderr message) and that
/// neither the members of `cards` nor the journal changed.
fn refused_unchanged(t: &Term, args: &[&str], code: &str, cards: &[&str]) -> String {
    let before = snapshot(t, cards);
    let msg = t.refused(args, code);
    let after = snapshot(t, cards);
    assert!(
        before == after,
        "{args:?} was refused ({code}) but changed something:\nbefore {:?} {:?}\nafter  {:?} {:?}",
        before.records,
        before.members,
        after.records,
        after.members
    );
    msg
}

fn lots_sum(m: &Value) -> i64 {
    m["lots"]
        .as_array()
        .expect("lots")
        .iter()
        .map(|l| i(&l["points"]))
        .sum()
}

// ---------------------------------------------------------------------------
// 1. Worked examples of rules.md
// ---------------------------------------------------------------------------

#[test]
fn worked_example_1() {
    let t = Term::new();
    let m = t.add_member(CARD, "13800000001", None);
    assert_eq!(m["balance"], 0);
    assert_eq!(m["tier"], "standard");

    // A quote gives the same figures, without tx_id, with max_redeem_points.
    let q = t.ok(&sale_args("quote", "04 a1-b2:c3", T1, &EX1_LINES, &[]));
    assert!(q.get("tx_id").is_none(), "{q}");
    assert_eq!(q["max_redeem_points"], 0, "{q}");

    let r = t.ok(&sale_args("checkout", "04 a1-b2:c3", T1, &EX1_LINES, &[]));
    assert!(r["tx_id"].as_str().is_some_and(|s| !s.is_empty()), "{r}");
    assert_eq!(r["member_id"], m["member_id"]);
    assert_eq!(r["card"], CARD);
    assert_eq!(r["at"], T1);
    assert_eq!(
        r["lines"],
        json!([
            {"sku": "rice", "category": "grocery", "qty": 2, "unit_price": 3450, "net": 6365},
            {"sku": "cigarettes", "category": "tobacco", "qty": 1, "unit_price": 2500, "net": 2500},
            {"sku": "oil", "category": "grocery", "qty": 1, "unit_price": 5990, "net": 5525},
        ])
    );
    assert_eq!(r["subtotal"], 15390);
    assert_eq!(
        r["discounts"],
        json!([{"kind": "promotion", "id": "m100-10", "amount": 1000}])
    );
    assert_eq!(r["due"], 14390);
    assert_eq!(r["points_redeemed"], 0);
    assert_eq!(r["redeem_value"], 0);
    assert_eq!(r["total"], 14390);
    assert_eq!(r["points_earned"], 118);
    assert_eq!(r["balance"], 118);
    assert_eq!(r["tier_before"], "standard");
    assert_eq!(r["tier"], "standard");
    assert_eq!(r["replayed"], false);
    for k in [
        "member_id",
        "card",
        "at",
        "lines",
        "subtotal",
        "discounts",
        "due",
        "total",
        "points_earned",
        "balance",
        "tier_before",
        "tier",
    ] {
        assert_eq!(q[k], r[k], "quote and receipt differ in {k}");
    }

    let s = t.show(CARD, SNAP);
    assert_eq!(s["balance"], 118);
    assert_eq!(s["qualifying"], 11890, "the tier metric is the earn base");
    assert_eq!(
        s["lots"],
        json!([{"points": 118, "earned_at": T1, "expires_at": "2027-12-01T00:00:00+08:00"}])
    );
}

#[test]
fn worked_example_2() {
    let t = Term::with_extra_rules(M200_25);
    t.add_member(CARD, "13800000001", Some("1234"));
    // Setup (a Friday in November): a big sale takes the spend metric past 500000.
    let setup = t.checkout(CARD, "2026-11-20T12:00:00+08:00", &["tv,electronics,1,510000"], &[]);
    assert_eq!(
        setup["discounts"],
        json!([{"kind": "promotion", "id": "m200-25", "amount": 2500}])
    );
    assert_eq!(setup["total"], 507500);
    assert_eq!(setup["points_earned"], 5990);
    assert_eq!(setup["tier_before"], "standard");
    assert_eq!(setup["tier"], "gold");
    let before = t.show(CARD, "2026-12-05T11:00:00+08:00");
    assert_eq!(before["tier"], "gold");
    assert_eq!(before["qualifying"], 507500);
    let balance = i(&before["balance"]);
    assert!(balance >= 2000);

    let at = "2026-12-05T11:00:00+08:00"; // Saturday: weekend-x2
    let lines = ["wine,alcohol,1,60000", "snack,grocery,3,1500"];
    let extra = ["--redeem", "1500", "--pin", "1234"];
    let q = t.ok(&sale_args("quote", CARD, at, &lines, &extra));
    let r = t.ok(&sale_args("checkout", CARD, at, &lines, &extra));
    assert_eq!(r["at"], at);
    assert_eq!(
        r["lines"],
        json!([
            {"sku": "wine", "category": "alcohol", "qty": 1, "unit_price": 60000, "net": 54674},
            {"sku": "snack", "category": "grocery", "qty": 3, "unit_price": 1500, "net": 4101},
        ])
    );
    assert_eq!(r["subtotal"], 64500);
    assert_eq!(
        r["discounts"],
        json!([
            {"kind": "tier", "id": "gold", "amount": 3225},
            {"kind": "promotion", "id": "m200-25", "amount": 2500},
        ])
    );
    assert_eq!(r["due"], 58775);
    assert_eq!(r["points_redeemed"], 1500);
    assert_eq!(r["redeem_value"], 1500);
    assert_eq!(r["total"], 57275);
    assert_eq!(r["points_earned"], 1761);
    assert_eq!(i(&r["balance"]), balance - 1500 + 1761);
    assert_eq!(r["tier_before"], "gold");
    assert_eq!(r["tier"], "gold");
    assert_eq!(r["replayed"], false);
    for k in [
        "lines",
        "subtotal",
        "discounts",
        "due",
        "total",
        "points_earned",
        "balance",
    ] {
        assert_eq!(q[k], r[k], "quote and receipt differ in {k}");
    }
    assert_eq!(t.balance(CARD, at), balance - 1500 + 1761);
}

// ---------------------------------------------------------------------------
// 2. Idempotency
// ---------------------------------------------------------------------------

#[test]
fn idempotency_replay_and_conflict() {
    let t = Term::new();
    t.add_member(CARD, "13800000001", None);
    let r1 = t.checkout(CARD, T1, &EX1_LINES, &["--key", "pos-1-0001"]);
    assert_eq!(r1["replayed"], false);
    let records = t.records();
    let shown = t.show(CARD, SNAP);

    // A retry, even at a later instant, is a replay of the first receipt.
    let r2 = t.checkout(CARD, "2026-11-24T10:00:07+08:00", &EX1_LINES, &["--key", "pos-1-0001"]);
    assert_eq!(r2["replayed"], true);
    assert_eq!(r2["tx_id"], r1["tx_id"]);
    let mut r1_as_replay = r1.clone();
    r1_as_replay["replayed"] = json!(true);
    assert_eq!(r2, r1_as_replay, "a replay returns the first receipt unchanged");
    assert_eq!(t.records(), records, "a replay writes nothing");
    assert_eq!(t.show(CARD, SNAP), shown, "a replay changes no balance");

    // The same key with other lines is refused.
    refused_unchanged(
        &t,
        &sale_args("checkout", CARD, T1, &["rice,grocery,1,3450"], &["--key", "pos-1-0001"]),
        "idempotency_conflict",
        &[CARD],
    );
    // Another key is another sale.
    let r3 = t.checkout(CARD, T1, &EX1_LINES, &["--key", "pos-1-0002"]);
    assert_ne!(r3["tx_id"], r1["tx_id"]);
    assert_eq!(r3["balance"], 236);
}

// ---------------------------------------------------------------------------
// 3. Every refusal reachable offline: exit 1, the code, a message, nothing changed
// ---------------------------------------------------------------------------

#[test]
fn errors_cards_and_members() {
    let t = Term::new();
    t.add_member(CARD, "13800000001", None);
    t.add_member(CARD2, "13800000002", None);
    t.checkout(CARD, T1, &EX1_LINES, &[]);
    let cards = [CARD, CARD2];

    for args in [
        vec![
            "member",
            "add",
            "--card",
            "ab",
            "--name",
            "Bo",
            "--phone",
            "13800000009",
        ],
        vec!["member", "show", "--card", "ab", "--at", SNAP],
        vec!["member", "show", "--card", "04A1B2C3!", "--at", SNAP],
        vec!["card", "block", "--card", "ab"],
        vec!["card", "replace", "--card", CARD, "--new-card", "x"],
        sale_args("checkout", "ab", T1, &EX1_LINES, &[]),
        sale_args("quote", &"A".repeat(33), T1, &EX1_LINES, &[]),
    ] {
        refused_unchanged(&t, &args, "invalid_card", &cards);
    }

    for args in [
        vec!["member", "show", "--card", "FFFF0000", "--at", SNAP],
        vec!["card", "block", "--card", "FFFF0000"],
        sale_args("checkout", "FFFF0000", T1, &EX1_LINES, &[]),
        vec![
            "coupon", "issue", "--card", "FFFF0000", "--type", "welcome5", "--at", T1,
        ],
        vec!["reward", "redeem", "--card", "FFFF0000", "--sku", "mug", "--at", T1],
    ] {
        refused_unchanged(&t, &args, "unknown_card", &cards);
    }

    // member_exists: the same card twice (in any spelling), or a replacement card in use.
    for args in [
        vec![
            "member",
            "add",
            "--card",
            CARD,
            "--name",
            "Bo",
            "--phone",
            "13800000009",
        ],
        vec![
            "member",
            "add",
            "--card",
            "04a1-b2c3",
            "--name",
            "Bo",
            "--phone",
            "13800000009",
        ],
        vec!["card", "replace", "--card", CARD, "--new-card", CARD2],
    ] {
        refused_unchanged(&t, &args, "member_exists", &cards);
    }

    // phone_taken, also when written differently.
    for phone in ["13800000002", "138-0000-0002", "138 0000 0002"] {
        refused_unchanged(
            &t,
            &["member", "add", "--card", "0A0B0C0D", "--name", "Bo", "--phone", phone],
            "phone_taken",
            &cards,
        );
    }

    // Enrolment input.
    for (flag, value) in [
        ("--birthday", "13-01"),
        ("--birthday", "02-30"),
        ("--birthday", "2-3"),
        ("--birthday", "1231"),
        ("--pin", "123"),
        ("--pin", "123456789"),
        ("--pin", "12a4"),
    ] {
        refused_unchanged(
            &t,
            &[
                "member",
                "add",
                "--card",
                "0A0B0C0D",
                "--name",
                "Bo",
                "--phone",
                "13800000009",
                flag,
                value,
            ],
            "invalid_input",
            &cards,
        );
    }
    for phone in ["abc", "12"] {
        refused_unchanged(
            &t,
            &["member", "add", "--card", "0A0B0C0D", "--name", "Bo", "--phone", phone],
            "invalid_input",
            &cards,
        );
    }
    refused_unchanged(
        &t,
        &[
            "member",
            "add",
            "--card",
            "0A0B0C0D",
            "--name",
            "  ",
            "--phone",
            "13800000009",
        ],
        "invalid_input",
        &cards,
    );
    // A leap-day birthday is fine.
    t.ok(&[
        "member",
        "add",
        "--card",
        "0A0B0C0D",
        "--name",
        "Bo",
        "--phone",
        "13800000009",
        "--birthday",
        "02-29",
    ]);

    // card_blocked: blocked cards are refused for everything but a look-up.
    let blocked = t.ok(&["card", "block", "--card", CARD2]);
    assert_eq!(blocked["cards"][0]["status"], "blocked");
    assert_eq!(t.show(CARD2, SNAP)["cards"][0]["status"], "blocked");
    for args in [
        sale_args("checkout", CARD2, T1, &EX1_LINES, &[]),
        sale_args("quote", CARD2, T1, &EX1_LINES, &[]),
        vec!["coupon", "issue", "--card", CARD2, "--type", "welcome5", "--at", T1],
        vec!["reward", "redeem", "--card", CARD2, "--sku", "mug", "--at", T1],
    ] {
        refused_unchanged(&t, &args, "card_blocked", &cards);
    }
    // Replacing a card moves the member to the new card.
    let m = t.ok(&["card", "replace", "--card", CARD, "--new-card", "0E0E0E0E"]);
    assert_eq!(m["balance"], 118);
    assert_eq!(t.checkout("0E0E0E0E", T1, &EX1_LINES, &[])["balance"], 236);
}

#[test]
fn errors_redemption_and_pin() {
    let t = Term::new();
    rich_member(&t, CARD, "13800000001", Some("1234"));
    t.add_member(CARD2, "13800000002", None);
    t.checkout(CARD2, T1, &EX1_LINES, &[]); // 118 points, no PIN
    let cards = [CARD, CARD2];
    let at = "2026-11-25T10:00:00+08:00";
    let tea = ["tea,grocery,1,3000"]; // silver: due 2910, share 1455

    let sale = |card, extra: &[&'static str]| sale_args("checkout", card, at, &tea, extra);
    refused_unchanged(&t, &sale(CARD2, &["--redeem", "200"]), "insufficient_points", &cards);
    refused_unchanged(&t, &sale(CARD2, &["--redeem", "50"]), "below_min_redeem", &cards);
    refused_unchanged(&t, &sale(CARD2, &["--redeem", "99"]), "below_min_redeem", &cards);
    refused_unchanged(
        &t,
        &sale_args("checkout", CARD2, at, &["gum,grocery,1,150"], &["--redeem", "100"]),
        "redeem_exceeds_share",
        &cards,
    );
    refused_unchanged(&t, &sale(CARD, &["--redeem", "1456"]), "redeem_exceeds_share", &cards);
    refused_unchanged(&t, &sale(CARD, &["--redeem", "3000"]), "insufficient_points", &cards);
    refused_unchanged(&t, &sale(CARD, &["--redeem", "1000"]), "pin_required", &cards);
    // A member without a PIN cannot redeem from pin_required_from on.
    let t2_lines = ["tv,electronics,1,200000"];
    t.checkout(CARD2, T1, &t2_lines, &[]);
    refused_unchanged(
        &t,
        &sale(CARD2, &["--redeem", "1000", "--pin", "1234"]),
        "pin_required",
        &cards,
    );
    // Malformed PINs are refused as invalid PINs.
    refused_unchanged(
        &t,
        &sale(CARD, &["--redeem", "1000", "--pin", "12"]),
        "pin_invalid",
        &cards,
    );

    // A wrong PIN leaves one PinFail record (it counts towards the lock), nothing else.
    let s0 = snapshot(&t, &cards);
    let mut fail_at = String::new();
    for k in 0..5 {
        fail_at = format!("2026-11-25T10:00:0{k}+08:00");
        let args = sale_args("checkout", CARD, &fail_at, &tea, &["--redeem", "1000", "--pin", "9999"]);
        t.refused(&args, "pin_invalid");
        let s = snapshot(&t, &cards);
        assert_eq!(s.members, s0.members, "a wrong PIN changes no balance");
        assert_eq!(s.records, s0.records + k + 1, "a wrong PIN is one record");
    }
    assert_eq!(fail_at, "2026-11-25T10:00:04+08:00");
    // Locked: even the right PIN is refused, and nothing more is written.
    for lock_at in ["2026-11-25T10:01:00+08:00", "2026-11-25T10:15:03+08:00"] {
        refused_unchanged(
            &t,
            &sale_args("checkout", CARD, lock_at, &tea, &["--redeem", "1000", "--pin", "1234"]),
            "pin_locked",
            &cards,
        );
    }
    // 15 minutes after the last wrong try it works.
    let b = t.balance(CARD, SNAP);
    let r = t.checkout(
        CARD,
        "2026-11-25T10:15:04+08:00",
        &tea,
        &["--redeem", "1000", "--pin", "1234"],
    );
    assert_eq!(r["points_redeemed"], 1000);
    assert_eq!(i(&r["balance"]), b - 1000 + i(&r["points_earned"]));
    // The right PIN cleared the tries: four wrong ones after it do not lock.
    for k in 0..4 {
        let at = format!("2026-11-25T10:20:0{k}+08:00");
        let args = sale_args("checkout", CARD, &at, &tea, &["--redeem", "1000", "--pin", "0000"]);
        t.refused(&args, "pin_invalid");
    }
    let r = t.checkout(
        CARD,
        "2026-11-25T10:20:05+08:00",
        &tea,
        &["--redeem", "1000", "--pin", "1234"],
    );
    assert_eq!(r["points_redeemed"], 1000);
}

#[test]
fn errors_offline_cap() {
    let t = Term::new();
    let mut start = rich_member(&t, CARD, "13800000001", None);
    // A second big sale (now silver), so that the balance is never what refuses below.
    start = i(&t.checkout(CARD, T1, &[BIG_LINE], &[])["balance"]).max(start);
    let at = "2026-11-25T10:00:00+08:00";
    let tea = ["tea,grocery,1,2000"]; // silver: due 1940, share 970
    let mut redeemed = 0;
    for r in [900, 900] {
        let rc = t.checkout(CARD, at, &tea, &["--redeem", &r.to_string()]);
        assert_eq!(rc["points_redeemed"], r);
        redeemed += r;
    }
    // 1800 + 300 > 2000 (offline_cap_points; the config has an upstream).
    refused_unchanged(
        &t,
        &sale_args("checkout", CARD, at, &tea, &["--redeem", "300"]),
        "offline_cap_exceeded",
        &[CARD],
    );
    let q = t.ok(&sale_args("quote", CARD, at, &tea, &[]));
    assert_eq!(q["max_redeem_points"], 200, "{q}");
    t.checkout(CARD, at, &tea, &["--redeem", "200"]);
    redeemed += 200;
    refused_unchanged(
        &t,
        &sale_args("checkout", CARD, at, &tea, &["--redeem", "100"]),
        "offline_cap_exceeded",
        &[CARD],
    );
    // Rewards count against the cap too.
    refused_unchanged(
        &t,
        &["reward", "redeem", "--card", CARD, "--sku", "mug", "--at", at],
        "offline_cap_exceeded",
        &[CARD],
    );
    assert!(t.balance(CARD, SNAP) > start - redeemed);
}

#[test]
fn errors_coupons_rewards_refunds() {
    let t = Term::with_extra_rules("\n[[rewards]]\nsku = \"lamp\"\npoints = 100\nstock = 1\n");
    t.add_member(CARD, "13800000001", None);
    t.add_member(CARD2, "13800000002", None);
    let ex1 = t.checkout(CARD, T1, &EX1_LINES, &[]);
    t.checkout(CARD2, T1, &EX1_LINES, &[]);
    let cards = [CARD, CARD2];
    let sale = ["rice,grocery,2,3450"];

    let c1 = t.ok(&["coupon", "issue", "--card", CARD, "--type", "welcome5", "--at", T1]);
    let code = c1["code"].as_str().expect("code").to_string();
    let c2 = t.ok(&["coupon", "issue", "--card", CARD2, "--type", "welcome5", "--at", T1]);
    let code2 = c2["code"].as_str().expect("code").to_string();

    let with = |at, lines: &[&'static str], code: &str| {
        let mut a: Vec<String> = sale_args("checkout", CARD, at, lines, &[])
            .into_iter()
            .map(String::from)
            .collect();
        a.extend(["--coupon".to_string(), code.to_string()]);
        a
    };
    let check = |args: Vec<String>, code: &str| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        refused_unchanged(&t, &a, code, &cards)
    };
    check(with(T1, &sale, "NOSUCHCODE"), "coupon_invalid");
    check(with(T1, &sale, &code2), "coupon_invalid"); // another member's
    refused_unchanged(
        &t,
        &["coupon", "issue", "--card", CARD, "--type", "nope", "--at", T1],
        "coupon_invalid",
        &cards,
    );
    check(with("2026-11-23T23:59:59+08:00", &sale, &code), "coupon_expired");
    check(with("2026-12-24T00:00:00+08:00", &sale, &code), "coupon_expired");
    check(with(T1, &["gum,grocery,1,2999"], &code), "coupon_min_spend");
    // Excluded lines do not count towards the minimum spend.
    check(
        with(T1, &["gum,grocery,1,1000", "cigarettes,tobacco,1,5000"], &code),
        "coupon_min_spend",
    );
    let used = t.ok(&with(T1, &sale, &code.to_lowercase())
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert_eq!(
        used["discounts"],
        json!([{"kind": "coupon", "id": code, "amount": 500}])
    );
    check(with(T1, &sale, &code), "coupon_used");

    // Rewards.
    refused_unchanged(
        &t,
        &["reward", "redeem", "--card", CARD, "--sku", "nosuch", "--at", T1],
        "invalid_input",
        &cards,
    );
    refused_unchanged(
        &t,
        &["reward", "redeem", "--card", CARD, "--sku", "mug", "--at", T1],
        "insufficient_points",
        &cards,
    );
    let lamp = t.ok(&["reward", "redeem", "--card", CARD, "--sku", "lamp", "--at", T1]);
    assert_eq!(lamp["stock_left"], 0);
    refused_unchanged(
        &t,
        &["reward", "redeem", "--card", CARD2, "--sku", "lamp", "--at", T1],
        "reward_out_of_stock",
        &cards,
    );

    // Refunds.
    let tx = ex1["tx_id"].as_str().expect("tx_id");
    for lines in [vec!["--line", "rice,3"], vec!["--line", "rice,2", "--line", "rice,1"]] {
        let mut a = vec!["refund", "--tx", tx, "--at", T1];
        a.extend(lines);
        refused_unchanged(&t, &a, "refund_exceeds", &cards);
    }
    t.ok(&["refund", "--tx", tx, "--at", T1]);
    refused_unchanged(&t, &["refund", "--tx", tx, "--at", T1], "refund_exceeds", &cards);
    refused_unchanged(
        &t,
        &["refund", "--tx", tx, "--line", "oil,1", "--at", T1],
        "refund_exceeds",
        &cards,
    );
    refused_unchanged(
        &t,
        &["refund", "--tx", "T1-00000000-999", "--at", T1],
        "unknown_transaction",
        &cards,
    );
    for args in [
        vec!["refund", "--tx", tx, "--line", "bread,1", "--at", T1],
        vec!["refund", "--tx", tx, "--line", "rice", "--at", T1],
        vec!["refund", "--tx", tx, "--line", "rice,0", "--at", T1],
    ] {
        refused_unchanged(&t, &args, "invalid_input", &cards);
    }
}

#[test]
fn errors_invalid_input() {
    let t = Term::new();
    t.add_member(CARD, "13800000001", None);
    t.checkout(CARD, T1, &EX1_LINES, &[]);
    let cards = [CARD];
    for line in [
        "rice,grocery,2",
        "rice,grocery,2,3450,1",
        "rice,grocery,two,3450",
        "rice,grocery,2,34.50",
        "rice,grocery,1,-5",
        "rice,grocery,0,100",
        "rice,grocery,-1,100",
        "rice,grocery,1000000,1",
        ",grocery,1,100",
        "rice,,1,100",
    ] {
        for cmd in ["checkout", "quote"] {
            refused_unchanged(&t, &sale_args(cmd, CARD, T1, &[line], &[]), "invalid_input", &cards);
        }
    }
    for at in [
        "yesterday",
        "2026-11-24",
        "2026-11-24T10:00:00",
        "2026-13-24T10:00:00+08:00",
    ] {
        refused_unchanged(
            &t,
            &sale_args("checkout", CARD, at, &EX1_LINES, &[]),
            "invalid_input",
            &cards,
        );
        refused_unchanged(
            &t,
            &["member", "show", "--card", CARD, "--at", at],
            "invalid_input",
            &cards,
        );
    }
    for date in ["2026-13-01", "24.11.2026", "tomorrow"] {
        refused_unchanged(&t, &["report", "daily", "--date", date], "invalid_input", &cards);
    }
    refused_unchanged(
        &t,
        &sale_args("checkout", CARD, T1, &EX1_LINES, &["--key", ""]),
        "invalid_input",
        &cards,
    );
    refused_unchanged(
        &t,
        &sale_args("checkout", CARD, T1, &EX1_LINES, &["--redeem=-100"]),
        "invalid_input",
        &cards,
    );
    refused_unchanged(
        &t,
        &["refund", "--tx", "no-such-tx", "--at", T1],
        "unknown_transaction",
        &cards,
    );
}

#[test]
fn usage_errors_exit_2() {
    let t = Term::new();
    for args in [
        vec!["frobnicate"],
        vec!["checkout", "--card", CARD, "--at", T1],
        vec!["member", "add", "--card", CARD],
        vec!["member", "show"],
        vec!["refund"],
        vec!["checkout", "--card", CARD, "--line", "a,b,1,1", "--bogus"],
        vec!["checkout", "--card", CARD, "--line", "a,b,1,1", "--redeem", "lots"],
    ] {
        let r = t.run(&args);
        assert_eq!(r.status, 2, "{args:?}: {r:?}");
        assert!(!r.stderr.trim().is_empty(), "{args:?}: no usage message");
    }
    assert!(!t.data.exists(), "a usage error opens nothing");
}

// ---------------------------------------------------------------------------
// 4. Refunds
// ---------------------------------------------------------------------------

#[test]
fn refund_partial_then_rest() {
    let t = Term::new();
    t.add_member(CARD, "13800000001", None);
    let r = t.checkout(CARD, T1, &EX1_LINES, &[]);
    let tx = r["tx_id"].as_str().expect("tx_id");
    let at = "2026-11-24T15:00:00+08:00";

    let a = t.ok(&["refund", "--tx", tx, "--line", "rice,1", "--at", at]);
    assert_eq!(a["tx_id"], tx);
    assert_eq!(a["amount"], 3182);
    assert_eq!(a["points_clawed_back"], 26);
    assert_eq!(a["points_returned"], 0);
    assert_eq!(a["balance"], 92);
    assert_eq!(a["tier"], "standard");
    let b = t.ok(&["refund", "--tx", tx, "--at", at]);
    assert_ne!(b["refund_id"], a["refund_id"]);
    assert_eq!(i(&a["amount"]) + i(&b["amount"]), 14390, "refunds add to the total");
    assert_eq!(
        i(&a["points_clawed_back"]) + i(&b["points_clawed_back"]),
        118,
        "clawbacks add to the points earned"
    );
    assert_eq!(b["balance"], 0);
    let s = t.show(CARD, SNAP);
    assert_eq!(s["balance"], 0);
    assert_eq!(s["lots"], json!([]));
    assert_eq!(s["qualifying"], 0);
}

#[test]
fn full_refund_of_a_redemption_restores_the_member() {
    let t = Term::new();
    rich_member(&t, CARD, "13800000001", Some("1234"));
    let snap_at = "2026-11-26T00:00:00+08:00";
    let before = t.show(CARD, snap_at);

    let at = "2026-11-25T10:00:00+08:00";
    let r = t.checkout(
        CARD,
        at,
        &["tea,grocery,4,3000"],
        &["--redeem", "1200", "--pin", "1234"],
    );
    assert_eq!(r["points_redeemed"], 1200);
    let earned = i(&r["points_earned"]);
    assert!(earned > 0);
    let tx = r["tx_id"].as_str().expect("tx_id");

    let a = t.ok(&["refund", "--tx", tx, "--line", "tea,1", "--at", at]);
    assert_eq!(a["points_returned"], 300, "a quarter of the redemption comes back");
    let b = t.ok(&["refund", "--tx", tx, "--at", at]);
    assert_eq!(i(&a["points_returned"]) + i(&b["points_returned"]), 1200);
    assert_eq!(i(&a["points_clawed_back"]) + i(&b["points_clawed_back"]), earned);
    assert_eq!(i(&a["amount"]) + i(&b["amount"]), i(&r["total"]));

    let mut after = t.show(CARD, snap_at);
    // When the member was last in the shop stays: they came, even if they brought it all back.
    assert_eq!(after["last_visit_at"], at);
    after["last_visit_at"] = before["last_visit_at"].clone();
    assert_eq!(after, before, "a full refund is an exact reversal");
    // The returned points no longer count against the offline cap: 2000 can be redeemed.
    t.checkout(
        CARD,
        at,
        &["tv,electronics,1,5000"],
        &["--redeem", "2000", "--pin", "1234"],
    );
}

#[test]
fn clawback_beyond_balance_goes_negative_and_is_repaid() {
    let t = Term::new();
    t.add_member(CARD, "13800000001", None);
    let r = t.checkout(CARD, T1, &[BIG_LINE], &[]);
    assert_eq!(r["points_earned"], 2288, "{r}");
    let big_tx = r["tx_id"].as_str().expect("tx_id").to_string();
    let at = "2026-11-25T10:00:00+08:00";
    // Spend most of the points: 900 + 900 (below the PIN threshold, within the cap).
    let mut bal = 2288;
    for _ in 0..2 {
        let r = t.checkout(CARD, at, &["tea,grocery,1,2000"], &["--redeem", "900"]);
        bal = bal - 900 + i(&r["points_earned"]);
        assert_eq!(i(&r["balance"]), bal);
    }
    assert!(bal < 2288, "{bal}");

    let rf = t.ok(&["refund", "--tx", &big_tx, "--at", at]);
    assert_eq!(rf["points_clawed_back"], 2288);
    let neg = bal - 2288;
    assert!(neg < 0);
    assert_eq!(i(&rf["balance"]), neg);
    let s = t.show(CARD, SNAP);
    assert_eq!(i(&s["balance"]), neg);
    assert_eq!(lots_sum(&s), neg, "lots add up to the balance: {s}");

    // A later checkout repays the debt first.
    let r = t.checkout(CARD, "2026-11-26T10:00:00+08:00", &[BIG_LINE], &[]);
    let earned = i(&r["points_earned"]);
    assert!(earned > -neg, "{earned} should repay {neg}");
    assert_eq!(i(&r["balance"]), neg + earned);
    let s = t.show(CARD, SNAP);
    assert_eq!(i(&s["balance"]), neg + earned);
    assert_eq!(lots_sum(&s), neg + earned);
    assert!(
        s["lots"].as_array().expect("lots").iter().all(|l| i(&l["points"]) > 0),
        "a repaid debt leaves no negative lot: {s}"
    );
}

// ---------------------------------------------------------------------------
// 5. Coupons and rewards
// ---------------------------------------------------------------------------

#[test]
fn coupon_issue_use_once() {
    let t = Term::new();
    t.add_member(CARD, "13800000001", None);
    let c = t.ok(&["coupon", "issue", "--card", CARD, "--type", "welcome5", "--at", T1]);
    assert_eq!(c["type"], "welcome5");
    assert_eq!(c["valid_until"], "2026-12-23", "30 days counting the issue date");
    let code = c["code"].as_str().expect("code");
    assert!(!code.is_empty());

    let last_day = "2026-12-23T23:59:59+08:00";
    let r = t.checkout(CARD, last_day, &["rice,grocery,2,3450"], &["--coupon", code]);
    assert_eq!(r["subtotal"], 6900);
    assert_eq!(r["discounts"], json!([{"kind": "coupon", "id": code, "amount": 500}]));
    assert_eq!(r["due"], 6400);
    assert_eq!(r["total"], 6400);
    // 2026-12-23 is a Wednesday: no campaign.
    assert_eq!(r["points_earned"], 64);
    t.refused(
        &sale_args(
            "checkout",
            CARD,
            last_day,
            &["rice,grocery,2,3450"],
            &["--coupon", code],
        ),
        "coupon_used",
    );
}

#[test]
fn reward_redeem_reduces_balance() {
    let t = Term::new();
    let b = rich_member(&t, CARD, "13800000001", None);
    let r = t.ok(&["reward", "redeem", "--card", CARD, "--sku", "mug", "--at", T1]);
    assert_eq!(r["sku"], "mug");
    assert_eq!(r["points"], 500);
    assert_eq!(i(&r["balance"]), b - 500);
    assert_eq!(r["stock_left"], 19);
    assert_eq!(t.balance(CARD, SNAP), b - 500);
    let r = t.ok(&["reward", "redeem", "--card", CARD, "--sku", "mug", "--at", T1]);
    assert_eq!(r["stock_left"], 18);
    assert_eq!(t.balance(CARD, SNAP), b - 1000);
}

// ---------------------------------------------------------------------------
// 6. Expiry
// ---------------------------------------------------------------------------

#[test]
fn points_expire_at_the_first_instant_of_the_month_after() {
    let t = Term::new();
    t.add_member(CARD, "13800000001", None);
    let r = t.checkout(CARD, "2026-03-15T12:00:00+08:00", &EX1_LINES, &[]);
    assert_eq!(r["points_earned"], 118);

    let s = t.show(CARD, "2027-03-31T23:59:59+08:00");
    assert_eq!(s["balance"], 118);
    assert_eq!(
        s["lots"],
        json!([{
            "points": 118,
            "earned_at": "2026-03-15T12:00:00+08:00",
            "expires_at": "2027-04-01T00:00:00+08:00",
        }])
    );
    let s = t.show(CARD, "2027-04-01T00:00:00+08:00");
    assert_eq!(s["balance"], 0);
    assert_eq!(s["lots"], json!([]));
    // The same instant in another offset.
    assert_eq!(t.balance(CARD, "2027-03-31T16:00:00Z"), 0);
    assert_eq!(t.balance(CARD, "2027-03-31T15:59:59Z"), 118);

    // Expired points cannot be redeemed.
    t.refused(
        &sale_args(
            "checkout",
            CARD,
            "2027-04-02T10:00:00+08:00",
            &["tea,grocery,1,3000"],
            &["--redeem", "100"],
        ),
        "insufficient_points",
    );
}

// ---------------------------------------------------------------------------
// 7. Daily report
// ---------------------------------------------------------------------------

#[test]
fn report_daily_totals() {
    let t = Term::new();
    t.add_member(CARD, "13800000001", None);
    let a = t.checkout(CARD, T1, &EX1_LINES, &[]);
    let b = t.checkout(CARD, "2026-11-24T11:00:00+08:00", &["rice,grocery,2,3450"], &[]);
    assert_eq!(b["points_earned"], 69);
    t.ok(&[
        "coupon",
        "issue",
        "--card",
        CARD,
        "--type",
        "welcome5",
        "--at",
        "2026-11-24T12:00:00+08:00",
    ]);
    let tx_a = a["tx_id"].as_str().expect("tx");
    let tx_b = b["tx_id"].as_str().expect("tx");
    t.ok(&[
        "refund",
        "--tx",
        tx_a,
        "--line",
        "rice,1",
        "--at",
        "2026-11-24T15:00:00+08:00",
    ]);
    t.checkout(CARD, "2026-11-25T09:00:00+08:00", &["oil,grocery,1,5990"], &[]);
    t.ok(&["refund", "--tx", tx_b, "--at", "2026-11-25T10:00:00+08:00"]);
    // Late evening local time is still the 24th; UTC already says the 25th... no:
    // 23:30 local on the 24th is 15:30Z on the 24th. Use an instant that is the 25th in
    // UTC but the 24th... impossible east of UTC; instead check 00:30 local on the 25th,
    // which is still the 24th in UTC, lands on the 25th.
    t.checkout(CARD, "2026-11-24T16:30:00Z", &["gum,grocery,1,100"], &[]);

    let d = t.ok(&["report", "daily", "--date", "2026-11-24"]);
    assert_eq!(d["date"], "2026-11-24");
    assert_eq!(d["currency"], "CNY");
    for (k, v) in [
        ("checkouts", 2),
        ("subtotal", 15390 + 6900),
        ("discounts", 1000),
        ("redeem_value", 0),
        ("total", 14390 + 6900),
        ("points_earned", 118 + 69),
        ("points_redeemed", 0),
        ("refunds", 1),
        ("refunded_amount", 3182),
        ("points_clawed_back", 26),
        ("points_returned", 0),
        ("coupons_issued", 1),
        ("coupons_used", 0),
        ("rewards_redeemed", 0),
    ] {
        assert_eq!(d[k], v, "2026-11-24 {k}: {d}");
    }
    let d = t.ok(&["report", "daily", "--date", "2026-11-25"]);
    for (k, v) in [
        ("checkouts", 2),
        ("subtotal", 5990 + 100),
        ("total", 5990 + 100),
        ("points_earned", 59 + 1),
        ("refunds", 1),
        ("refunded_amount", 6900),
        ("points_clawed_back", 69),
        ("coupons_issued", 0),
    ] {
        assert_eq!(d[k], v, "2026-11-25 {k}: {d}");
    }
    let d = t.ok(&["report", "daily", "--date", "2026-11-23"]);
    assert_eq!(d["checkouts"], 0);
    assert_eq!(d["total"], 0);
}

// ---------------------------------------------------------------------------
// 8. store_busy
// ---------------------------------------------------------------------------

fn open_engine(t: &Term) -> loyaltyd::engine::Engine {
    use loyaltyd::config::Config;
    use loyaltyd::engine::Engine;
    let mut cfg = Config::load(Path::new(support::cli::CONFIG), true).expect("config");
    cfg.data_dir = t.data.clone();
    cfg.rules = t.rules.clone();
    let rules = cfg.load_rules().expect("rules");
    Engine::open(loyaltyd::engine::EngineConfig::of(&cfg), rules).expect("open the engine in-process")
}

#[test]
fn store_busy_while_another_process_holds_the_data_dir() {
    let t = Term::new();
    t.add_member(CARD, "13800000001", None);
    t.checkout(CARD, T1, &EX1_LINES, &[]);
    let shown = t.show(CARD, SNAP);
    let records = t.records();

    let engine = open_engine(&t);
    let journal = std::fs::read(t.journal()).expect("journal");
    let lock = std::fs::read(t.data.join("LOCK")).expect("LOCK");
    for args in [
        sale_args("checkout", CARD, T1, &EX1_LINES, &[]),
        vec!["member", "show", "--card", CARD, "--at", SNAP],
        vec![
            "member",
            "add",
            "--card",
            CARD2,
            "--name",
            "Bo",
            "--phone",
            "13800000002",
        ],
        vec!["card", "block", "--card", CARD],
        vec!["refund", "--tx", "T1-0-1", "--at", T1],
        vec!["report", "daily", "--date", "2026-11-24"],
        vec!["rebuild"],
    ] {
        let msg = t.refused(&args, "store_busy");
        assert!(
            msg.contains(&t.data.display().to_string()),
            "the message names the data dir: {msg}"
        );
        assert_eq!(std::fs::read(t.journal()).expect("journal"), journal);
        assert_eq!(std::fs::read(t.data.join("LOCK")).expect("LOCK"), lock);
    }
    assert!(!t.data.join("state.rebuild").exists());
    drop(engine);

    assert_eq!(t.show(CARD, SNAP), shown, "nothing changed");
    assert_eq!(t.records(), records);
    assert_eq!(t.checkout(CARD, T1, &EX1_LINES, &[])["balance"], 236);
}

// ---------------------------------------------------------------------------
// 9. Rebuild and a lost state store
// ---------------------------------------------------------------------------

/// A data dir with some history; returns the members as shown at SNAP.
fn history(t: &Term) -> Vec<Value> {
    rich_member(t, CARD, "13800000001", Some("1234"));
    t.add_member(CARD2, "13800000002", None);
    let r = t.checkout(CARD2, T1, &EX1_LINES, &[]);
    t.checkout(
        CARD,
        "2026-11-25T10:00:00+08:00",
        &["tea,grocery,2,3000"],
        &["--redeem", "1000", "--pin", "1234"],
    );
    let c = t.ok(&["coupon", "issue", "--card", CARD2, "--type", "welcome5", "--at", T1]);
    t.checkout(
        CARD2,
        T1,
        &["rice,grocery,2,3450"],
        &["--coupon", c["code"].as_str().unwrap()],
    );
    t.ok(&[
        "refund",
        "--tx",
        r["tx_id"].as_str().unwrap(),
        "--line",
        "oil,1",
        "--at",
        T1,
    ]);
    t.ok(&["reward", "redeem", "--card", CARD, "--sku", "mug", "--at", T1]);
    t.ok(&["card", "block", "--card", CARD2]);
    vec![t.show(CARD, SNAP), t.show(CARD2, SNAP)]
}

fn members(t: &Term) -> Vec<Value> {
    vec![t.show(CARD, SNAP), t.show(CARD2, SNAP)]
}

/// Entries of the data dir named `state.*` other than `state.rebuild`: moved-aside stores.
fn moved_aside(t: &Term) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(&t.data)
        .expect("data dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("state.") && n != "state.rebuild")
        .collect();
    v.sort();
    v
}

#[test]
fn rebuild_gives_identical_members() {
    let t = Term::new();
    let want = history(&t);
    let records = t.records();
    let r = t.ok(&["rebuild"]);
    assert_eq!(r["ok"], true);
    assert_eq!(r["records"], records);
    assert_eq!(members(&t), want);
    assert_eq!(moved_aside(&t).len(), 1, "the old store is kept");
    let r = t.ok(&["rebuild"]);
    assert_eq!(r["records"], records);
    assert_eq!(members(&t), want);
    assert_eq!(moved_aside(&t).len(), 2);
    assert_eq!(t.records(), records, "a rebuild writes no journal record");
}

#[test]
fn deleted_state_store_is_rebuilt() {
    let t = Term::new();
    let want = history(&t);
    std::fs::remove_dir_all(t.state()).expect("rm state");
    let r = t.run(&["member", "show", "--card", CARD, "--at", SNAP]);
    assert!(
        r.stderr.contains("was missing; rebuilt it from the journal"),
        "stderr says the store was rebuilt: {}",
        r.stderr
    );
    assert_eq!(r.json(), want[0]);
    assert_eq!(members(&t), want);
    // And it keeps working.
    let r = t.checkout(CARD, SNAP, &["tea,grocery,1,100"], &[]);
    assert_eq!(i(&r["balance"]), i(&want[0]["balance"]) + i(&r["points_earned"]));
}

#[test]
fn garbage_state_store_is_moved_aside_and_rebuilt() {
    let t = Term::new();
    let want = history(&t);
    let mut n = 0;
    for (path, bytes) in tree(&t.state()) {
        let garbage: Vec<u8> = (0..bytes.len().max(64)).map(|k| (k * 31 % 251) as u8).collect();
        std::fs::write(&path, garbage).expect("garbage");
        n += 1;
    }
    assert!(n > 0, "sled has files");
    let r = t.run(&["member", "show", "--card", CARD, "--at", SNAP]);
    assert_eq!(r.status, 0, "{r:?}");
    assert!(
        r.stderr.contains("moved") && r.stderr.contains("rebuilt"),
        "stderr says the store was moved aside and rebuilt: {}",
        r.stderr
    );
    assert_eq!(r.json(), want[0]);
    assert_eq!(members(&t), want);
    let aside = moved_aside(&t);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(
        !tree(&t.data.join(&aside[0])).is_empty(),
        "the moved-aside store keeps its files"
    );
    assert!(r.stderr.contains(&aside[0]), "stderr names where it went: {}", r.stderr);
}

// ---------------------------------------------------------------------------
// 10. The journal: torn tails and corruption
// ---------------------------------------------------------------------------

/// The length of the frame at `off` (src/journal/mod.rs: 60 + len for the frames this
/// version writes, bit 31 of the length word set; 52 + len for those of 0.1).
fn frame_len(journal: &[u8], off: usize) -> usize {
    let word = u32::from_le_bytes(journal[off..off + 4].try_into().unwrap());
    let overhead = if word & 1 << 31 != 0 { 60 } else { 52 };
    overhead + (word & !(1 << 31)) as usize
}

/// Start offsets of the journal's frames (16-byte header, then frames, then the zeros
/// the writer keeps ahead of itself).
fn frame_offsets(journal: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut off = 16;
    while off + 16 <= journal.len() && journal[off..off + 16] != [0; 16] {
        if off + frame_len(journal, off) > journal.len() {
            break;
        }
        out.push(off);
        off += frame_len(journal, off);
    }
    assert!(
        journal[off..].iter().all(|&b| b == 0),
        "frames tile the journal, then zeros"
    );
    out
}

/// The journal's header and frames, without the zeros after them.
fn journal_frames(t: &Term) -> Vec<u8> {
    let mut j = std::fs::read(t.journal()).expect("journal");
    let end = frame_offsets(&j).last().map_or(16, |&last| last + frame_len(&j, last));
    j.truncate(end);
    j
}

#[test]
fn torn_tail_of_garbage_is_cut() {
    let t = Term::new();
    let want = history(&t);
    let records = t.records();
    let clean = journal_frames(&t);
    let mut torn = clean.clone();
    torn.extend_from_slice(&[0x17, 0, 0, 0, 9, 9, 9]);
    std::fs::write(t.journal(), &torn).expect("write");

    // verify reports the torn tail but passes (it was never acknowledged).
    let v = t.ok(&["journal", "verify"]);
    assert_eq!(v["records"], records);
    assert_eq!(v["torn_tail"]["offset"], clean.len());
    assert_eq!(v["torn_tail"]["bytes"], 7);

    let r = t.run(&["member", "show", "--card", CARD, "--at", SNAP]);
    assert_eq!(r.status, 0, "{r:?}");
    assert!(
        r.stderr.contains("torn") && r.stderr.contains(&clean.len().to_string()),
        "stderr mentions the cut and its offset: {}",
        r.stderr
    );
    assert_eq!(r.json(), want[0]);
    assert_eq!(std::fs::read(t.journal()).expect("journal"), clean);
    let v = t.ok(&["journal", "verify"]);
    assert_eq!(v["records"], records);
    assert_eq!(v["torn_tail"], Value::Null);
    assert_eq!(members(&t), want);
}

#[test]
fn torn_last_record_is_cut_and_the_state_follows_the_journal() {
    let t = Term::new();
    t.add_member(CARD, "13800000001", None);
    let a = t.checkout(CARD, T1, &EX1_LINES, &[]);
    let records = t.records();
    let before_last = t.show(CARD, SNAP);
    let b = t.checkout(CARD, T1, &["rice,grocery,2,3450"], &[]);
    assert_eq!(i(&b["balance"]), i(&a["balance"]) + 69);

    // The last write half done: cut 10 bytes off the last frame.
    let j = journal_frames(&t);
    let last = *frame_offsets(&j).last().unwrap();
    std::fs::write(t.journal(), &j[..j.len() - 10]).expect("truncate");

    let r = t.run(&["member", "show", "--card", CARD, "--at", SNAP]);
    assert_eq!(r.status, 0, "{r:?}");
    assert!(
        r.stderr.contains("torn") && r.stderr.contains(&format!("offset {last}")),
        "stderr mentions the cut: {}",
        r.stderr
    );
    assert_eq!(r.json(), before_last, "the state follows the journal");
    assert_eq!(std::fs::read(t.journal()).unwrap(), j[..last].to_vec());
    assert_eq!(t.records(), records);
    // And it goes on: the next checkout gets the next sequence number.
    let c = t.checkout(CARD, T1, &["rice,grocery,2,3450"], &[]);
    assert_eq!(c["balance"], b["balance"]);
    assert_eq!(t.records(), records + 1);
}

#[test]
fn corruption_in_the_middle_stops_every_command() {
    let t = Term::new();
    let want = history(&t);
    let mut j = std::fs::read(t.journal()).expect("journal");
    let frames = frame_offsets(&j);
    assert!(frames.len() >= 6);
    let bad = frames[frames.len() / 2];
    j[bad + 60 + 2] ^= 0x40; // a payload byte of a frame in the middle
    std::fs::write(t.journal(), &j).expect("write");
    let path = t.journal().display().to_string();

    for args in [
        vec!["member", "show", "--card", CARD, "--at", SNAP],
        sale_args("checkout", CARD, T1, &EX1_LINES, &[]),
        vec!["rebuild"],
        vec!["journal", "verify"],
    ] {
        let r = t.run(&args);
        assert_eq!(r.status, 1, "{args:?}: {r:?}");
        let v = r.json();
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        for text in [msg, r.stderr.as_str()] {
            assert!(
                text.contains(&path) && text.contains(&format!("offset {bad}")),
                "{args:?}: the message names the journal and offset {bad}: {text}"
            );
        }
        assert_eq!(std::fs::read(t.journal()).unwrap(), j, "nothing is cut");
    }
    // Flip it back: all is well again.
    j[bad + 60 + 2] ^= 0x40;
    std::fs::write(t.journal(), &j).expect("write");
    assert_eq!(members(&t), want);
    t.records();
}

/// Replacing a card that was already replaced never leaves a member with two active
/// cards (A -> B, block B, B -> C, then A -> D: only D is active).
#[test]
fn a_member_never_has_two_active_cards() {
    let t = Term::new();
    t.add_member("0A0A0A0A", "13800000001", None);
    t.ok(&["card", "replace", "--card", "0A0A0A0A", "--new-card", "0B0B0B0B"]);
    t.ok(&["card", "block", "--card", "0B0B0B0B"]);
    t.ok(&["card", "replace", "--card", "0B0B0B0B", "--new-card", "0C0C0C0C"]);
    let m = t.ok(&["card", "replace", "--card", "0A0A0A0A", "--new-card", "0D0D0D0D"]);
    let active: Vec<&str> = m["cards"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "active")
        .map(|c| c["card"].as_str().unwrap())
        .collect();
    assert_eq!(active, ["0D0D0D0D"], "{m}");
    t.ok(&["rebuild"]);
    assert_eq!(t.ok(&["member", "show", "--card", "0D0D0D0D"])["cards"], m["cards"]);
}
