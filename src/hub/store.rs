//! The hub's storage: [`HubStore`], what the HTTP side needs, and [`SledHub`], the same
//! engine a terminal runs (journal first, then sled, one `apply`), holding every
//! terminal's records inside `Remote` records of its own journal.

use chrono::NaiveDate;

use crate::config::HubConfig;
use crate::engine::audit::{AuditAsk, AuditView};
use crate::engine::reports::{Campaigns, Month, Retention, Summary};
use crate::engine::{Actor, ClockPolicy, ConflictView, Engine, EngineConfig};
use crate::error::{Code, Error, Result};
use crate::model::{self, MemberState};
use crate::record::{Body, Record, Remote};
use crate::rules::Ruleset;
use crate::service::StartError;
use crate::store::base::{self, StateBase};
use crate::store::report::Scope;
use crate::store::{content_hash, Contact, FeedKind, HubTerminal};
use crate::sync::wire::{PullReply, PullRequest, PushReply, PushRequest};
use crate::views::history::{LedgerPage, MemberCouponView, TransactionView, TransactionsPage};
use crate::views::MemberView;
use chrono_tz::Tz;
use serde::Serialize;

/// Feed entries one pull looks at, and the snapshot bytes it aims to stay under (a
/// pull becomes one journal record on the terminal, whose frames hold at most 1 MiB).
pub(crate) const PULL_ENTRIES: usize = 512;
const PULL_BYTES: usize = 512 << 10;
/// Members a terminal may ask for by id in one pull.
const PULL_ASKED: usize = 256;

/// One terminal stream as operators see it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = TerminalStream)]
pub struct TerminalView {
    pub terminal_id: String,
    /// The stream's epoch, 16 hex digits (a new one after a terminal's data dir is lost).
    pub epoch: String,
    pub acked_seq: u64,
    pub records: u64,
    pub duplicates: u64,
    /// Records held whose effects could not be applied (should stay 0).
    pub skipped: u64,
    /// Records made while the terminal did not trust its clock.
    pub untrusted_clock: u64,
    /// The last push or pull of this stream the hub accepted (RFC 3339, the shop's
    /// zone); null if none (the embedded hub forgets it when its state is rebuilt).
    #[schema(required = true, format = DateTime)]
    pub last_contact: Option<String>,
    /// Change-feed entries the hub holds past the cursor its last pull answered: what
    /// the terminal has not pulled yet. Null if it never pulled.
    #[schema(required = true)]
    pub records_behind: Option<u64>,
}

impl TerminalView {
    /// A stream as the hub holds it, with its last contact and how far behind it is.
    pub(crate) fn new(t: HubTerminal, contact: Option<Contact>, records_behind: Option<u64>, tz: &Tz) -> TerminalView {
        TerminalView {
            terminal_id: t.terminal_id,
            epoch: format!("{:016x}", t.epoch),
            acked_seq: t.acked,
            records: t.records,
            duplicates: t.duplicates,
            skipped: t.skipped,
            untrusted_clock: t.untrusted_clock,
            last_contact: contact.and_then(|c| c.last()).map(|at| model::fmt_instant(at, tz)),
            records_behind,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Overspent {
    pub member_id: String,
    pub balance: i64,
}

/// The hub's storage: what the HTTP layer needs, nothing about how it is kept.
pub trait HubStore: Send + Sync {
    /// Stores a terminal's pushed records exactly once each and answers with what is
    /// now durably held of that stream.
    fn ingest(&self, push: &PushRequest) -> Result<PushReply>;
    /// What changed since the terminal's cursor, plus the members it asks for.
    fn pull(&self, req: &PullRequest) -> Result<PullReply>;
    fn member(&self, member_id: &str) -> Result<Option<MemberView>>;
    fn terminals(&self) -> Result<Vec<TerminalView>>;
    /// Members whose balance went negative (offline double spend, clawbacks).
    fn overspent(&self) -> Result<Vec<Overspent>>;
    /// Validates and publishes a ruleset for every terminal; returns its version.
    fn publish_ruleset(&self, text: &str) -> Result<u32>;
    /// Members chain-wide: by phone (exact, canonical) or a search text, paged.
    fn find_members(&self, find: &Find) -> Result<(Vec<MemberView>, Option<String>)>;
    /// A member's transactions at every shop, newest first.
    fn transactions(&self, member_id: &str, after: Option<&str>, limit: Option<usize>) -> Result<TransactionsPage>;
    /// A member's points ledger, newest first.
    fn ledger(&self, member_id: &str, after: Option<&str>, limit: Option<usize>) -> Result<LedgerPage>;
    fn coupons(&self, member_id: &str) -> Result<Vec<MemberCouponView>>;
    /// A checkout any terminal made, with its refunds.
    fn transaction(&self, tx_id: &str) -> Result<TransactionView>;
    /// Conflicts not yet resolved.
    fn conflicts(&self) -> Result<Vec<ConflictView>>;
    fn resolve_conflict(&self, id: &str, keep: &str, merge: bool, by: Actor) -> Result<ConflictView>;
    /// The daily trigger pass for the chain (birthdays, inactivity: one coupon per
    /// member, not one per shop); returns the coupons issued and the wait until the next.
    fn daily_pass(&self) -> Result<(u64, std::time::Duration)>;
    /// A group-buy group as the hub decided it, and a deal's groups.
    fn group(&self, group_id: &str) -> Result<crate::views::campaign::GroupView>;
    fn deal_groups(&self, deal: &str) -> Result<Vec<crate::views::campaign::GroupView>>;
    /// The reports for the chain, or with a terminal id for what that shop recorded and
    /// the members it enrolled (interface.md 0.2 "Reports").
    fn report_summary(&self, from: NaiveDate, to: NaiveDate, terminal: Option<&str>) -> Result<Summary>;
    fn report_retention(&self, from: Month, to: Month, terminal: Option<&str>) -> Result<Retention>;
    fn report_campaigns(&self, from: NaiveDate, to: NaiveDate, terminal: Option<&str>) -> Result<Campaigns>;
    /// The audit view, chain-wide; `configured`: the terminal asked for is in the hub's
    /// config (known even before it synced).
    fn audit(&self, ask: AuditAsk, configured: bool) -> Result<AuditView>;
    /// A terminal that has synced with the hub (or the hub itself).
    fn knows_terminal(&self, terminal: &str) -> Result<bool>;
    /// Ends the session cleanly (see `Engine::close`).
    fn close(&self) -> Result<()>;
    /// Ok while the store takes changes (see `Engine::healthy`).
    fn healthy(&self) -> Result<()>;
}

fn search_limit_schema() -> utoipa::openapi::schema::Object {
    crate::views::schema::int64(1, crate::engine::SEARCH_MAX as i64, false)
}

/// A member lookup: exactly one of `phone` and `q`.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct Find {
    /// Any spelling of a phone: the member it finds, exactly (no paging).
    pub phone: Option<String>,
    /// A name prefix, a phone suffix of 4 digits or more, or a card prefix.
    pub q: Option<String>,
    /// Members on a page of a search: 1 to 100, default 20.
    #[param(schema_with = search_limit_schema)]
    pub limit: Option<usize>,
    /// A search page's `next`: the page after it.
    pub after: Option<String>,
}

/// [`HubStore`] on the terminal's own engine: a journal and sled.
pub struct SledHub {
    engine: Engine,
}

/// The engine settings of a hub: its own journal, a trusted (NTP) clock, no offline
/// cap, and the change feed on.
pub fn engine_config(cfg: &HubConfig) -> EngineConfig {
    EngineConfig {
        data_dir: cfg.data_dir.clone(),
        terminal_id: "hub".into(),
        clock: ClockPolicy::Trusted,
        cache_bytes: cfg.cache_mib << 20,
        offline_cap: false,
        hub: true,
        country_code: cfg.members.default_country_code.clone(),
        refund_limit: None,
    }
}

impl SledHub {
    pub fn open(cfg: &HubConfig) -> std::result::Result<SledHub, StartError> {
        let rules = initial_rules(cfg)?;
        let engine = Engine::open(engine_config(cfg), rules).map_err(StartError::Engine)?;
        let published = engine.store().published_ruleset().map_err(StartError::Engine)?;
        if let Some((text, version)) = published {
            match Ruleset::parse(&text, "(published ruleset)") {
                Ok(r) if version >= engine.rules().version => engine.set_rules(r),
                Ok(_) => {}
                Err(e) => tracing::error!("the published ruleset no longer loads: {e}"),
            }
        }
        Ok(SledHub { engine })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The operators' token acts as staff `operator`, owner.
    fn operator(&self) -> crate::engine::At {
        self.engine
            .at(None)
            .by(Actor::new("operator", crate::model::Role::Owner))
    }
}

/// The scope of a hub report: the chain, or what one terminal recorded and enrolled.
pub(crate) fn report_scope(terminal: Option<&str>) -> Scope<'_> {
    terminal.map_or(Scope::All, Scope::One)
}

/// The ruleset a hub renders members with until an operator publishes one.
pub(crate) fn initial_rules(cfg: &HubConfig) -> std::result::Result<Ruleset, StartError> {
    if cfg.rules == std::path::Path::new(crate::config::DEFAULT_RULES_PATH) && !cfg.rules.exists() {
        Ruleset::parse(crate::config::EMBEDDED_RULES, "(embedded rules.toml)")
    } else {
        Ruleset::load(&cfg.rules)
    }
    .map_err(|e| StartError::Config(e.to_string()))
}

fn conflict(push: &PushRequest, seq: u64) -> Error {
    let e = Error::new(
        Code::SyncConflict,
        format!(
            "terminal {} epoch {:x} record {seq}: the hub holds this identity with other content; refused",
            push.terminal_id, push.epoch
        ),
    );
    tracing::error!("SYNC CONFLICT: {}", e.message);
    e
}

impl HubStore for SledHub {
    fn ingest(&self, push: &PushRequest) -> Result<PushReply> {
        check_push(push)?;
        let at = self.engine.at(None);
        let (acked, duplicates) = self.engine.transact(at, |store, _| decide_push(store, push))?;
        let now = model::now();
        noted(
            self.engine
                .store()
                .note_contact(&push.terminal_id, push.epoch, |c| c.pushed(now)),
        );
        Ok(PushReply {
            acked,
            duplicates,
            hub_time: model::now(),
        })
    }

    fn pull(&self, req: &PullRequest) -> Result<PullReply> {
        let (journal, store) = (self.engine.journal(), self.engine.store());
        // Serve only what is durable, so that a cursor never points past a record a
        // crash could take back; and read the acknowledgement before the snapshots,
        // so that every snapshot covers at least what `acked` says.
        let durable = journal.last_seq();
        journal.wait_durable(durable)?;
        let acked = store.hub_terminal(&req.terminal_id, req.epoch)?.map_or(0, |t| t.acked);
        let entries: Vec<_> = store
            .feed_after(req.cursor, PULL_ENTRIES)?
            .into_iter()
            .filter(|e| e.0 <= durable)
            .collect();
        let reply = pull_reply(store, req, acked, &entries)?;
        noted(store.note_contact(&req.terminal_id, req.epoch, |c| c.pulled(reply.hub_time, reply.cursor)));
        Ok(reply)
    }

    fn member(&self, member_id: &str) -> Result<Option<MemberView>> {
        let at = self.engine.at(None);
        Ok(self
            .engine
            .store()
            .member(member_id)?
            .map(|m| MemberView::new(&self.engine.rules(), &m, at.ts, at.trusted)))
    }

    fn terminals(&self) -> Result<Vec<TerminalView>> {
        let store = self.engine.store();
        let contacts: std::collections::HashMap<_, _> = store.contacts()?.into_iter().collect();
        let tz = self.engine.rules().timezone;
        let mut out = Vec::new();
        for t in store.hub_terminals()? {
            let contact = contacts.get(&(t.terminal_id.clone(), t.epoch)).copied();
            let behind = match contact.and_then(|c| c.pull_cursor) {
                Some(cursor) => Some(store.feed_len_after(cursor)?),
                None => None,
            };
            out.push(TerminalView::new(t, contact, behind, &tz));
        }
        Ok(out)
    }

    fn overspent(&self) -> Result<Vec<Overspent>> {
        Ok(self
            .engine
            .store()
            .negative_members()?
            .into_iter()
            .map(|(member_id, balance)| Overspent { member_id, balance })
            .collect())
    }

    fn publish_ruleset(&self, text: &str) -> Result<u32> {
        let rules = Ruleset::parse(text, "(published ruleset)").map_err(|e| Error::invalid(e.to_string()))?;
        let version = rules.version;
        let at = self.engine.at(None);
        self.engine.transact(at, |store, _| {
            if let Some((_, current)) = store.published_ruleset()? {
                if version <= current {
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
        self.engine.set_rules(rules);
        tracing::info!("published ruleset version {version}");
        Ok(version)
    }

    fn find_members(&self, find: &Find) -> Result<(Vec<MemberView>, Option<String>)> {
        let at = self.engine.at(None);
        match (&find.phone, &find.q) {
            (Some(phone), None) => Ok((self.engine.find_by_phone(phone, &at)?, None)),
            (None, Some(q)) => self.engine.search(q, find.after.as_deref(), find.limit, &at),
            _ => Err(Error::invalid("give one of phone= or q=")),
        }
    }

    fn transactions(&self, member_id: &str, after: Option<&str>, limit: Option<usize>) -> Result<TransactionsPage> {
        self.engine.transactions_page(member_id, after, limit)
    }

    fn ledger(&self, member_id: &str, after: Option<&str>, limit: Option<usize>) -> Result<LedgerPage> {
        self.engine.ledger_page(member_id, after, limit)
    }

    fn coupons(&self, member_id: &str) -> Result<Vec<MemberCouponView>> {
        self.engine.member_coupons(member_id)
    }

    fn transaction(&self, tx_id: &str) -> Result<TransactionView> {
        self.engine.transaction(tx_id)
    }

    fn conflicts(&self) -> Result<Vec<ConflictView>> {
        self.engine.conflicts()
    }

    fn resolve_conflict(&self, id: &str, keep: &str, merge: bool, by: Actor) -> Result<ConflictView> {
        self.engine
            .resolve_conflict(id, keep, merge, self.engine.at(None).by(by))
    }

    fn healthy(&self) -> Result<()> {
        self.engine.healthy()
    }

    fn report_summary(&self, from: NaiveDate, to: NaiveDate, terminal: Option<&str>) -> Result<Summary> {
        self.engine
            .report_summary(from, to, report_scope(terminal), &self.operator())
    }

    fn report_retention(&self, from: Month, to: Month, terminal: Option<&str>) -> Result<Retention> {
        self.engine
            .report_retention(from, to, report_scope(terminal), &self.operator())
    }

    fn report_campaigns(&self, from: NaiveDate, to: NaiveDate, terminal: Option<&str>) -> Result<Campaigns> {
        self.engine
            .report_campaigns(from, to, report_scope(terminal), &self.operator())
    }

    fn knows_terminal(&self, terminal: &str) -> Result<bool> {
        self.engine.knows_terminal(terminal)
    }

    fn audit(&self, ask: AuditAsk, configured: bool) -> Result<AuditView> {
        self.engine.audit(&ask, configured, &self.operator())
    }

    fn daily_pass(&self) -> Result<(u64, std::time::Duration)> {
        let issued = self.engine.trigger_pass(self.engine.at(None))?;
        Ok((
            issued,
            self.engine.until_next_pass(std::time::Duration::from_secs(3600)),
        ))
    }

    fn group(&self, group_id: &str) -> Result<crate::views::campaign::GroupView> {
        self.engine.group(group_id)
    }

    fn deal_groups(&self, deal: &str) -> Result<Vec<crate::views::campaign::GroupView>> {
        self.engine.deal_groups(deal)
    }

    fn close(&self) -> Result<()> {
        self.engine.close()
    }
}

/// A contact noted: bookkeeping, so an answer already decided is not withheld for it.
pub(crate) fn noted(r: Result<()>) {
    if let Err(e) = r {
        tracing::warn!("a terminal's last contact was not noted: {}", e.message);
    }
}

/// A push's shape, checked before anything is read.
pub(crate) fn check_push(push: &PushRequest) -> Result<()> {
    let ordered = push.records.windows(2).all(|w| w[0].0 < w[1].0);
    let inside = push.records.iter().all(|(s, _)| (push.from..=push.upto).contains(s));
    if push.from == 0 || push.upto + 1 < push.from || !ordered || !inside {
        return Err(Error::invalid("a push covers seqs from..=upto, in order"));
    }
    Ok(())
}

/// What a push adds to the hub's journal, and the answer (acknowledged, duplicates):
/// decided on the state as `base` holds it, the same on every store.
pub(crate) fn decide_push(base: &dyn StateBase, push: &PushRequest) -> Result<(Vec<Body>, (u64, u64))> {
    let held = base::hub_terminal(base, &push.terminal_id, push.epoch)?.map_or(0, |t| t.acked);
    if push.from > held + 1 {
        // The terminal believes we hold more than we do (a hub restored from an
        // older backup): it resends from what we answer.
        if !base.tentative() {
            tracing::warn!(
                "terminal {} epoch {:x} pushed from {} but the hub holds up to {held}",
                push.terminal_id,
                push.epoch,
                push.from
            );
        }
        return Ok((vec![], (held, 0)));
    }
    let mut bodies = Vec::new();
    let mut duplicates = 0;
    for (seq, payload) in &push.records {
        if *seq <= held {
            match base::record_hash(base, &push.terminal_id, push.epoch, *seq)? {
                Some(h) if h == content_hash(payload) => duplicates += 1,
                _ if base.tentative() => {}
                _ => return Err(conflict(push, *seq)),
            }
            continue;
        }
        Record::decode(payload).map_err(|e| Error::invalid(format!("record {seq}: {}", e.message)))?;
        bodies.push(Body::Remote(Box::new(Remote {
            terminal_id: push.terminal_id.clone(),
            epoch: push.epoch,
            seq: *seq,
            payload: payload.clone(),
        })));
    }
    let acked = held.max(push.upto);
    if acked > held || duplicates > 0 {
        bodies.push(Body::Covered {
            terminal_id: push.terminal_id.clone(),
            epoch: push.epoch,
            upto: acked,
            duplicates,
        });
    }
    Ok((bodies, (acked, duplicates)))
}

/// A pull's answer from the state `base` holds: the members asked for, then the feed
/// `entries` (after the cursor, in order), within the reply's size.
pub(crate) fn pull_reply(
    base: &dyn StateBase,
    req: &PullRequest,
    acked: u64,
    entries: &[(u64, FeedKind, String)],
) -> Result<PullReply> {
    let mut reply = PullReply {
        cursor: req.cursor,
        acked,
        members: vec![],
        coupons: vec![],
        blocked_cards: vec![],
        ruleset: None,
        groups: vec![],
        more: entries.len() >= PULL_ENTRIES,
        hub_time: 0,
    };
    let mut bytes = 0;
    let add_member = |reply: &mut PullReply, bytes: &mut usize, m: MemberState| -> Result<()> {
        let holds_phone = base::phone_owner(base, &m.phone)?.as_deref() == Some(m.member_id.as_str());
        let snap = crate::state::convert::snapshot_of(&m, holds_phone);
        *bytes += postcard::to_allocvec(&snap).map_or(0, |v| v.len());
        reply.members.push(snap);
        Ok(())
    };
    for id in req.members.iter().take(PULL_ASKED) {
        if bytes > PULL_BYTES {
            // The rest are asked for again by the next round's pull. (Not `more`:
            // a member stays stale until its records are acknowledged, which the
            // push after this pull does, so pulling again at once would not help.)
            break;
        }
        if let Some(m) = base::member(base, id)? {
            add_member(&mut reply, &mut bytes, m)?;
        }
    }
    let mut i = 0;
    while i < entries.len() {
        let seq = entries[i].0;
        if bytes > PULL_BYTES && reply.cursor > req.cursor {
            reply.more = true;
            break;
        }
        while i < entries.len() && entries[i].0 == seq {
            let (_, kind, id) = &entries[i];
            match kind {
                FeedKind::Member => {
                    if let Some(m) = base::member(base, id)? {
                        add_member(&mut reply, &mut bytes, m)?;
                    }
                }
                FeedKind::Coupon => {
                    if let Some(c) = base::coupon(base, id)? {
                        reply.coupons.push((id.clone(), (&c).into()));
                    }
                }
                FeedKind::BlockedCard => reply.blocked_cards.push(id.clone()),
                FeedKind::Ruleset => reply.ruleset = base::published_ruleset(base)?.map(|r| r.0),
                FeedKind::Group => {
                    if let Some(g) = base::group(base, id)? {
                        reply.groups.retain(|s| s.group_id != g.group_id);
                        reply.groups.push(group_snapshot(g));
                    }
                }
            }
            i += 1;
        }
        reply.cursor = seq;
    }
    reply.hub_time = model::now();
    Ok(reply)
}

/// A group as terminals are told it: the hub's decision (no pending joins here).
fn group_snapshot(g: crate::store::GroupState) -> crate::record::GroupSnapshot {
    crate::record::GroupSnapshot {
        group_id: g.group_id,
        deal: g.deal,
        sku: g.sku,
        group_price_minor: g.group_price_minor,
        size: g.size,
        opened_at: g.opened_at,
        expires_at: g.expires_at,
        members: g.members,
        refused: g.refused,
        formed_at: g.formed_at,
        used: g.used,
    }
}
