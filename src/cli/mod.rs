//! The command line: offline commands that open the data directory directly, or with
//! `--remote` go to the running daemon's API (`remote`). Members, cards, points and
//! staff live in `people`; how results read on a terminal in `text`.
//!
//! Exit status: 0 ok; 1 refused or failed (the error JSON on stdout with `--json`, a
//! message on stderr always); 2 usage error (clap's own exit code for bad usage).

mod people;
mod remote;
mod text;

use people::{CardCmd, MemberCmd, PointsCmd, StaffCmd, Target};
use remote::{Remote, Stdin};

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::config::{Config, HubConfig, DEFAULT_CONFIG_PATH, DEFAULT_HUB_CONFIG_PATH};
use crate::engine::{self, At, Engine, EngineConfig, Sale};
use crate::error::{Error, Result};
use crate::model::{parse_date, parse_instant, parse_refund_line, Line};

#[derive(Parser, Debug)]
#[command(name = "loyaltyd", version, about = "Offline-first member-card loyalty terminal")]
pub struct Cli {
    /// Config TOML [default: $LOYALTYD_CONFIG, else config/loyaltyd.toml (hub: config/hub.toml),
    /// else /etc/loyaltyd/loyaltyd.toml (hub.toml), else the embedded defaults]
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Data directory (overrides the config)
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Ruleset TOML (overrides the config)
    #[arg(long, global = true)]
    rules: Option<PathBuf>,
    /// Print the result as one JSON document on stdout
    #[arg(long, global = true)]
    json: bool,
    /// Send member, card and report commands to the running daemon's API (address and
    /// token from the config) instead of opening the data directory
    #[arg(long, global = true)]
    remote: bool,
    /// With --remote: act as this staff member, whose password is the first line of stdin
    #[arg(long = "as", global = true, requires = "remote")]
    as_staff: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Enrol, find, fix members; their history and points
    #[command(subcommand)]
    Member(MemberCmd),
    /// Block, replace or unblock cards
    #[command(subcommand)]
    Card(CardCmd),
    /// Points outside a sale
    #[command(subcommand)]
    Points(PointsCmd),
    /// Grant an activity of the ruleset to a member
    Activity {
        #[arg(long)]
        member: String,
        #[arg(long)]
        activity: String,
    },
    /// A transaction found again (a receipt to reprint), with its refunds
    Transaction {
        #[arg(long)]
        tx: String,
    },
    /// Staff accounts (owner)
    #[command(subcommand)]
    Staff(StaffCmd),
    /// Price a sale without committing it
    Quote(SaleArgs),
    /// Commit a sale
    Checkout {
        #[command(flatten)]
        sale: SaleArgs,
        /// Idempotency key: the same key again returns the first receipt
        #[arg(long)]
        key: Option<String>,
    },
    /// Refund lines of a sale, or all that is left of it
    Refund {
        #[arg(long)]
        tx: String,
        /// SKU,QTY (repeatable); none = everything left
        #[arg(long = "line")]
        lines: Vec<String>,
        #[arg(long)]
        at: Option<String>,
    },
    /// Issue coupons
    #[command(subcommand)]
    Coupon(CouponCmd),
    /// Redeem catalog rewards for points
    #[command(subcommand)]
    Reward(RewardCmd),
    /// Group buys (团购)
    #[command(subcommand)]
    Group(GroupCmd),
    /// Coupons members earn by behaviour
    #[command(subcommand)]
    Triggers(TriggersCmd),
    /// Check the journal
    #[command(subcommand)]
    Journal(JournalCmd),
    /// Rebuild the state store from the journal
    Rebuild,
    /// Look at the state store
    #[command(subcommand)]
    State(StateCmd),
    /// Reports
    #[command(subcommand)]
    Report(ReportCmd),
    /// Who did what, when, at which terminal (newest first)
    Audit {
        /// First local date, YYYY-MM-DD (inclusive)
        #[arg(long)]
        from: Option<String>,
        /// Last local date, YYYY-MM-DD (inclusive)
        #[arg(long)]
        to: Option<String>,
        /// Entries where this staff id acted or asked
        #[arg(long)]
        staff: Option<String>,
        /// One action, e.g. checkout, refund, points.adjust
        #[arg(long)]
        action: Option<String>,
        /// Entries on a page (1 to 500, default 50)
        #[arg(long)]
        limit: Option<usize>,
        /// A page's `next`: the older entries after it
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Run the terminal daemon (POS API, card reader, feedback)
    Serve {
        /// Listen address, e.g. 127.0.0.1:0 for an ephemeral port (overrides api.listen)
        #[arg(long)]
        listen: Option<String>,
        /// File with the POS bearer token (overrides api.token_file)
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Card reader: stdin | none | hid:PATH | rdm6300:PATH | wiegand:D0,D1
        #[arg(long)]
        reader: Option<String>,
        /// This terminal's id in the chain (overrides terminal_id)
        #[arg(long)]
        terminal_id: Option<String>,
        /// The hub's base URL, e.g. http://10.0.0.2:7440; "" for standalone (overrides sync.upstream)
        #[arg(long)]
        upstream: Option<String>,
        /// File with this terminal's secret shared with the hub (overrides sync.secret_file)
        #[arg(long)]
        upstream_secret_file: Option<PathBuf>,
        /// Seconds between sync rounds (overrides sync.interval_secs)
        #[arg(long)]
        sync_interval: Option<u64>,
        /// Which clock to believe: auto | trusted | untrusted | hub (overrides clock)
        #[arg(long)]
        clock: Option<crate::engine::ClockPolicy>,
    },
    /// The chain's hub (global --config names config/hub.toml here)
    #[command(subcommand)]
    Hub(HubCmd),
}

#[derive(Subcommand, Debug)]
enum HubCmd {
    /// Run the hub: push/pull for terminals, read-only endpoints for operators
    Serve {
        /// Listen address (overrides listen)
        #[arg(long)]
        listen: Option<String>,
        /// File with the operators' bearer token (overrides token_file)
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// ID=SECRET_FILE: a terminal allowed to sync (repeatable; adds to or replaces the config's)
        #[arg(long = "terminal")]
        terminals: Vec<String>,
    },
    /// Rebuild the hub's state store from its journal
    Rebuild,
    /// Apply the PostgreSQL store's migrations ([store] kind = "postgres") and exit
    Migrate,
    /// Move this (stopped) embedded hub's data into an empty PostgreSQL database
    Export {
        /// postgres://user:password@host:port/database
        #[arg(long)]
        to: String,
    },
}

#[derive(Args, Debug)]
struct SaleArgs {
    #[arg(long)]
    card: String,
    /// SKU,CATEGORY,QTY,UNIT_PRICE (repeatable; minor units)
    #[arg(long = "line", required = true)]
    lines: Vec<String>,
    /// Points to redeem
    #[arg(long)]
    redeem: Option<i64>,
    #[arg(long)]
    pin: Option<String>,
    #[arg(long)]
    coupon: Option<String>,
    /// Business instant, RFC 3339 (default: now)
    #[arg(long)]
    at: Option<String>,
}

#[derive(Subcommand, Debug)]
enum CouponCmd {
    Issue {
        #[arg(long)]
        card: String,
        #[arg(long = "type")]
        type_id: String,
        #[arg(long)]
        at: Option<String>,
    },
    /// Buy a coupon with the type's exchange_points
    Exchange {
        #[arg(long)]
        member: String,
        #[arg(long = "type")]
        type_id: String,
        #[arg(long)]
        pin: Option<String>,
        #[arg(long)]
        at: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum GroupCmd {
    /// Join a group of a deal (without --group: open a new one)
    Join {
        #[arg(long)]
        deal: String,
        #[arg(long)]
        card: String,
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        at: Option<String>,
    },
    /// One group, or every group of a deal
    Show {
        #[arg(long, conflicts_with = "group", required_unless_present = "group")]
        deal: Option<String>,
        #[arg(long)]
        group: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum TriggersCmd {
    /// Run the daily trigger pass (birthdays, inactivity) now
    Run {
        #[arg(long)]
        at: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum RewardCmd {
    Redeem {
        #[arg(long)]
        card: String,
        #[arg(long)]
        sku: String,
        #[arg(long)]
        pin: Option<String>,
        #[arg(long)]
        at: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum JournalCmd {
    /// Verify every record's checksum and the hash chain
    Verify,
}

#[derive(Subcommand, Debug)]
enum StateCmd {
    /// Print everything the state store holds, in domain terms, as one JSON document
    /// (the same for two stores that hold the same state: compare a store with a rebuild)
    Dump,
}

#[derive(Subcommand, Debug)]
enum ReportCmd {
    Daily {
        /// YYYY-MM-DD (default: today, local)
        #[arg(long)]
        date: Option<String>,
    },
}

/// Runs the CLI; returns the exit status.
pub fn main() -> i32 {
    crate::alloc::tune();
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli) {
        Ok(out) => {
            if json {
                println!("{}", out.json);
            } else if !out.text.is_empty() {
                println!("{}", out.text);
            }
            0
        }
        Err(e) => {
            if json {
                println!("{}", e.to_json());
            }
            eprintln!("loyaltyd: {}: {}", e.code, e.message);
            for (line, reason) in &e.rows {
                eprintln!("  line {line}: {reason}");
            }
            1
        }
    }
}

/// A command's result in both forms.
struct Out {
    json: String,
    text: String,
}

impl Out {
    fn of_value(v: serde_json::Value, text: String) -> Out {
        Out {
            json: v.to_string(),
            text,
        }
    }

    /// A result whose output went elsewhere already (an export to stdout): nothing
    /// more is printed without `--json`.
    fn quiet(v: serde_json::Value) -> Out {
        Out {
            json: v.to_string(),
            text: String::new(),
        }
    }
}

fn out<T: Serialize>(v: &T, text: String) -> Result<Out> {
    Ok(Out {
        json: serde_json::to_string(v).map_err(|e| Error::internal(e.to_string()))?,
        text,
    })
}

/// The config file: `--config`, else `$LOYALTYD_CONFIG` (both explicit: they must
/// exist), else the first that exists of `default` (relative, for a checkout of the
/// repository) and the installed one under /etc/loyaltyd; else `default`, which is
/// absent, so the embedded defaults apply.
fn config_path(cli: &Cli, default: &str, installed: &str) -> (PathBuf, bool) {
    if let Some(p) = &cli.config {
        return (p.clone(), true);
    }
    if let Some(p) = std::env::var_os("LOYALTYD_CONFIG").filter(|p| !p.is_empty()) {
        return (PathBuf::from(p), true);
    }
    let found = [default, installed].into_iter().map(PathBuf::from).find(|p| p.exists());
    (found.unwrap_or_else(|| PathBuf::from(default)), false)
}

/// `--data-dir` and `--rules` override what the file says.
fn overrides(cli: &Cli, data_dir: &mut PathBuf, rules: &mut PathBuf) {
    if let Some(d) = &cli.data_dir {
        *data_dir = d.clone();
    }
    if let Some(r) = &cli.rules {
        *rules = r.clone();
    }
}

fn load_config(cli: &Cli) -> Result<Config> {
    let (path, explicit) = config_path(cli, DEFAULT_CONFIG_PATH, "/etc/loyaltyd/loyaltyd.toml");
    let mut cfg = Config::load(&path, explicit).map_err(|e| Error::invalid(e.to_string()))?;
    overrides(cli, &mut cfg.data_dir, &mut cfg.rules);
    Ok(cfg)
}

fn load(cli: &Cli) -> Result<(Config, EngineConfig)> {
    let cfg = load_config(cli)?;
    let ecfg = EngineConfig::of(&cfg);
    Ok((cfg, ecfg))
}

fn load_hub(cli: &Cli) -> Result<HubConfig> {
    let (path, explicit) = config_path(cli, DEFAULT_HUB_CONFIG_PATH, "/etc/loyaltyd/hub.toml");
    let mut cfg = HubConfig::load(&path, explicit).map_err(|e| Error::invalid(e.to_string()))?;
    overrides(cli, &mut cfg.data_dir, &mut cfg.rules);
    Ok(cfg)
}

fn open(cli: &Cli) -> Result<Engine> {
    let (cfg, ecfg) = load(cli)?;
    let rules = cfg.load_rules().map_err(|e| Error::invalid(e.to_string()))?;
    let engine = Engine::open(ecfg, rules)?;
    for r in engine.startup.repairs() {
        eprintln!("loyaltyd: {r}");
    }
    Ok(engine)
}

/// The instant of an offline command (now, or `--at`), made by the device's owner.
fn at_of(engine: &Engine, at: &Option<String>) -> Result<At> {
    Ok(engine
        .at(at.as_deref().map(parse_instant).transpose()?)
        .by(crate::engine::Actor::cli()))
}

fn sale_of(a: &SaleArgs) -> Result<Sale> {
    Ok(Sale {
        card: a.card.clone(),
        lines: a.lines.iter().map(|l| Line::parse_cli(l)).collect::<Result<_>>()?,
        redeem_points: a.redeem,
        pin: a.pin.clone(),
        coupon: a.coupon.clone(),
    })
}

fn run(cli: Cli) -> Result<Out> {
    match &cli.cmd {
        Cmd::Journal(JournalCmd::Verify) => {
            let (cfg, _) = load(&cli)?;
            let path = engine::journal_path(&cfg.data_dir);
            let r = crate::journal::verify(&path)?;
            let mut text = format!("{}: {} records, hash chain intact", path.display(), r.records);
            if let Some(t) = &r.truncated {
                text.push_str(&format!(
                    "; an unacknowledged tail of {} bytes at offset {} ({} complete records after a lost write; cut off at next start)",
                    t.bytes, t.offset, t.later_frames
                ));
            }
            let v = serde_json::json!({
                "ok": true, "path": path.display().to_string(), "records": r.records,
                "torn_tail": r.truncated.as_ref().map(|t| serde_json::json!({
                    "offset": t.offset, "bytes": t.bytes, "later_records": t.later_frames,
                })),
            });
            out(&v, text)
        }
        Cmd::Serve {
            listen,
            token_file,
            reader,
            terminal_id,
            upstream,
            upstream_secret_file,
            sync_interval,
            clock,
        } => {
            let mut cfg = load_config(&cli)?;
            if let Some(t) = terminal_id {
                if !crate::config::valid_terminal_id(t) {
                    return Err(Error::invalid(format!(
                        "--terminal-id {t:?}: 1 to 32 letters, digits or _"
                    )));
                }
                cfg.terminal_id = t.clone();
            }
            if let Some(u) = upstream {
                cfg.sync.upstream = u.clone();
            }
            if let Some(f) = upstream_secret_file {
                cfg.sync.secret_file = Some(f.clone());
            }
            if let Some(s) = sync_interval {
                cfg.sync.interval_secs = *s;
            }
            if let Some(c) = clock {
                cfg.clock = *c;
            }
            let ecfg = EngineConfig::of(&cfg);
            let args = crate::daemon::ServeArgs {
                listen: listen.clone(),
                token_file: token_file.clone(),
                reader: reader.clone(),
            };
            crate::daemon::serve(cfg, ecfg, args)?;
            out(&serde_json::json!({"ok": true}), "stopped".into())
        }
        Cmd::Hub(HubCmd::Serve {
            listen,
            token_file,
            terminals,
        }) => {
            let cfg = load_hub(&cli)?;
            let args = crate::hub::HubArgs {
                listen: listen.clone(),
                token_file: token_file.clone(),
                terminals: terminals.clone(),
            };
            crate::hub::serve(cfg, args)?;
            out(&serde_json::json!({"ok": true}), "stopped".into())
        }
        Cmd::Hub(HubCmd::Migrate) => {
            let applied = crate::hub::pg::migrate_only(&load_hub(&cli)?)?;
            let v = serde_json::json!({"ok": true, "applied": applied, "latest": crate::hub::pg::latest_migration()});
            out(&v, format!("migrations applied: {applied:?}"))
        }
        Cmd::Hub(HubCmd::Export { to }) => {
            let moved = crate::hub::pg::export(&load_hub(&cli)?, to)?;
            let v = serde_json::json!({"ok": true, "records": moved});
            out(&v, format!("exported {moved} hub records"))
        }
        Cmd::Hub(HubCmd::Rebuild) => {
            let ecfg = crate::hub::engine_config(&load_hub(&cli)?);
            let (n, note) = engine::rebuild(&ecfg)?;
            let v = serde_json::json!({"ok": true, "records": n, "note": note});
            out(&v, format!("rebuilt the hub state from {n} journal records; {note}"))
        }
        _ if cli.remote => {
            let (cfg, _) = load(&cli)?;
            let mut stdin = None;
            let password;
            let as_staff = match &cli.as_staff {
                Some(id) => {
                    let mut lines = Stdin::read()?;
                    password = lines.line("--as password")?;
                    stdin = Some(lines);
                    Some((id.as_str(), password.as_str()))
                }
                None => None,
            };
            let remote = Remote::connect(&cfg, as_staff)?;
            run_target(&cli, &Target::Remote(&remote), &mut stdin)
        }
        Cmd::Rebuild => {
            let (_, ecfg) = load(&cli)?;
            let (n, note) = engine::rebuild(&ecfg)?;
            let v = serde_json::json!({"ok": true, "records": n, "note": note});
            out(&v, format!("rebuilt the state from {n} journal records; {note}"))
        }
        _ => {
            let engine = open(&cli)?;
            let res = run_engine(&cli, &engine);
            engine.close()?;
            res
        }
    }
}

/// The commands that run the same offline and with `--remote`.
fn run_target(cli: &Cli, t: &Target, stdin: &mut Option<Stdin>) -> Result<Out> {
    match &cli.cmd {
        Cmd::Member(c) => people::member(c, t),
        Cmd::Card(c) => people::card(c, t),
        Cmd::Points(c) => people::points(c, t),
        Cmd::Activity { member, activity } => people::activity(member, activity, t),
        Cmd::Transaction { tx } => people::transaction(tx, t),
        Cmd::Staff(c) => people::staff(c, t, stdin),
        Cmd::Report(ReportCmd::Daily { date }) => {
            let v = match t {
                Target::Local(e, _) => {
                    let r = e.daily(date.as_deref().map(parse_date).transpose()?)?;
                    serde_json::to_value(r).map_err(|e| Error::internal(e.to_string()))?
                }
                Target::Remote(r) => {
                    let q = date
                        .as_ref()
                        .map(|d| format!("?date={}", remote::enc(d)))
                        .unwrap_or_default();
                    r.call("GET", &format!("/v1/reports/daily{q}"), None)?
                }
            };
            let text = text::daily_text(&v);
            Ok(Out::of_value(v, text))
        }
        Cmd::Audit {
            from,
            to,
            staff,
            action,
            limit,
            cursor,
        } => {
            let v = match t {
                Target::Local(e, at) => {
                    let ask = crate::engine::audit::AuditAsk {
                        from: from.as_deref().map(parse_date).transpose()?,
                        to: to.as_deref().map(parse_date).transpose()?,
                        staff: staff.clone(),
                        action: action.clone(),
                        terminal: None,
                        limit: *limit,
                        cursor: cursor.clone(),
                    };
                    let page = e.audit(&ask, false, at)?;
                    serde_json::to_value(page).map_err(|e| Error::internal(e.to_string()))?
                }
                Target::Remote(r) => {
                    let limit = limit.map(|l| l.to_string());
                    let q: Vec<String> = [
                        ("from", from.as_ref()),
                        ("to", to.as_ref()),
                        ("staff", staff.as_ref()),
                        ("action", action.as_ref()),
                        ("limit", limit.as_ref()),
                        ("cursor", cursor.as_ref()),
                    ]
                    .into_iter()
                    .filter_map(|(k, v)| v.map(|v| format!("{k}={}", remote::enc(v))))
                    .collect();
                    r.call("GET", &format!("/v1/audit?{}", q.join("&")), None)?
                }
            };
            let text = text::audit_text(&v);
            Ok(Out::of_value(v, text))
        }
        _ => Err(Error::invalid(
            "--remote supports the member, card, points, activity, transaction, staff, report daily and audit commands",
        )),
    }
}

fn run_engine(cli: &Cli, engine: &Engine) -> Result<Out> {
    let rules = engine.rules();
    let money = |v: i64| crate::views::money(v, &rules.currency);
    match &cli.cmd {
        Cmd::Member(MemberCmd::Show {
            at: Some(at),
            card,
            member,
        }) => {
            let at = at_of(engine, &Some(at.clone()))?.by(crate::engine::Actor::cli());
            let c = MemberCmd::Show {
                card: card.clone(),
                member: member.clone(),
                at: None,
            };
            people::member(&c, &Target::Local(engine, at))
        }
        Cmd::Member(MemberCmd::Add(add)) if add.at.is_some() => {
            let at = at_of(engine, &add.at)?.by(crate::engine::Actor::cli());
            run_target(cli, &Target::Local(engine, at), &mut None)
        }
        Cmd::Member(_)
        | Cmd::Card(_)
        | Cmd::Points(_)
        | Cmd::Activity { .. }
        | Cmd::Transaction { .. }
        | Cmd::Staff(_)
        | Cmd::Report(_)
        | Cmd::Audit { .. } => {
            let at = engine.at(None).by(crate::engine::Actor::cli());
            run_target(cli, &Target::Local(engine, at), &mut None)
        }
        Cmd::Quote(a) => {
            let r = engine.quote(&sale_of(a)?, at_of(engine, &a.at)?)?;
            let text = text::receipt_text(&r, &money);
            out(&r, text)
        }
        Cmd::Checkout { sale, key } => {
            let r = engine.checkout(&sale_of(sale)?, key.as_deref(), at_of(engine, &sale.at)?)?;
            let text = text::receipt_text(&r, &money);
            out(&r, text)
        }
        Cmd::Refund { tx, lines, at } => {
            let asked = lines.iter().map(|l| parse_refund_line(l)).collect::<Result<Vec<_>>>()?;
            let r = engine.refund(tx, &asked, None, at_of(engine, at)?)?;
            let text = format!(
                "refund {} of {}: {} back, {} points clawed back, {} points returned; balance {}, tier {}",
                r.refund_id,
                r.tx_id,
                money(r.amount),
                r.points_clawed_back,
                r.points_returned,
                r.balance,
                r.tier
            );
            out(&r, text)
        }
        Cmd::Coupon(CouponCmd::Issue { card, type_id, at }) => {
            let c = engine.issue_coupon(card, type_id, None, at_of(engine, at)?)?;
            out(
                &c,
                format!("coupon {} ({}) valid until {}", c.code, c.type_id, c.valid_until),
            )
        }
        Cmd::Coupon(CouponCmd::Exchange {
            member,
            type_id,
            pin,
            at,
        }) => {
            let c = engine.exchange_coupon(member, type_id, pin.as_deref(), None, at_of(engine, at)?)?;
            out(
                &c,
                format!("coupon {} ({}) valid until {}", c.code, c.type_id, c.valid_until),
            )
        }
        Cmd::Group(GroupCmd::Join { deal, card, group, at }) => {
            let g = engine.join_group(deal, card, group.as_deref(), None, at_of(engine, at)?)?;
            let text = text::group_text(&g);
            out(&g, text)
        }
        Cmd::Group(GroupCmd::Show { deal, group }) => match (deal, group) {
            (_, Some(id)) => {
                let g = engine.group(id)?;
                let text = text::group_text(&g);
                out(&g, text)
            }
            (Some(deal), None) => {
                let groups = engine.deal_groups(deal)?;
                let text = groups.iter().map(text::group_text).collect::<Vec<_>>().join("\n");
                let v = crate::views::campaign::DealView {
                    deal: deal.clone(),
                    groups,
                };
                out(&v, text)
            }
            (None, None) => Err(Error::invalid("--deal or --group")),
        },
        Cmd::Triggers(TriggersCmd::Run { at }) => {
            let n = engine.trigger_pass(at_of(engine, at)?)?;
            out(
                &serde_json::json!({ "coupons_issued": n }),
                format!("{n} coupons issued"),
            )
        }
        Cmd::Reward(RewardCmd::Redeem { card, sku, pin, at }) => {
            let r = engine.redeem_reward(card, sku, pin.as_deref(), None, at_of(engine, at)?)?;
            let text = format!(
                "{} redeemed for {} points; balance {}, {} left in stock",
                r.sku, r.points, r.balance, r.stock_left
            );
            out(&r, text)
        }
        Cmd::State(StateCmd::Dump) => {
            let dump = engine.store().dump()?;
            let text = serde_json::to_string_pretty(&dump).map_err(|e| Error::internal(e.to_string()))?;
            out(&dump, text)
        }
        Cmd::Journal(_) | Cmd::Rebuild | Cmd::Serve { .. } | Cmd::Hub(_) => {
            unreachable!("handled without an engine")
        }
    }
}
