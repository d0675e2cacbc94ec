//! [`HubStore`] on PostgreSQL (`[store] kind = "postgres"`): the same decisions and the
//! same `apply` as the embedded hub, over state kept in the database.
//!
//! - Every write (a push, a publish) is one transaction: it locks `hub_head` (writers
//!   queue there), decides and applies over the state read inside the transaction (see
//!   `tentative`), and writes the hub records, the terminal records (unique by identity),
//!   the key/value changes, the new head and the projection before it commits. So a
//!   record and its effects and the acknowledgement that covers it commit together.
//! - Reads (pulls, operators) run in a read-only repeatable-read transaction: one
//!   consistent state, no lock.
//! - The `HubStore` methods are called on blocking threads (the API runs them through
//!   `spawn_blocking`), which wait here on the hub's runtime.

mod contact;
mod export;
mod ledger;
mod migrate;
mod pass;
mod tentative;
mod tls;
mod write;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};

use super::store::{
    check_push, decide_push, noted, pull_reply, report_scope, Find, HubStore, Overspent, TerminalView, PULL_ENTRIES,
};
use crate::config::HubConfig;
use crate::engine::audit::{AuditAsk, AuditView};
use crate::engine::reports::{Campaigns, Month, Retention, Summary};
use crate::engine::{Actor, ConflictView};
use crate::error::{Code, Error, Result};
use crate::model;
use crate::record::{Body, Record};
use crate::rules::Ruleset;
use crate::service::StartError;
use crate::store::base::{self, StateBase};
use crate::sync::wire::{PullReply, PullRequest, PushReply, PushRequest};
use crate::views::history::{LedgerPage, MemberCouponView, TransactionView, TransactionsPage};
use crate::views::MemberView;

pub use export::export;
pub use migrate::{latest as latest_migration, MIGRATIONS};

/// A database error with what the server said (tokio-postgres shows only "db error").
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

/// A database fault as the hub's error: a connection that went away is a passing
/// `store_busy` (the terminal retries), anything else internal.
pub(crate) fn pg_error(e: tokio_postgres::Error) -> Error {
    use tokio_postgres::error::SqlState;
    let passing = matches!(e.code(), Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::ADMIN_SHUTDOWN || *c == SqlState::CANNOT_CONNECT_NOW);
    if passing || e.is_closed() || e.code().is_none() {
        Error::new(
            Code::StoreBusy,
            format!("the database is unavailable: {}", describe(&e)),
        )
    } else {
        Error::internal(format!("database: {}", describe(&e)))
    }
}

fn pool_error(e: deadpool_postgres::PoolError) -> Error {
    Error::new(Code::StoreBusy, format!("the database is unavailable: {e}"))
}

/// `url` with its password hidden, for logs and errors.
pub fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some(parts) => parts,
        None => return url.to_string(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

/// Whether a failed transaction may simply be run again: a serialization failure, a
/// deadlock, or a connection lost (a commit whose answer was lost is safe to redo too:
/// the records are then found held, as duplicates).
fn retryable(e: &Error) -> bool {
    e.code == Code::StoreBusy
}

pub struct PgHub {
    pool: Pool,
    rt: tokio::runtime::Handle,
    rules: RwLock<Arc<Ruleset>>,
    /// False after a database fault, until a transaction succeeds again.
    ok: AtomicBool,
    /// For phones given in any spelling.
    country_code: String,
}

/// The database of `url` with the hub's TLS settings (`[store] ca_file`, and whether the
/// hub's own `[tls]` is on, which decides the default sslmode off the host).
fn target(cfg: &HubConfig, url: &str) -> std::result::Result<tls::Target, String> {
    tls::target(url, cfg.store.ca_file.as_deref(), cfg.tls.is_some())
}

/// A pool of at most `size` connections to the database (made as they are first needed).
fn make_pool(t: &tls::Target, size: usize) -> std::result::Result<Pool, String> {
    let manager = Manager::from_config(
        t.config.clone(),
        t.connector.clone(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| e.to_string())
}

/// A start-up connection that failed, as the error to exit with: TLS refusals are named
/// as such (with the sslmode in force), everything else is a reachability problem.
fn tls_refusal(t: &tls::Target, shown: &str, e: &(dyn std::error::Error + 'static)) -> Option<StartError> {
    tls::refused(e).then(|| {
        StartError::System(format!(
            "PostgreSQL at {shown}: the TLS connection was refused (sslmode={}): {}",
            t.mode.name(),
            tls::with_causes(e)
        ))
    })
}

/// Warns when a database off this host was reached in clear text (`prefer` and a
/// server without TLS): member data then crosses the network readable.
async fn warn_clear_text(t: &tls::Target, shown: &str, client: &tokio_postgres::Client) {
    if t.loopback || t.mode == tls::Mode::Disable {
        return;
    }
    let q = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    if let Ok(row) = client.query_one(q, &[]).await {
        if !row.get::<_, bool>(0) {
            tracing::warn!(
                "PostgreSQL at {shown} is reached in CLEAR TEXT (sslmode=prefer and the server offers no TLS): \
                 member data crosses the network readable; set sslmode=require or verify-full (or sslmode=disable to say it is meant)"
            );
        }
    }
}

/// How long a write keeps retrying a database that went away before it answers busy.
const RETRY_FOR: Duration = Duration::from_secs(8);

impl PgHub {
    /// Connects (retrying with backoff for up to `connect_retry` while the database is
    /// unreachable, each failure logged with the URL), migrates, loads the ruleset.
    pub fn open(
        cfg: &HubConfig,
        rt: tokio::runtime::Handle,
        connect_retry: Duration,
    ) -> std::result::Result<PgHub, StartError> {
        let url = cfg.store.url.clone().unwrap_or_default();
        let shown = redacted(&url);
        let t = target(cfg, &url).map_err(|e| StartError::Config(format!("store: url {shown}: {e}")))?;
        let pool =
            make_pool(&t, cfg.store.pool_size).map_err(|e| StartError::Config(format!("store: url {shown}: {e}")))?;
        let applied = rt.block_on(async {
            let started = Instant::now();
            let mut wait = Duration::from_millis(250);
            loop {
                // Reaching the server is retried; what it then says (a schema too new,
                // a refused login, a failed migration) is final.
                let attempt = match pool.get().await {
                    Ok(mut client) => match migrate::migrate(&mut client).await {
                        Ok(v) => {
                            warn_clear_text(&t, &shown, &client).await;
                            return Ok(v);
                        }
                        Err(e) => {
                            return Err(StartError::System(format!("PostgreSQL at {shown}: {e}")));
                        }
                    },
                    Err(e) => match tls_refusal(&t, &shown, &e) {
                        Some(refused) => return Err(refused),
                        None => Err(e.to_string()),
                    },
                };
                match attempt {
                    Ok(v) => return Ok(v),
                    Err(e) if started.elapsed() + wait <= connect_retry => {
                        tracing::warn!("PostgreSQL at {shown} is unreachable: {e}; retrying in {wait:?}");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(5));
                    }
                    Err(e) => {
                        return Err(StartError::System(format!(
                            "cannot use PostgreSQL at {shown} (tried for {:?}): {e}",
                            started.elapsed()
                        )))
                    }
                }
            }
        })?;
        if !applied.is_empty() {
            tracing::info!("PostgreSQL at {shown}: migrations {applied:?} applied");
        }
        tracing::info!("hub state in PostgreSQL at {shown}");
        let rules = super::store::initial_rules(cfg)?;
        let hub = PgHub {
            pool,
            rt,
            rules: RwLock::new(Arc::new(rules)),
            ok: AtomicBool::new(true),
            country_code: cfg.members.default_country_code.clone(),
        };
        if let Some((text, version)) = hub.read(|b| base::published_ruleset(b)).map_err(StartError::Engine)? {
            match Ruleset::parse(&text, "(published ruleset)") {
                Ok(r) if version >= hub.rules().version => {
                    *hub.rules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(r)
                }
                Ok(_) => {}
                Err(e) => tracing::error!("the published ruleset no longer loads: {e}"),
            }
        }
        Ok(hub)
    }

    fn rules(&self) -> Arc<Ruleset> {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn noted<T>(&self, r: Result<T>) -> Result<T> {
        match &r {
            Ok(_) => self.ok.store(true, Ordering::Relaxed),
            Err(e) if e.code == Code::StoreBusy || e.code == Code::Internal => self.ok.store(false, Ordering::Relaxed),
            Err(_) => {}
        }
        r
    }

    /// `step` over one consistent state of the database.
    fn read<T>(&self, mut step: impl FnMut(&dyn StateBase) -> Result<T>) -> Result<T> {
        let out = self.rt.block_on(async {
            let mut client = self.pool.get().await.map_err(pool_error)?;
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(pg_error)?;
            let head = head(&tx, false).await?;
            let mut fetched = tentative::Fetched::default();
            let out = tentative::run(&tx, &mut fetched, head, &mut step).await?;
            tx.commit().await.map_err(pg_error)?;
            Ok(out)
        });
        self.noted(out)
    }

    /// One write: `decide` over the state (under the head lock) gives the hub records
    /// to add and the answer; they are applied and committed together. Retried whole
    /// while the database is away, up to `RETRY_FOR`.
    fn write<R>(&self, by: &Actor, mut decide: impl FnMut(&dyn StateBase) -> Result<(Vec<Body>, R)>) -> Result<R> {
        let started = Instant::now();
        let mut wait = Duration::from_millis(50);
        loop {
            let out = self.rt.block_on(self.write_once(by, &mut decide));
            match out {
                Err(e) if retryable(&e) && started.elapsed() + wait < RETRY_FOR => {
                    tracing::warn!("hub write failed, retrying in {wait:?}: {}", e.message);
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
                other => return self.noted(other),
            }
        }
    }

    async fn write_once<R>(
        &self,
        by: &Actor,
        decide: &mut impl FnMut(&dyn StateBase) -> Result<(Vec<Body>, R)>,
    ) -> Result<R> {
        let mut client = self.pool.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let head = head(&tx, true).await?;
        let mut fetched = tentative::Fetched::default();
        let (bodies, answer) = tentative::run(&tx, &mut fetched, head, &mut *decide).await?;
        if bodies.is_empty() {
            tx.commit().await.map_err(pg_error)?;
            return Ok(answer);
        }
        let records = self.records(by, bodies);
        let writes = tentative::run(&tx, &mut fetched, head, |b| base::apply_step(b, head + 1, &records)).await?;
        write::commit(&tx, head, &records, &writes).await?;
        tx.commit().await.map_err(pg_error)?;
        Ok(answer)
    }

    /// The hub's own records around `bodies`, made now.
    fn records(&self, actor: &Actor, bodies: Vec<Body>) -> Vec<Record> {
        let at = model::now();
        let day = model::day_no(crate::rules::local_date(&self.rules(), at));
        let mono_us = crate::os::monotonic_us();
        bodies
            .into_iter()
            .map(|body| Record {
                wall: at,
                clock_trusted: true,
                boot_id: [0; 16],
                mono_us,
                at,
                day,
                idem: None,
                by: Some(actor.by.clone()),
                requested_by: actor.requested_by.clone(),
                body,
            })
            .collect()
    }

    /// Members a text finds, as `Engine::search` (the same index keys, read in ranges).
    fn search(
        &self,
        text: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<(Vec<MemberView>, Option<String>)> {
        let text = crate::model::check_text("q", text.trim(), 100)?;
        let limit = limit.unwrap_or(crate::engine::SEARCH_DEFAULT);
        if !(1..=crate::engine::SEARCH_MAX).contains(&limit) {
            return Err(Error::invalid(format!(
                "limit must be 1 to {}",
                crate::engine::SEARCH_MAX
            )));
        }
        if let Some(a) = after {
            crate::model::check_text("after", a, 64)?;
        }
        let want = limit + 1;
        let out = self.rt.block_on(async {
            let mut client = self.pool.get().await.map_err(pool_error)?;
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(pg_error)?;
            let mut ids: std::collections::BTreeSet<Vec<u8>> = Default::default();
            for scan in base::search_scans(text, after) {
                ids.extend(write::index_ids(&tx, &scan, want).await?);
            }
            let head = head(&tx, false).await?;
            let mut fetched = tentative::Fetched::default();
            let members = tentative::run(&tx, &mut fetched, head, |b| {
                let mut members = Vec::with_capacity(limit);
                for id in ids.iter().take(limit) {
                    if let Some(m) = base::member(b, &String::from_utf8_lossy(id))? {
                        members.push(m);
                    }
                }
                Ok(members)
            })
            .await?;
            tx.commit().await.map_err(pg_error)?;
            Ok((members, ids.len() > limit))
        });
        let (members, more) = self.noted(out)?;
        let next = more.then(|| members.last().map(|m| m.member_id.clone())).flatten();
        let rules = self.rules();
        let now = model::now();
        Ok((
            members.iter().map(|m| MemberView::new(&rules, m, now, true)).collect(),
            next,
        ))
    }
}

/// The last hub seq; `lock` takes the writers' lock with it.
async fn head(tx: &deadpool_postgres::Transaction<'_>, lock: bool) -> Result<u64> {
    let sql = if lock {
        "SELECT seq FROM hub_head WHERE id = 1 FOR UPDATE"
    } else {
        "SELECT seq FROM hub_head WHERE id = 1"
    };
    let st = tx.prepare_cached(sql).await.map_err(pg_error)?;
    let row = tx.query_one(&st, &[]).await.map_err(pg_error)?;
    Ok(row.get::<_, i64>(0) as u64)
}

impl HubStore for PgHub {
    fn ingest(&self, push: &PushRequest) -> Result<PushReply> {
        check_push(push)?;
        let (acked, duplicates) = self.write(&Actor::system(), |b| decide_push(b, push))?;
        let now = model::now();
        noted(self.rt.block_on(async {
            let client = self.pool.get().await.map_err(pool_error)?;
            contact::note_contact(&client, &push.terminal_id, push.epoch, Some(now), None).await
        }));
        Ok(PushReply {
            acked,
            duplicates,
            hub_time: model::now(),
        })
    }

    fn pull(&self, req: &PullRequest) -> Result<PullReply> {
        // Every committed record is durable: the whole feed may be served.
        let (from, to) = base::feed_range(req.cursor);
        let out = self.rt.block_on(async {
            let mut client = self.pool.get().await.map_err(pool_error)?;
            let tx = client
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(pg_error)?;
            let head = head(&tx, false).await?;
            let entries = write::feed(&tx, &from, &to, PULL_ENTRIES).await?;
            let mut fetched = tentative::Fetched::default();
            let reply = tentative::run(&tx, &mut fetched, head, |b| {
                let acked = base::hub_terminal(b, &req.terminal_id, req.epoch)?.map_or(0, |t| t.acked);
                pull_reply(b, req, acked, &entries)
            })
            .await?;
            tx.commit().await.map_err(pg_error)?;
            // After the read: a pull's one write, on the same connection.
            let pulled = Some((reply.hub_time, reply.cursor));
            noted(contact::note_contact(&client, &req.terminal_id, req.epoch, None, pulled).await);
            Ok(reply)
        });
        self.noted(out)
    }

    fn member(&self, member_id: &str) -> Result<Option<MemberView>> {
        let m = self.read(|b| base::member(b, member_id))?;
        let rules = self.rules();
        Ok(m.map(|m| MemberView::new(&rules, &m, model::now(), true)))
    }

    fn terminals(&self) -> Result<Vec<TerminalView>> {
        let tz = self.rules().timezone;
        let out = self.rt.block_on(async {
            let client = self.pool.get().await.map_err(pool_error)?;
            contact::terminals(&client, &tz).await
        });
        self.noted(out)
    }

    fn overspent(&self) -> Result<Vec<Overspent>> {
        let out = self.rt.block_on(async {
            let client = self.pool.get().await.map_err(pool_error)?;
            write::negative(&client).await
        });
        Ok(self
            .noted(out)?
            .into_iter()
            .map(|(member_id, balance)| Overspent { member_id, balance })
            .collect())
    }

    fn publish_ruleset(&self, text: &str) -> Result<u32> {
        let rules = Ruleset::parse(text, "(published ruleset)").map_err(|e| Error::invalid(e.to_string()))?;
        let version = rules.version;
        self.write(&Actor::system(), |b| {
            if let Some((_, current)) = base::published_ruleset(b)? {
                if version <= current && !b.tentative() {
                    return Err(Error::invalid(format!(
                        "ruleset version {version} is not newer than the published version {current}"
                    )));
                }
            }
            let body = Body::RulesetPublish {
                text: text.to_string(),
                version,
            };
            Ok((vec![body], ()))
        })?;
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(rules);
        tracing::info!("published ruleset version {version}");
        Ok(version)
    }

    fn find_members(&self, find: &Find) -> Result<(Vec<MemberView>, Option<String>)> {
        match (&find.phone, &find.q) {
            (Some(phone), None) => {
                let phone = crate::identity::canonical_phone(phone, &self.country_code)?;
                let m = self.read(|b| base::member_by_phone(b, &phone))?;
                let rules = self.rules();
                Ok((
                    m.map(|m| MemberView::new(&rules, &m, model::now(), true))
                        .into_iter()
                        .collect(),
                    None,
                ))
            }
            (None, Some(q)) => self.search(q, find.after.as_deref(), find.limit),
            _ => Err(Error::invalid("give one of phone= or q=")),
        }
    }

    fn transactions(&self, member_id: &str, after: Option<&str>, limit: Option<usize>) -> Result<TransactionsPage> {
        let (before, limit) = (crate::engine::page_cursor(after)?, crate::engine::page_limit(limit)?);
        let (m, summaries) = self.read(|b| {
            let (txs, next) = base::transactions(b, member_id, before, limit)?;
            let mut out = Vec::with_capacity(txs.len());
            for (_, t) in txs {
                let refunded = base::hub_tx(b, &t.tx_id)?.map_or(0, |tx| tx.refunded.amount);
                out.push((t, refunded));
            }
            Ok((base::member(b, member_id)?, (out, next)))
        })?;
        if m.is_none() {
            return Err(Error::new(
                Code::UnknownMember,
                format!("no member has id {member_id:?}"),
            ));
        }
        let rules = self.rules();
        Ok(TransactionsPage {
            transactions: summaries
                .0
                .iter()
                .map(|(t, refunded)| crate::views::history::TxSummaryView::new(&rules, t, *refunded))
                .collect(),
            next: summaries.1.map(|n| n.to_string()),
        })
    }

    fn ledger(&self, member_id: &str, after: Option<&str>, limit: Option<usize>) -> Result<LedgerPage> {
        let (before, limit) = (crate::engine::page_cursor(after)?, crate::engine::page_limit(limit)?);
        let (m, (entries, next)) =
            self.read(|b| Ok((base::member(b, member_id)?, base::ledger(b, member_id, before, limit)?)))?;
        if m.is_none() {
            return Err(Error::new(
                Code::UnknownMember,
                format!("no member has id {member_id:?}"),
            ));
        }
        let rules = self.rules();
        Ok(LedgerPage {
            entries: entries
                .iter()
                .map(|(_, e)| crate::views::history::LedgerEntryView::new(&rules, e))
                .collect(),
            next: next.map(|n| n.to_string()),
        })
    }

    fn coupons(&self, member_id: &str) -> Result<Vec<MemberCouponView>> {
        let (m, coupons) = self.read(|b| Ok((base::member(b, member_id)?, base::member_coupons(b, member_id)?)))?;
        if m.is_none() {
            return Err(Error::new(
                Code::UnknownMember,
                format!("no member has id {member_id:?}"),
            ));
        }
        let rules = self.rules();
        let today = model::day_no(crate::rules::local_date(&rules, model::now()));
        Ok(coupons
            .iter()
            .map(|(code, c)| MemberCouponView::new(code, c, today))
            .collect())
    }

    fn transaction(&self, tx_id: &str) -> Result<TransactionView> {
        let rules = self.rules();
        let now = model::now();
        self.read(|b| crate::engine::transaction_view(b, &rules, tx_id, now))
    }

    // The reports read the same aggregates as the embedded hub's, through the base.
    fn report_summary(
        &self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
        terminal: Option<&str>,
    ) -> Result<Summary> {
        let rules = self.rules();
        self.read(|b| crate::engine::reports::summary(b, &rules, from, to, report_scope(terminal)))
    }

    fn report_retention(&self, from: Month, to: Month, terminal: Option<&str>) -> Result<Retention> {
        let (rules, now) = (self.rules(), model::now());
        self.read(|b| crate::engine::reports::retention(b, &rules, from, to, report_scope(terminal), now))
    }

    fn report_campaigns(
        &self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
        terminal: Option<&str>,
    ) -> Result<Campaigns> {
        self.read(|b| crate::engine::reports::campaigns(b, from, to, report_scope(terminal)))
    }

    fn audit(&self, ask: AuditAsk, configured: bool) -> Result<AuditView> {
        // The operator's token acts as owner: no role to check.
        let tz = self.rules().timezone;
        self.read(|b| crate::engine::audit::view(b, &ask, configured, &tz))
    }

    fn knows_terminal(&self, terminal: &str) -> Result<bool> {
        Ok(self.terminals()?.iter().any(|t| t.terminal_id == terminal))
    }

    fn conflicts(&self) -> Result<Vec<ConflictView>> {
        let tz = self.rules().timezone;
        Ok(self
            .read(|b| base::conflicts(b))?
            .iter()
            .filter(|c| !c.resolved)
            .map(|c| ConflictView::new(c, &tz))
            .collect())
    }

    fn resolve_conflict(&self, id: &str, keep: &str, merge: bool, by: Actor) -> Result<ConflictView> {
        if by.role < crate::model::Role::Owner {
            return Err(Error::new(
                Code::Forbidden,
                format!(
                    "resolving a conflict needs the owner role; {} is {}",
                    by.by,
                    by.role.as_str()
                ),
            ));
        }
        self.write(&by, |b| {
            let c = match base::conflict(b, id)? {
                Some(c) => c,
                None if b.tentative() => return Ok((vec![], ())),
                None => return Err(Error::new(Code::NotFound, format!("no conflict {id:?}"))),
            };
            if c.resolved && !b.tentative() {
                return Err(Error::invalid(format!("conflict {id} is resolved already")));
            }
            if !c.members.iter().any(|m| m == keep) {
                return Err(Error::invalid(format!(
                    "{keep} is not one of the conflict's members {:?}",
                    c.members
                )));
            }
            let body = Body::ConflictResolve {
                conflict_id: id.to_string(),
                keep: keep.to_string(),
                merge,
            };
            Ok((vec![body], ()))
        })?;
        let c = self
            .read(|b| base::conflict(b, id))?
            .ok_or_else(|| Error::internal(format!("conflict {id} vanished")))?;
        Ok(ConflictView::new(&c, &self.rules().timezone))
    }

    fn daily_pass(&self) -> Result<(u64, Duration)> {
        let issued = self.trigger_pass()?;
        let wait = crate::engine::pass::until_next_pass(&self.rules(), model::now(), Duration::from_secs(3600));
        Ok((issued, wait))
    }

    fn group(&self, group_id: &str) -> Result<crate::views::campaign::GroupView> {
        let g = self
            .read(|b| base::group(b, group_id))?
            .ok_or_else(|| Error::new(Code::NotFound, format!("no group {group_id}")))?;
        Ok(crate::views::campaign::GroupView::new(&self.rules(), &g, model::now()))
    }

    fn deal_groups(&self, deal: &str) -> Result<Vec<crate::views::campaign::GroupView>> {
        let rules = self.rules();
        let groups = self.read(|b| base::deal_groups(b, deal))?;
        if rules.group_buy(deal).is_none() && groups.is_empty() {
            return Err(Error::new(Code::NotFound, format!("no group-buy deal {deal}")));
        }
        let now = model::now();
        Ok(groups
            .iter()
            .map(|g| crate::views::campaign::GroupView::new(&rules, g, now))
            .collect())
    }

    fn close(&self) -> Result<()> {
        self.pool.close();
        Ok(())
    }

    fn healthy(&self) -> Result<()> {
        if self.ok.load(Ordering::Relaxed) {
            Ok(())
        } else {
            Err(Error::new(Code::StoreBusy, "the database failed the last request"))
        }
    }
}

/// `loyaltyd hub migrate`: applies the migrations and says which.
pub fn migrate_only(cfg: &HubConfig) -> std::result::Result<Vec<i32>, StartError> {
    let url = cfg
        .store
        .url
        .clone()
        .ok_or_else(|| StartError::Config("hub migrate needs [store] kind = \"postgres\" and its url".into()))?;
    let shown = redacted(&url);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StartError::System(e.to_string()))?;
    rt.block_on(async {
        let t = target(cfg, &url).map_err(|e| StartError::Config(format!("store: url {shown}: {e}")))?;
        let pool = make_pool(&t, 1).map_err(|e| StartError::Config(format!("store: url {shown}: {e}")))?;
        let mut client = pool.get().await.map_err(|e| {
            tls_refusal(&t, &shown, &e)
                .unwrap_or_else(|| StartError::System(format!("cannot reach PostgreSQL at {shown}: {e}")))
        })?;
        migrate::migrate(&mut client)
            .await
            .map_err(|e| StartError::System(format!("migrating PostgreSQL at {shown}: {e}")))
    })
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn a_password_never_reaches_a_log() {
        assert_eq!(
            redacted("postgres://hub:s3cret@db.example:5432/loyalty"),
            "postgres://hub:***@db.example:5432/loyalty"
        );
        assert_eq!(redacted("postgres://hub@db/x"), "postgres://hub@db/x");
        assert_eq!(redacted("postgres://a:b:c@h/x"), "postgres://a:***@h/x");
    }
}
