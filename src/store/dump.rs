//! Everything the store holds, as one JSON document in domain terms (members, cards,
//! idempotency keys, coupons, daily totals, the hub's streams...), with no key layout
//! in it: two stores that hold the same state dump the same, whatever their layout.
//! The state after a start-up is compared with a rebuild from the same journal this
//! way, and the golden journals of every release with the state they must give.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Value};

use super::audit;
use super::history::{self, LedgerEntry, TxSummary};
use super::report;
use super::{
    dec, key, Acked, ActivityCount, Applied, Conflict, Daily, GroupState, HashPage, HubTerminal, Idem, MemberRec,
    StaffState, Store, TxNote, VERSION,
};
use crate::error::{Error, Result};
use crate::model::{day_date, CouponState, DayNo};
use crate::record::Imported;

fn to_json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("state is plain data")
}

/// A key's text after its prefix (ids, cards, codes, skus are text).
fn text(k: &[u8]) -> String {
    String::from_utf8_lossy(&k[1..]).into_owned()
}

fn be_u64(b: &[u8]) -> u64 {
    u64::from_be_bytes(b.try_into().unwrap_or([0; 8]))
}

/// The entries of an idempotency bucket.
fn bucket(bytes: &[u8]) -> Result<Vec<Idem>> {
    let Some((&VERSION, mut rest)) = bytes.split_first() else {
        return Err(Error::internal(
            "state store: idempotency keys have an unknown encoding version",
        ));
    };
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (e, next) = postcard::take_from_bytes::<Idem>(rest)
            .map_err(|e| Error::internal(format!("state store: bad idempotency keys: {e}")))?;
        out.push(e);
        rest = next;
    }
    Ok(out)
}

impl Store {
    /// The whole state, in domain terms (see the module docs).
    pub fn dump(&self) -> Result<Value> {
        let mut sections: BTreeMap<&str, BTreeMap<String, Value>> = BTreeMap::new();
        let mut put = |section: &'static str, name: String, v: Value| {
            sections.entry(section).or_default().insert(name, v);
        };
        let pairs = self.scan(&[], |k, v| Ok((k.to_vec(), v.to_vec())))?;
        for (k, v) in pairs {
            let v = v.as_slice();
            match k[0] {
                key::MEMBER => {
                    let m: MemberRec = dec("member", v)?;
                    put("members", text(&k), to_json(&m));
                }
                key::CARD => put("cards", text(&k), to_json(&dec::<String>("card", v)?)),
                key::PHONE => put("phones", text(&k), to_json(&dec::<String>("phone", v)?)),
                key::TX => put("transactions", text(&k), to_json(&dec::<TxNote>("transaction", v)?)),
                key::IDEM => {
                    for e in bucket(v)? {
                        let answer = json!({
                            "request": e.request.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                            "seq": e.seq, "balance_after": e.balance_after, "count_after": e.count_after,
                        });
                        put("idempotency_keys", e.key, answer);
                    }
                }
                key::COUPON => put("coupons", text(&k), to_json(&dec::<CouponState>("coupon", v)?)),
                key::REWARD => put("rewards_used", text(&k), to_json(&dec::<i64>("reward", v)?)),
                key::DAY => {
                    let day = (u32::from_be_bytes(k[1..5].try_into().unwrap_or([0; 4])) ^ 0x8000_0000) as DayNo;
                    put(
                        "daily",
                        day_date(day).to_string(),
                        to_json(&dec::<Daily>("daily totals", v)?),
                    );
                }
                report::REPORT_DAY => {
                    let (scope, day, _) = report::split_scope_day(&k);
                    put(
                        "report_days",
                        format!("{scope}/{}", day_date(day)),
                        to_json(&dec::<report::ReportDay>("report day", v)?),
                    );
                }
                report::SPAN_DAY => {
                    let (scope, day, rest) = report::split_scope_day(&k);
                    match rest {
                        [] => put(
                            "report_span_days",
                            format!("{scope}/{}", day_date(day)),
                            to_json(&dec::<report::SpanDay>("span day", v)?),
                        ),
                        [kind, b0, b1] => put(
                            "report_span_buckets",
                            format!(
                                "{scope}/{}/{}/{}",
                                day_date(day),
                                report::Span::name_of(*kind),
                                u16::from_be_bytes([*b0, *b1])
                            ),
                            to_json(&dec::<report::SpanBucket>("span bucket", v)?),
                        ),
                        _ => put("report_span_days", text(&k), Value::Null),
                    }
                }
                report::MEMBER_CHECKOUT_DAY => {
                    let (member, day, _) = report::split_scope_day(&k);
                    put(
                        "report_member_days",
                        format!("{member}/{}", day_date(day)),
                        to_json(&dec::<u32>("member checkout day", v)?),
                    );
                }
                report::COHORT => {
                    let (scope, cohort, month) = report::split_cohort(&k);
                    let month = match month {
                        report::COHORT_SIZE => "members".to_string(),
                        m => format!("{:04}-{:02}", m / 12, m % 12 + 1),
                    };
                    put(
                        "report_cohorts",
                        format!("{scope}/{:04}-{:02}/{month}", cohort / 12, cohort % 12 + 1),
                        to_json(&dec::<i64>("cohort count", v)?),
                    );
                }
                report::MEMBER_MONTH => {
                    let (member, month) = report::split_member_month(&k);
                    put(
                        "report_member_months",
                        format!("{member}/{:04}-{:02}", month / 12, month % 12 + 1),
                        Value::Null,
                    );
                }
                report::CAMPAIGN_DAY => {
                    let (scope, day, kind, id) = report::split_campaign_day(&k);
                    put(
                        "report_campaign_days",
                        format!("{scope}/{}/{kind}:{id}", day_date(day)),
                        to_json(&dec::<report::CampaignDay>("campaign day", v)?),
                    );
                }
                report::CAMPAIGN_MEMBER => {
                    let (scope, campaign, day, member) = report::split_campaign_member(&k);
                    put(
                        "report_campaign_members",
                        format!("{scope}/{campaign}/{}/{member}", day_date(day)),
                        Value::Null,
                    );
                }
                audit::AUDIT => {
                    let e: audit::AuditEntry = dec("audit entry", v)?;
                    put("audit", format!("{:020}", e.seq), to_json(&e));
                }
                audit::ACTOR => put("audit_actors", text(&k), Value::Null),
                key::NEGATIVE => put("negative_balances", text(&k), to_json(&dec::<i64>("balance", v)?)),
                key::STALE => put("stale_members", text(&k), Value::Bool(true)),
                key::RECORD => {
                    let page: HashPage = dec("record hashes", v)?;
                    let (name, _) = k[1..].split_at(k[1..].iter().position(|&b| b == 0).unwrap_or(k.len() - 1));
                    for (seq, hash, held) in page.0 {
                        let id = format!(
                            "{}/{:016x}/{seq}",
                            String::from_utf8_lossy(name),
                            be_u64(&k[k.len() - 16..k.len() - 8])
                        );
                        let hash: String = hash.iter().map(|b| format!("{b:02x}")).collect();
                        put("hub_records", id, json!({"hash": hash, "held_in": held}));
                    }
                }
                key::TERMINAL => {
                    let t: HubTerminal = dec("terminal", v)?;
                    put(
                        "hub_terminals",
                        format!("{}/{:016x}", t.terminal_id, t.epoch),
                        to_json(&t),
                    );
                }
                key::FEED => {
                    let seq = be_u64(&k[1..9]);
                    put(
                        "hub_feed",
                        format!("{seq:020}/{}", String::from_utf8_lossy(&k[9..])),
                        Value::Null,
                    );
                }
                key::LEDGER | key::HISTORY => {
                    // Member id, 0, page number: each entry by member and number.
                    let at = k.len().saturating_sub(5).max(1);
                    let member = String::from_utf8_lossy(&k[1..at]).into_owned();
                    let page = u32::from_be_bytes(k[at + 1..].try_into().unwrap_or([0; 4])) as u64;
                    let entries: Vec<Value> = if k[0] == key::LEDGER {
                        history::decode_page::<LedgerEntry>(v)?.iter().map(to_json).collect()
                    } else {
                        history::decode_page::<TxSummary>(v)?.iter().map(to_json).collect()
                    };
                    let section = if k[0] == key::LEDGER { "ledger" } else { "history" };
                    for (i, e) in entries.into_iter().enumerate() {
                        put(section, format!("{member}/{:010}", page * history::PAGE + i as u64), e);
                    }
                }
                key::NAME | key::PHONE_SUFFIX | key::CARD_PREFIX | key::NAME_ORDER | key::CARD_ORDER => {
                    let printable: String = String::from_utf8_lossy(&k).replace('\0', "/");
                    put("search_index", printable, Value::Null);
                }
                key::PASS => {
                    // Binary fields (a month and day, an instant): in hex, then the member id.
                    let (head, id) = k.split_at(if k.get(1) == Some(&b'b') { 4 } else { 10 }.min(k.len()));
                    let hex: String = head.iter().map(|b| format!("{b:02x}")).collect();
                    put(
                        "pass_index",
                        format!("{hex}/{}", String::from_utf8_lossy(id)),
                        Value::Null,
                    );
                }
                key::MEMBER_COUPON => put("member_coupons", text(&k).replace('\0', "/"), Value::Null),
                key::IMPORT => put(
                    "import_chunks",
                    format!(
                        "{:016x}/{}",
                        be_u64(&k[1..9]),
                        u32::from_be_bytes(k[9..13].try_into().unwrap_or([0; 4]))
                    ),
                    to_json(&dec::<Vec<Imported>>("import", v)?),
                ),
                key::ACTIVITY => put(
                    "activity_counts",
                    text(&k).replace('\0', "/"),
                    to_json(&dec::<ActivityCount>("activity count", v)?),
                ),
                key::CONFLICT => put("conflicts", text(&k), to_json(&dec::<Conflict>("conflict", v)?)),
                key::STAFF => put("staff", text(&k), to_json(&dec::<StaffState>("staff", v)?)),
                key::GROUP => put("groups", text(&k), to_json(&dec::<GroupState>("group", v)?)),
                key::DEAL_GROUP => put("deal_groups", text(&k), to_json(&dec::<Vec<String>>("deal groups", v)?)),
                key::MEMBER_GROUP => put(
                    "member_groups",
                    text(&k),
                    to_json(&dec::<Vec<String>>("member groups", v)?),
                ),
                key::FIRED => put(
                    "fired_triggers",
                    text(&k),
                    to_json(&dec::<Vec<(String, crate::record::Occurrence)>>("fired triggers", v)?),
                ),
                key::FEED_POS => put(
                    "hub_feed_positions",
                    text(&k),
                    to_json(&dec::<u64>("feed position", v)?),
                ),
                b'M' => {
                    let name = String::from_utf8_lossy(&k).into_owned();
                    let value = match k.as_slice() {
                        key::LAYOUT => continue,
                        key::APPLIED => to_json(&dec::<Applied>("applied position", v)?),
                        key::IDENTITY => to_json(&dec::<(String, u64)>("identity", v)?),
                        key::ACKED => to_json(&dec::<Acked>("acknowledgement", v)?),
                        key::RULESET => to_json(&dec::<(String, u32)>("published ruleset", v)?),
                        key::HUB_RULESET => to_json(&dec::<String>("hub ruleset", v)?),
                        key::CURSOR => to_json(&dec::<u64>("cursor", v)?),
                        key::PHONES_CANONICAL => to_json(&dec::<bool>("phones marker", v)?),
                        key::TRIGGER_DAY => to_json(&dec::<DayNo>("trigger day", v)?),
                        report::TOTALS => to_json(&dec::<report::ScopedTotals>("report totals", v)?),
                        _ => return Err(Error::internal(format!("state store: unknown key {name}"))),
                    };
                    put("position", name, value);
                }
                other => {
                    return Err(Error::internal(format!(
                        "state store: a key of unknown kind {:?}",
                        other as char
                    )))
                }
            }
        }
        Ok(to_json(&sections))
    }
}
