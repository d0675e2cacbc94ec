//! Reading campaign state: group-buy groups (by id, by deal, by member), the group-buy
//! units a member may use now, the daily triggers fired for a member, where the daily
//! trigger pass stands, and the pass's index.
//!
//! The pass index spares the daily pass a read of every member: per active member,
//! `z` + `b` + birthday month and day + member id -> () and `z` + `i` + the instant its
//! inactivity counts from (last visit, else enrolment) + member id -> (). The pass reads
//! the members of a date's birthdays and those whose inactivity crossed a trigger's
//! threshold since the last pass, and decides for each with the pure rules as before.

use super::base::{get, StateBase};
use super::search::IndexKeys;
use super::{k, key, GroupPhase, GroupState, Store};
use crate::error::Result;
use crate::model::{DayNo, MemberState, Ts};
use crate::record::Occurrence;
use crate::rules::GroupBuyUnit;

impl Store {
    pub fn group(&self, group_id: &str) -> Result<Option<GroupState>> {
        self.get("group", &k(key::GROUP, group_id.as_bytes()))
    }

    /// A deal's groups, oldest first.
    pub fn deal_groups(&self, deal: &str) -> Result<Vec<GroupState>> {
        let ids: Vec<String> = self
            .get("deal groups", &k(key::DEAL_GROUP, deal.as_bytes()))?
            .unwrap_or_default();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(g) = self.group(&id)? {
                out.push(g);
            }
        }
        Ok(out)
    }

    /// The groups a member joined (in, pending or refused), oldest first.
    pub fn member_groups(&self, member_id: &str) -> Result<Vec<GroupState>> {
        let ids: Vec<String> = self
            .get("member groups", &k(key::MEMBER_GROUP, member_id.as_bytes()))?
            .unwrap_or_default();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(g) = self.group(&id)? {
                out.push(g);
            }
        }
        Ok(out)
    }

    /// The group-buy units `member_id` may use at `at`: one per formed group the member
    /// is in and has not used, with the group it comes from. One read for a member who
    /// never joined a group.
    pub fn group_units(&self, member_id: &str, at: Ts) -> Result<Vec<(String, GroupBuyUnit)>> {
        Ok(self
            .member_groups(member_id)?
            .into_iter()
            .filter(|g| {
                g.phase(at) == GroupPhase::Formed
                    && g.members.iter().any(|m| m == member_id)
                    && !g.used.iter().any(|(m, _)| m == member_id)
            })
            .map(|g| {
                let unit = GroupBuyUnit {
                    deal: g.deal,
                    sku: g.sku,
                    group_price_minor: g.group_price_minor,
                };
                (g.group_id, unit)
            })
            .collect())
    }
}

// The daily pass's reads, over any base (the embedded store, the hub on PostgreSQL).

/// The daily triggers (birthday, inactivity) fired for a member, by trigger id.
pub fn fired(base: &dyn StateBase, member_id: &str) -> Result<Vec<(String, Occurrence)>> {
    Ok(get(base, "fired triggers", &k(key::FIRED, member_id.as_bytes()))?.unwrap_or_default())
}

/// The last local day the daily trigger pass ran for, if it ever ran.
pub fn trigger_day(base: &dyn StateBase) -> Result<Option<DayNo>> {
    get(base, "trigger day", key::TRIGGER_DAY)
}

const BIRTHDAY: u8 = b'b';
const SINCE: u8 = b'i';

/// An instant as key bytes that sort as the instants do.
fn ts_key(t: Ts) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

/// The pass index keys a member has (none when merged or inactive: the pass skips them).
pub(super) fn pass_keys_of(m: &MemberState) -> IndexKeys {
    if m.merged_into.is_some() || !m.active {
        return vec![];
    }
    let with_id = |mut key: Vec<u8>| {
        key.extend_from_slice(m.member_id.as_bytes());
        (key, vec![])
    };
    let mut out = Vec::with_capacity(2);
    if let Some(b) = m.birthday {
        out.push(with_id(vec![key::PASS, BIRTHDAY, b.month, b.day]));
    }
    let since = m.last_visit_at.unwrap_or(m.created_at);
    let mut key = vec![key::PASS, SINCE];
    key.extend_from_slice(&ts_key(since));
    out.push(with_id(key));
    out
}

/// Members with a birthday on `month`-`day` (`day` None: in that month), in the pass
/// index.
pub fn birthday_members(base: &dyn StateBase, month: u8, day: Option<u8>) -> Result<Vec<String>> {
    let mut prefix = vec![key::PASS, BIRTHDAY, month];
    prefix.extend(day);
    let skip = 4;
    Ok(base
        .keys_with_prefix(&prefix)?
        .into_iter()
        .map(|key| String::from_utf8_lossy(&key[skip..]).into_owned())
        .collect())
}

/// Members whose inactivity counts from an instant in `from..until`, in the pass index
/// (highest first: the order is no matter to the pass, which collects them).
pub fn inactive_since(base: &dyn StateBase, from: Ts, until: Ts) -> Result<Vec<String>> {
    let mut lo = vec![key::PASS, SINCE];
    lo.extend_from_slice(&ts_key(from));
    let mut hi = vec![key::PASS, SINCE];
    hi.extend_from_slice(&ts_key(until));
    let mut out = Vec::new();
    base.range_rev(&lo, &hi, &mut |key, _| {
        out.push(String::from_utf8_lossy(&key[10..]).into_owned());
        Ok(true)
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Birthday;

    #[test]
    fn an_active_member_has_its_birthday_and_its_inactivity_in_the_pass_index() {
        let mut m = MemberState {
            member_id: "m-1".into(),
            birthday: Some(Birthday { month: 3, day: 14 }),
            created_at: 100,
            active: true,
            ..MemberState::default()
        };
        let keys: Vec<Vec<u8>> = pass_keys_of(&m).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys[0], b"zb\x03\x0em-1");
        assert_eq!(&keys[1][10..], b"m-1");
        m.last_visit_at = Some(-5);
        let earlier = pass_keys_of(&m)[1].0.clone();
        assert!(
            earlier < keys[1],
            "an instant before another sorts before it, negatives too"
        );
        m.active = false;
        assert!(pass_keys_of(&m).is_empty());
    }
}
