//! Sync between real hosts: the hub and two terminals each in a network namespace of
//! its own, each terminal's sync link a real IP link that loses, delays, duplicates and
//! reorders packets, then is cut (T1's blackholed, T2's taken down) while both keep
//! selling, then heals. The test drives the POS APIs over clean management links.
//! After the partition heals: every acknowledged change is on the hub exactly once,
//! every balance is the sum of its acknowledged sales, no outbox holds anything, and
//! the terminals show every member as the hub does.
//!
//! Needs root, iproute2 and /dev/net/tun: support/netns.rs says what happens without.
//! LOYALTYD_NETNS_SEED=N replays the faults' dice (the timing is the machine's own).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use loyaltyd::record::{Body, Record};
use loyaltyd::sync::wire::PUSH_PATH;
use serde_json::{json, Value};
use support::daemon::{Client, Daemon, BIN};
use support::eventually;
use support::hub::{secret_file, Hub, HUB_TOKEN};
use support::netns::{can_run, Host, Lab};
use support::wire::{Counts, Faults, Wire};

const PIN: &str = "1234";
/// Fixed ports: every host has a network stack of its own.
const HUB_PORT: u16 = 7440;
const POS_PORT: u16 = 7431;
/// IPv4 packets each sync link must carry in a phase before it ends.
const MIN_PACKETS: u64 = 120;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A terminal in its namespace, and its link to the hub (the terminal is end `b`).
struct Till {
    id: &'static str,
    host: Host,
    dir: PathBuf,
    d: Daemon,
    wire: Wire,
    /// Changes it acknowledged (2xx) that go to the hub: enrolments and new sales.
    made: u64,
}

impl Till {
    fn start(root: &Path, id: &'static str, host: &Host, wire: Wire) -> Till {
        let dir = root.join(id);
        std::fs::create_dir_all(&dir).unwrap();
        let d = Till::serve(&dir, id, host, &wire);
        Till {
            id,
            host: host.clone(),
            dir,
            d,
            wire,
            made: 0,
        }
    }

    /// `loyaltyd serve` in the terminal's namespace: the POS API on the management
    /// link, the hub reached over the wire.
    fn serve(dir: &Path, id: &str, host: &Host, wire: &Wire) -> Daemon {
        let secret = dir.parent().unwrap().join(format!("{id}.secret"));
        let secret = secret.display().to_string();
        let upstream = format!("http://{}:{HUB_PORT}", wire.a.addr);
        let listen = format!("{}:{POS_PORT}", host.addr);
        let args = [
            "--terminal-id",
            id,
            "--upstream",
            upstream.as_str(),
            "--upstream-secret-file",
            secret.as_str(),
            "--sync-interval",
            "1",
        ];
        let d = Daemon::start_at(dir, Some(&host.ns), &listen, &args, &[]);
        assert_is_the_binary(d.child.id());
        d
    }

    /// A power cut: SIGKILL, then the terminal starts again.
    fn power_cycle(&mut self) {
        self.d.signal(libc::SIGKILL);
        self.d.wait_exit(Duration::from_secs(10));
        self.d = Till::serve(&self.dir, self.id, &self.host, &self.wire);
    }

    fn c(&self) -> Client {
        self.d.client()
    }

    fn outbox(&self) -> u64 {
        self.c().get_json("/v1/health", 200)["outbox"].as_u64().unwrap()
    }

    fn enrol(&mut self, card: &str, phone: &str) -> String {
        let body = json!({"card": card, "name": "Member", "phone": phone, "pin": PIN});
        let m = self.c().post_json("/v1/members", &body, &[], 201);
        self.made += 1;
        m["member_id"].as_str().unwrap().to_string()
    }

    fn member(&self, card: &str) -> Option<Value> {
        let (status, text) = self.c().get(&format!("/v1/cards/{card}")).unwrap();
        (status == 200).then(|| serde_json::from_str(&text).unwrap())
    }

    /// A sale (redeeming `redeem` points when not 0) under idempotency key `key`.
    fn commit(&self, card: &str, key: &str, unit_price: i64, redeem: i64) -> Value {
        let mut body = json!({"card": card, "lines": [{"sku": "tv", "category": "electronics", "qty": 1, "unit_price": unit_price}]});
        if redeem > 0 {
            body["redeem_points"] = json!(redeem);
            body["pin"] = json!(PIN);
        }
        self.c()
            .post_json("/v1/checkout/commit", &body, &[("Idempotency-Key", key)], 200)
    }
}

/// A sale as the POS sent it, and the receipt it got.
struct Sale {
    card: String,
    unit_price: i64,
    redeem: i64,
    receipt: Value,
}

/// What the test expects of each member: its id and the points of its acknowledged sales.
#[derive(Default)]
struct Ledger {
    members: BTreeMap<String, (String, i64)>,
    sales: BTreeMap<String, Sale>,
    retries: u64,
}

impl Ledger {
    fn enrol(&mut self, t: &mut Till, card: &str) {
        let phone = format!("139{:08}", self.members.len() + 1);
        let id = t.enrol(card, &phone);
        self.members.insert(card.to_string(), (id, 0));
    }

    /// A new sale at `t` under idempotency key `key`; every third is sent again at once,
    /// as a POS does when an answer is slow.
    fn sell(&mut self, t: &mut Till, card: &str, key: &str, unit_price: i64, redeem: i64) {
        let receipt = t.commit(card, key, unit_price, redeem);
        assert_eq!(receipt["replayed"], false, "{receipt}");
        assert_eq!(receipt["points_redeemed"], redeem, "{receipt}");
        t.made += 1;
        let points = receipt["points_earned"].as_i64().unwrap() - redeem;
        self.members.get_mut(card).unwrap().1 += points;
        let sale = Sale {
            card: card.to_string(),
            unit_price,
            redeem,
            receipt,
        };
        self.sales.insert(key.to_string(), sale);
        if self.sales.len() % 3 == 0 {
            self.retry(t, key);
        }
    }

    /// Sends sale `key` again at `t`: the same receipt comes back, and nothing is added.
    fn retry(&mut self, t: &Till, key: &str) {
        let sale = &self.sales[key];
        let again = t.commit(&sale.card, key, sale.unit_price, sale.redeem);
        assert_eq!(again["replayed"], true, "{again}");
        for field in ["tx_id", "points_earned", "points_redeemed", "total"] {
            assert_eq!(again[field], sale.receipt[field], "replay of {key}: {field}");
        }
        self.retries += 1;
    }

    fn cards(&self) -> Vec<String> {
        self.members.keys().cloned().collect()
    }
}

/// `kill` on the child's pid must reach loyaltyd itself, not a wrapper.
fn assert_is_the_binary(pid: u32) {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let bin = std::fs::canonicalize(BIN).unwrap();
    assert_eq!(exe, bin, "pid {pid} is not loyaltyd");
}

/// The hub's entry for terminal `id`; there must be exactly one (one install epoch).
fn hub_terminal(hub: &Client, id: &str) -> Value {
    let all = hub.get_json("/v1/hub/terminals", 200);
    let mine: Vec<&Value> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["terminal_id"] == id)
        .collect();
    match mine[..] {
        [] => json!({"terminal_id": id, "acked_seq": 0, "records": 0, "duplicates": 0, "skipped": 0}),
        [one] => one.clone(),
        _ => panic!("{id} has several streams at the hub: {all}"),
    }
}

/// Waits until each terminal's outbox is empty and the hub holds all it made. A wait
/// slower than `SLOW` prints, for each terminal, its sync connections as its kernel saw
/// them `SLOW` into the wait (retransmission timers, RTT estimates) and what it logged.
fn wait_synced(hub: &Client, tills: &[&Till], secs: u64, what: &str) {
    const SLOW: Duration = Duration::from_secs(3);
    let t0 = Instant::now();
    for t in tills {
        t.d.log_lines(); // drained: a slow wait shows only its own lines
    }
    let mut sockets = None;
    let done = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        eventually(secs, what, || {
            if sockets.is_none() && t0.elapsed() > SLOW {
                sockets = Some(tills.iter().map(|t| tcp_state(&t.host)).collect::<Vec<_>>());
            }
            tills
                .iter()
                .all(|t| t.outbox() == 0 && hub_terminal(hub, t.id)["records"] == t.made)
                .then_some(())
        })
    }));
    if let Some(sockets) = sockets {
        println!("{what}: slow, {:.1?}", t0.elapsed());
        for (t, ss) in tills.iter().zip(sockets) {
            println!(
                "{} at {SLOW:?}:\n{ss}{} logged:\n{}",
                t.id,
                t.id,
                t.d.log_lines().join("\n")
            );
        }
    }
    if let Err(e) = done {
        std::panic::resume_unwind(e);
    }
}

/// `ss -tin` in the host's namespace: its TCP connections with their timers.
fn tcp_state(host: &Host) -> String {
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &host.ns, "ss", "-tin", "state", "established"])
        .output();
    out.map_or_else(
        |e| format!("ss: {e}\n"),
        |o| String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

/// Waits until each terminal knows every card.
fn wait_known(tills: &[&Till], cards: &[String], secs: u64) {
    for t in tills {
        for card in cards {
            eventually(secs, &format!("{} knows {card}", t.id), || t.member(card).map(|_| ()));
        }
    }
}

/// What a terminal's journal says went upstream: how many records, the last one's seq,
/// and its last recorded acknowledgement (upto, pushable). Read from a copy, so as not
/// to disturb the running terminal.
fn journal_upstream(data: &Path) -> (u64, u64, (u64, u64)) {
    let tmp = tempfile::tempdir().unwrap();
    let copy = tmp.path().join("journal.log");
    std::fs::copy(data.join("journal.log"), &copy).unwrap();
    let (journal, _) = loyaltyd::journal::Journal::open(&copy).unwrap();
    let (mut count, mut last, mut acked) = (0, 0, (0, 0));
    for frame in journal.read_from(1).unwrap() {
        let (seq, payload) = frame.unwrap();
        let record = Record::decode(&payload).unwrap();
        if record.body.is_pushable() {
            count += 1;
            last = seq;
        }
        if let Body::Acked { upto, pushable } = record.body {
            acked = (upto, pushable);
        }
    }
    (count, last, acked)
}

fn faults_seed() -> u64 {
    match std::env::var("LOYALTYD_NETNS_SEED") {
        Ok(s) => s.parse().expect("LOYALTYD_NETNS_SEED: a number"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

/// One phase of faults on both sync links: rounds of a sale at each terminal, each round
/// waiting until both are in sync, until each link has carried `MIN_PACKETS`.
struct Phase {
    name: &'static str,
    faults: Faults,
    /// The fault's own count, which must have moved: it touched the sync traffic.
    effect: fn(&Counts) -> u64,
}

#[test]
fn sync_between_namespaces_survives_loss_delay_duplication_reordering_and_a_partition() {
    if !can_run("netns sync test") {
        return;
    }
    let started = Instant::now();
    let seed = faults_seed();
    println!("faults seed: LOYALTYD_NETNS_SEED={seed}");
    let root = tempfile::tempdir().unwrap();
    // Declared first, so dropped last: after the processes and wires living in it.
    let mut lab = Lab::new();
    let (hub_host, h1, h2) = (lab.host("hub"), lab.host("t1"), lab.host("t2"));
    let (w1, w2) = (
        Wire::new(&lab, &hub_host, &h1, seed),
        Wire::new(&lab, &hub_host, &h2, seed + 1),
    );
    let (s1, s2) = (secret_file(root.path(), "T1"), secret_file(root.path(), "T2"));
    let terminals = [("T1", s1.as_path()), ("T2", s2.as_path())];
    let listen = format!("0.0.0.0:{HUB_PORT}");
    let hub_proc = Hub::start_in(root.path(), &terminals, Some(&hub_host.ns), &listen);
    assert_is_the_binary(hub_proc.child.id());
    let hub = Client::new(&format!("http://{}:{HUB_PORT}", hub_host.addr), Some(HUB_TOKEN));
    let mut t1 = Till::start(root.path(), "T1", &h1, w1);
    let mut t2 = Till::start(root.path(), "T2", &h2, w2);
    println!("lab slot {} up in {:.1?}", lab.slot, started.elapsed());
    let mut book = Ledger::default();

    let phases = [
        Phase {
            name: "loss",
            faults: Faults {
                loss_pct: 20,
                ..Faults::default()
            },
            effect: |c| c.lost,
        },
        Phase {
            name: "delay and reordering",
            faults: Faults {
                delay: ms(60),
                jitter: ms(40),
                reorder_pct: 25,
                ..Faults::default()
            },
            effect: |c| c.reordered,
        },
        Phase {
            name: "duplication",
            faults: Faults {
                duplicate_pct: 30,
                delay: ms(5),
                jitter: ms(5),
                ..Faults::default()
            },
            effect: |c| c.duplicated,
        },
        Phase {
            name: "all at once",
            faults: Faults {
                loss_pct: 15,
                delay: ms(30),
                jitter: ms(20),
                duplicate_pct: 10,
                reorder_pct: 15,
                cut: false,
            },
            effect: |c| c.lost.min(c.duplicated).min(c.reordered),
        },
    ];
    for (p, phase) in phases.iter().enumerate() {
        let t0 = Instant::now();
        let before = [t1.wire.counts(), t2.wire.counts()];
        t1.wire.set(phase.faults);
        t2.wire.set(phase.faults);
        if p == 0 {
            // Members enrolled at each terminal become known at the other through the hub.
            for n in 1..=3 {
                book.enrol(&mut t1, &format!("0A00000{n}"));
                book.enrol(&mut t2, &format!("0B00000{n}"));
            }
            wait_known(&[&t1, &t2], &book.cards(), 60);
        }
        // Rounds of a sale at each terminal, each round waiting until both are in sync,
        // until enough of the sync traffic has crossed the faulty links.
        let cards = book.cards();
        let mut round = 0;
        loop {
            let card = |i: usize| &cards[(2 * round + i) % cards.len()];
            let price = 20_000 + 1_000 * round as i64 + 10_000 * p as i64;
            book.sell(&mut t1, card(0), &format!("T1-{p}-{round}"), price, 0);
            book.sell(&mut t2, card(1), &format!("T2-{p}-{round}"), price + 500, 0);
            wait_synced(&hub, &[&t1, &t2], 90, &format!("both in sync under {}", phase.faults));
            round += 1;
            let carried = |t: &Till, before: Counts| t.wire.counts().since(before).packets;
            if round >= 3 && carried(&t1, before[0]) >= MIN_PACKETS && carried(&t2, before[1]) >= MIN_PACKETS {
                break;
            }
        }
        for (t, before) in [&t1, &t2].into_iter().zip(before) {
            let c = t.wire.counts().since(before);
            println!(
                "{}: {round} rounds in {:.1?}; {} ({}): {c:?}",
                phase.name,
                t0.elapsed(),
                t.id,
                phase.faults
            );
            assert!(
                (phase.effect)(&c) > 0,
                "{}: the fault never touched {}'s sync traffic: {c:?}",
                phase.name,
                t.id
            );
        }
    }

    // The partition. T2's cable is pulled at the terminal (no route: connecting fails
    // at once). T1's link first loses only the hub's answers, from T1's next push on:
    // the hub stores the records, T1 never hears so. Then T1's link is blackholed both
    // ways (connections hang), and T1 loses power and comes back, still cut off. Both
    // keep enrolling and selling, redeeming within the offline cap.
    let t0 = Instant::now();
    let hub_t2_before = hub_terminal(&hub, "T2");
    let made_before = [t1.made, t2.made];
    let t1_before = t1.wire.counts();
    let cards_before_partition = book.cards();
    t2.wire.b.set_up(false);
    t1.wire.cut_answers_to_b_after(PUSH_PATH.as_bytes());
    book.enrol(&mut t1, "0A000004");
    book.enrol(&mut t2, "0B000004");
    let held = eventually(30, "the hub holds T1's push whose answer is lost", || {
        let held = hub_terminal(&hub, "T1")["records"].as_u64().unwrap();
        (t1.wire.answers_cut() && held == t1.made).then_some(held)
    });
    t1.wire.set(Faults {
        cut: true,
        ..Faults::default()
    });
    t1.power_cycle();
    book.sell(&mut t1, "0A000004", "T1-cut-new", 25_000, 0);
    book.sell(&mut t2, "0B000004", "T2-cut-new", 25_000, 0);
    for (k, card) in cards_before_partition.iter().enumerate() {
        let price = 30_000 + 1_000 * k as i64;
        book.sell(&mut t1, card, &format!("T1-cut-{k}"), price, 300);
        book.sell(&mut t2, card, &format!("T2-cut-{k}"), price + 500, 300);
    }
    // Held until T1's sync has run into the blackhole again and again.
    eventually(30, "T1's sync attempts vanish in the partition", || {
        let cut = t1.wire.counts().since(t1_before).cut;
        (cut >= 10 && t0.elapsed() >= Duration::from_secs(3)).then_some(())
    });
    for (t, made) in [&t1, &t2].into_iter().zip(made_before) {
        assert_eq!(t.outbox(), t.made - made, "{} holds all it made while cut off", t.id);
    }
    assert_eq!(
        hub_terminal(&hub, "T1")["records"],
        held,
        "the hub heard nothing more from T1"
    );
    // What T2 has not pulled yet grows with the feed; the rest, its last contact
    // included, stays as it was.
    let unpulled_aside = |mut t: Value| {
        t.as_object_mut().unwrap().remove("records_behind");
        t
    };
    assert_eq!(
        unpulled_aside(hub_terminal(&hub, "T2")),
        unpulled_aside(hub_t2_before.clone()),
        "the hub heard nothing from T2"
    );
    assert!(t2.member("0A000004").is_none(), "T2 cannot know T1's new member yet");
    println!(
        "partition {:.1?}: T1 link {:?}; outboxes T1 {} T2 {}",
        t0.elapsed(),
        t1.wire.counts().since(t1_before),
        t1.outbox(),
        t2.outbox()
    );

    // Healed into a still-poor link. A POS retries sales made while cut off; more sales.
    let t0 = Instant::now();
    let poor = Faults {
        loss_pct: 10,
        delay: ms(20),
        jitter: ms(10),
        ..Faults::default()
    };
    t1.wire.set(poor);
    t2.wire.set(poor);
    t2.wire.b.set_up(true);
    book.retry(&t1, "T1-cut-0");
    book.retry(&t2, "T2-cut-1");
    wait_known(&[&t1, &t2], &book.cards(), 60);
    for (k, card) in book.cards().iter().enumerate() {
        book.sell(&mut t1, card, &format!("T1-healed-{k}"), 40_000 + 100 * k as i64, 0);
        book.sell(&mut t2, card, &format!("T2-healed-{k}"), 40_500 + 100 * k as i64, 0);
    }
    wait_synced(&hub, &[&t1, &t2], 90, "both in sync after the partition healed");
    println!("healed and in sync after {:.1?} ({poor})", t0.elapsed());
    assert!(
        hub_terminal(&hub, "T1")["duplicates"].as_u64().unwrap() >= 1,
        "T1 sent again what the hub held without T1 knowing, and the hub refused it as held"
    );

    // Every acknowledged change is at the hub exactly once, and nothing else is.
    for t in [&t1, &t2] {
        let at_hub = hub_terminal(&hub, t.id);
        println!("hub holds {}: {at_hub}", t.id);
        assert_eq!(at_hub["records"], t.made, "{}: records at the hub", t.id);
        assert_eq!(at_hub["skipped"], 0, "{}: records the hub could not apply", t.id);
        let (pushable, last, (acked_upto, acked_pushable)) = journal_upstream(&t.dir.join("data"));
        assert_eq!(pushable, t.made, "{}: the journal's records that go upstream", t.id);
        let acked_seq = at_hub["acked_seq"].as_u64().unwrap();
        assert!(
            last <= acked_seq,
            "{}: its last record {last} is above the hub's {acked_seq}",
            t.id
        );
        assert_eq!(
            (acked_upto, acked_pushable),
            (acked_seq, t.made),
            "{}: its last recorded acknowledgement",
            t.id
        );
    }
    // Every balance is the sum of its acknowledged sales, nothing applied twice; and the
    // terminals show each member exactly as the hub does.
    for (card, (id, points)) in &book.members {
        let at_hub = hub.get_json(&format!("/v1/hub/members/{id}"), 200);
        assert_eq!(at_hub["balance"], *points, "hub balance of {card}");
        for t in [&t1, &t2] {
            eventually(30, &format!("{} shows {card} as the hub does", t.id), || {
                (t.member(card).as_ref() == Some(&at_hub)).then_some(())
            });
        }
    }
    assert_eq!(hub.get_json("/v1/hub/reports/overspent", 200), json!([]));
    let total = |t: &Till| t.wire.counts();
    println!(
        "{} members, {} sales, {} retries; T1 link {:?}; T2 link {:?}; {:.1?} in all",
        book.members.len(),
        book.sales.len(),
        book.retries,
        total(&t1),
        total(&t2),
        started.elapsed()
    );
    drop((t1, t2, hub_proc));
    drop(lab);
}
