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
                let w = wrong.entry(staff_id.to_string()).or_default();
                w.count += 1;
                if w.count >= MAX_WRONG {
                    w.locked_until = Some(now + LOCKOUT);
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
