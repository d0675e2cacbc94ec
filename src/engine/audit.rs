//! The audit view (interface.md 0.2 "Staff and roles": every record names who acted):
//! a page of the store's audit index, filtered, newest first, for managers.

use chrono::NaiveDate;
use serde::Serialize;

use super::{At, Engine};
use crate::error::{Error, Result};
use crate::model::{day_no, fmt_instant, Role};
use crate::store::audit::{self, AuditFilter, AuditPage, ACTIONS};
use crate::store::base::{self, StateBase};
use chrono_tz::Tz;

/// Entries on a page: 50 unless asked, at most 500.
pub const AUDIT_LIMIT: usize = 50;
pub const AUDIT_MAX: usize = 500;

/// What a caller asks the audit view for.
#[derive(Debug, Clone, Default)]
pub struct AuditAsk {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub staff: Option<String>,
    pub action: Option<String>,
    pub terminal: Option<String>,
    pub limit: Option<usize>,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AuditEntryView {
    /// The record's seq in this node's journal.
    pub seq: u64,
    /// When it happened (the business instant, RFC 3339 in the shop's zone).
    #[schema(format = DateTime)]
    pub at: String,
    /// What was done: one of the stable action names (README, "The audit view").
    #[schema(schema_with = action_schema)]
    pub action: String,
    /// Who acted: a staff id, `pos`, `cli`, `operator`; null in records made before
    /// 0.2 and in the daemon's own (the expiry pass).
    #[schema(required = true)]
    pub by: Option<String>,
    /// The caller who asked, when a manager approved the request.
    #[schema(required = true)]
    pub requested_by: Option<String>,
    /// The terminal that made the record.
    pub terminal_id: String,
    /// What it acted on: a member id, card, transaction or refund id, coupon code, staff id, ...
    #[schema(required = true)]
    pub subject: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AuditView {
    pub entries: Vec<AuditEntryView>,
    /// The cursor of the next page (older entries); null at the end. A page may hold
    /// fewer entries than asked (even none) and still have a next one: a page looks at
    /// a bounded part of the index.
    #[schema(required = true)]
    pub next: Option<String>,
}

fn action_schema() -> utoipa::openapi::schema::Object {
    crate::views::schema::string_enum(ACTIONS.iter().copied())
}

impl Engine {
    /// `terminal_configured`: the terminal filter names one of the hub's config.
    pub fn audit(&self, ask: &AuditAsk, terminal_configured: bool, at: &At) -> Result<AuditView> {
        at.require(Role::Manager, "the audit view")?;
        view(&self.store, ask, terminal_configured, &self.rules().timezone)
    }
}

/// A page of the audit view from the state `base` holds (the caller has checked the
/// role): the same answer on a terminal, the embedded hub and the hub on PostgreSQL.
pub fn view(base: &dyn StateBase, ask: &AuditAsk, terminal_configured: bool, tz: &Tz) -> Result<AuditView> {
    if let (Some(f), Some(t)) = (ask.from, ask.to) {
        if f > t {
            return Err(Error::invalid(format!("from {f} is after to {t}")));
        }
    }
    if let Some(a) = &ask.action {
        if !ACTIONS.contains(&a.as_str()) {
            return Err(Error::invalid(format!(
                "action {a:?} is not one of {}",
                ACTIONS.join(", ")
            )));
        }
    }
    if let Some(s) = &ask.staff {
        if base::staff(base, s)?.is_none() && !audit::actor_seen(base, s)? {
            return Err(Error::invalid(format!(
                "staff {s:?}: no such staff account, and no record names it"
            )));
        }
    }
    if let Some(t) = &ask.terminal {
        if !terminal_configured && !base::knows_terminal(base, t)? {
            return Err(Error::invalid(format!(
                "terminal {t:?}: no such terminal has synced with this hub"
            )));
        }
    }
    let limit = ask.limit.unwrap_or(AUDIT_LIMIT);
    if !(1..=AUDIT_MAX).contains(&limit) {
        return Err(Error::invalid(format!("limit {limit}: 1 to {AUDIT_MAX}")));
    }
    let filter = AuditFilter {
        from: ask.from.map(day_no),
        to: ask.to.map(day_no),
        staff: ask.staff.clone(),
        action: ask.action.clone(),
        terminal: ask.terminal.clone(),
    };
    let AuditPage { entries, next } = audit::page(base, &filter, ask.cursor.as_deref(), limit)?;
    Ok(AuditView {
        entries: entries
            .into_iter()
            .map(|e| AuditEntryView {
                seq: e.seq,
                at: fmt_instant(e.at, tz),
                action: e.action,
                by: e.by,
                requested_by: e.requested_by,
                terminal_id: e.terminal_id,
                subject: e.subject,
            })
            .collect(),
        next,
    })
}
