//! Members in and out as CSV (interface.md 0.2 "Reports"): `card,name,phone,birthday,
//! points,tier,tags`, tags separated by `;`.
//!
//! An import is all rows or none: every row is checked first (each bad one listed with
//! its line in the file, the header being line 1), then the members go to the journal
//! as chunks and a commit record in one write; until the commit record is durable none
//! of them counts, so a crash mid-import leaves nothing half imported. An export is
//! written a page of members at a time, so its memory does not grow with the chain.

use std::collections::HashSet;
use std::io::Write;

use serde::Serialize;

use super::{At, Engine};
use crate::error::{Code, Error, Result};
use crate::identity;
use crate::model::{self, canonical_card, check_text, day_no, Birthday, CardStatus, Role};
use crate::record::{Body, Imported};
use crate::rules::{local_date, lots, tier};

/// The columns of the file, in order.
pub const COLUMNS: [&str; 7] = ["card", "name", "phone", "birthday", "points", "tier", "tags"];
/// Members per import chunk record (well under a journal frame's 1 MiB).
const CHUNK: usize = 1000;
/// Bad rows listed in a refusal (the count says how many there were).
const ROWS_LISTED: usize = 1000;
/// The largest balance a row may bring.
pub const MAX_IMPORT_POINTS: i64 = 1_000_000_000;
/// Members an export reads at a time.
const EXPORT_PAGE: usize = 1000;

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ImportReport {
    /// Members imported.
    #[schema(value_type = u64)]
    pub imported: usize,
    /// Points they brought, in all.
    pub points: i64,
}

/// A refused row: its line in the file and why.
type BadRow = (u64, String);

/// A row that passed its own checks (the store's are made under the writer lock).
struct Row {
    line: u64,
    card: Option<String>,
    name: String,
    phone: String,
    birthday: Option<Birthday>,
    points: i64,
    tags: Vec<String>,
}

impl Engine {
    /// Imports the members of a CSV file (manager): all or none.
    pub fn import_members(&self, csv: &[u8], at: At) -> Result<ImportReport> {
        at.require(Role::Manager, "importing members")?;
        let (rows, bad_rows) = self.parse_rows(csv)?;
        let import_id = super::random_u64();
        self.commit_plain(
            &at,
            |store, rules| {
                // Every bad row at once: those that failed their own checks, and those
                // the store or an earlier line refuses.
                let mut bad = bad_rows;
                let mut cards = HashSet::new();
                let mut phones = HashSet::new();
                let expires = lots::expires_at(rules, at.ts);
                let mut members = Vec::with_capacity(rows.len());
                for r in &rows {
                    let card = match &r.card {
                        Some(c) => c.clone(),
                        None => loop {
                            let c = identity::virtual_card(super::random_u64());
                            if store.card_owner(&c)?.is_none() && !cards.contains(&c) {
                                break c;
                            }
                        },
                    };
                    if !cards.insert(card.clone()) {
                        bad.push((r.line, format!("card {card} is on an earlier line too")));
                    } else if store.card_owner(&card)?.is_some() {
                        bad.push((r.line, format!("card {card} already belongs to a member")));
                    }
                    if !phones.insert(r.phone.clone()) {
                        bad.push((
                            r.line,
                            format!("phone {} is on an earlier line too", identity::display_phone(&r.phone)),
                        ));
                    } else if store.member_by_phone(&r.phone)?.is_some() {
                        bad.push((
                            r.line,
                            format!(
                                "phone {} already belongs to a member",
                                identity::display_phone(&r.phone)
                            ),
                        ));
                    }
                    members.push(Imported {
                        member_id: format!("m-{:016x}", super::random_u64()),
                        card,
                        name: r.name.clone(),
                        phone: r.phone.clone(),
                        birthday: r.birthday.map(Into::into),
                        tags: r.tags.clone(),
                        points: r.points,
                        lot_expires_at: expires,
                    });
                }
                if !bad.is_empty() {
                    return Err(refusal(bad));
                }
                let points = members.iter().map(|m| m.points).sum();
                let mut bodies: Vec<Body> = members
                    .chunks(CHUNK)
                    .map(|c| Body::ImportChunk {
                        import_id,
                        members: c.to_vec(),
                    })
                    .collect();
                bodies.push(Body::ImportCommit {
                    import_id,
                    chunks: bodies.len() as u32,
                });
                Ok((
                    bodies,
                    ImportReport {
                        imported: members.len(),
                        points,
                    },
                ))
            },
            |_, _, report| Ok(report),
        )
    }

    /// Every row checked on its own: the good ones, and each bad one's line and why. A
    /// file that is not this CSV at all is refused here.
    fn parse_rows(&self, csv: &[u8]) -> Result<(Vec<Row>, Vec<BadRow>)> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .from_reader(csv);
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| Error::invalid(format!("line 1: {e}")))?
            .iter()
            .map(|h| h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase())
            .collect();
        if header != COLUMNS {
            return Err(Error::invalid(format!(
                "line 1: the header must be {} (found {})",
                COLUMNS.join(","),
                header.join(",")
            )));
        }
        let mut rows = Vec::new();
        let mut bad = Vec::new();
        for result in reader.records() {
            let record = match result {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    bad.push((line, format!("not CSV: {e}")));
                    continue;
                }
            };
            let line = record.position().map_or(0, |p| p.line());
            if record.len() != COLUMNS.len() {
                bad.push((
                    line,
                    format!("{} fields, the header has {}", record.len(), COLUMNS.len()),
                ));
                continue;
            }
            match self.row(line, &record) {
                Ok(r) => rows.push(r),
                Err(e) => bad.push((line, e.message)),
            }
        }
        if rows.is_empty() && bad.is_empty() {
            return Err(Error::invalid("the file holds no members"));
        }
        Ok((rows, bad))
    }

    fn row(&self, line: u64, r: &csv::StringRecord) -> Result<Row> {
        let field = |i: usize| r.get(i).unwrap_or("").trim();
        let card = match field(0) {
            "" => None,
            c => Some(canonical_card(c).map_err(|e| Error::invalid(e.message))?),
        };
        let name = check_text("name", field(1), 100)?.to_string();
        let phone = self.canonical_phone(field(2))?;
        let birthday = match field(3) {
            "" => None,
            b => Some(Birthday::parse(b)?),
        };
        let points = match field(4) {
            "" => 0,
            p => p
                .parse::<i64>()
                .ok()
                .filter(|p| (0..=MAX_IMPORT_POINTS).contains(p))
                .ok_or_else(|| {
                    Error::invalid(format!(
                        "points {p:?} is not a whole number of 0 to {MAX_IMPORT_POINTS}"
                    ))
                })?,
        };
        let tags: Vec<String> = field(6)
            .split(';')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        let tags = model::check_tags(&tags)?;
        Ok(Row {
            line,
            card,
            name,
            phone,
            birthday,
            points,
            tags,
        })
    }

    /// Writes every member (merged ones left out) as CSV to `out`, a page at a time.
    /// Returns how many.
    pub fn export_members(&self, out: &mut impl Write, at: &At) -> Result<u64> {
        at.require(Role::Manager, "exporting members")?;
        let rules = self.rules();
        let day = day_no(local_date(&rules, at.ts));
        let io = |e: csv::Error| Error::internal(format!("writing the export: {e}"));
        let mut w = csv::Writer::from_writer(out);
        w.write_record(COLUMNS).map_err(io)?;
        let mut after: Option<String> = None;
        let mut n = 0;
        loop {
            let page = self.store.members_after(after.as_deref(), EXPORT_PAGE)?;
            let Some(last) = page.last() else { break };
            after = Some(last.member_id.clone());
            for m in page.iter().filter(|m| m.merged_into.is_none()) {
                let card = m
                    .cards
                    .iter()
                    .find(|(_, s)| *s == CardStatus::Active)
                    .or(m.cards.first())
                    .map_or("", |(c, _)| c.as_str());
                let birthday = m.birthday.map(|b| b.to_string()).unwrap_or_default();
                let points = m.balance_at(at.ts, at.trusted).to_string();
                let tier = &rules.tiers[tier::current(&rules, m, day)].name;
                let phone = identity::display_phone(&m.phone);
                let tags = m.tags.join(";");
                w.write_record([card, &m.name, &phone, &birthday, &points, tier, &tags])
                    .map_err(io)?;
                n += 1;
            }
            w.flush()
                .map_err(|e| Error::internal(format!("writing the export: {e}")))?;
            if page.len() < EXPORT_PAGE {
                break;
            }
        }
        w.flush()
            .map_err(|e| Error::internal(format!("writing the export: {e}")))?;
        Ok(n)
    }
}

/// An import refused for its bad rows, each listed with its line.
fn refusal(mut bad: Vec<BadRow>) -> Error {
    bad.sort_by_key(|b| b.0);
    let n = bad.len();
    let first = bad.first().map(|(l, r)| format!("line {l}: {r}")).unwrap_or_default();
    let mut e = Error::new(
        Code::InvalidInput,
        format!(
            "{n} bad row{}; nothing imported (first: {first})",
            if n == 1 { "" } else { "s" }
        ),
    );
    bad.truncate(ROWS_LISTED);
    e.rows = bad;
    e
}
