//! Properties of the state machine as a whole: replaying the journal into an empty store
//! gives the state the live run had, a full refund restores the member exactly, and
//! every member's points ledger adds up to their balance.

use loyaltyd::engine::{rebuild, At, ClockPolicy, Engine, EngineConfig, NewMember, Sale};
use loyaltyd::model::{parse_instant, Line, MemberState};
use loyaltyd::rules::Ruleset;
use loyaltyd::store::{Store, TxState};
use proptest::prelude::*;

const CARDS: [&str; 3] = ["CARD0001", "CARD0002", "CARD0003"];

fn rules() -> Ruleset {
    let extra = "[[promotions]]\nid = \"m200-25\"\nmin_minor = 20000\noff_minor = 2500\n\
                 [[activities]]\nid = \"checkin\"\npoints = 10\nmax_per_day = 1\n";
    let text = format!("{}{extra}", include_str!("../config/rules.toml"));
    Ruleset::parse(&text, "rules.toml").unwrap()
}

fn config(dir: &std::path::Path) -> EngineConfig {
    EngineConfig {
        data_dir: dir.join("data"),
        terminal_id: "T1".into(),
        clock: ClockPolicy::Trusted,
        cache_bytes: 4 << 20,
        offline_cap: true,
        hub: false,
        ..Default::default()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Checkout {
        who: usize,
        lines: Vec<(u8, i64, i64)>,
        redeem: i64,
        day: i64,
        coupon: bool,
    },
    Refund {
        pick: usize,
        partial: Option<i64>,
    },
    Coupon {
        who: usize,
        day: i64,
    },
    Reward {
        who: usize,
        day: i64,
    },
    Block {
        who: usize,
    },
    /// Points by hand (a manager's adjustment), either way.
    Adjust {
        who: usize,
        points: i64,
        day: i64,
    },
    Activity {
        who: usize,
        day: i64,
    },
    /// The daily expiry pass.
    Expire {
        day: i64,
    },
    /// A checkout asked again with its key: answered from the first, nothing new.
    Replay {
        pick: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let line = (0u8..3, 1i64..4, 0i64..40_000);
    prop_oneof![
        6 => (0usize..3, prop::collection::vec(line, 1..4), prop_oneof![Just(0i64), 100i64..800], 0i64..400, any::<bool>())
            .prop_map(|(who, lines, redeem, day, coupon)| Op::Checkout { who, lines, redeem, day, coupon }),
        3 => (any::<usize>(), prop::option::of(1i64..3)).prop_map(|(pick, partial)| Op::Refund { pick, partial }),
        1 => (0usize..3, 0i64..400).prop_map(|(who, day)| Op::Coupon { who, day }),
        1 => (0usize..3, 0i64..400).prop_map(|(who, day)| Op::Reward { who, day }),
        1 => (0usize..3).prop_map(|who| Op::Block { who }),
        2 => (0usize..3, prop_oneof![-400i64..-1, 1i64..400], 0i64..400).prop_map(|(who, points, day)| Op::Adjust { who, points, day }),
        2 => (0usize..3, 0i64..400).prop_map(|(who, day)| Op::Activity { who, day }),
        1 => (0i64..800).prop_map(|day| Op::Expire { day }),
        1 => any::<usize>().prop_map(|pick| Op::Replay { pick }),
    ]
}

fn at(day: i64) -> At {
    let base = parse_instant("2026-01-05T10:00:00+08:00").unwrap();
    At {
        ts: base + day * 86_400_000_000,
        trusted: true,
        actor: loyaltyd::engine::Actor::system(),
    }
}

fn sale(card: &str, lines: &[(u8, i64, i64)], redeem: i64, coupon: Option<String>) -> Sale {
    const CATS: [&str; 3] = ["grocery", "alcohol", "tobacco"];
    Sale {
        card: card.into(),
        lines: lines
            .iter()
            .enumerate()
            .map(|(i, &(c, qty, price))| Line {
                sku: format!("sku{i}"),
                category: CATS[c as usize].into(),
                qty,
                unit_price: price,
            })
            .collect(),
        redeem_points: Some(redeem),
        pin: None,
        coupon,
    }
}

fn enrol(engine: &Engine) {
    for (i, card) in CARDS.iter().enumerate() {
        let m = NewMember {
            card: Some(card.to_string()),
            name: format!("M{i}"),
            phone: format!("1380000000{i}"),
            ..Default::default()
        };
        engine.add_member(m, None, at(0)).unwrap();
    }
}

/// What a run did.
#[derive(Debug, Default)]
struct Ran {
    /// Transactions made.
    txs: Vec<String>,
    /// Ops the engine took and refused, and refunds not tried (no sale yet).
    accepted: usize,
    refused: usize,
    skipped: usize,
    /// Plain sales (no redemption, no coupon) by members whose card was never blocked:
    /// the engine must take every one of these.
    plain: usize,
    plain_accepted: usize,
}

/// Runs ops against the engine; refusals are part of the game, and counted.
fn run(engine: &Engine, ops: &[Op]) -> Vec<String> {
    run_counted(engine, ops).txs
}

fn run_counted(engine: &Engine, ops: &[Op]) -> Ran {
    let mut ran = Ran::default();
    let mut txs: Vec<String> = Vec::new();
    // Keyed checkouts: (key, sale, instant, tx id).
    let mut keyed: Vec<(String, Sale, At, String)> = Vec::new();
    let mut coupons: Vec<(usize, String)> = Vec::new();
    let mut blocked = [false; 3];
    let mut clock = 0;
    let count = |ok: bool, ran: &mut Ran| {
        if ok {
            ran.accepted += 1;
        } else {
            ran.refused += 1;
        }
    };
    for op in ops {
        match op {
            Op::Checkout {
                who,
                lines,
                redeem,
                day,
                coupon,
            } => {
                clock = clock.max(*day);
                let code = if *coupon {
                    coupons.iter().find(|c| c.0 == *who).map(|c| c.1.clone())
                } else {
                    None
                };
                let plain = *redeem == 0 && code.is_none() && !blocked[*who];
                let s = sale(CARDS[*who], lines, *redeem, code);
                let key = format!("k{}", keyed.len());
                let r = engine.checkout(&s, Some(&key), at(clock));
                ran.plain += usize::from(plain);
                ran.plain_accepted += usize::from(plain && r.is_ok());
                count(r.is_ok(), &mut ran);
                if let Ok(r) = r {
                    let tx = r.tx_id.unwrap();
                    keyed.push((key, s, at(clock), tx.clone()));
                    txs.push(tx);
                }
            }
            Op::Refund { pick, partial } => {
                if txs.is_empty() {
                    ran.skipped += 1;
                    continue;
                }
                let tx = &txs[pick % txs.len()];
                let asked: Vec<(String, i64)> = partial.iter().map(|q| ("sku0".to_string(), *q)).collect();
                let r = engine.refund(tx, &asked, None, at(clock));
                count(r.is_ok(), &mut ran);
            }
            Op::Coupon { who, day } => {
                clock = clock.max(*day);
                let r = engine.issue_coupon(CARDS[*who], "welcome5", None, at(clock));
                count(r.is_ok(), &mut ran);
                if let Ok(c) = r {
                    coupons.push((*who, c.code));
                }
            }
            Op::Reward { who, day } => {
                clock = clock.max(*day);
                let r = engine.redeem_reward(CARDS[*who], "mug", None, None, at(clock));
                count(r.is_ok(), &mut ran);
            }
            Op::Block { who } => {
                let r = engine.block_card(CARDS[*who], None, at(clock));
                count(r.is_ok(), &mut ran);
                blocked[*who] = true;
            }
            Op::Adjust { who, points, day } => {
                clock = clock.max(*day);
                let id = member_id(engine, *who);
                let r = engine.adjust_points(&id, *points, "test", None, at(clock));
                count(r.is_ok(), &mut ran);
            }
            Op::Activity { who, day } => {
                clock = clock.max(*day);
                let id = member_id(engine, *who);
                let r = engine.grant_activity(&id, "checkin", None, at(clock));
                count(r.is_ok(), &mut ran);
            }
            Op::Expire { day } => {
                clock = clock.max(*day);
                let r = engine.expire_all(at(clock));
                count(r.is_ok(), &mut ran);
            }
            Op::Replay { pick } => {
                if keyed.is_empty() {
                    ran.skipped += 1;
                    continue;
                }
                let (key, s, when, tx) = keyed[pick % keyed.len()].clone();
                let r = engine.checkout(&s, Some(&key), when);
                count(r.is_ok(), &mut ran);
                let r = r.expect("a replay of a committed checkout answers");
                assert!(r.replayed);
                assert_eq!(r.tx_id.as_deref(), Some(tx.as_str()));
            }
        }
    }
    ran.txs = txs;
    ran
}

fn member_id(engine: &Engine, who: usize) -> String {
    engine.lookup_card(CARDS[who]).unwrap().0.unwrap().member_id
}

/// Every entry of a member's ledger, newest first, read a page at a time.
fn ledger(store: &Store, member_id: &str) -> Vec<loyaltyd::store::LedgerEntry> {
    let mut out = Vec::new();
    let mut before = None;
    loop {
        let (page, next) = store.ledger(member_id, before, 7).unwrap();
        out.extend(page.into_iter().map(|(_, e)| e));
        match next {
            Some(n) => before = Some(n),
            None => return out,
        }
    }
}

fn snapshot(store: &Store, txs: &[String]) -> (Vec<MemberState>, Vec<TxState>) {
    let mut members: Vec<MemberState> = store
        .member_ids()
        .unwrap()
        .iter()
        .map(|id| store.member(id).unwrap().unwrap())
        .collect();
    members.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    let txs = txs.iter().map(|t| store.tx(t).unwrap().unwrap()).collect();
    (members, txs)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The whole state (every member, card, transaction note, coupon, idempotency key,
    /// daily total, reward count, position) after a live run equals a rebuild's, and the
    /// run did something: a build that refused everything fails here.
    #[test]
    fn replaying_the_journal_gives_the_live_state(ops in prop::collection::vec(op(), 1..50)) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let engine = Engine::open(cfg.clone(), rules()).unwrap();
        enrol(&engine);
        let ran = run_counted(&engine, &ops);
        prop_assert_eq!(ran.accepted + ran.refused + ran.skipped, ops.len());
        prop_assert_eq!(ran.plain_accepted, ran.plain, "every plain sale is taken");
        let live = (snapshot(engine.store(), &ran.txs), engine.store().dump().unwrap());
        drop(engine);
        rebuild(&cfg).unwrap();
        let engine = Engine::open(cfg, rules()).unwrap();
        let rebuilt = (snapshot(engine.store(), &ran.txs), engine.store().dump().unwrap());
        prop_assert_eq!(rebuilt, live);
    }

    /// Whatever happened (sales, redemptions, rewards, refunds, expiry, adjustments,
    /// activities, replays), each member's ledger adds up to their balance, and each entry
    /// starts where the one before it ended.
    #[test]
    fn the_ledger_adds_up_to_the_balance(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(config(dir.path()), rules()).unwrap();
        enrol(&engine);
        let ran = run_counted(&engine, &ops);
        prop_assert_eq!(ran.accepted + ran.refused + ran.skipped, ops.len());
        for id in engine.store().member_ids().unwrap() {
            let m = engine.store().member(&id).unwrap().unwrap();
            let entries = ledger(engine.store(), &id);
            let sum: i64 = entries.iter().map(|e| e.points).sum();
            prop_assert_eq!(sum, m.ledger_balance(), "member {}: {:?}", id, entries);
            prop_assert_eq!(entries.first().map_or(0, |e| e.balance_after), m.ledger_balance());
            for w in entries.windows(2) {
                prop_assert_eq!(w[0].balance_after - w[0].points, w[1].balance_after);
            }
            prop_assert!(entries.iter().all(|e| e.points != 0));
        }
    }

    #[test]
    fn a_full_refund_restores_the_member(
        history in prop::collection::vec(op(), 0..30),
        lines in prop::collection::vec((0u8..3, 1i64..4, 0i64..40_000), 1..4),
        redeem in prop_oneof![Just(0i64), 100i64..900],
        steps in prop::collection::vec(1i64..3, 0..3),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut rules = rules();
        rules.tier_policy.downgrade = loyaltyd::rules::ruleset::Downgrade::Rolling;
        let engine = Engine::open(config(dir.path()), rules).unwrap();
        enrol(&engine);
        // Keep history without blocks so the member can still buy.
        let history: Vec<Op> = history.into_iter().filter(|o| !matches!(o, Op::Block { .. })).collect();
        run(&engine, &history);
        let when = at(400);
        let member_of = |e: &Engine| {
            let id = e.store().card_owner(CARDS[0]).unwrap().unwrap();
            e.store().member(&id).unwrap().unwrap()
        };
        // Expire first so that the comparison is not about expiry.
        engine.expire_all(when.clone()).unwrap();
        let before = member_of(&engine);
        let offline_before = engine.store().offline_redeemed(&before.member_id).unwrap();
        let Ok(r) = engine.checkout(&sale(CARDS[0], &lines, redeem, None), None, when.clone()) else {
            return Ok(());
        };
        let tx = r.tx_id.unwrap();
        for q in steps {
            let _ = engine.refund(&tx, &[("sku0".to_string(), q)], None, when.clone());
        }
        // The partial steps may already have taken all of it.
        if let Err(e) = engine.refund(&tx, &[], None, when.clone()) {
            prop_assert_eq!(e.code, loyaltyd::Code::RefundExceeds);
        }
        let after = member_of(&engine);
        prop_assert_eq!(&after.lots, &before.lots);
        prop_assert_eq!(after.debt, before.debt);
        prop_assert_eq!(&after.days, &before.days);
        prop_assert_eq!(engine.store().offline_redeemed(&after.member_id).unwrap(), offline_before);
        let view = |m: &MemberState| loyaltyd::views::MemberView::new(&engine.rules(), m, when.ts, true);
        // When the member was last in the shop stays what the sale made it.
        let (mut after_view, before_view) = (view(&after), view(&before));
        after_view.last_visit_at = before_view.last_visit_at.clone();
        prop_assert_eq!(after_view, before_view);
    }
}
