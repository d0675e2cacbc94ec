//! Members, cards, points outside a sale, and staff at the command line: each command
//! runs against the data directory (offline, as the device's owner `cli`) or, with
//! `--remote`, against the running daemon's API, and prints the same either way.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::{json, Value};

use super::remote::{enc, Remote, Stdin};
use super::text;
use super::Out;
use crate::engine::{At, Engine, MemberPatch, NewMember};
use crate::error::{Error, Result};
use crate::model::Role;

/// Where a command runs.
pub enum Target<'a> {
    Local(&'a Engine, At),
    Remote(&'a Remote),
}

#[derive(Subcommand, Debug)]
pub enum MemberCmd {
    /// Enrol a member (without --card: a virtual card)
    Add(MemberArgs),
    /// A member by card or id
    Show {
        #[arg(long, required_unless_present = "member")]
        card: Option<String>,
        #[arg(long, conflicts_with = "card")]
        member: Option<String>,
        /// Business instant, RFC 3339 (default: now; offline only)
        #[arg(long)]
        at: Option<String>,
    },
    /// Find members by phone (any spelling), or by a name prefix, a phone suffix of 4+
    /// digits or a card prefix
    Find {
        #[arg(long, required_unless_present = "q", conflicts_with = "q")]
        phone: Option<String>,
        #[arg(long)]
        q: Option<String>,
        #[arg(long)]
        limit: Option<usize>,
        /// The cursor a previous page gave as `next`
        #[arg(long)]
        after: Option<String>,
    },
    /// Change a member's name, phone, birthday or tags
    Edit {
        #[arg(long)]
        member: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        phone: Option<String>,
        /// MM-DD
        #[arg(long, conflicts_with = "clear_birthday")]
        birthday: Option<String>,
        #[arg(long)]
        clear_birthday: bool,
        /// The member's tags, replacing the ones they have (repeatable)
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Remove every tag
        #[arg(long, conflicts_with = "tags")]
        clear_tags: bool,
    },
    /// Make a member active or inactive (manager)
    Status {
        #[arg(long)]
        member: String,
        /// active | inactive
        #[arg(long)]
        status: String,
    },
    /// Set a new PIN: with --old-pin, or as a reset by a manager (also lifts a lock)
    Pin {
        #[arg(long)]
        member: String,
        #[arg(long)]
        old_pin: Option<String>,
        #[arg(long)]
        new_pin: String,
    },
    /// A member's transactions, newest first
    History {
        #[arg(long)]
        member: String,
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        after: Option<String>,
    },
    /// A member's points ledger, newest first
    Points {
        #[arg(long)]
        member: String,
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        after: Option<String>,
    },
    /// A member's coupons
    Coupons {
        #[arg(long)]
        member: String,
    },
    /// Import members from CSV (card,name,phone,birthday,points,tier,tags): all or none
    Import { file: PathBuf },
    /// Export every member as CSV (to stdout, or --out FILE)
    Export {
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct MemberArgs {
    /// The member's card (default: a virtual card, a 12-digit number)
    #[arg(long)]
    card: Option<String>,
    #[arg(long)]
    name: String,
    #[arg(long)]
    phone: String,
    /// MM-DD
    #[arg(long)]
    birthday: Option<String>,
    /// 4 to 8 digits
    #[arg(long)]
    pin: Option<String>,
    /// A tag (repeatable)
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Business instant of the enrolment, RFC 3339 (default: now; offline only)
    #[arg(long)]
    pub at: Option<String>,
}

impl MemberArgs {
    fn new_member(&self) -> NewMember {
        NewMember {
            card: self.card.clone(),
            name: self.name.clone(),
            phone: self.phone.clone(),
            birthday: self.birthday.clone(),
            pin: self.pin.clone(),
            tags: self.tags.clone(),
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum CardCmd {
    Block {
        #[arg(long)]
        card: String,
    },
    Replace {
        #[arg(long)]
        card: String,
        #[arg(long)]
        new_card: String,
    },
    /// Unblock a card (manager)
    Unblock {
        #[arg(long)]
        card: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum PointsCmd {
    /// Add (or, negative, take) points by hand with a reason (manager)
    Adjust {
        #[arg(long)]
        member: String,
        #[arg(long, allow_hyphen_values = true)]
        points: i64,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum StaffCmd {
    /// A new staff account (owner); the password is read from stdin
    Add {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// cashier | manager | owner
        #[arg(long)]
        role: String,
        /// Read the new password from stdin (after the --as password, remotely)
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    List,
    Disable {
        #[arg(long)]
        id: String,
    },
    /// A new password for a staff account, read from stdin
    Password {
        #[arg(long)]
        id: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

fn json_of<T: Serialize>(v: T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| Error::internal(e.to_string()))
}

fn page_query(limit: Option<usize>, after: &Option<String>) -> String {
    let mut q = Vec::new();
    if let Some(l) = limit {
        q.push(format!("limit={l}"));
    }
    if let Some(a) = after {
        q.push(format!("after={}", enc(a)));
    }
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

pub fn member(cmd: &MemberCmd, t: &Target) -> Result<Out> {
    let v = match (cmd, t) {
        (MemberCmd::Add(a), Target::Local(e, at)) => json_of(e.add_member(a.new_member(), None, at.clone())?)?,
        (MemberCmd::Add(a), Target::Remote(_)) if a.at.is_some() => {
            return Err(Error::invalid("--at works offline only"))
        }
        (MemberCmd::Add(a), Target::Remote(r)) => r.call("POST", "/v1/members", Some(json_of(a.new_member())?))?,
        (MemberCmd::Show { card, member, .. }, Target::Local(e, at)) => match (card, member) {
            (Some(c), _) => json_of(e.show_member(c, at.clone())?)?,
            (None, Some(m)) => json_of(e.member(m, at)?)?,
            (None, None) => return Err(Error::invalid("give --card or --member")),
        },
        (MemberCmd::Show { card, member, at }, Target::Remote(r)) => {
            if at.is_some() {
                return Err(Error::invalid("--at works offline only"));
            }
            match (card, member) {
                (Some(c), _) => r.call("GET", &format!("/v1/cards/{}", enc(c)), None)?,
                (None, Some(m)) => r.call("GET", &format!("/v1/members/{}", enc(m)), None)?,
                (None, None) => return Err(Error::invalid("give --card or --member")),
            }
        }
        (MemberCmd::Find { phone, q, limit, after }, _) => {
            let v = match t {
                Target::Local(e, at) => match (phone, q) {
                    (Some(p), _) => json!({"members": e.find_by_phone(p, at)?, "next": null}),
                    (None, Some(q)) => {
                        let (members, next) = e.search(q, after.as_deref(), *limit, at)?;
                        json!({"members": members, "next": next})
                    }
                    (None, None) => return Err(Error::invalid("give --phone or --q")),
                },
                Target::Remote(r) => match (phone, q) {
                    (Some(p), _) => r.call("GET", &format!("/v1/members?phone={}", enc(p)), None)?,
                    (None, Some(q)) => {
                        let rest = page_query(*limit, after).replacen('?', "&", 1);
                        r.call("GET", &format!("/v1/members?q={}{rest}", enc(q)), None)?
                    }
                    (None, None) => return Err(Error::invalid("give --phone or --q")),
                },
            };
            return members_out(v);
        }
        (
            MemberCmd::Edit {
                member,
                name,
                phone,
                birthday,
                clear_birthday,
                tags,
                clear_tags,
            },
            _,
        ) => {
            let patch = MemberPatch {
                name: name.clone(),
                phone: phone.clone(),
                birthday: if *clear_birthday {
                    Some(None)
                } else {
                    birthday.clone().map(Some)
                },
                tags: if *clear_tags {
                    Some(vec![])
                } else if tags.is_empty() {
                    None
                } else {
                    Some(tags.clone())
                },
            };
            match t {
                Target::Local(e, at) => json_of(e.edit_member(member, patch, None, at.clone())?)?,
                Target::Remote(r) => r.call("PATCH", &format!("/v1/members/{}", enc(member)), Some(json_of(patch)?))?,
            }
        }
        (MemberCmd::Status { member, status }, _) => match t {
            Target::Local(e, at) => {
                let active = match status.as_str() {
                    "active" => true,
                    "inactive" => false,
                    s => return Err(Error::invalid(format!("--status {s:?}: active or inactive"))),
                };
                json_of(e.set_status(member, active, None, at.clone())?)?
            }
            Target::Remote(r) => r.call(
                "POST",
                &format!("/v1/members/{}/status", enc(member)),
                Some(json!({ "status": status })),
            )?,
        },
        (
            MemberCmd::Pin {
                member,
                old_pin,
                new_pin,
            },
            _,
        ) => match t {
            Target::Local(e, at) => json_of(e.set_pin(member, old_pin.as_deref(), new_pin, None, at.clone())?)?,
            Target::Remote(r) => r.call(
                "POST",
                &format!("/v1/members/{}/pin", enc(member)),
                Some(json!({ "old_pin": old_pin, "new_pin": new_pin })),
            )?,
        },
        (MemberCmd::History { member, limit, after }, _) => {
            let v = match t {
                Target::Local(e, _) => json_of(e.transactions_page(member, after.as_deref(), *limit)?)?,
                Target::Remote(r) => r.call(
                    "GET",
                    &format!("/v1/members/{}/transactions{}", enc(member), page_query(*limit, after)),
                    None,
                )?,
            };
            let text = text::transactions_text(&v);
            return Ok(Out::of_value(v, text));
        }
        (MemberCmd::Points { member, limit, after }, _) => {
            let v = match t {
                Target::Local(e, _) => json_of(e.ledger_page(member, after.as_deref(), *limit)?)?,
                Target::Remote(r) => r.call(
                    "GET",
                    &format!("/v1/members/{}/points{}", enc(member), page_query(*limit, after)),
                    None,
                )?,
            };
            let text = text::ledger_text(&v);
            return Ok(Out::of_value(v, text));
        }
        (MemberCmd::Coupons { member }, _) => match t {
            Target::Local(e, _) => json!({ "coupons": e.member_coupons(member)? }),
            Target::Remote(r) => r.call("GET", &format!("/v1/members/{}/coupons", enc(member)), None)?,
        },
        (MemberCmd::Import { file }, _) => {
            let bytes = std::fs::read(file).map_err(|e| Error::invalid(format!("{}: {e}", file.display())))?;
            let v = match t {
                Target::Local(e, at) => json_of(e.import_members(&bytes, at.clone())?)?,
                Target::Remote(r) => r.upload("/v1/members/import", "text/csv", &bytes)?,
            };
            let text = format!(
                "imported {} members with {} points",
                v["imported"].as_u64().unwrap_or(0),
                v["points"].as_i64().unwrap_or(0)
            );
            return Ok(Out::of_value(v, text));
        }
        (MemberCmd::Export { out }, _) => {
            let mut sink: Box<dyn std::io::Write> = match out {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p).map_err(|e| Error::invalid(format!("{}: {e}", p.display())))?,
                )),
                None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
            };
            let n = match t {
                Target::Local(e, at) => e.export_members(&mut sink, at)?,
                Target::Remote(r) => r.download("/v1/members/export?format=csv", &mut sink)?,
            };
            sink.flush()
                .map_err(|e| Error::internal(format!("writing the export: {e}")))?;
            // The CSV itself went to stdout or the file: nothing more to print there.
            let v = json!({ "ok": true, "written": n, "file": out.as_ref().map(|p| p.display().to_string()) });
            return Ok(Out::quiet(v));
        }
    };
    Ok(member_out(v))
}

/// A member answer, printed like `member show`.
fn member_out(v: Value) -> Out {
    let text = text::member_text(&v);
    Out::of_value(v, text)
}

fn members_out(v: Value) -> Result<Out> {
    let text = text::members_text(&v);
    Ok(Out::of_value(v, text))
}

pub fn card(cmd: &CardCmd, t: &Target) -> Result<Out> {
    let v = match (cmd, t) {
        (CardCmd::Block { card }, Target::Local(e, at)) => json_of(e.block_card(card, None, at.clone())?)?,
        (CardCmd::Block { card }, Target::Remote(r)) => {
            r.call("POST", &format!("/v1/cards/{}/block", enc(card)), None)?
        }
        (CardCmd::Replace { card, new_card }, Target::Local(e, at)) => {
            json_of(e.replace_card(card, new_card, None, at.clone())?)?
        }
        (CardCmd::Replace { card, new_card }, Target::Remote(r)) => r.call(
            "POST",
            &format!("/v1/cards/{}/replace", enc(card)),
            Some(json!({ "new_card": new_card })),
        )?,
        (CardCmd::Unblock { card }, Target::Local(e, at)) => json_of(e.unblock_card(card, None, at.clone())?)?,
        (CardCmd::Unblock { card }, Target::Remote(r)) => {
            r.call("POST", &format!("/v1/cards/{}/unblock", enc(card)), None)?
        }
    };
    Ok(member_out(v))
}

pub fn points(cmd: &PointsCmd, t: &Target) -> Result<Out> {
    let PointsCmd::Adjust { member, points, reason } = cmd;
    let v = match t {
        Target::Local(e, at) => json_of(e.adjust_points(member, *points, reason, None, at.clone())?)?,
        Target::Remote(r) => r.call(
            "POST",
            &format!("/v1/members/{}/points", enc(member)),
            Some(json!({ "points": points, "reason": reason })),
        )?,
    };
    let text = text::entry_text(&v);
    Ok(Out::of_value(v, text))
}

pub fn activity(member: &str, activity: &str, t: &Target) -> Result<Out> {
    let v = match t {
        Target::Local(e, at) => json_of(e.grant_activity(member, activity, None, at.clone())?)?,
        Target::Remote(r) => r.call(
            "POST",
            &format!("/v1/members/{}/activities", enc(member)),
            Some(json!({ "activity": activity })),
        )?,
    };
    let text = text::entry_text(&v);
    Ok(Out::of_value(v, text))
}

pub fn transaction(tx: &str, t: &Target) -> Result<Out> {
    let v = match t {
        Target::Local(e, _) => json_of(e.transaction(tx)?)?,
        Target::Remote(r) => r.call("GET", &format!("/v1/transactions/{}", enc(tx)), None)?,
    };
    let text = serde_json::to_string_pretty(&v).unwrap_or_default();
    Ok(Out::of_value(v, text))
}

/// Staff commands; `stdin` holds the new password where one is asked for.
pub fn staff(cmd: &StaffCmd, t: &Target, stdin: &mut Option<Stdin>) -> Result<Out> {
    let mut password = || -> Result<String> {
        if stdin.is_none() {
            *stdin = Some(Stdin::read()?);
        }
        stdin.as_mut().expect("just read").line("new password")
    };
    let v = match cmd {
        StaffCmd::Add { id, name, role, .. } => {
            let pw = password()?;
            match t {
                Target::Local(e, at) => json_of(e.add_staff(id, name, Role::parse(role)?, &pw, at.clone())?)?,
                Target::Remote(r) => r.call(
                    "POST",
                    "/v1/staff",
                    Some(json!({"staff_id": id, "name": name, "role": role, "password": pw})),
                )?,
            }
        }
        StaffCmd::List => match t {
            Target::Local(e, at) => json!({ "staff": e.list_staff(at)? }),
            Target::Remote(r) => r.call("GET", "/v1/staff", None)?,
        },
        StaffCmd::Disable { id } => match t {
            Target::Local(e, at) => json_of(e.disable_staff(id, at.clone())?)?,
            Target::Remote(r) => r.call("POST", &format!("/v1/staff/{}/disable", enc(id)), None)?,
        },
        StaffCmd::Password { id, .. } => {
            let pw = password()?;
            match t {
                Target::Local(e, at) => json_of(e.set_staff_password(id, &pw, at.clone())?)?,
                Target::Remote(r) => r.call(
                    "POST",
                    &format!("/v1/staff/{}/password", enc(id)),
                    Some(json!({ "password": pw })),
                )?,
            }
        }
    };
    let text = text::staff_text(&v);
    Ok(Out::of_value(v, text))
}
