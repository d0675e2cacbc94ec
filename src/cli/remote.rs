//! `--remote`: commands sent to the running daemon's POS API (address and token from the
//! config) instead of opening the data directory, which the daemon holds. With `--as
//! STAFF_ID` the command acts as that staff member, whose password is the first line
//! of stdin (a session opened for the one command and closed after it).

use std::io::Read;
use std::time::Duration;

use serde_json::Value;

use crate::config::Config;
use crate::error::{Code, Error, Result};

pub struct Remote {
    agent: ureq::Agent,
    base: String,
    auth: String,
    /// A session this client opened (`--as`), closed when it is dropped.
    session: bool,
}

impl Remote {
    /// A client with the POS token, or (with `as_staff`) a session of that staff member.
    pub fn connect(cfg: &Config, as_staff: Option<(&str, &str)>) -> Result<Remote> {
        let token = std::fs::read_to_string(&cfg.api.token_file)
            .map_err(|e| Error::invalid(format!("token file {}: {e}", cfg.api.token_file.display())))?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let mut remote = Remote {
            agent,
            base: format!("http://{}", cfg.api.listen),
            auth: format!("Bearer {}", token.trim()),
            session: false,
        };
        if let Some((staff_id, password)) = as_staff {
            let v = remote.call(
                "POST",
                "/v1/sessions",
                Some(serde_json::json!({"staff_id": staff_id, "password": password})),
            )?;
            let token = v["token"]
                .as_str()
                .ok_or_else(|| Error::internal("the daemon's login answer has no token"))?;
            remote.auth = format!("Bearer {token}");
            remote.session = true;
        }
        Ok(remote)
    }

    fn unreachable(&self, e: ureq::Error) -> Error {
        Error::internal(format!("cannot reach the daemon at {}: {e}", self.base))
    }

    /// One JSON exchange; a refusal comes back as the error it carries.
    pub fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let a = &self.auth;
        let sent = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", a).call(),
            ("DELETE", _) => self.agent.delete(&url).header("Authorization", a).call(),
            ("PATCH", Some(b)) => self.agent.patch(&url).header("Authorization", a).send_json(b),
            (_, Some(b)) => self.agent.post(&url).header("Authorization", a).send_json(b),
            (_, None) => self.agent.post(&url).header("Authorization", a).send_empty(),
        };
        let mut resp = sent.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| self.unreachable(e))?;
        let v: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|e| Error::internal(format!("the daemon's answer is not JSON: {e}")))?
        };
        if status.is_success() {
            return Ok(v);
        }
        Err(refusal(&v))
    }

    /// Uploads a file (a member import) as the body of a POST.
    pub fn upload(&self, path: &str, content_type: &str, bytes: &[u8]) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut resp = self
            .agent
            .post(&url)
            .header("Authorization", &self.auth)
            .header("Content-Type", content_type)
            .send(bytes)
            .map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        let v: Value = resp.body_mut().read_json().map_err(|e| self.unreachable(e))?;
        if status.is_success() {
            Ok(v)
        } else {
            Err(refusal(&v))
        }
    }

    /// Streams a download (a member export) into `out`.
    pub fn download(&self, path: &str, out: &mut dyn std::io::Write) -> Result<u64> {
        let url = format!("{}{path}", self.base);
        let mut resp = self
            .agent
            .get(&url)
            .header("Authorization", &self.auth)
            .call()
            .map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            let v: Value = resp.body_mut().read_json().map_err(|e| self.unreachable(e))?;
            return Err(refusal(&v));
        }
        let mut reader = resp.body_mut().with_config().limit(u64::MAX).reader();
        std::io::copy(&mut reader, out).map_err(|e| Error::internal(format!("reading the export: {e}")))
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        if self.session {
            let _ = self.call("DELETE", "/v1/sessions/current", None);
        }
    }
}

/// The error an answer's error document carries.
fn refusal(v: &Value) -> Error {
    let code = v["error"]["code"].as_str().unwrap_or("internal");
    let code = Code::ALL
        .into_iter()
        .find(|c| c.as_str() == code)
        .unwrap_or(Code::Internal);
    let mut e = Error::new(code, v["error"]["message"].as_str().unwrap_or("refused"));
    if let Some(rows) = v["error"]["rows"].as_array() {
        e.rows = rows
            .iter()
            .map(|r| {
                (
                    r["line"].as_u64().unwrap_or(0),
                    r["reason"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
    }
    e
}

/// Lines of stdin, read once: `--as` takes the first, `--password-stdin` the next.
pub struct Stdin {
    lines: std::vec::IntoIter<String>,
}

impl Stdin {
    pub fn read() -> Result<Stdin> {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::invalid(format!("cannot read stdin: {e}")))?;
        let lines: Vec<String> = text.lines().map(|l| l.trim_end_matches('\r').to_string()).collect();
        Ok(Stdin {
            lines: lines.into_iter(),
        })
    }

    pub fn line(&mut self, what: &str) -> Result<String> {
        self.lines
            .next()
            .filter(|l| !l.is_empty())
            .ok_or_else(|| Error::invalid(format!("stdin has no line for the {what}")))
    }
}

/// Percent-encodes a query or path value.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
