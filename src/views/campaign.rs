//! The JSON shapes of group buys (interface.md 0.2 "Group buys").

use serde::Serialize;

use crate::model::{fmt_instant, Ts};
use crate::rules::Ruleset;
use crate::store::{GroupPhase, GroupState};

/// A group of a group-buy deal.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct GroupView {
    pub group_id: String,
    pub deal: String,
    /// `open`, `formed` or `failed` (not full when it expired).
    pub state: &'static str,
    pub size: u32,
    /// Members in; on a terminal of a chain, with the joins made here the hub has not
    /// answered yet.
    pub joined: usize,
    pub expires_at: String,
}

impl GroupView {
    pub fn new(rules: &Ruleset, g: &GroupState, at: Ts) -> GroupView {
        GroupView {
            group_id: g.group_id.clone(),
            deal: g.deal.clone(),
            state: match g.phase(at) {
                GroupPhase::Open => "open",
                GroupPhase::Formed => "formed",
                GroupPhase::Failed => "failed",
            },
            size: g.size,
            joined: g.joined().min(g.size as usize),
            expires_at: fmt_instant(g.expires_at, &rules.timezone),
        }
    }
}

/// A deal and its groups.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DealView {
    pub deal: String,
    pub groups: Vec<GroupView>,
}
