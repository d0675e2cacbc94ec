//! Staff sessions of the POS API and the console: `POST /v1/sessions` trades a staff id
//! and password for a token that acts with that staff member's role for 8 hours. Five
//! wrong passwords in a row lock a staff id for 15 minutes (`staff_locked`), whether
//! they came through a login or a manager's approval inside a request.
//!
//! Sessions and lockouts live in memory: a restart ends every session (staff log in
//! again) and lifts every lock; neither is part of the books.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::engine::{Actor, Engine};
use crate::error::{Code, Error, Result};
use crate::model::{check_staff_id, Role};

pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
pub const MAX_WRONG: u32 = 5;
pub const LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// Sessions held at most (the oldest go first beyond it).
const MAX_SESSIONS: usize = 10_000;
/// Staff ids whose wrong passwords are counted at most: past it, the ids that are not
/// locked are forgotten, so that a login flood of made-up ids cannot grow the map
/// without bound (a login needs no token).
const MAX_COUNTED: usize = 10_000;

#[derive(Debug, Clone)]
struct Session {
    staff_id: String,
    role: Role,
    expires: Instant,
}

#[derive(Debug, Default)]
struct Wrong {
    count: u32,
    locked_until: Option<Instant>,
}

#[derive(Default)]
pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
    wrong: Mutex<HashMap<String, Wrong>>,
}

/// What a login answers.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Session)]
pub struct Opened {
    /// The bearer token of this session.
    pub token: String,
    pub role: Role,
    #[schema(format = DateTime)]
    pub expires_at: String,
}

/// Counts a wrong password for `staff_id`; true when it locks the id.
fn count_wrong(wrong: &mut HashMap<String, Wrong>, staff_id: &str, now: Instant) -> bool {
    if wrong.len() >= MAX_COUNTED && !wrong.contains_key(staff_id) {
        wrong.retain(|_, w| w.locked_until.is_some_and(|until| now < until));
    }
    let w = wrong.entry(staff_id.to_string()).or_default();
    w.count += 1;
    if w.count >= MAX_WRONG {
        w.locked_until = Some(now + LOCKOUT);
        return true;
    }
    false
}

impl Sessions {
    /// Checks a staff id and password (argon2: call off the async threads) against the
    /// lockout: the staff member's role, or `unauthorized`, or `staff_locked`.
    pub fn check(&self, engine: &Engine, staff_id: &str, password: &str) -> Result<Role> {
        check_staff_id(staff_id).map_err(|_| Error::new(Code::Unauthorized, "wrong staff id or password"))?;
        let now = Instant::now();
        {
            let mut wrong = self.wrong.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(w) = wrong.get_mut(staff_id) {
                match w.locked_until {
                    Some(until) if now < until => {
                        let mins = (until - now).as_secs().div_ceil(60);
                        return Err(Error::new(
                            Code::StaffLocked,
                            format!("{staff_id} is locked after {MAX_WRONG} wrong passwords; try again in {mins} min"),
                        ));
                    }
                    Some(_) => *w = Wrong::default(),
                    None => {}
                }
            }
        }
        match engine.check_staff(staff_id, password)? {
            Some(role) => {
                self.wrong.lock().unwrap_or_else(|p| p.into_inner()).remove(staff_id);
                Ok(role)
            }
            None => {
                let mut wrong = self.wrong.lock().unwrap_or_else(|p| p.into_inner());
                if count_wrong(&mut wrong, staff_id, now) {
                    tracing::warn!("staff {staff_id} locked for 15 min after {MAX_WRONG} wrong passwords");
                    return Err(Error::new(
                        Code::StaffLocked,
                        format!("{staff_id} is locked after {MAX_WRONG} wrong passwords; try again in 15 min"),
                    ));
                }
                Err(Error::new(Code::Unauthorized, "wrong staff id or password"))
            }
        }
    }

    /// A new session for a checked staff member.
    pub fn open(&self, staff_id: &str, role: Role, wall_now: crate::model::Ts, tz: &chrono_tz::Tz) -> Opened {
        let mut b = [0u8; 24];
        getrandom::getrandom(&mut b).expect("the OS random source works");
        let token: String = b.iter().map(|x| format!("{x:02x}")).collect();
        let now = Instant::now();
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.len() >= MAX_SESSIONS {
            live.retain(|_, s| s.expires > now);
            if live.len() >= MAX_SESSIONS {
                if let Some(oldest) = live.iter().min_by_key(|(_, s)| s.expires).map(|(t, _)| t.clone()) {
                    live.remove(&oldest);
                }
            }
        }
        live.insert(
            token.clone(),
            Session {
                staff_id: staff_id.to_string(),
                role,
                expires: now + SESSION_TTL,
            },
        );
        Opened {
            token,
            role,
            expires_at: crate::model::fmt_instant(wall_now + SESSION_TTL.as_micros() as i64, tz),
        }
    }

    /// Who a session token acts as, while it lasts.
    pub fn actor(&self, token: &str) -> Option<Actor> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        match live.get(token) {
            Some(s) if s.expires > Instant::now() => Some(Actor::new(&s.staff_id, s.role)),
            Some(_) => {
                live.remove(token);
                None
            }
            None => None,
        }
    }

    /// Ends a session; false if there was none.
    pub fn close(&self, token: &str) -> bool {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(token)
            .is_some()
    }

    /// Ends every session of a staff id (disabled, or a new password).
    pub fn close_all(&self, staff_id: &str) {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, s| s.staff_id != staff_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_ids_do_not_grow_the_count_without_bound_and_locks_stay() {
        let mut wrong = HashMap::new();
        let now = Instant::now();
        for _ in 0..MAX_WRONG {
            count_wrong(&mut wrong, "victim", now);
        }
        assert!(wrong["victim"].locked_until.is_some());
        for i in 0..3 * MAX_COUNTED {
            assert!(!count_wrong(&mut wrong, &format!("made-up-{i}"), now));
            assert!(wrong.len() <= MAX_COUNTED, "{} ids counted", wrong.len());
        }
        assert!(
            wrong["victim"].locked_until.is_some_and(|u| u > now),
            "the lock outlives the flood"
        );
        // The fifth wrong password in a row locks; fewer do not.
        let mut w = HashMap::new();
        let locks: Vec<bool> = (0..MAX_WRONG).map(|_| count_wrong(&mut w, "ann", now)).collect();
        assert_eq!(locks, [false, false, false, false, true]);
    }
}
