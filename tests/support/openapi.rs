//! What tests/openapi.rs and tests/openapi_hub.rs share: calls that show the content
//! type, the router checked against a description, and an answer checked against the
//! operation it came from (declared, its shape, a refusal's codes).

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use serde_json::{json, Value};

use super::daemon::global_args;

/// The POS token of `support::daemon`, as a header.
pub const AUTH: (&str, &str) = ("Authorization", "Bearer test-token-0123456789");

/// An answer with what the test client does not show: the content type.
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

pub fn call(url: &str, method: &str, path: &str, body: Option<&Value>, headers: &[(&str, &str)]) -> Answer {
    let body = body.map(|b| ("application/json", b.to_string()));
    call_with(url, method, path, body, headers)
}

/// A request with a body of any content type.
pub fn call_with(
    url: &str,
    method: &str,
    path: &str,
    body: Option<(&str, String)>,
    headers: &[(&str, &str)],
) -> Answer {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(20)))
        .build()
        .into();
    let mut req = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{url}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some((content_type, _)) = &body {
        req = req.header("Content-Type", *content_type);
    }
    let text = body.map(|b| b.1).unwrap_or_default();
    let mut resp = agent.run(req.body(text).unwrap()).unwrap();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    // The event stream never ends: its head is the answer.
    let body = if content_type.starts_with("text/event-stream") {
        String::new()
    } else {
        resp.body_mut().with_config().limit(10 << 20).read_to_string().unwrap()
    };
    Answer {
        status: resp.status().as_u16(),
        content_type,
        body,
    }
}

pub fn description(url: &str) -> Value {
    let a = call(url, "GET", "/v1/openapi.json", None, &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.content_type.starts_with("application/json"), "{}", a.content_type);
    serde_json::from_str(&a.body).unwrap()
}

pub const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// (METHOD, path template) of every described operation.
pub fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            if item.get(m).is_some() {
                out.insert((m.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// A concrete path for a template.
pub fn concrete(template: &str) -> String {
    template
        .replace("{card}", "04A1B2C3")
        .replace("{member_id}", "m-0000000000000000")
        .replace("{id}", "m-0000000000000000")
        .replace("{tx_id}", "T1-00000000-0000000001")
        .replace("{deal}", "no-such-deal")
        .replace("{group_id}", "g-0")
}

/// The set of (METHOD, path) pairs.
pub fn pairs(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect()
}

/// Checks the router against the description: on each described path a method the
/// description does not give is 405 with an Allow header of exactly the described
/// methods; each described operation is routed (with the header `auth`); a scheme of
/// the description guards exactly the operations it says it does, the others
/// answer without it (`open`: the public ones; without a body they answer 200).
pub fn router_matches(url: &str, doc: &Value, auth: (&str, &str), open: &[&str]) {
    let described = operations(doc);
    let mut by_path: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (m, p) in &described {
        by_path.entry(p).or_default().insert(m.clone());
    }
    for (path, methods) in &by_path {
        let other = ["PUT", "DELETE", "PATCH"]
            .into_iter()
            .find(|m| !methods.contains(*m))
            .unwrap();
        let a = call(url, other, &concrete(path), None, &[auth]);
        assert_eq!(a.status, 405, "{other} {path}: {}", a.body);
        let v: Value = serde_json::from_str(&a.body).unwrap();
        assert_eq!(v["error"]["code"], "method_not_allowed");
        let allow = call_allow(url, other, &concrete(path), auth);
        let mut expected = methods.clone();
        if methods.contains("GET") {
            expected.insert("HEAD".to_string());
        }
        assert_eq!(allow, expected, "Allow of {path}");
    }
    for (method, path) in &described {
        let op = &doc["paths"][path][method.to_lowercase()];
        let guarded = op["security"].as_array().is_some_and(|s| !s.is_empty());
        let body = (method != "GET").then(|| json!({}));
        let bare = call(url, method, &concrete(path), body.as_ref(), &[]);
        if guarded {
            assert_eq!(bare.status, 401, "{method} {path} without a token: {}", bare.body);
            assert!(op["responses"]["401"].is_object(), "{method} {path}: 401 declared");
            let named: Vec<&String> = op["security"][0].as_object().unwrap().keys().collect();
            assert!(
                named.len() == 1 && doc["components"]["securitySchemes"][named[0]].is_object(),
                "{method} {path}: {}",
                op["security"]
            );
        } else {
            assert!(open.contains(&path.as_str()), "{method} {path} needs no token");
            assert_ne!(bare.status, 401, "{method} {path} without a token: {}", bare.body);
            if body.is_none() {
                assert_eq!(bare.status, 200, "{method} {path} without a token");
            }
        }
        let authed = call(url, method, &concrete(path), body.as_ref(), &[auth]);
        let code: Value = serde_json::from_str(&authed.body).unwrap_or(Value::Null);
        // The router's own 404 and 405 (a handler's `not_found` names what it did not find).
        let unrouted = code["error"]["code"] == "method_not_allowed" || code["error"]["message"] == "no such endpoint";
        assert!(
            !unrouted,
            "{method} {path} is routed: {} {}",
            authed.status, authed.body
        );
    }
}

pub fn head(doc: &Value) {
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
}

/// The methods of a 405's Allow header.
pub fn call_allow(url: &str, method: &str, path: &str, auth: (&str, &str)) -> BTreeSet<String> {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let req = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{url}{path}"))
        .header(auth.0, auth.1)
        .body(String::new())
        .unwrap();
    let resp = agent.run(req).unwrap();
    let allow = resp
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    allow
        .split(',')
        .map(|m| m.trim().to_uppercase())
        .filter(|m| !m.is_empty())
        .collect()
}

/// Checks that `a`, the answer of `method template`, is declared with its content type;
/// that a JSON answer has the shape the description gives (see `conforms`); and that a
/// refusal's code is one of those that answer names.
pub fn declared(doc: &Value, method: &str, template: &str, a: &Answer) -> Result<(), String> {
    let what = format!("{method} {template} {}", a.status);
    let op = &doc["paths"][template][method.to_lowercase()];
    let resp = &op["responses"][a.status.to_string()];
    if !resp.is_object() {
        return Err(format!("{what}: not declared"));
    }
    let Some(content) = resp["content"].as_object() else {
        return match a.body.is_empty() {
            true => Ok(()),
            false => Err(format!("{what}: declared without a body, answered {}", a.body)),
        };
    };
    let media = a.content_type.split(';').next().unwrap().trim();
    if !content.contains_key(media) {
        return Err(format!(
            "{what}: content type {media} is not the declared {:?}",
            content.keys().collect::<Vec<_>>()
        ));
    }
    if media != "application/json" {
        return Ok(());
    }
    let v: Value = serde_json::from_str(&a.body).map_err(|e| format!("{what}: {e}"))?;
    let schema = &content[media]["schema"];
    conforms(doc, schema, &v, "").map_err(|e| format!("{what}: {e}: {}", a.body))?;
    if let Some(parts) = schema["allOf"].as_array() {
        let codes = &parts[1]["properties"]["error"]["properties"]["code"]["enum"];
        if !codes.as_array().is_some_and(|c| c.contains(&v["error"]["code"])) {
            return Err(format!("{what}: code {} is not among {codes}", v["error"]["code"]));
        }
    }
    Ok(())
}

/// The shape of `v` against `schema` as far as these answers need: each object has every
/// required property and, where the schema lists its properties, no other; each value
/// the declared JSON type; each string of an enum one of its values. `$ref` and `allOf`
/// (a flattened struct: the object has the properties of all its parts) are followed.
pub fn conforms(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let resolve = |s: &Value| -> Value {
        match s["$ref"].as_str() {
            Some(r) => doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")].clone(),
            None => s.clone(),
        }
    };
    let schema = resolve(schema);
    if let Some(parts) = schema["allOf"].as_array() {
        let parts: Vec<Value> = parts.iter().map(resolve).collect();
        if let Value::Object(o) = v {
            let described = |k: &String| parts.iter().any(|p| p["properties"].get(k).is_some());
            if let Some(k) = o.keys().find(|k| !described(k)) {
                return Err(format!("{at}: {k} is not described"));
            }
        }
        return parts.iter().try_for_each(|p| shape(doc, p, v, at, false));
    }
    shape(doc, &schema, v, at, true)
}

pub fn shape(doc: &Value, schema: &Value, v: &Value, at: &str, closed: bool) -> Result<(), String> {
    if let Some(one) = schema["oneOf"].as_array() {
        return match one.iter().any(|p| conforms(doc, p, v, at).is_ok()) {
            true => Ok(()),
            false => Err(format!("{at}: {v} is none of oneOf")),
        };
    }
    let ts = types(schema);
    let type_of = match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    if !ts.is_empty() && !ts.contains(&type_of) {
        return Err(format!("{at}: {type_of} where {ts:?} is described"));
    }
    if let (Some(values), Value::String(_)) = (schema["enum"].as_array(), v) {
        if !values.contains(v) {
            return Err(format!("{at}: {v} is not among {}", schema["enum"]));
        }
    }
    match v {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, item)| conforms(doc, &schema["items"], item, &format!("{at}[{i}]"))),
        Value::Object(o) => {
            for r in schema["required"].as_array().into_iter().flatten() {
                if !o.contains_key(r.as_str().unwrap()) {
                    return Err(format!("{at}: required {r} is missing"));
                }
            }
            let props = schema["properties"].as_object();
            for (k, child) in o {
                match props.and_then(|p| p.get(k)) {
                    Some(s) => conforms(doc, s, child, &format!("{at}.{k}"))?,
                    None if closed && props.is_some() && schema["required"].is_array() => {
                        return Err(format!("{at}: {k} is not described"))
                    }
                    None => {}
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Runs the offline CLI on a test's data dir with `stdin` (staff accounts before a start).
pub fn offline(dir: &Path, args: &[&str], stdin: &str) {
    let mut child = super::loyaltyd_command()
        .args(global_args(dir))
        .args(args)
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
}

/// Calls and checks answers, keeping every mismatch to report at the end.
pub struct Checked<'a> {
    pub url: &'a str,
    pub doc: &'a Value,
    pub failures: Vec<String>,
}

impl Checked<'_> {
    /// `method path` (of `template`) answers `status`, declared; its JSON, if any.
    pub fn expect(
        &mut self,
        (method, template, path): (&str, &str, &str),
        body: Option<(&str, String)>,
        headers: &[(&str, &str)],
        status: u16,
    ) -> Value {
        let a = call_with(self.url, method, path, body, headers);
        if a.status != status {
            self.failures
                .push(format!("{method} {path}: wanted {status}, got {} {}", a.status, a.body));
        } else if let Err(e) = declared(self.doc, method, template, &a) {
            self.failures.push(e);
        }
        serde_json::from_str(&a.body).unwrap_or(Value::Null)
    }

    /// The same with a JSON body and the POS token.
    pub fn json(&mut self, method: &str, template: &str, path: &str, body: Option<Value>, status: u16) -> Value {
        let body = body.map(|b| ("application/json", b.to_string()));
        self.expect((method, template, path), body, &[AUTH], status)
    }
}

pub fn types(schema: &Value) -> Vec<&str> {
    match &schema["type"] {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    }
}
