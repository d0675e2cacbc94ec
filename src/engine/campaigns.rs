//! Campaigns at the engine: coupons bought with points, coupons enrolment triggers
//! issue, group buys (join, the deal's groups, one group), and the daily trigger pass
//! (birthdays, inactivity) where this node decides them.

use super::{pass, At, Engine, Keyed, Step};
use crate::error::{Code, Error, Result};
use crate::model::{self, canonical_card, day_no, DayNo};
use crate::record::{self, Body};
use crate::rules::{self, local, local_date, triggers, Ruleset};
use crate::store::{GroupPhase, Store};
use crate::views::campaign::GroupView;
use crate::views::history::MemberCouponView;

impl Engine {
    /// A coupon code no coupon has, nor any of `taken` (codes this change gives already).
    pub(super) fn fresh_code(store: &Store, taken: &[&str]) -> Result<String> {
        pass::fresh_code(store, taken, &mut pass::Draws::default())
    }

    /// The coupons enrolment triggers give a new member, as records to write with it.
    pub(super) fn enrolment_coupons(store: &Store, rules: &Ruleset, member_id: &str, day: DayNo) -> Result<Vec<Body>> {
        let mut out: Vec<record::CouponIssueV2> = Vec::new();
        let mut draws = pass::Draws::default();
        for f in triggers::at_enrolment(rules) {
            let taken: Vec<&str> = out.iter().map(|c| c.code.as_str()).collect();
            let c = pass::trigger_coupon(store, rules, member_id, &f, day, &taken, false, &mut draws)?;
            out.push(c);
        }
        Ok(out.into_iter().map(|c| Body::CouponIssueV2(Box::new(c))).collect())
    }

    /// Buys a coupon of `type_id` for `member_id` with the type's `exchange_points`: the
    /// points leave like a reward's, with the same PIN and offline-cap checks.
    pub fn exchange_coupon(
        &self,
        member_id: &str,
        type_id: &str,
        pin: Option<&str>,
        key: Option<&str>,
        at: At,
    ) -> Result<MemberCouponView> {
        if let Some(pin) = pin {
            model::validate_pin(pin).map_err(|_| Error::new(Code::PinInvalid, "a PIN is 4 to 8 digits"))?;
        }
        let key = key
            .map(|k| Keyed::new(k, "coupon exchange", &(member_id, type_id)))
            .transpose()?;
        self.commit(
            &at,
            key.as_ref(),
            |store, rules| {
                let mut m = super::profile::live(store, member_id)?;
                if !m.active {
                    return Err(Error::new(
                        Code::MemberInactive,
                        format!("member {member_id} is inactive"),
                    ));
                }
                let ty = rules
                    .coupon_type(type_id)
                    .ok_or_else(|| Error::new(Code::CouponInvalid, format!("no coupon type {type_id}")))?;
                let points = ty.exchange_points.ok_or_else(|| {
                    Error::new(
                        Code::CouponNotExchangeable,
                        format!("coupons of type {type_id} cannot be bought with points"),
                    )
                })?;
                let offline = self
                    .cfg
                    .offline_cap
                    .then(|| store.offline_redeemed(member_id))
                    .transpose()?;
                let mut bodies = self.expire_first(&mut m, &at);
                let balance = m.balance_at(at.ts, at.trusted);
                if points > balance {
                    return Err(Error::new(
                        Code::InsufficientPoints,
                        format!("a {type_id} coupon costs {points} points, the balance is {balance}"),
                    ));
                }
                let mut check = Self::pin_check(pin, &m, None);
                let pin_verified =
                    match rules::authorise_redemption(rules, &m, points, at.ts, pin.is_some(), &mut check, offline) {
                        Ok(v) => v,
                        Err(e) if e.code == Code::PinInvalid => {
                            bodies.push(Body::PinFail {
                                member_id: m.member_id.clone(),
                            });
                            return Ok(Step::Refused(bodies, e));
                        }
                        Err(e) => return Err(e),
                    };
                let day = day_no(local_date(rules, at.ts));
                let c = record::CouponIssueV2 {
                    code: Self::fresh_code(store, &[])?,
                    type_id: type_id.to_string(),
                    member_id: m.member_id.clone(),
                    issued: day,
                    valid_until: ty.valid_until(day),
                    issued_by: "exchange".to_string(),
                    points,
                    occurrence: None,
                    pin_verified,
                };
                let code = c.code.clone();
                bodies.push(Body::CouponIssueV2(Box::new(c)));
                Ok(Step::Done(bodies, code))
            },
            |store, rules, code| self.coupon_view(store, rules, &code, &at),
            |store, rules, rec, _| match &rec.body {
                Body::CouponIssueV2(c) => self.coupon_view(store, rules, &c.code, &at),
                _ => Err(Error::internal("an idempotency key answers another kind of change")),
            },
        )
    }

    fn coupon_view(&self, store: &Store, rules: &Ruleset, code: &str, at: &At) -> Result<MemberCouponView> {
        let c = store
            .coupon(code)?
            .ok_or_else(|| Error::internal(format!("coupon {code} vanished")))?;
        Ok(MemberCouponView::new(code, &c, day_no(local_date(rules, at.ts))))
    }

    /// A member (by card) joins a group of deal `deal_id`, or opens one without
    /// `group_id`. On a terminal of a chain the join waits for the hub's word on
    /// formation (see README "Group buys").
    pub fn join_group(
        &self,
        deal_id: &str,
        card: &str,
        group_id: Option<&str>,
        key: Option<&str>,
        at: At,
    ) -> Result<GroupView> {
        let card = canonical_card(card)?;
        let key = key
            .map(|k| Keyed::new(k, "group join", &(deal_id, &card, group_id)))
            .transpose()?;
        self.commit(
            &at,
            key.as_ref(),
            |store, rules| {
                let deal = rules
                    .group_buy(deal_id)
                    .ok_or_else(|| Error::new(Code::DealInactive, format!("no group-buy deal {deal_id}")))?;
                if !deal.open_at(local(rules, at.ts)) {
                    return Err(Error::new(
                        Code::DealInactive,
                        format!("deal {deal_id} is not open at this time"),
                    ));
                }
                let m = self.active_member(&card)?;
                let join = match group_id {
                    Some(id) => {
                        let g = store.group(id)?.filter(|g| g.deal == deal_id).ok_or_else(|| {
                            Error::new(Code::GroupClosed, format!("deal {deal_id} has no group {id}"))
                        })?;
                        if g.has(&m.member_id) {
                            return Err(Error::new(Code::AlreadyJoined, format!("this member is in group {id}")));
                        }
                        if g.refused.contains(&m.member_id) || g.joined() >= g.size as usize {
                            return Err(Error::new(Code::GroupFull, format!("group {id} is full")));
                        }
                        if g.phase(at.ts) != GroupPhase::Open {
                            return Err(Error::new(Code::GroupClosed, format!("group {id} is no longer open")));
                        }
                        record::GroupJoin {
                            deal: g.deal,
                            group_id: g.group_id,
                            member_id: m.member_id,
                            opens: false,
                            sku: g.sku,
                            group_price_minor: g.group_price_minor,
                            size: g.size,
                            expires_at: g.expires_at,
                            decides: !self.cfg.offline_cap,
                        }
                    }
                    None => record::GroupJoin {
                        deal: deal.id.clone(),
                        group_id: format!("G{}", self.tx_id(self.journal.last_seq() + 1)),
                        member_id: m.member_id,
                        opens: true,
                        sku: deal.sku.clone(),
                        group_price_minor: deal.group_price_minor,
                        size: deal.size,
                        expires_at: at.ts + i64::from(deal.window_hours) * 3_600_000_000,
                        decides: !self.cfg.offline_cap,
                    },
                };
                let id = join.group_id.clone();
                Ok(Step::Done(vec![Body::GroupJoin(Box::new(join))], id))
            },
            |store, rules, id| self.group_view(store, rules, &id, &at),
            |store, rules, rec, _| match &rec.body {
                Body::GroupJoin(j) => self.group_view(store, rules, &j.group_id, &at),
                _ => Err(Error::internal("an idempotency key answers another kind of change")),
            },
        )
    }

    fn group_view(&self, store: &Store, rules: &Ruleset, group_id: &str, at: &At) -> Result<GroupView> {
        let g = store
            .group(group_id)?
            .ok_or_else(|| Error::internal(format!("group {group_id} vanished")))?;
        Ok(GroupView::new(rules, &g, at.ts))
    }

    /// One group, as this node knows it now.
    pub fn group(&self, group_id: &str) -> Result<GroupView> {
        let at = self.at(None);
        let g = self
            .store
            .group(group_id)?
            .ok_or_else(|| Error::new(Code::NotFound, format!("no group {group_id}")))?;
        Ok(GroupView::new(&self.rules(), &g, at.ts))
    }

    /// A deal's groups, oldest first.
    pub fn deal_groups(&self, deal_id: &str) -> Result<Vec<GroupView>> {
        let rules = self.rules();
        if rules.group_buy(deal_id).is_none() && self.store.deal_groups(deal_id)?.is_empty() {
            return Err(Error::new(Code::NotFound, format!("no group-buy deal {deal_id}")));
        }
        let now = self.now();
        Ok(self
            .store
            .deal_groups(deal_id)?
            .iter()
            .map(|g| GroupView::new(&rules, g, now))
            .collect())
    }

    /// How long from now until shortly (5 minutes) after the next local midnight, when
    /// the daily passes run again.
    pub fn until_next_local_day(&self) -> std::time::Duration {
        self.until_next_pass(std::time::Duration::MAX)
    }

    /// `until_next_local_day`, but at most `every`: the trigger pass also runs through
    /// the day, so that members who arrive after a pass are seen on the same day.
    pub fn until_next_pass(&self, every: std::time::Duration) -> std::time::Duration {
        pass::until_next_pass(&self.rules(), model::now(), every)
    }

    /// Whether this node runs the daily trigger pass: the hub for its chain, and a
    /// terminal without one for itself (a terminal of a chain leaves it to the hub, so
    /// that a member gets one coupon, not one per shop).
    pub fn runs_trigger_pass(&self) -> bool {
        self.cfg.hub || !self.cfg.offline_cap
    }

    /// The daily trigger pass (birthday, inactivity) for every local date since the last
    /// pass, up to `at`'s (at most `PASS_CATCH_UP_DAYS` back): each due coupon once per
    /// occurrence, in commits of `PASS_BATCH` members, then a `TriggerPass` record per
    /// date. Nothing while the clock is untrusted. Returns the coupons issued.
    ///
    /// An inactivity trigger reaches the members whose inactivity crosses its threshold
    /// after the last pass (all of them at the first pass ever): one published later
    /// does not reach back to members already past it, as a birthday trigger does not
    /// reach back to birthdays already passed.
    pub fn trigger_pass(&self, at: At) -> Result<u64> {
        let rules = self.rules();
        if !at.trusted || !self.runs_trigger_pass() || !pass::has_daily(&rules) {
            return Ok(0);
        }
        let plan = pass::plan(&self.store, local_date(&rules, at.ts))?;
        let mut issued = 0;
        let mut covered = plan.covered;
        for date in plan.dates {
            issued += self.trigger_pass_on(date, covered, &at)?;
            let day = day_no(date);
            self.commit_plain(&at, |_, _| Ok((vec![Body::TriggerPass { day }], ())), |_, _, _| Ok(()))?;
            covered = Some(day);
        }
        Ok(issued)
    }

    /// One date of the pass: the candidates read without the writer lock (most have
    /// nothing due), then those with something due decided again and issued under it,
    /// a batch at a time.
    fn trigger_pass_on(&self, date: chrono::NaiveDate, covered: Option<DayNo>, at: &At) -> Result<u64> {
        let due = pass::due_members(&self.store, &self.rules(), date, covered)?;
        let mut issued = 0;
        for batch in due.chunks(pass::PASS_BATCH) {
            issued += self.commit_plain(
                at,
                |store, rules| {
                    let bodies = pass::batch_coupons(store, rules, batch, date, &mut pass::Draws::default())?;
                    let n = bodies.len() as u64;
                    Ok((bodies, n))
                },
                |_, _, n| Ok(n),
            )?;
        }
        Ok(issued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{ClockPolicy, EngineConfig, NewMember, Sale};
    use crate::model::{parse_instant, Line};

    const CAMPAIGNS: &str = r#"
[[coupon_types]]
id = "miss5"
off_minor = 500
min_minor = 0
valid_days = 30
[[triggers]]
id = "miss-you"
on = "inactive"
days = 60
coupon = "miss5"
[[group_buys]]
id = "duo"
sku = "hotpot-set"
group_price_minor = 9900
size = 2
window_hours = 24
"#;

    fn open(dir: &std::path::Path) -> Engine {
        let text = format!("{}{CAMPAIGNS}", include_str!("../../config/rules.toml"));
        let rules = Ruleset::parse(&text, "rules.toml").unwrap();
        let cfg = EngineConfig {
            data_dir: dir.to_path_buf(),
            clock: ClockPolicy::Trusted,
            ..Default::default()
        };
        Engine::open(cfg, rules).unwrap()
    }

    fn at(s: &str) -> At {
        At {
            ts: parse_instant(s).unwrap(),
            trusted: true,
            actor: crate::engine::Actor::system(),
        }
    }

    fn enrol(e: &Engine, card: &str, phone: &str, when: &str) -> String {
        let m = NewMember {
            card: Some(card.into()),
            name: "M".into(),
            phone: phone.into(),
            ..NewMember::default()
        };
        e.add_member(m, None, at(when)).unwrap().member_id
    }

    fn buy(e: &Engine, card: &str, key: &str, when: &str) -> crate::views::Receipt {
        let sale = Sale {
            card: card.into(),
            lines: vec![Line {
                sku: "hotpot-set".into(),
                category: "food".into(),
                qty: 1,
                unit_price: 12800,
            }],
            ..Sale::default()
        };
        e.checkout(&sale, Some(key), at(when)).unwrap()
    }

    #[test]
    fn a_group_not_full_by_its_window_fails_and_gives_no_unit() {
        let dir = tempfile::tempdir().unwrap();
        let e = open(dir.path());
        enrol(&e, "CA000001", "13900000001", "2026-06-01T09:00:00+08:00");
        enrol(&e, "CA000002", "13900000002", "2026-06-01T09:00:00+08:00");
        let g = e
            .join_group("duo", "CA000001", None, None, at("2026-06-01T10:00:00+08:00"))
            .unwrap();
        assert_eq!((g.state, g.joined), ("open", 1));
        // 24 hours later the group has failed: no join, no unit.
        let late = at("2026-06-02T10:00:00+08:00");
        let err = e
            .join_group("duo", "CA000002", Some(&g.group_id), None, late.clone())
            .unwrap_err();
        assert_eq!(err.code, Code::GroupClosed);
        let store = e.store();
        assert_eq!(
            store.group(&g.group_id).unwrap().unwrap().phase(late.ts),
            GroupPhase::Failed
        );
        let group_off = |r: crate::views::Receipt| {
            r.discounts
                .iter()
                .filter(|d| d.kind == "group_buy")
                .map(|d| d.amount)
                .sum::<i64>()
        };
        assert_eq!(group_off(buy(&e, "CA000001", "b1", "2026-06-02T10:00:00+08:00")), 0);
        // A group that fills in time forms, and the unit is there until used.
        let g2 = e
            .join_group("duo", "CA000001", None, None, at("2026-06-03T10:00:00+08:00"))
            .unwrap();
        let g2 = e
            .join_group(
                "duo",
                "CA000002",
                Some(&g2.group_id),
                None,
                at("2026-06-03T11:00:00+08:00"),
            )
            .unwrap();
        assert_eq!(g2.state, "formed");
        assert_eq!(group_off(buy(&e, "CA000002", "b2", "2026-06-20T10:00:00+08:00")), 2900);
        assert_eq!(group_off(buy(&e, "CA000002", "b3", "2026-06-20T10:05:00+08:00")), 0);
    }

    #[test]
    fn an_inactivity_spell_gives_one_coupon_and_a_visit_starts_a_new_spell() {
        let dir = tempfile::tempdir().unwrap();
        let e = open(dir.path());
        let id = enrol(&e, "CA000011", "13900000011", "2026-01-01T09:00:00+08:00");
        let pass = |when: &str| e.trigger_pass(at(when)).unwrap();
        assert_eq!(pass("2026-02-01T09:00:00+08:00"), 0, "31 days: not yet");
        assert_eq!(pass("2026-03-02T09:00:00+08:00"), 1, "60 days after enrolment");
        assert_eq!(pass("2026-03-03T09:00:00+08:00"), 0, "once per spell");
        buy(&e, "CA000011", "v1", "2026-03-10T12:00:00+08:00");
        assert_eq!(pass("2026-04-10T09:00:00+08:00"), 0);
        assert_eq!(
            pass("2026-05-09T09:00:00+08:00"),
            1,
            "60 days after the visit: a new spell"
        );
        let coupons = e.member_coupons(&id).unwrap();
        let issuers: Vec<&str> = coupons.iter().map(|c| c.issued_by.as_str()).collect();
        assert_eq!(issuers, vec!["trigger:miss-you", "trigger:miss-you"]);
        // A replay of the journal remembers the spells: no coupon again after a rebuild.
        drop(e);
        let cfg = EngineConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        crate::engine::rebuild(&cfg).unwrap();
        let e = open(dir.path());
        assert_eq!(e.trigger_pass(at("2026-05-10T09:00:00+08:00")).unwrap(), 0);
    }

    #[test]
    fn the_first_pass_reaches_every_inactive_member_and_later_ones_the_members_crossing_since() {
        let dir = tempfile::tempdir().unwrap();
        let e = open(dir.path());
        enrol(&e, "CA000021", "13900000021", "2025-10-01T09:00:00+08:00");
        enrol(&e, "CA000022", "13900000022", "2026-01-20T09:00:00+08:00");
        let pass = |when: &str| e.trigger_pass(at(when)).unwrap();
        assert_eq!(
            pass("2026-02-01T09:00:00+08:00"),
            1,
            "the first pass: 123 days inactive"
        );
        // Passes missed from 02-02 to 03-25: the member crossing 60 days on 03-21 is
        // found by the catch-up, once.
        assert_eq!(pass("2026-03-25T09:00:00+08:00"), 1);
        assert_eq!(pass("2026-03-25T18:00:00+08:00"), 0, "again the same day: nothing new");
        assert_eq!(pass("2026-03-26T09:00:00+08:00"), 0);
    }
}
