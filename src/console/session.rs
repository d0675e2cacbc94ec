//! Console sessions: a random token in a cookie (HttpOnly, SameSite=Strict, Path=/console),
//! a per-session CSRF token every form carries, and an idle timeout. Like the API's
//! sessions they live in memory: a restart logs everyone out.
//!
//! Passwords and the lockout after wrong ones are the API's (`api::sessions`), so that a
//! guess through the console counts towards the same lock as one through the API.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};

use crate::model::Role;

pub const SESSION_COOKIE: &str = "loyaltyd_console";
/// The login form's CSRF token before there is a session (double submit: cookie = field).
pub const LOGIN_COOKIE: &str = "loyaltyd_login";
pub const LANG_COOKIE: &str = "loyaltyd_lang";
/// Sessions held at most (the idlest go first beyond it).
const MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Session {
    pub staff_id: String,
    pub role: Role,
    pub csrf: String,
    /// The hub's operator (the operator token), not a staff account.
    pub operator: bool,
    last_seen: Instant,
}

pub struct Sessions {
    live: Mutex<HashMap<String, Session>>,
    idle: Duration,
}

/// 24 random bytes as hex.
pub fn random_token() -> String {
    let mut b = [0u8; 24];
    getrandom::getrandom(&mut b).expect("the OS random source works");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The value of cookie `name` in a request.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value scoped to the console; `secure` when served over HTTPS.
pub fn set_cookie(name: &str, value: &str, max_age: Option<u64>, secure: bool) -> String {
    let mut c = format!("{name}={value}; Path=/console; HttpOnly; SameSite=Strict");
    if let Some(s) = max_age {
        c.push_str(&format!("; Max-Age={s}"));
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}

impl Sessions {
    pub fn new(idle: Duration) -> Sessions {
        Sessions {
            live: Mutex::new(HashMap::new()),
            idle,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session; its cookie token.
    pub fn open(&self, staff_id: &str, role: Role, operator: bool) -> String {
        self.open_at(staff_id, role, operator, Instant::now())
    }

    fn open_at(&self, staff_id: &str, role: Role, operator: bool, now: Instant) -> String {
        let token = random_token();
        let mut live = self.lock();
        if live.len() >= MAX_SESSIONS {
            let idle = self.idle;
            live.retain(|_, s| now.duration_since(s.last_seen) < idle);
            if live.len() >= MAX_SESSIONS {
                if let Some(t) = live.iter().min_by_key(|(_, s)| s.last_seen).map(|(t, _)| t.clone()) {
                    live.remove(&t);
                }
            }
        }
        live.insert(
            token.clone(),
            Session {
                staff_id: staff_id.to_string(),
                role,
                csrf: random_token(),
                operator,
                last_seen: now,
            },
        );
        token
    }

    /// The session of a token while it has not been idle too long; a use renews it.
    pub fn get(&self, token: &str) -> Option<Session> {
        self.get_at(token, Instant::now())
    }

    fn get_at(&self, token: &str, now: Instant) -> Option<Session> {
        let mut live = self.lock();
        let s = live.get_mut(token)?;
        if now.duration_since(s.last_seen) >= self.idle {
            live.remove(token);
            return None;
        }
        s.last_seen = now;
        Some(s.clone())
    }

    pub fn close(&self, token: &str) {
        self.lock().remove(token);
    }

    /// Ends every session of a staff id (disabled, a new password).
    pub fn close_all(&self, staff_id: &str) {
        self.lock().retain(|_, s| s.staff_id != staff_id || s.operator);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_session_ends_and_a_used_one_lasts() {
        let s = Sessions::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let a = s.open_at("ann", Role::Manager, false, t0);
        let b = s.open_at("bob", Role::Cashier, false, t0);
        // Used every 50 s: still alive after 150 s.
        for i in 1..=3 {
            assert!(s.get_at(&a, t0 + Duration::from_secs(50 * i)).is_some());
        }
        assert!(
            s.get_at(&b, t0 + Duration::from_secs(61)).is_none(),
            "idle past the timeout"
        );
        assert!(s.get_at(&b, t0).is_none(), "gone for good");
        assert!(s.get_at("nonsense", t0).is_none());
        s.close_all("ann");
        assert!(s.get_at(&a, t0 + Duration::from_secs(151)).is_none());
    }

    #[test]
    fn cookies_are_read_by_name_and_scoped() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; loyaltyd_console=xyz; b=2".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
        let c = set_cookie(SESSION_COOKIE, "t", None, false);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Path=/console"));
    }
}
