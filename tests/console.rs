//! The console end to end against the real binary (interface.md 0.2 "The console"):
//! login and the session cookie's attributes, CSRF refusals that change nothing, roles
//! refused on the server, a manager's approval on a cashier's form, escaping of what
//! members are called, the language switch, a disabled staff member's session, bad
//! dates and unknown ids; on the hub the operator's login and a ruleset refused with
//! the CLI's message.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use support::daemon::{global_args, Client, Daemon};
use support::hub::{Hub, HUB_TOKEN};

/// A browser without JavaScript: cookies kept by name, redirects not followed.
struct Browser {
    agent: ureq::Agent,
    base: String,
    cookies: HashMap<String, String>,
    lang: Option<String>,
}

struct Page {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Page {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The value of the hidden field `name` (the first one on the page).
    fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {name} in {}", self.body))
            + marker.len();
        let end = start + self.body[start..].find('"').unwrap();
        self.body[start..end].to_string()
    }

    /// `data-value` of the element with `data-figure="name"`.
    fn figure(&self, name: &str) -> i64 {
        let marker = format!("data-figure=\"{name}\" data-value=\"");
        let start = self.body.find(&marker).unwrap_or_else(|| panic!("no figure {name}")) + marker.len();
        let end = start + self.body[start..].find('"').unwrap();
        self.body[start..end].parse().unwrap()
    }
}

fn form_encode(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", support::daemon::url_encode(k), support::daemon::url_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl Browser {
    fn new(base: &str) -> Browser {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Browser {
            agent,
            base: base.to_string(),
            cookies: HashMap::new(),
            lang: None,
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, resp: &mut ureq::http::Response<ureq::Body>) -> Page {
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        for (k, v) in &headers {
            if k.eq_ignore_ascii_case("set-cookie") {
                let pair = v.split(';').next().unwrap();
                let (name, value) = pair.split_once('=').unwrap();
                if value.is_empty() || v.contains("Max-Age=0") {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_string(), value.to_string());
                }
            }
        }
        Page {
            status: resp.status().as_u16(),
            headers,
            body: resp.body_mut().read_to_string().unwrap_or_default(),
        }
    }

    fn get(&mut self, path: &str) -> Page {
        let mut req = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Cookie", self.cookie_header());
        if let Some(l) = &self.lang {
            req = req.header("Accept-Language", l);
        }
        let mut resp = req.call().unwrap();
        self.keep(&mut resp)
    }

    fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut resp = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Cookie", self.cookie_header())
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(form_encode(fields))
            .unwrap();
        self.keep(&mut resp)
    }

    /// Logs in; the page the login redirects to.
    fn login(&mut self, staff_id: &str, password: &str) -> Page {
        let form = self.get("/console/login");
        assert_eq!(form.status, 200, "{}", form.body);
        let csrf = form.hidden("csrf");
        let p = self.post(
            "/console/login",
            &[
                ("csrf", &csrf),
                ("staff_id", staff_id),
                ("password", password),
                ("next", ""),
            ],
        );
        assert_eq!(p.status, 303, "login as {staff_id}: {}", p.body);
        p
    }

    /// The CSRF token of the signed-in session (from any page's logout form).
    fn csrf(&mut self) -> String {
        self.get("/console/members").hidden("csrf")
    }
}

fn offline(dir: &Path, args: &[&str], stdin: &str) -> Value {
    let mut cmd = support::loyaltyd_command();
    cmd.args(global_args(dir)).arg("--json").args(args);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn add_staff(dir: &Path, id: &str, role: &str, password: &str) {
    offline(
        dir,
        &[
            "staff",
            "add",
            "--id",
            id,
            "--name",
            id,
            "--role",
            role,
            "--password-stdin",
        ],
        &format!("{password}\n"),
    );
}

fn api_session(c: &Client, staff: &str, password: &str) -> Client {
    let v = c.with_token(None).post_json(
        "/v1/sessions",
        &json!({"staff_id": staff, "password": password}),
        &[],
        200,
    );
    c.with_token(Some(v["token"].as_str().unwrap()))
}

/// Text as the templates escape it (numeric character references).
fn escaped(s: &str) -> String {
    s.replace('&', "&#38;")
        .replace('<', "&#60;")
        .replace('>', "&#62;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

const SCRIPT_NAME: &str = "<script>alert(1)</script>";

/// A terminal with an owner, a manager and a cashier, and two members (one named like a
/// script) with a sale each.
fn shop(dir: &Path) -> (Daemon, Client, String, String) {
    add_staff(dir, "olu", "owner", "olu-secret-1");
    add_staff(dir, "mia", "manager", "mia-secret-1");
    add_staff(dir, "cai", "cashier", "cai-secret-1");
    let d = Daemon::start(dir);
    let pos = d.client();
    let a = pos.post_json(
        "/v1/members",
        &json!({"card": "04A1B2C3", "name": SCRIPT_NAME, "phone": "13800000001"}),
        &[],
        201,
    );
    let b = pos.post_json(
        "/v1/members",
        &json!({"card": "04A1B2C4", "name": "王小明", "phone": "13800000002"}),
        &[],
        201,
    );
    for (i, card) in ["04A1B2C3", "04A1B2C4", "04A1B2C3"].iter().enumerate() {
        pos.post_json(
            "/v1/checkout/commit",
            &json!({"card": card, "lines": [{"sku": "rice", "category": "grocery", "qty": 1, "unit_price": 2500}]}),
            &[("Idempotency-Key", &format!("sale-{i}"))],
            200,
        );
    }
    let id = |m: &Value| m["member_id"].as_str().unwrap().to_string();
    (d, pos, id(&a), id(&b))
}

fn balance(pos: &Client, id: &str) -> i64 {
    pos.get_json(&format!("/v1/members/{id}"), 200)["balance"]
        .as_i64()
        .unwrap()
}

#[test]
fn login_cookies_csrf_roles_escaping_and_language() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, pos, script_id, wang_id) = shop(dir.path());
    let mut b = Browser::new(pos.base());

    // Without a session every page points at the login page.
    let p = b.get("/console/");
    assert_eq!(p.status, 303);
    assert!(
        p.header("location").unwrap().starts_with("/console/login?next="),
        "{:?}",
        p.headers
    );

    // The login form's own CSRF token: without it, or with another, no session.
    let form = b.get("/console/login");
    assert!(form.body.contains("登录"), "zh-CN by default");
    assert!(form.body.contains("<label for=\"staff_id\">"), "inputs have labels");
    let p = b.post("/console/login", &[("staff_id", "mia"), ("password", "mia-secret-1")]);
    assert_eq!(p.status, 403);
    assert!(!b.cookies.contains_key("loyaltyd_console"));
    let csrf = b.get("/console/login").hidden("csrf");
    let p = b.post(
        "/console/login",
        &[("csrf", &csrf), ("staff_id", "mia"), ("password", "wrong-password")],
    );
    assert_eq!(p.status, 401, "{}", p.body);
    assert!(p.body.contains("员工编号或密码错误"));

    // The session cookie: HttpOnly, SameSite=Strict, Path=/console.
    let p = b.login("mia", "mia-secret-1");
    assert_eq!(p.header("location"), Some("/console/"));
    let cookie = p
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("loyaltyd_console="))
        .unwrap()
        .to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(cookie.contains(attr), "{cookie}");
    }

    // The dashboard's figures are the JSON report's.
    let mia = api_session(&pos, "mia", "mia-secret-1");
    let dash = b.get("/console/");
    assert_eq!(dash.status, 200, "{}", dash.body);
    let from = dash
        .body
        .split("id=\"from\" name=\"from\" type=\"date\" value=\"")
        .nth(1)
        .unwrap()[..10]
        .to_string();
    let to = dash
        .body
        .split("id=\"to\" name=\"to\" type=\"date\" value=\"")
        .nth(1)
        .unwrap()[..10]
        .to_string();
    let json = mia.get_json(&format!("/v1/reports/summary?from={from}&to={to}"), 200);
    for name in [
        "sales",
        "transactions",
        "new_members",
        "active_members",
        "repeat_members",
        "repurchase_rate_bp",
        "points_issued",
        "points_outstanding",
        "liability_minor",
    ] {
        assert_eq!(dash.figure(name), json[name].as_i64().unwrap(), "{name}");
    }
    assert_eq!(dash.figure("transactions"), 3);
    assert!(dash.body.matches("<svg").count() >= 5, "the charts");
    for h in ["content-security-policy", "x-content-type-options", "x-frame-options"] {
        assert!(dash.header(h).is_some(), "{h}");
    }
    assert_eq!(dash.header("cache-control"), Some("no-store"));
    let css_href = dash
        .body
        .split("rel=\"stylesheet\" href=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let css = b.get(&css_href);
    assert_eq!(css.status, 200);
    assert!(css.header("cache-control").unwrap().contains("max-age=31536000"));

    // Find by phone; a member named like a script is text on every page.
    let found = b.get("/console/members?q=138%200000%200001");
    assert!(
        found.body.contains(&format!("/console/members/{script_id}")),
        "{}",
        found.body
    );
    for page in [found, b.get(&format!("/console/members/{script_id}"))] {
        assert!(!page.body.contains(SCRIPT_NAME), "unescaped");
        assert!(page.body.contains(&escaped(SCRIPT_NAME)), "{}", page.body);
    }

    // CSRF: a POST without the token, or with another, is 403 and changes nothing.
    let before = balance(&pos, &wang_id);
    let path = format!("/console/members/{wang_id}/points");
    let p = b.post(&path, &[("points", "50"), ("reason", "gift")]);
    assert_eq!(p.status, 403);
    let p = b.post(&path, &[("csrf", "0000"), ("points", "50"), ("reason", "gift")]);
    assert_eq!(p.status, 403);
    assert_eq!(balance(&pos, &wang_id), before);
    // With it, the manager adjusts.
    let token = b.csrf();
    let p = b.post(&path, &[("csrf", &token), ("points", "50"), ("reason", "gift")]);
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(balance(&pos, &wang_id), before + 50);
    // Bad input: a clear message, 400, nothing changed.
    let p = b.post(&path, &[("csrf", &token), ("points", "fifty"), ("reason", "gift")]);
    assert_eq!(p.status, 400);
    assert!(p.body.contains("not a whole number"), "{}", p.body);
    let p = b.post(
        &format!("/console/members/{wang_id}/edit"),
        &[("csrf", &token), ("name", "王小明"), ("phone", "13800000001")],
    );
    assert_eq!(p.status, 409, "another member's phone");
    assert_eq!(balance(&pos, &wang_id), before + 50);
    let p = b.get("/console/members/nobody-here");
    assert_eq!(p.status, 404);

    // Bad dates and windows.
    for (q, status, says) in [
        ("from=2026-02-30", 400, "not a date"),
        ("from=2026-03-10&to=2026-03-01", 400, "after"),
        ("from=1990-01-01&to=2026-01-01", 400, "at most"),
    ] {
        let p = b.get(&format!("/console/?{q}"));
        assert_eq!(p.status, status, "{q}");
        assert!(p.body.contains(says), "{q}: {}", p.body);
    }
    let p = b.get("/console/reports?rfrom=2026-13");
    assert_eq!(p.status, 400);
    let p = b.get(&format!("/console/reports/summary.csv?from={from}&to={to}"));
    assert_eq!(p.status, 200);
    assert!(p.header("content-type").unwrap().starts_with("text/csv"));
    let (_, api_csv) = mia
        .get(&format!("/v1/reports/summary?from={from}&to={to}&format=csv"))
        .unwrap();
    assert_eq!(p.body, api_csv, "the same CSV as the API's");

    // Language: ?lang=en switches and is remembered; the browser's preference counts.
    let p = b.get("/console/members?lang=en");
    assert!(p.body.contains("Members") && p.body.contains("lang=\"en\""));
    assert!(p.set_cookies().iter().any(|c| c.starts_with("loyaltyd_lang=en")));
    assert!(b.get("/console/members").body.contains("Log out"), "remembered");
    let mut other = Browser::new(pos.base());
    other.lang = Some("en-US,en;q=0.9".into());
    assert!(other.get("/console/login").body.contains("Staff id"));

    // A cashier: no manager pages; a change needs a manager's approval on the form.
    let mut cai = Browser::new(pos.base());
    let p = cai.login("cai", "cai-secret-1");
    assert_eq!(p.header("location"), Some("/console/members"));
    assert_eq!(cai.get("/console/reports").status, 403);
    assert_eq!(cai.get("/console/staff").status, 403);
    assert_eq!(
        cai.get("/console/reports/summary.csv?from=2026-01-01&to=2026-01-02")
            .status,
        403
    );
    let token = cai.csrf();
    let before = balance(&pos, &wang_id);
    let p = cai.post(&path, &[("csrf", &token), ("points", "7"), ("reason", "fix")]);
    assert_eq!(p.status, 403, "no approval");
    let p = cai.post(
        &path,
        &[
            ("csrf", &token),
            ("points", "7"),
            ("reason", "fix"),
            ("approval_staff_id", "cai"),
            ("approval_password", "cai-secret-1"),
        ],
    );
    assert_eq!(p.status, 403, "a cashier approving");
    assert_eq!(balance(&pos, &wang_id), before);
    let p = cai.post(
        &path,
        &[
            ("csrf", &token),
            ("points", "7"),
            ("reason", "fix"),
            ("approval_staff_id", "mia"),
            ("approval_password", "mia-secret-1"),
        ],
    );
    assert_eq!(p.status, 303, "{}", p.body);
    assert_eq!(balance(&pos, &wang_id), before + 7);
    let ledger = pos.get_json(&format!("/v1/members/{wang_id}/points"), 200);
    assert_eq!(ledger["entries"][0]["by"], "mia", "{ledger}");

    // The owner disables the cashier: the cashier's session ends at once.
    let mut olu = Browser::new(pos.base());
    olu.login("olu", "olu-secret-1");
    let token = olu.csrf();
    let p = olu.post("/console/staff/cai/disable", &[("csrf", &token)]);
    assert_eq!(p.status, 303, "{}", p.body);
    let p = cai.get("/console/members");
    assert_eq!(p.status, 303, "a disabled staff member's session is refused");
    let csrf = cai.get("/console/login").hidden("csrf");
    let p = cai.post(
        "/console/login",
        &[("csrf", &csrf), ("staff_id", "cai"), ("password", "cai-secret-1")],
    );
    assert_eq!(p.status, 401);

    // Logout ends the session; it needs the token too.
    assert_eq!(b.post("/console/logout", &[]).status, 403);
    let token = b.csrf();
    assert_eq!(b.post("/console/logout", &[("csrf", &token)]).status, 303);
    assert_eq!(b.get("/console/members").status, 303);
}

#[test]
fn the_hub_console_is_the_operators_and_refuses_a_bad_ruleset_with_the_cli_message() {
    let dir = tempfile::tempdir().unwrap();
    let secret = support::hub::secret_file(dir.path(), "T1");
    let hub = Hub::start(dir.path(), &[("T1", secret.as_path())]);
    // A terminal that synced, so that the terminals page has a row.
    let shop = support::shop::Shop::open(dir.path(), "T1", &hub, &secret);
    shop.enrol("0B000001", "13900000051");
    shop.wait_synced(&support::shop::last_sync(&shop));
    let mut b = Browser::new(&hub.url);
    let csrf = b.get("/console/login").hidden("csrf");
    let p = b.post(
        "/console/login",
        &[
            ("csrf", &csrf),
            ("staff_id", "operator"),
            ("password", "wrong-token-000"),
        ],
    );
    assert_eq!(p.status, 401);
    b.login("operator", HUB_TOKEN);
    for page in [
        "/console/terminals",
        "/console/conflicts",
        "/console/campaigns",
        "/console/members",
        "/console/",
    ] {
        let p = b.get(page);
        assert_eq!(p.status, 200, "{page}: {}", p.body);
    }
    assert_eq!(b.get("/console/staff").status, 404, "staff live at the terminals");
    // The terminal's row: its last contact, and nothing left to pull once it pulled.
    let row = support::eventually(30, "T1's row caught up", || {
        let page = b.get("/console/terminals").body;
        assert!(page.contains("最近联系") && page.contains("待拉取"), "{page}");
        let row = page.split("<td>T1</td>").nth(1)?.split("</tr>").next()?.to_string();
        row.ends_with("<td class=\"n\">0</td>").then_some(row)
    });
    assert!(!row.contains("从未"), "a last contact: {row}");
    let campaigns = b.get("/console/campaigns");
    let version: u32 = campaigns
        .body
        .split("id=\"ruleset-version\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let token = campaigns.hidden("csrf");
    let rules = std::fs::read_to_string(support::daemon::repo("config/rules.toml")).unwrap();
    let bad = rules.replacen("version = ", "version = 0 + ", 1);
    let p = b.post("/console/campaigns/publish", &[("csrf", &token), ("ruleset", &bad)]);
    assert_eq!(p.status, 400);
    // The CLI's validation message.
    let expected = loyaltyd::rules::Ruleset::parse(&bad, "(published ruleset)")
        .unwrap_err()
        .to_string();
    assert!(p.body.contains(&escaped(&expected)), "{expected}\n{}", p.body);
    let p = b.post("/console/campaigns/publish", &[("ruleset", &rules)]);
    assert_eq!(p.status, 403, "no CSRF token");
    let after: u32 = b
        .get("/console/campaigns")
        .body
        .split("id=\"ruleset-version\">")
        .nth(1)
        .unwrap()
        .split('<')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(after, version, "nothing published");
}

#[test]
fn console_listen_gives_the_console_a_listener_of_its_own_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("loyaltyd.toml");
    let base = std::fs::read_to_string(support::daemon::repo("config/loyaltyd.toml")).unwrap();
    let text = base.replace("# listen = \"0.0.0.0:7431\"", "listen = \"127.0.0.1:0\"");
    assert_ne!(text, base, "the example config has the commented line");
    std::fs::write(&cfg, text).unwrap();
    let d = Daemon::start_config(dir.path(), &cfg, &[], &[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    let url = loop {
        lines.extend(d.log_lines());
        if let Some(l) = lines.iter().find(|l| l.contains("console on its own listener")) {
            assert!(l.contains("LAN"), "{l}");
            let start = l.find("http://").unwrap();
            break l[start..].split("/console/").next().unwrap().to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no console listener in the log: {lines:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut on_api = Browser::new(&d.url);
    assert_eq!(
        on_api.get("/console/login").status,
        404,
        "not on the POS API's listener"
    );
    let mut own = Browser::new(&url);
    let p = own.get("/console/login");
    assert_eq!(p.status, 200);
    assert!(p.body.contains("name=\"csrf\""));
    assert_eq!(own.get("/v1/health").status, 404, "and the API is not on the console's");
}
