//! The JSON shapes of group buys (interface.md 0.2 "Group buys").

use serde::Serialize;
use utoipa::ToSchema;

use crate::model::{fmt_instant, Ts};
use crate::rules::Ruleset;
use crate::store::{GroupPhase, GroupState};

fn group_state_schema() -> utoipa::openapi::schema::Object {
    super::schema::string_enum([GROUP_OPEN, GROUP_FORMED, GROUP_FAILED])
}

const GROUP_OPEN: &str = "open";
const GROUP_FORMED: &str = "formed";
const GROUP_FAILED: &str = "failed";

/// A group of a group-buy deal.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[schema(as = Group)]
pub struct GroupView {
    pub group_id: String,
    pub deal: String,
    /// `open`, `formed` or `failed` (not full when it expired).
    #[schema(schema_with = group_state_schema)]
    pub state: &'static str,
    #[schema(value_type = u64)]
    pub size: u32,
    /// Members in; on a terminal of a chain, with the joins made here the hub has not
    /// answered yet.
    #[schema(value_type = u64)]
    pub joined: usize,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

impl GroupView {
    pub fn new(rules: &Ruleset, g: &GroupState, at: Ts) -> GroupView {
        GroupView {
            group_id: g.group_id.clone(),
            deal: g.deal.clone(),
            state: match g.phase(at) {
                GroupPhase::Open => GROUP_OPEN,
                GroupPhase::Formed => GROUP_FORMED,
                GroupPhase::Failed => GROUP_FAILED,
            },
            size: g.size,
            joined: g.joined().min(g.size as usize),
            expires_at: fmt_instant(g.expires_at, &rules.timezone),
        }
    }
}

/// A deal and its groups.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, ToSchema)]
#[schema(as = Deal)]
pub struct DealView {
    pub deal: String,
    pub groups: Vec<GroupView>,
}
