//! Reading campaign state: group-buy groups (by id, by deal, by member), the group-buy
//! units a member may use now, the daily triggers fired for a member, where the daily
//! trigger pass stands.

use super::{k, key, GroupPhase, GroupState, Store};
use crate::error::Result;
use crate::model::{DayNo, Ts};
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

    /// The daily triggers (birthday, inactivity) fired for a member, by trigger id.
    pub fn fired(&self, member_id: &str) -> Result<Vec<(String, Occurrence)>> {
        Ok(self
            .get("fired triggers", &k(key::FIRED, member_id.as_bytes()))?
            .unwrap_or_default())
    }

    /// The last local day the daily trigger pass ran for, if it ever ran.
    pub fn trigger_day(&self) -> Result<Option<DayNo>> {
        self.get("trigger day", key::TRIGGER_DAY)
    }
}
