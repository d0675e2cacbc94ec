//! Hub: two offline enrolments of one card or phone, listed until an operator resolves
//! them (sync.md 0.2 "Member edits, merges and conflicts").

use serde::Serialize;

use super::{At, Engine};
use crate::error::{Code, Error, Result};
use crate::model::{fmt_instant, Role};
use crate::record::Body;
use crate::store::Conflict;

fn conflict_kind_schema() -> utoipa::openapi::schema::Object {
    crate::views::schema::string_enum(["card", "phone"])
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = Conflict)]
pub struct ConflictView {
    /// `card-<number>` or `phone-<digits>`.
    pub id: String,
    #[schema(schema_with = conflict_kind_schema)]
    pub kind: String,
    /// The card number or phone two members hold.
    pub value: String,
    /// Member ids, in hub order: the first holds the card or phone until resolved.
    pub members: Vec<String>,
    #[schema(format = DateTime)]
    pub detected_at: String,
    pub resolved: bool,
}

impl ConflictView {
    pub(crate) fn new(c: &Conflict, tz: &chrono_tz::Tz) -> ConflictView {
        ConflictView {
            id: c.id.clone(),
            kind: c.kind.clone(),
            // A phone as the Member shape shows it ("+" and the country code).
            value: match c.kind.as_str() {
                "phone" => crate::identity::display_phone(&c.value),
                _ => c.value.clone(),
            },
            members: c.members.clone(),
            detected_at: fmt_instant(c.detected_at, tz),
            resolved: c.resolved,
        }
    }
}

impl Engine {
    /// The conflicts not yet resolved.
    pub fn conflicts(&self) -> Result<Vec<ConflictView>> {
        let tz = self.rules().timezone;
        Ok(self
            .store
            .conflicts()?
            .iter()
            .filter(|c| !c.resolved)
            .map(|c| ConflictView::new(c, &tz))
            .collect())
    }

    /// Resolves a conflict (owner): `keep` holds the card or phone; with `merge` the other
    /// members move into it.
    pub fn resolve_conflict(&self, id: &str, keep: &str, merge: bool, at: At) -> Result<ConflictView> {
        at.require(Role::Owner, "resolving a conflict")?;
        let id = id.to_string();
        self.commit_plain(
            &at,
            |store, _| {
                let c = store
                    .conflict(&id)?
                    .ok_or_else(|| Error::new(Code::NotFound, format!("no conflict {id:?}")))?;
                if c.resolved {
                    return Err(Error::invalid(format!("conflict {id} is resolved already")));
                }
                if !c.members.iter().any(|m| m == keep) {
                    return Err(Error::invalid(format!(
                        "{keep} is not one of the conflict's members {:?}",
                        c.members
                    )));
                }
                let body = Body::ConflictResolve {
                    conflict_id: id.clone(),
                    keep: keep.to_string(),
                    merge,
                };
                Ok((vec![body], ()))
            },
            |store, rules, _| {
                let c = store
                    .conflict(&id)?
                    .ok_or_else(|| Error::internal(format!("conflict {id} vanished")))?;
                Ok(ConflictView::new(&c, &rules.timezone))
            },
        )
    }
}
