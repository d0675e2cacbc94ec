//! Staff accounts: who may act, with which role. Passwords are kept only as argon2id
//! hashes; sessions and lockouts live with the API (`api::sessions`).

use serde::Serialize;

use super::{At, Engine};
use crate::error::{Code, Error, Result};
use crate::model::{check_staff_id, check_text, Role};
use crate::record::Body;
use crate::store::StaffState;

/// The shortest password taken, and the longest (argon2 hashes what it is given).
pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 128;

/// The staff id the POS token acts as.
pub const POS_STAFF: &str = "pos";

fn role_schema() -> utoipa::openapi::schema::Object {
    crate::views::schema::string_enum([Role::Cashier, Role::Manager, Role::Owner].map(Role::as_str))
}

/// A staff account as listed (never its hash).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = Staff)]
pub struct StaffView {
    pub staff_id: String,
    pub name: String,
    #[schema(schema_with = role_schema)]
    pub role: String,
    pub disabled: bool,
}

impl From<&StaffState> for StaffView {
    fn from(s: &StaffState) -> StaffView {
        StaffView {
            staff_id: s.staff_id.clone(),
            name: s.name.clone(),
            role: s.role.clone(),
            disabled: s.disabled,
        }
    }
}

fn check_password(password: &str) -> Result<()> {
    let n = password.chars().count();
    if !(PASSWORD_MIN..=PASSWORD_MAX).contains(&n) {
        return Err(Error::invalid(format!(
            "a password is {PASSWORD_MIN} to {PASSWORD_MAX} characters"
        )));
    }
    if password.chars().any(char::is_control) {
        return Err(Error::invalid("a password holds no control characters"));
    }
    Ok(())
}

impl Engine {
    /// A new staff account (owner).
    pub fn add_staff(&self, staff_id: &str, name: &str, role: Role, password: &str, at: At) -> Result<StaffView> {
        at.require(Role::Owner, "managing staff")?;
        let staff_id = check_staff_id(staff_id)?.to_string();
        if staff_id == POS_STAFF || staff_id == "cli" || staff_id == "system" || staff_id == "hub" {
            return Err(Error::invalid(format!("{staff_id:?} is reserved")));
        }
        let name = check_text("name", name.trim(), 100)?.to_string();
        check_password(password)?;
        let password_hash = crate::pin::hash(password)?;
        self.commit_plain(
            &at,
            |store, _| {
                if store.staff(&staff_id)?.is_some() {
                    return Err(Error::new(
                        Code::MemberExists,
                        format!("staff {staff_id} exists already"),
                    ));
                }
                let body = Body::StaffAdd {
                    staff_id: staff_id.clone(),
                    name: name.clone(),
                    role: role.as_str().to_string(),
                    password_hash,
                };
                Ok((vec![body], ()))
            },
            |store, _, _| self.staff_view(store, &staff_id),
        )
    }

    pub fn list_staff(&self, at: &At) -> Result<Vec<StaffView>> {
        at.require(Role::Owner, "managing staff")?;
        Ok(self.store.staff_list()?.iter().map(StaffView::from).collect())
    }

    /// Disables a staff account (owner): its password no longer opens a session.
    pub fn disable_staff(&self, staff_id: &str, at: At) -> Result<StaffView> {
        self.change_staff(staff_id, None, Some(true), at)
    }

    /// Sets a staff member's password (owner).
    pub fn set_staff_password(&self, staff_id: &str, password: &str, at: At) -> Result<StaffView> {
        check_password(password)?;
        let hash = crate::pin::hash(password)?;
        self.change_staff(staff_id, Some(hash), None, at)
    }

    fn change_staff(
        &self,
        staff_id: &str,
        password_hash: Option<String>,
        disabled: Option<bool>,
        at: At,
    ) -> Result<StaffView> {
        at.require(Role::Owner, "managing staff")?;
        let id = staff_id.to_string();
        self.commit_plain(
            &at,
            |store, _| {
                let s = store
                    .staff(&id)?
                    .ok_or_else(|| Error::new(Code::NotFound, format!("no staff {id:?}")))?;
                let disabled = disabled.filter(|d| *d != s.disabled);
                if password_hash.is_none() && disabled.is_none() {
                    return Ok((vec![], ()));
                }
                let body = Body::StaffChange {
                    staff_id: id.clone(),
                    role: None,
                    password_hash,
                    disabled,
                };
                Ok((vec![body], ()))
            },
            |store, _, _| self.staff_view(store, &id),
        )
    }

    fn staff_view(&self, store: &crate::store::Store, staff_id: &str) -> Result<StaffView> {
        store
            .staff(staff_id)?
            .map(|s| StaffView::from(&s))
            .ok_or_else(|| Error::internal(format!("staff {staff_id} vanished")))
    }

    /// The role of a staff id whose password is right; None when the id is unknown,
    /// disabled, or the password wrong (the caller counts the failure). argon2 runs here,
    /// outside the writer lock.
    pub fn check_staff(&self, staff_id: &str, password: &str) -> Result<Option<Role>> {
        let Some(s) = self.store.staff(staff_id)? else {
            // As slow as a wrong password, so that timing does not tell ids apart.
            let _ = crate::pin::verify(password, DUMMY_HASH);
            return Ok(None);
        };
        if s.disabled || !crate::pin::verify(password, &s.password_hash) {
            return Ok(None);
        }
        Ok(Some(Role::parse(&s.role)?))
    }
}

/// An argon2id hash of nothing anyone types, checked for unknown ids.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2uZ0qbx1X2+Vt2o7D8oQ2T3dRUj4wV1mXcH6m8h3O1A";
