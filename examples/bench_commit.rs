//! Commit-path benchmark: prints figures, never passes or fails.
//!
//! ```text
//! cargo run --release --example bench_commit [--features sqlite-bench]
//! ```
//!
//! Environment: BENCH_DIR (where the temp dir goes, default `target`; keep it on the disk
//! you care about), BENCH_MEMBERS (100000), BENCH_CHECKOUTS (20000),
//! BENCH_REBUILD_RECORDS (1000000), BENCH_SETUP (`parallel` = enrol with 32 threads
//! sharing fsyncs, default; `serial` = one fsynced add_member after another).
//!
//! Phases: setup (enrol members through `Engine::add_member`), durable checkouts from one
//! stream, raw 512-byte write+fdatasync on the same disk, the quote (with the shipped
//! ruleset, then with a large one: 50 promotions, 20 campaigns, 10 triggers, 10 active
//! group-buy deals), group commit with 8 and 32 threads, the same workload on SQLite
//! (feature `sqlite-bench`), and a rebuild of the state from a synthetic journal of
//! BENCH_REBUILD_RECORDS records.
//!
//! For the quote figures alone, a short run: `BENCH_MEMBERS=20000 BENCH_CHECKOUTS=2000
//! BENCH_REBUILD_RECORDS=10000`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use loyaltyd::engine::{self, At, ClockPolicy, Engine, EngineConfig, Sale};
use loyaltyd::journal::Journal;
use loyaltyd::model::{self, day_no};
use loyaltyd::record::{self, Body, IdemKey, Record};
use loyaltyd::rules::{self, PricedLine, Ruleset};

mod common;
use common::{
    bench_dir, card, enrol, env_usize, phone, random_lines, random_sale, rate, us, Lat, RawFile, Rng, CATALOG,
};

const RULES: &str = include_str!("../config/rules.toml");
/// Threads used for the parallel enrolment.
const SETUP_THREADS: usize = 32;
/// Members enrolled one by one first, to measure the serial enrolment rate.
const SERIAL_PROBE: usize = 1000;
/// Payloads per `Journal::append` when writing the rebuild journal.
const REBUILD_BATCH: usize = 1000;
/// Rounds that interleave the single-stream checkouts with the raw and bare appends.
const ROUNDS: usize = 10;

/// A fixed business instant outside every campaign, with a trusted clock.
fn bench_at() -> Result<At> {
    Ok(At {
        ts: model::parse_instant("2026-06-15T12:00:00+08:00")?,
        trusted: true,
        actor: loyaltyd::engine::Actor::system(),
    })
}

fn engine_config(dir: &Path) -> EngineConfig {
    EngineConfig {
        data_dir: dir.to_path_buf(),
        terminal_id: "T1".to_string(),
        clock: ClockPolicy::Trusted,
        // As config/loyaltyd.toml: cache_mib = 8.
        cache_bytes: 8 << 20,
        offline_cap: false,
        hub: false,
        ..Default::default()
    }
}

fn rules() -> Result<Ruleset> {
    Ruleset::parse(RULES, "config/rules.toml").map_err(|e| anyhow!("{e}"))
}

/// Result of a checkout run.
struct Run {
    n: usize,
    elapsed: Duration,
    lat: Lat,
    syncs: u64,
}

impl Run {
    fn rate(&self) -> f64 {
        rate(self.n, self.elapsed)
    }

    fn merge(self, other: Run) -> Run {
        let mut lat = self.lat.0;
        lat.extend(other.lat.0);
        Run {
            n: self.n + other.n,
            elapsed: self.elapsed + other.elapsed,
            lat: Lat::new(lat),
            syncs: self.syncs + other.syncs,
        }
    }
}

/// `n` checkouts spread over `threads` threads, each with an idempotency key.
fn checkouts(engine: &Engine, members: usize, n: usize, threads: usize, tag: &str, at: At) -> Result<Run> {
    let syncs0 = engine.journal().sync_count();
    let t0 = Instant::now();
    let per_thread: Vec<Result<Vec<u32>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let count = n / threads + usize::from(t < n % threads);
                let at = at.clone();
                s.spawn(move || -> Result<Vec<u32>> {
                    let seed = tag.bytes().fold(t as u64 + 1, |h, b| h.wrapping_mul(31) ^ b as u64);
                    let mut rng = Rng::new(seed);
                    let mut lat = Vec::with_capacity(count);
                    for i in 0..count {
                        let sale = random_sale(&mut rng, members);
                        let key = format!("{tag}-{t}-{i}");
                        let start = Instant::now();
                        engine
                            .checkout(&sale, Some(&key), at.clone())
                            .with_context(|| format!("checkout {key}"))?;
                        lat.push(us(start.elapsed()));
                    }
                    Ok(lat)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("checkout thread panicked"))
            .collect()
    });
    let elapsed = t0.elapsed();
    let mut all = Vec::with_capacity(n);
    for r in per_thread {
        all.extend(r?);
    }
    Ok(Run {
        n,
        elapsed,
        lat: Lat::new(all),
        syncs: engine.journal().sync_count() - syncs0,
    })
}

/// A bare `Journal` (no sled, no rules) fed checkout-sized records one at a time.
struct BareJournal {
    journal: Journal,
    payloads: Vec<Vec<u8>>,
    next: usize,
}

impl BareJournal {
    fn open(path: &Path, at: At) -> Result<BareJournal> {
        let ruleset = rules()?;
        let (journal, _) = Journal::open(path)?;
        let mut gen = Synth::new(&ruleset, at, 100_000, 7);
        let payloads = (0..1000).map(|i| gen.checkout(i as u64 + 2).encode()).collect();
        Ok(BareJournal {
            journal,
            payloads,
            next: 0,
        })
    }

    fn payload_bytes(&self) -> usize {
        self.payloads.iter().map(Vec::len).sum::<usize>() / self.payloads.len()
    }

    /// `n` appends, each made durable before the next (like a single checkout stream).
    fn durable_appends(&mut self, n: usize) -> Result<Duration> {
        let t0 = Instant::now();
        for _ in 0..n {
            let p = &self.payloads[self.next % self.payloads.len()];
            self.next += 1;
            let seq = self.journal.append(&[p.as_slice()])?;
            self.journal.wait_durable(seq)?;
        }
        Ok(t0.elapsed())
    }

    /// `n` appends without any sync: encode + CRC + SHA-256 + pwrite.
    fn appends(&mut self, n: usize) -> Result<Duration> {
        let t0 = Instant::now();
        for _ in 0..n {
            let p = &self.payloads[self.next % self.payloads.len()];
            self.next += 1;
            self.journal.append(&[p.as_slice()])?;
        }
        let d = t0.elapsed();
        self.journal.wait_durable(self.journal.last_seq())?;
        Ok(d)
    }
}

/// Mean µs of `Engine::quote` (member read + pricing, no write) over `k` random sales.
fn quote_us(engine: &Engine, members: usize, k: usize, at: At) -> Result<f64> {
    let mut rng = Rng::new(77);
    let sales: Vec<Sale> = (0..k).map(|_| random_sale(&mut rng, members)).collect();
    let t0 = Instant::now();
    for s in &sales {
        engine.quote(s, at.clone())?;
    }
    Ok(t0.elapsed().as_secs_f64() * 1e6 / k as f64)
}

/// The shipped ruleset grown to the size issue 16 sets the quote target for: 50 promotions
/// of every kind and scope, 20 campaigns, 10 triggers and 10 group-buy deals, most of them
/// open at the bench instant and over the catalog's skus and categories, so that pricing
/// weighs each of them.
fn big_rules_text() -> String {
    let mut t = RULES.to_string();
    let skus: Vec<&str> = CATALOG.iter().map(|c| c.0).collect();
    let categories = ["grocery", "dairy", "drinks", "household", "meat"];
    let tiers = ["standard", "silver", "gold"];
    let window = |i: usize| match i % 5 {
        // Open through June 2026, the bench's month.
        0 => "starts = \"2026-06-01T00:00:00\"\nends = \"2026-06-30T23:59:59\"\n".to_string(),
        1 => format!("tiers = [\"{}\"]\n", tiers[i % 3]),
        // Closed at the bench instant: ended in May.
        2 => "ends = \"2026-05-31T23:59:59\"\n".to_string(),
        3 => "weekdays = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"]\n".to_string(),
        _ => String::new(),
    };
    // The shipped file has one promotion and one campaign.
    for i in 0..49 {
        t += &format!("[[promotions]]\nid = \"bench-p{i:02}\"\n");
        t += &match i % 3 {
            0 => format!(
                "min_minor = {}\noff_minor = {}\n",
                3000 + 1000 * (i % 7),
                200 + 50 * (i % 9)
            ),
            1 => format!(
                "kind = \"every\"\nstep_minor = {}\noff_minor = {}\nmax_off_minor = {}\n",
                2000 + 500 * (i % 5),
                100 + 25 * (i % 4),
                2000
            ),
            _ => format!(
                "kind = \"percent\"\nmin_minor = {}\noff_bp = {}\n",
                1000 * (i % 4),
                300 + 100 * (i % 8)
            ),
        };
        t += &match i % 4 {
            0 => String::new(),
            1 => format!("categories = [\"{}\"]\n", categories[i % categories.len()]),
            2 => format!(
                "skus = [\"{}\", \"{}\"]\n",
                skus[i % skus.len()],
                skus[(i + 3) % skus.len()]
            ),
            _ => format!(
                "categories = [\"{}\", \"{}\"]\n",
                categories[i % categories.len()],
                categories[(i + 2) % categories.len()]
            ),
        };
        t += &window(i);
    }
    for i in 0..19 {
        t += &format!(
            "[[campaigns]]\nid = \"bench-c{i:02}\"\nmultiplier_bp = {}\nbonus_points = {}\n",
            10_000 + 500 * (i % 6),
            i % 3
        );
        t += &window(i);
    }
    let on = [
        "on = \"enrol\"",
        "on = \"birthday\"",
        "on = \"visit\"\nnth = 5",
        "on = \"visit\"\nnth = 10",
        "on = \"visit\"\nnth = 50",
        "on = \"inactive\"\ndays = 30",
        "on = \"inactive\"\ndays = 90",
        "on = \"tier_up\"\ntier = \"silver\"",
        "on = \"tier_up\"\ntier = \"gold\"",
        "on = \"visit\"\nnth = 100",
    ];
    for (i, on) in on.iter().enumerate() {
        t += &format!("[[triggers]]\nid = \"bench-t{i}\"\n{on}\ncoupon = \"welcome5\"\n");
    }
    for i in 0..10 {
        let (sku, _, price) = CATALOG[i % CATALOG.len()];
        t += &format!(
            "[[group_buys]]\nid = \"bench-g{i}\"\nsku = \"{sku}\"\ngroup_price_minor = {}\nsize = 3\n\
             window_hours = 24\nstarts = \"2026-06-01T00:00:00\"\nends = \"2026-06-30T23:59:59\"\n",
            price * 7 / 10 - i as i64
        );
    }
    t
}

fn big_rules() -> Result<Ruleset> {
    let r = Ruleset::parse(&big_rules_text(), "bench-big-rules.toml").map_err(|e| anyhow!("{e}"))?;
    assert_eq!(
        (
            r.promotions.len(),
            r.campaigns.len(),
            r.triggers.len(),
            r.group_buys.len()
        ),
        (50, 20, 10, 10)
    );
    Ok(r)
}

/// Mean µs of the pure `rules::price` over `k` random sales by a silver member who holds a
/// unit of every group-buy deal of `rules` (the engine does not hand pricing any unit yet).
fn price_us(rules: &Ruleset, k: usize, at: &At) -> Result<f64> {
    let mut rng = Rng::new(78);
    let sales: Vec<Vec<model::Line>> = (0..k).map(|_| random_lines(&mut rng)).collect();
    let units: Vec<rules::GroupBuyUnit> = rules
        .group_buys
        .iter()
        .map(|g| rules::GroupBuyUnit {
            deal: g.id.clone(),
            sku: g.sku.clone(),
            group_price_minor: g.group_price_minor,
        })
        .collect();
    let member = model::MemberState {
        member_id: "m-bench".into(),
        tier: "silver".into(),
        lots: vec![model::Lot {
            points: 5000,
            earned_at: at.ts,
            expires_at: None,
        }],
        active: true,
        ..Default::default()
    };
    let reached = ["standard".to_string(), "silver".to_string()];
    let t0 = Instant::now();
    for lines in &sales {
        let req = rules::Request {
            member: &member,
            lines,
            coupon: None,
            redeem_points: 0,
            at: at.ts,
            expiry_applies: true,
            offline_redeemed: None,
            pin_given: false,
            facts: rules::CampaignFacts {
                group_buy_units: &units,
                tiers_reached: &reached,
            },
        };
        std::hint::black_box(rules::price(rules, &req, &mut || rules::PinCheck::NotGiven)?);
    }
    Ok(t0.elapsed().as_secs_f64() * 1e6 / k as f64)
}

/// Synthetic, internally consistent records for the rebuild journal.
struct Synth {
    rng: Rng,
    members: usize,
    at: model::Ts,
    day: model::DayNo,
    expires: Option<model::Ts>,
    version: u32,
    wall: model::Ts,
    mono: u64,
}

impl Synth {
    fn new(rules: &Ruleset, at: At, members: usize, seed: u64) -> Synth {
        Synth {
            rng: Rng::new(seed),
            members,
            at: at.ts,
            day: day_no(rules::local_date(rules, at.ts)),
            expires: rules::lots::expires_at(rules, at.ts),
            version: rules.version,
            wall: model::now(),
            mono: 1,
        }
    }

    fn record(&mut self, body: Body) -> Record {
        self.keyed(body, None)
    }

    fn keyed(&mut self, body: Body, idem: Option<IdemKey>) -> Record {
        self.mono += 1;
        Record {
            wall: self.wall,
            clock_trusted: true,
            boot_id: [7; 16],
            mono_us: self.mono,
            at: self.at,
            day: self.day,
            idem,
            by: Some("bench".into()),
            requested_by: None,
            body,
        }
    }

    fn member_id(i: usize) -> String {
        format!("m-{i:016x}")
    }

    fn init(&mut self) -> Record {
        self.record(Body::Init {
            terminal_id: "T1".to_string(),
            epoch: 0x5EED,
        })
    }

    fn member_add(&mut self, i: usize) -> Record {
        self.record(Body::MemberAdd {
            member_id: Synth::member_id(i),
            card: card(i),
            name: format!("Member {i}"),
            phone: phone(i),
            birthday: None,
            pin_hash: None,
        })
    }

    /// A checkout by a random member, priced flat: no discounts, 1 point per 1.00 of
    /// eligible spend, the lowest tier throughout.
    fn checkout(&mut self, seq: u64) -> Record {
        let i = self.rng.below(self.members);
        let lines: Vec<PricedLine> = random_lines(&mut self.rng)
            .into_iter()
            .map(|line| {
                let eligible = line.category != "tobacco";
                PricedLine::new(line, eligible)
            })
            .collect();
        let subtotal: i64 = lines.iter().map(PricedLine::gross).sum();
        let base: i64 = lines.iter().filter(|l| l.eligible).map(|l| l.gross()).sum();
        let mut hash = [0u8; 32];
        for chunk in hash.chunks_mut(8) {
            chunk.copy_from_slice(&self.rng.next().to_le_bytes());
        }
        let idem = IdemKey {
            key: format!("pos-{seq}"),
            request: hash,
        };
        let body = Body::CheckoutV3(Box::new(record::CheckoutV3 {
            tx_id: engine::tx_id("T1", 0x5EED, seq),
            member_id: Synth::member_id(i),
            card: card(i),
            lines: lines.iter().map(Into::into).collect(),
            subtotal,
            group_buy_discount: 0,
            tier_discount: 0,
            promotion: None,
            coupon: None,
            due: subtotal,
            points_redeemed: 0,
            redeem_value: 0,
            total: subtotal,
            base,
            points_earned: base / 100,
            lot_expires_at: self.expires,
            tier_before: "standard".to_string(),
            tier_after: "standard".to_string(),
            visit: true,
            pin_verified: false,
            ruleset_version: self.version,
            group_buys: vec![],
            gifts: vec![],
            gift_points: 0,
            coupons_issued: vec![],
            tiers_reached: vec![],
            campaigns: vec![],
        }));
        self.keyed(body, Some(idem))
    }
}

struct Rebuild {
    records: u64,
    write: Duration,
    journal_bytes: u64,
    rebuild: Duration,
    /// How far the rebuild raised resident memory above where it started.
    peak_kib: u64,
}

/// Writes a journal of `records` records (Init, MemberAdd for up to 100k members, then
/// checkouts) in batches, then times `engine::rebuild` on it.
fn rebuild_bench(dir: &Path, records: usize, at: At) -> Result<Rebuild> {
    let records = records.max(2);
    let ruleset = rules()?;
    let members = (records / 10).clamp(1, 100_000);
    let mut gen = Synth::new(&ruleset, at.clone(), members, 42);
    let path = engine::journal_path(dir);
    std::fs::create_dir_all(dir)?;
    let t0 = Instant::now();
    {
        let (journal, _) = Journal::open(&path)?;
        let mut seq = 0u64;
        let mut batch: Vec<Vec<u8>> = Vec::with_capacity(REBUILD_BATCH);
        while (seq as usize) < records {
            batch.clear();
            while batch.len() < REBUILD_BATCH && (seq as usize) < records {
                seq += 1;
                let rec = match seq {
                    1 => gen.init(),
                    s if s as usize <= members + 1 => gen.member_add(s as usize - 2),
                    s => gen.checkout(s),
                };
                batch.push(rec.encode());
            }
            let refs: Vec<&[u8]> = batch.iter().map(Vec::as_slice).collect();
            let first = journal.append(&refs)?;
            journal.wait_durable(first + refs.len() as u64 - 1)?;
        }
    }
    let write = t0.elapsed();
    let journal_bytes = std::fs::metadata(&path)?.len();

    let cfg = engine_config(dir);
    common::reset_peak_rss()?;
    let rss_before = common::proc_status_kib("self", "VmRSS:")?;
    let t0 = Instant::now();
    let (n, _note) = engine::rebuild(&cfg)?;
    let rebuild = t0.elapsed();
    let peak_kib = common::proc_status_kib("self", "VmHWM:")?.saturating_sub(rss_before);
    if n != records as u64 {
        return Err(anyhow!("rebuild applied {n} records, the journal has {records}"));
    }
    // The rebuilt state opens and knows the members.
    let e = Engine::open(cfg, ruleset)?;
    e.show_member(&card(members - 1), at)?;
    Ok(Rebuild {
        records: n,
        write,
        journal_bytes,
        rebuild,
        peak_kib,
    })
}

#[cfg(feature = "sqlite-bench")]
mod sqlite {
    //! The same checkout workload on SQLite: WAL, synchronous=FULL, one transaction per
    //! checkout, prepared (cached) statements, the same pricing function.

    use std::path::Path;
    use std::time::{Duration, Instant};

    use anyhow::{anyhow, Result};
    use loyaltyd::engine::At;
    use loyaltyd::model::{day_no, CardStatus, DayBucket, MemberState};
    use loyaltyd::rules::{self, PinCheck, Request, Ruleset};
    use rusqlite::{params, Connection, OptionalExtension};

    use super::{card, phone, random_sale, us, Lat, Rng};

    pub struct Sqlite {
        pub setup: Duration,
        pub elapsed: Duration,
        pub lat: Lat,
    }

    pub fn run(dir: &Path, members: usize, n: usize, ruleset: &Ruleset, at: At) -> Result<Sqlite> {
        let mut conn = Connection::open(dir.join("bench.sqlite"))?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(anyhow!("SQLite refused WAL mode ({mode})"));
        }
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE members(
                 member_id TEXT PRIMARY KEY,
                 card TEXT NOT NULL UNIQUE,
                 phone TEXT NOT NULL,
                 balance INTEGER NOT NULL,
                 tier TEXT NOT NULL,
                 metric INTEGER NOT NULL);
             CREATE TABLE txs(
                 tx_id TEXT PRIMARY KEY,
                 idem TEXT UNIQUE,
                 member_id TEXT NOT NULL,
                 total INTEGER NOT NULL,
                 points INTEGER NOT NULL,
                 body BLOB NOT NULL);",
        )?;
        let t0 = Instant::now();
        {
            let tx = conn.transaction()?;
            {
                let mut ins = tx.prepare(
                    "INSERT INTO members(member_id, card, phone, balance, tier, metric)
                     VALUES (?1, ?2, ?3, 0, 'standard', 0)",
                )?;
                for i in 0..members {
                    ins.execute(params![format!("m-{i:016x}"), card(i), phone(i)])?;
                }
            }
            tx.commit()?;
        }
        let setup = t0.elapsed();

        let day = day_no(rules::local_date(ruleset, at.ts));
        let mut rng = Rng::new(0xC0FFEE ^ (1 << 20) ^ 3);
        let mut lat = Vec::with_capacity(n);
        let t0 = Instant::now();
        for i in 0..n {
            let sale = random_sale(&mut rng, members);
            let key = format!("sql-0-{i}");
            let start = Instant::now();
            let tx = conn.transaction()?;
            {
                let mut sel =
                    tx.prepare_cached("SELECT member_id, balance, tier, metric FROM members WHERE card = ?1")?;
                let (member_id, balance, tier, metric): (String, i64, String, i64) = sel
                    .query_row([&sale.card], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                    .optional()?
                    .ok_or_else(|| anyhow!("unknown card {}", sale.card))?;
                let member = MemberState {
                    member_id: member_id.clone(),
                    name: String::new(),
                    phone: String::new(),
                    birthday: None,
                    pin_hash: None,
                    cards: vec![(sale.card.clone(), CardStatus::Active)],
                    created_at: 0,
                    tier,
                    lots: vec![],
                    debt: -balance.min(0),
                    days: vec![DayBucket {
                        day,
                        spend: metric,
                        points: 0,
                        visits: 0,
                    }],
                    pin_failures: 0,
                    pin_failed_at: 0,
                    unacked_redeem: vec![],
                    local_seq: 0,
                    listed_negative: false,
                };
                let req = Request {
                    member: &member,
                    lines: &sale.lines,
                    coupon: None,
                    redeem_points: 0,
                    at: at.ts,
                    expiry_applies: true,
                    offline_cap_applies: false,
                    acked: 0,
                };
                let p = rules::price(ruleset, &req, &mut || PinCheck::NotGiven).map_err(|e| anyhow!("{e}"))?;
                let body = postcard::to_allocvec(&p.lines)?;
                tx.prepare_cached(
                    "INSERT INTO txs(tx_id, idem, member_id, total, points, body)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    format!("S1-{i}"),
                    key,
                    member_id,
                    p.total,
                    p.points_earned,
                    body
                ])?;
                tx.prepare_cached(
                    "UPDATE members SET balance = balance + ?1, tier = ?2, metric = metric + ?3
                     WHERE member_id = ?4",
                )?
                .execute(params![p.points_earned, p.tier_after, p.base, member_id])?;
            }
            tx.commit()?;
            lat.push(us(start.elapsed()));
        }
        Ok(Sqlite {
            setup,
            elapsed: t0.elapsed(),
            lat: Lat::new(lat),
        })
    }
}

fn main() -> Result<()> {
    loyaltyd::alloc::tune();
    let members = env_usize("BENCH_MEMBERS", 100_000)?.max(1);
    let n = env_usize("BENCH_CHECKOUTS", 20_000)?.max(1);
    let rebuild_records = env_usize("BENCH_REBUILD_RECORDS", 1_000_000)?;
    let serial_setup = match std::env::var("BENCH_SETUP").as_deref() {
        Ok("serial") => true,
        Ok("parallel") | Err(_) => false,
        Ok(other) => return Err(anyhow!("BENCH_SETUP={other:?}: want serial or parallel")),
    };
    let tmp = tempfile::tempdir_in(bench_dir()?)?;
    println!("bench dir: {}", tmp.path().display());
    let at = bench_at()?;
    let total = Instant::now();

    // 1. Setup.
    let data = tmp.path().join("data");
    let engine = Engine::open(engine_config(&data), rules()?)?;
    let probe = members.min(SERIAL_PROBE);
    let t0 = Instant::now();
    enrol(&engine, 0..probe, 1, at.clone())?;
    let probe_time = t0.elapsed();
    let serial_rate = rate(probe, probe_time);
    let t1 = Instant::now();
    let setup_threads = if serial_setup { 1 } else { SETUP_THREADS };
    enrol(&engine, probe..members, setup_threads, at.clone())?;
    let rest_time = t1.elapsed();
    let setup = t0.elapsed();
    println!(
        "setup: {members} members in {:.1} s (first {probe} one by one: {serial_rate:.0}/s, \
         i.e. {:.0} s for all serially; the rest with {setup_threads} threads: {:.0}/s)",
        setup.as_secs_f64(),
        members as f64 / serial_rate,
        rate(members - probe, rest_time),
    );

    // 2 and 3. Durable checkouts from one stream, raw write+fdatasync (appends, and
    // overwrites of a pre-zeroed file) and bare journal appends, interleaved in rounds
    // so that all of them see the same disk weather.
    let raw_path = tmp.path().join("raw.log");
    let mut raw_file = RawFile::open(&raw_path)?;
    let zeroed_path = tmp.path().join("raw-zeroed.log");
    let mut zeroed_file = RawFile::pre_zeroed(&zeroed_path, n)?;
    let mut bare = BareJournal::open(&tmp.path().join("bare-journal.log"), at.clone())?;
    let mut single: Option<Run> = None;
    let (mut raw, mut zeroed, mut bare_sync, mut bare_n) = (Duration::ZERO, Duration::ZERO, Duration::ZERO, 0);
    for round in 0..ROUNDS {
        let chunk = n / ROUNDS + usize::from(round < n % ROUNDS);
        let r = checkouts(&engine, members, chunk, 1, &format!("one{round}"), at.clone())?;
        single = Some(match single {
            None => r,
            Some(s) => s.merge(r),
        });
        raw += raw_file.appends(chunk)?;
        zeroed += zeroed_file.appends(chunk)?;
        let b = chunk.div_ceil(4);
        bare_sync += bare.durable_appends(b)?;
        bare_n += b;
    }
    let single = single.expect("at least one round");
    drop((raw_file, zeroed_file));
    std::fs::remove_file(&raw_path)?;
    std::fs::remove_file(&zeroed_path)?;
    let raw_rate = rate(n, raw);
    let zeroed_rate = rate(n, zeroed);
    let raw_us = raw.as_secs_f64() * 1e6 / n as f64;
    let bare_us = bare_sync.as_secs_f64() * 1e6 / bare_n as f64;
    println!(
        "checkouts, 1 stream: {n} in {:.1} s = {:.0}/s; latency p50 {} us, p99 {} us, max {} us, \
         mean {:.0} us; fdatasyncs {}",
        single.elapsed.as_secs_f64(),
        single.rate(),
        single.lat.pct(0.5),
        single.lat.pct(0.99),
        single.lat.max(),
        single.lat.mean(),
        single.syncs,
    );
    println!(
        "raw 512 B write+fdatasync: {n} in {:.1} s = {raw_rate:.0}/s ({raw_us:.0} us each); \
         overwriting a pre-zeroed file instead: {zeroed_rate:.0}/s",
        raw.as_secs_f64(),
    );

    // Where the time of a checkout goes.
    let quote = quote_us(&engine, members, 5000, at.clone())?;
    // The same sales quoted with the large ruleset, then with the shipped one again: both on
    // the members the first pass brought into the cache, so they compare with each other.
    let big = big_rules()?;
    let price_small = price_us(&rules()?, 5000, &at)?;
    let price_big = price_us(&big, 5000, &at)?;
    engine.set_rules(big);
    let quote_big = quote_us(&engine, members, 5000, at.clone())?;
    engine.set_rules(rules()?);
    let quote_warm = quote_us(&engine, members, 5000, at.clone())?;
    let append_us = bare.appends(5000)?.as_secs_f64() * 1e6 / 5000.0;
    println!(
        "phases: quote (member read + pricing) {quote:.1} us; bare journal append of a {} B \
         record {append_us:.1} us without sync, {bare_us:.0} us with wait_durable ({bare_n} \
         interleaved); checkout mean {:.0} us, i.e. {:.0} us above a bare durable append",
        bare.payload_bytes(),
        single.lat.mean(),
        single.lat.mean() - bare_us,
    );
    println!(
        "phases: quote with 50 promotions, 20 campaigns, 10 triggers, 10 group-buy deals \
         {quote_big:.1} us (target: quote <= 50 us), the shipped ruleset on the same warm members \
         {quote_warm:.1} us; pricing alone (rules::price, a unit of every deal) {price_small:.1} us \
         with the shipped ruleset, {price_big:.1} us with the large one"
    );
    drop(bare);

    // 4. Group commit.
    let mut groups = vec![(1usize, single)];
    for threads in [8usize, 32] {
        let r = checkouts(&engine, members, n, threads, &format!("thr{threads}"), at.clone())?;
        println!(
            "checkouts, {threads} threads: {n} in {:.1} s = {:.0}/s; latency p50 {} us, \
             p99 {} us; fdatasyncs {} ({:.3} per checkout)",
            r.elapsed.as_secs_f64(),
            r.rate(),
            r.lat.pct(0.5),
            r.lat.pct(0.99),
            r.syncs,
            r.syncs as f64 / r.n as f64,
        );
        groups.push((threads, r));
    }
    drop(engine);

    // 5. SQLite.
    #[cfg(feature = "sqlite-bench")]
    let sqlite_line = {
        let s = sqlite::run(tmp.path(), members, n, &rules()?, at.clone())?;
        let r = rate(n, s.elapsed);
        println!(
            "sqlite: {members} members loaded in {:.1} s; {n} checkouts in {:.1} s = {r:.0}/s; \
             latency p50 {} us, p99 {} us, max {} us",
            s.setup.as_secs_f64(),
            s.elapsed.as_secs_f64(),
            s.lat.pct(0.5),
            s.lat.pct(0.99),
            s.lat.max(),
        );
        format!(
            "{r:>8.0} /s   loyaltyd/sqlite {:.2}x (target >= 10x)",
            groups[0].1.rate() / r
        )
    };
    #[cfg(not(feature = "sqlite-bench"))]
    let sqlite_line = "not built; run with --features sqlite-bench".to_string();

    // 6. Rebuild.
    let rb = rebuild_bench(&tmp.path().join("rebuild"), rebuild_records, at.clone())?;
    println!(
        "rebuild: journal of {} records ({:.0} MB) written in {:.1} s; rebuilt in {:.1} s = \
         {:.0} records/s; resident memory rose by at most {:.0} MiB",
        rb.records,
        rb.journal_bytes as f64 / 1e6,
        rb.write.as_secs_f64(),
        rb.rebuild.as_secs_f64(),
        rate(rb.records as usize, rb.rebuild),
        rb.peak_kib as f64 / 1024.0,
    );

    let one = &groups[0].1;
    let group_line = groups
        .iter()
        .map(|(t, r)| format!("{t} thr {:.0}/s", r.rate()))
        .collect::<Vec<_>>()
        .join(", ");
    let per_checkout = groups
        .iter()
        .map(|(_, r)| format!("{:.3}", r.syncs as f64 / r.n as f64))
        .collect::<Vec<_>>()
        .join(" / ");
    println!();
    println!("loyaltyd bench_commit (members={members}, checkouts={n})");
    println!(
        "setup ({members} members):           {:>8.1} s   (serial add_member {serial_rate:.0}/s)",
        setup.as_secs_f64()
    );
    println!(
        "durable checkouts/s (1 stream):  {:>8.0}      p50 {} us  p99 {} us  max {} us",
        one.rate(),
        one.lat.pct(0.5),
        one.lat.pct(0.99),
        one.lat.max()
    );
    println!(
        "raw 512B write+fdatasync/s:      {raw_rate:>8.0}      ratio {:.2} (target >= 0.7)",
        one.rate() / raw_rate
    );
    println!(
        "  the same into a pre-zeroed file: {zeroed_rate:>6.0}      ratio {:.2} (the journal's own floor)",
        one.rate() / zeroed_rate
    );
    println!("quote (member read + pricing):   {quote:>8.1} us   shipped ruleset");
    println!(
        "  with the large ruleset:        {quote_big:>8.1} us   target: quote <= 50 µs (shipped, as warm: {quote_warm:.1} us)"
    );
    println!("group commit: {group_line}; fsyncs per checkout {per_checkout}");
    println!("sqlite (WAL, synchronous=FULL):  {sqlite_line}");
    println!(
        "rebuild {} records:          {:>8.1} s   {:.0} records/s (target <= 10 s); peak +{:.0} MiB",
        rb.records,
        rb.rebuild.as_secs_f64(),
        rate(rb.records as usize, rb.rebuild),
        rb.peak_kib as f64 / 1024.0,
    );
    println!("total run time: {:.0} s", total.elapsed().as_secs_f64());
    Ok(())
}
