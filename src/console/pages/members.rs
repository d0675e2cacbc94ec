//! Members: search (phone, name prefix, phone suffix, card prefix), detail with history
//! and points ledger (every role), and the forms that change a member: edit, status,
//! PIN reset, points adjustment. Those need a manager; a cashier fills in a manager's
//! staff id and password on the form (approval, as at the till), and the record names
//! the manager as `by` and the cashier as `requested_by`. On the hub members are shown,
//! not changed (the terminals own them).

use askama::Template;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

use super::{blank, frame, html, money, refused, staff_error, status_of, Frame, Notice};
use crate::console::i18n::url_encode;
use crate::console::{Shared, Staff};
use crate::engine::{Actor, MemberPatch};
use crate::error::{Code, Error, Result};
use crate::model::Role;
use crate::views::history::{LedgerPage, MemberCouponView, TransactionsPage};
use crate::views::MemberView;

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SearchQuery {
    q: Option<String>,
    after: Option<String>,
}

#[derive(Template)]
#[template(path = "console/members.html")]
struct SearchPage {
    f: Frame,
    q: String,
    members: Vec<MemberView>,
    searched: bool,
    next: Option<String>,
}

impl SearchPage {
    fn href(&self, m: &MemberView) -> String {
        member_href(&m.member_id)
    }

    fn next_href(&self, after: &str) -> String {
        format!("/console/members?q={}&after={}", url_encode(&self.q), url_encode(after))
    }
}

pub fn member_href(id: &str) -> String {
    format!("/console/members/{}", url_encode(id))
}

/// Digits, spaces, `+` and `-` only, with 7 digits or more: a whole phone number.
fn looks_like_phone(q: &str) -> bool {
    let digits = q.chars().filter(char::is_ascii_digit).count();
    digits >= 7 && q.chars().all(|c| c.is_ascii_digit() || " +-".contains(c))
}

pub async fn search(
    State(st): State<Shared>,
    s: Staff,
    q: std::result::Result<Query<SearchQuery>, QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let text = q.q.clone().unwrap_or_default();
    let mut page = SearchPage {
        f: frame(&st, &s, "title.members", "/console/members"),
        q: text.clone(),
        members: Vec::new(),
        searched: false,
        next: None,
    };
    if text.trim().is_empty() {
        return html(StatusCode::OK, &page);
    }
    page.searched = true;
    let at = s.at(&st);
    let found = st.run(|e| {
        if q.after.is_none() && looks_like_phone(&text) {
            let exact = e.find_by_phone(&text, &at)?;
            if !exact.is_empty() {
                return Ok((exact, None));
            }
        }
        e.search(&text, q.after.as_deref(), None, &at)
    });
    match found {
        Ok((members, next)) => {
            page.members = members;
            page.next = next;
            html(StatusCode::OK, &page)
        }
        Err(e) if !e.code.is_fault() => {
            page.f.notice = Some(refused(&e));
            html(status_of(&e), &page)
        }
        Err(e) => staff_error(&st, &s, &e),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DetailQuery {
    tx: Option<String>,
    pts: Option<String>,
    done: Option<String>,
}

#[derive(Template)]
#[template(path = "console/member.html")]
struct MemberPage {
    f: Frame,
    m: MemberView,
    txs: TransactionsPage,
    ledger: LedgerPage,
    coupons: Vec<MemberCouponView>,
    editable: bool,
    /// The edit form's values (what was sent when it was refused).
    name: String,
    phone: String,
    birthday: String,
    tags: String,
}

impl MemberPage {
    fn money(&self, v: &i64) -> String {
        money(*v)
    }

    fn base(&self) -> String {
        member_href(&self.m.member_id)
    }

    fn tx_next(&self, after: &str) -> String {
        format!("{}?tx={}", self.base(), url_encode(after))
    }

    fn pts_next(&self, after: &str) -> String {
        format!("{}?pts={}", self.base(), url_encode(after))
    }
}

struct Sent {
    name: String,
    phone: String,
    birthday: String,
    tags: String,
}

fn member_page(
    st: &Shared,
    s: &Staff,
    id: &str,
    (tx, pts): (Option<&str>, Option<&str>),
    notice: Option<Notice>,
    status: StatusCode,
    sent: Option<Sent>,
) -> Response {
    let at = s.at(st);
    let loaded = st.run(|e| {
        let m = e.member(id, &at)?;
        let txs = e.transactions_page(id, tx, None)?;
        let ledger = e.ledger_page(id, pts, None)?;
        let coupons = e.member_coupons(id)?;
        Ok((m, txs, ledger, coupons))
    });
    let (m, txs, ledger, coupons) = match loaded {
        Ok(x) => x,
        Err(e) => return staff_error(st, s, &e),
    };
    let mut f = frame(st, s, "title.member", "/console/members");
    f.notice = notice;
    let sent = sent.unwrap_or_else(|| Sent {
        name: m.name.clone(),
        phone: m.phone.clone().unwrap_or_default(),
        birthday: m.birthday.clone().unwrap_or_default(),
        tags: m.tags.join(", "),
    });
    let page = MemberPage {
        f,
        editable: !st.is_hub(),
        name: sent.name,
        phone: sent.phone,
        birthday: sent.birthday,
        tags: sent.tags,
        m,
        txs,
        ledger,
        coupons,
    };
    html(status, &page)
}

pub async fn detail(
    State(st): State<Shared>,
    s: Staff,
    Path(id): Path<String>,
    q: std::result::Result<Query<DetailQuery>, QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let notice = q.done.as_deref().map(|d| Notice {
        ok: true,
        text: match d {
            "edit" => s.v.lang.t("done.edit"),
            "status" => s.v.lang.t("done.status"),
            "pin" => s.v.lang.t("done.pin"),
            "points" => s.v.lang.t("done.points"),
            _ => s.v.lang.t("done.other"),
        }
        .to_string(),
    });
    member_page(
        &st,
        &s,
        &id,
        (q.tx.as_deref(), q.pts.as_deref()),
        notice,
        StatusCode::OK,
        None,
    )
}

/// The fields every changing form has: the CSRF token and, for a cashier, an approval.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ChangeForm {
    csrf: String,
    approval_staff_id: Option<String>,
    approval_password: Option<String>,
    name: Option<String>,
    phone: Option<String>,
    birthday: Option<String>,
    tags: Option<String>,
    status: Option<String>,
    new_pin: Option<String>,
    points: Option<String>,
    reason: Option<String>,
}

/// Who acts: the staff member themself when their role suffices (`needs`: a cashier
/// edits a member's details, as at the till), or a cashier with a manager's approval on
/// the form. The engine checks the role again.
fn acting(st: &Shared, s: &Staff, f: &ChangeForm, what: &str, needs: Role) -> Result<Actor> {
    if st.is_hub() {
        return Err(Error::new(
            Code::Forbidden,
            "members are changed at the terminals, not on the hub",
        ));
    }
    if s.s.role >= needs {
        return Ok(s.actor());
    }
    if blank(&f.approval_staff_id) || blank(&f.approval_password) {
        return Err(Error::new(
            Code::Forbidden,
            format!("{what} needs a manager: fill in a manager's staff id and password"),
        ));
    }
    let approver = f.approval_staff_id.as_deref().unwrap_or("").trim().to_string();
    let (role, _) = st.check_password(&approver, f.approval_password.as_deref().unwrap_or(""))?;
    if role < Role::Manager {
        return Err(Error::new(
            Code::Forbidden,
            format!("{what} needs a manager's approval; {approver} is {}", role.as_str()),
        ));
    }
    Ok(Actor {
        by: approver,
        role,
        requested_by: Some(s.s.staff_id.clone()),
    })
}

type Change = fn(&crate::engine::Engine, &str, &ChangeForm, crate::engine::At) -> Result<()>;

/// A changing form: CSRF first (403, nothing read), then who acts, then the change; on
/// success back to the member page, else the page again with the reason.
fn change(
    st: &Shared,
    s: &Staff,
    id: &str,
    form: std::result::Result<Form<ChangeForm>, FormRejection>,
    (what, needs): (&str, Role),
    done: &str,
    f: Change,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    if s.check_csrf(&form.csrf).is_err() {
        return super::csrf_refused(st, s);
    }
    let r = acting(st, s, &form, what, needs).and_then(|actor| {
        let at = st.engine().at(None).by(actor);
        st.run(|e| f(e, id, &form, at))
    });
    match r {
        Ok(()) => Redirect::to(&format!("{}?done={done}", member_href(id))).into_response(),
        Err(e) if e.code == Code::UnknownMember => staff_error(st, s, &e),
        Err(e) if !e.code.is_fault() => {
            let sent = (done == "edit").then(|| Sent {
                name: form.name.clone().unwrap_or_default(),
                phone: form.phone.clone().unwrap_or_default(),
                birthday: form.birthday.clone().unwrap_or_default(),
                tags: form.tags.clone().unwrap_or_default(),
            });
            member_page(st, s, id, (None, None), Some(refused(&e)), status_of(&e), sent)
        }
        Err(e) => staff_error(st, s, &e),
    }
}

fn tags_of(text: &str) -> Vec<String> {
    text.split([',', ';', '，'])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

pub async fn edit(
    State(st): State<Shared>,
    s: Staff,
    Path(id): Path<String>,
    form: std::result::Result<Form<ChangeForm>, FormRejection>,
) -> Response {
    change(
        &st,
        &s,
        &id,
        form,
        ("editing a member", Role::Cashier),
        "edit",
        |e, id, f, at| {
            let patch = MemberPatch {
                name: f.name.clone(),
                phone: f.phone.clone().filter(|p| !p.trim().is_empty()),
                birthday: f
                    .birthday
                    .as_deref()
                    .map(|b| Some(b.trim().to_string()).filter(|b| !b.is_empty())),
                tags: f.tags.as_deref().map(tags_of),
            };
            e.edit_member(id, patch, None, at).map(|_| ())
        },
    )
}

pub async fn status(
    State(st): State<Shared>,
    s: Staff,
    Path(id): Path<String>,
    form: std::result::Result<Form<ChangeForm>, FormRejection>,
) -> Response {
    change(
        &st,
        &s,
        &id,
        form,
        ("changing a member's status", Role::Manager),
        "status",
        |e, id, f, at| {
            let active = match f.status.as_deref() {
                Some("active") => true,
                Some("inactive") => false,
                other => {
                    return Err(Error::invalid(format!(
                        "status {:?}: want active or inactive",
                        other.unwrap_or("")
                    )))
                }
            };
            e.set_status(id, active, None, at).map(|_| ())
        },
    )
}

pub async fn pin(
    State(st): State<Shared>,
    s: Staff,
    Path(id): Path<String>,
    form: std::result::Result<Form<ChangeForm>, FormRejection>,
) -> Response {
    change(
        &st,
        &s,
        &id,
        form,
        ("resetting a PIN", Role::Manager),
        "pin",
        |e, id, f, at| {
            let pin = f.new_pin.as_deref().unwrap_or("").trim().to_string();
            e.set_pin(id, None, &pin, None, at).map(|_| ())
        },
    )
}

pub async fn points(
    State(st): State<Shared>,
    s: Staff,
    Path(id): Path<String>,
    form: std::result::Result<Form<ChangeForm>, FormRejection>,
) -> Response {
    change(
        &st,
        &s,
        &id,
        form,
        ("adjusting points", Role::Manager),
        "points",
        |e, id, f, at| {
            let text = f.points.as_deref().unwrap_or("").trim();
            let points: i64 = text
                .parse()
                .map_err(|_| Error::invalid(format!("points {text:?} is not a whole number")))?;
            e.adjust_points(id, points, f.reason.as_deref().unwrap_or(""), None, at)
                .map(|_| ())
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_and_tags_are_told_apart() {
        assert!(looks_like_phone("138 0000 0001") && looks_like_phone("+86 13800000001"));
        assert!(!looks_like_phone("0001") && !looks_like_phone("Li 1380000"));
        assert_eq!(tags_of("vip, 常客；x;; ，y"), ["vip", "常客；x", "y"]);
    }
}
