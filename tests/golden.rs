//! Golden journals: every build must read the journals earlier versions wrote and
//! rebuild from them exactly the state those versions reported (tests/golden/*/,
//! made by tests/golden/make_golden.py with that version's binary; never regenerated
//! once the version is released), and exactly the full state dump (`state dump`) in
//! `dump-<which>.json`, which `LOYALTYD_GOLDEN_WRITE=1 cargo test --test golden`
//! writes when a version adds its set.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::daemon::{repo, spawn_logged, Client};

const HUB_TOKEN: &str = "golden-hub-operator-token";

fn expected(version: &str) -> Value {
    let text = std::fs::read_to_string(repo(&format!("tests/golden/{version}/expected.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A data dir holding a copy of one golden journal (and no state store).
fn data_dir(tmp: &Path, version: &str, which: &str) -> PathBuf {
    let dir = tmp.join(which);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        repo(&format!("tests/golden/{version}/{which}/journal.log")),
        dir.join("journal.log"),
    )
    .unwrap();
    dir
}

fn terminal_config(tmp: &Path, terminal: &str, data: &Path) -> PathBuf {
    let cfg = tmp.join(format!("{terminal}.toml"));
    std::fs::write(
        &cfg,
        format!(
            "terminal_id = {terminal:?}\ndata_dir = {:?}\nrules = {:?}\nclock = \"trusted\"\n[sync]\nupstream = \"\"\n",
            data.display().to_string(),
            repo("config/rules.toml").display().to_string()
        ),
    )
    .unwrap();
    cfg
}

/// Compares `got` with the committed dump of `which`, or writes it (see the docs).
fn check_dump(version: &str, which: &str, got: &Value) {
    let path = repo(&format!("tests/golden/{version}/dump-{which}.json"));
    if std::env::var_os("LOYALTYD_GOLDEN_WRITE").is_some() {
        std::fs::write(&path, serde_json::to_string_pretty(got).unwrap() + "\n").unwrap();
        return;
    }
    let want: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    if let Err(at) = holds(got, &want, String::new()) {
        panic!("{version} {which}: the state differs from the golden dump at {at}");
    }
}

/// `got` says everything `want` says: the same scalars, arrays of the same length, and
/// every key of an object with what it held. State may grow (a later version keeps a
/// field more, e.g. who issued a coupon); nothing it held may change or go. Returns the
/// path of the first difference.
fn holds(got: &Value, want: &Value, path: String) -> Result<(), String> {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => w.iter().try_for_each(|(k, wv)| match g.get(k) {
            Some(gv) => holds(gv, wv, format!("{path}/{k}")),
            None => Err(format!("{path}/{k} (missing; wanted {wv})")),
        }),
        (Value::Array(g), Value::Array(w)) if g.len() == w.len() => g
            .iter()
            .zip(w)
            .enumerate()
            .try_for_each(|(i, (gv, wv))| holds(gv, wv, format!("{path}/{i}"))),
        _ if got == want => Ok(()),
        _ => Err(format!("{path} (got {got}, wanted {want})")),
    }
}

fn cli(cfg: &Path, args: &[&str]) -> Value {
    let out = support::loyaltyd_command()
        .arg("--config")
        .arg(cfg)
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{args:?}: {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
}

/// The terminal's members and daily reports as the version that wrote the journal
/// reported them; then a new record appends with the hash chain intact.
fn terminal_replays(version: &str, which: &str, terminal: &str) {
    let want = expected(version);
    let want = &want[which];
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path(), version, which);
    let cfg = terminal_config(tmp.path(), terminal, &data);
    let show_at = expected(version)["show_at"].as_str().unwrap().to_string();
    let records = want["verify"]["records"].as_u64().unwrap();
    assert_eq!(cli(&cfg, &["journal", "verify"])["records"], records);
    for (card, member) in want["members"].as_object().unwrap() {
        let got = cli(&cfg, &["member", "show", "--card", card, "--at", &show_at]);
        same_member(&got, member, &format!("{version} {which}: member of card {card}"));
    }
    for (date, daily) in want["daily"].as_object().unwrap() {
        let got = cli(&cfg, &["report", "daily", "--date", date]);
        assert_eq!(&got, daily, "{version} {which}: daily report of {date}");
    }
    check_dump(version, which, &cli(&cfg, &["state", "dump"]));
    // New records go on the old journal, chained to its last record.
    cli(
        &cfg,
        &[
            "member",
            "add",
            "--card",
            "0A0B0C0D",
            "--name",
            "New",
            "--phone",
            "13700000009",
        ],
    );
    // 0.1's journals also got the record that made their phones canonical (on the
    // first open by 0.2).
    let upgrade = u64::from(version == "v0.1.0");
    assert_eq!(cli(&cfg, &["journal", "verify"])["records"], records + 1 + upgrade);
}

/// A member as a later version shows it: every field the version that wrote the
/// journal showed, the same (later versions add fields); phones in the canonical form
/// 0.2 shows them in (`+86...`), whatever the journal's version wrote.
fn same_member(got: &Value, want: &Value, what: &str) {
    for (field, w) in want.as_object().unwrap() {
        if field == "phone" {
            let raw = w.as_str().unwrap();
            let canonical = loyaltyd::identity::canonical_phone(raw, "86").unwrap();
            assert_eq!(
                got[field].as_str(),
                Some(loyaltyd::identity::display_phone(&canonical).as_str()),
                "{what}: phone"
            );
        } else {
            assert_eq!(got.get(field), Some(w), "{what}: {field}");
        }
    }
}

#[test]
fn v0_1_0_terminal_t1_replays_to_the_same_state() {
    terminal_replays("v0.1.0", "t1", "T1");
}

#[test]
fn v0_1_0_terminal_t2_replays_to_the_same_state() {
    terminal_replays("v0.1.0", "t2", "T2");
}

#[test]
fn v0_2_0_terminal_t1_replays_to_the_same_state() {
    terminal_replays("v0.2.0", "t1", "T1");
}

#[test]
fn v0_2_0_terminal_t2_replays_to_the_same_state() {
    terminal_replays("v0.2.0", "t2", "T2");
}

#[test]
fn v0_1_0_hub_replays_to_the_same_state() {
    hub_replays("v0.1.0");
}

#[test]
fn v0_2_0_hub_replays_to_the_same_state() {
    hub_replays("v0.2.0");
}

fn hub_replays(version: &str) {
    let want = expected(version);
    let tmp = tempfile::tempdir().unwrap();
    let data = data_dir(tmp.path(), version, "hub");
    let token = tmp.path().join("hub.token");
    std::fs::write(&token, format!("{HUB_TOKEN}\n")).unwrap();
    let cfg = tmp.path().join("hub.toml");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\nrules = {:?}\ntoken_file = {:?}\n",
            data.display().to_string(),
            repo("config/rules.toml").display().to_string(),
            token.display().to_string()
        ),
    )
    .unwrap();
    let mut cmd = support::loyaltyd_command();
    cmd.arg("--config").arg(&cfg).args(["hub", "serve"]);
    let (mut child, url, _log) = spawn_logged(cmd, "hub listening on ");
    let client = Client::new(&url, Some(HUB_TOKEN));
    let mut terminals = client.get_json("/v1/hub/terminals", 200);
    terminals
        .as_array_mut()
        .unwrap()
        .sort_by_key(|t| t["terminal_id"].as_str().unwrap().to_string());
    // Fields added since the release: no terminal has been in contact with this hub.
    for t in terminals.as_array_mut().unwrap() {
        let t = t.as_object_mut().unwrap();
        for added in ["last_contact", "records_behind"] {
            assert_eq!(t.remove(added), Some(serde_json::Value::Null), "{version}: {added}");
        }
    }
    assert_eq!(terminals, want["hub"]["terminals"]);
    assert_eq!(
        client.get_json("/v1/hub/reports/overspent", 200),
        want["hub"]["overspent"]
    );
    for (id, member) in want["hub"]["members"].as_object().unwrap() {
        let got = client.get_json(&format!("/v1/hub/members/{id}"), 200);
        same_member(&got, member, &format!("{version}: hub member {id}"));
    }
    let _ = child.kill();
    let _ = child.wait();
    let ecfg = loyaltyd::engine::EngineConfig {
        data_dir: data,
        terminal_id: "hub".into(),
        clock: loyaltyd::engine::ClockPolicy::Trusted,
        cache_bytes: 8 << 20,
        offline_cap: false,
        hub: true,
        ..Default::default()
    };
    let rules = loyaltyd::rules::Ruleset::load(&repo("config/rules.toml")).unwrap();
    let engine = loyaltyd::engine::Engine::open(ecfg, rules).unwrap();
    check_dump(version, "hub", &engine.store().dump().unwrap());
}

/// The name of a record's kind (as decoded: 0.1's enrolments and pulls read as 0.2's).
fn kind(b: &loyaltyd::record::Body) -> &'static str {
    use loyaltyd::record::Body::*;
    match b {
        Init { .. } => "Init",
        MemberAdd { .. } => "MemberAdd",
        CardBlock { .. } => "CardBlock",
        CardReplace { .. } => "CardReplace",
        Checkout(_) => "Checkout",
        Refund(_) => "Refund",
        CouponIssue { .. } => "CouponIssue",
        RewardRedeem { .. } => "RewardRedeem",
        Expire { .. } => "Expire",
        PinFail { .. } => "PinFail",
        HubPull(_) => "HubPull",
        Remote(_) => "Remote",
        Covered { .. } => "Covered",
        RulesetPublish { .. } => "RulesetPublish",
        Acked { .. } => "Acked",
        MemberAddV2(_) => "MemberAddV2",
        MemberEdit(_) => "MemberEdit",
        MemberStatus { .. } => "MemberStatus",
        PinSet { .. } => "PinSet",
        CardUnblock { .. } => "CardUnblock",
        PointsAdjust { .. } => "PointsAdjust",
        Activity { .. } => "Activity",
        StaffAdd { .. } => "StaffAdd",
        StaffChange { .. } => "StaffChange",
        PhonesCanonical { .. } => "PhonesCanonical",
        ImportChunk { .. } => "ImportChunk",
        ImportCommit { .. } => "ImportCommit",
        ConflictResolve { .. } => "ConflictResolve",
        HubPullV2(_) => "HubPullV2",
        CheckoutV2(_) => "CheckoutV2",
        CouponIssueV2(_) => "CouponIssueV2",
        GroupJoin(_) => "GroupJoin",
        TriggerPass { .. } => "TriggerPass",
        HubPullV3(_) => "HubPullV3",
        CheckoutV3(_) => "CheckoutV3",
    }
}

/// Each golden set holds every kind of record there is (so that a change to any of
/// them is caught), and every record of it decodes.
#[test]
fn every_golden_set_holds_every_kind_of_record() {
    for version in ["v0.1.0", "v0.2.0"] {
        let tmp = tempfile::tempdir().unwrap();
        let mut kinds = std::collections::BTreeSet::new();
        for which in ["t1", "t2", "hub"] {
            let dir = data_dir(tmp.path(), version, which);
            let (journal, rec) = loyaltyd::journal::Journal::open(&dir.join("journal.log")).unwrap();
            assert_eq!(rec.truncated, None, "{version} {which}");
            for item in journal.read_from(1).unwrap() {
                let (seq, payload) = item.unwrap();
                let r = loyaltyd::record::Record::decode(&payload)
                    .unwrap_or_else(|e| panic!("{version} {which} record {seq}: {e}"));
                kinds.insert(kind(&r.body));
                if let loyaltyd::record::Body::Remote(remote) = &r.body {
                    let inner = loyaltyd::record::Record::decode(&remote.payload).unwrap();
                    kinds.insert(kind(&inner.body));
                }
            }
        }
        // 0.1 wrote these; each is read as its 0.2 form where it has one.
        let mut all = vec![
            "Acked",
            "CardBlock",
            "CardReplace",
            "CheckoutV3",
            "CouponIssueV2",
            "Covered",
            "Expire",
            "HubPullV3",
            "Init",
            "MemberAddV2",
            "PinFail",
            "Refund",
            "Remote",
            "RewardRedeem",
            "RulesetPublish",
        ];
        if version != "v0.1.0" {
            all.extend([
                "Activity",
                "CardUnblock",
                "ConflictResolve",
                "ImportChunk",
                "ImportCommit",
                "MemberEdit",
                "MemberStatus",
                // (PhonesCanonical is written only when 0.2 first opens a 0.1 data dir:
                // the v0.1.0 replays above write it, and their dumps show what it did.)
                "PinSet",
                "PointsAdjust",
                "StaffAdd",
                "StaffChange",
                // 0.2 campaigns (CheckoutV3 and CouponIssueV2 above: 0.1's and 0.2's forms read as them).
                "GroupJoin",
                "TriggerPass",
            ]);
        }
        all.sort();
        assert_eq!(kinds.into_iter().collect::<Vec<_>>(), all, "{version}");
    }
}
