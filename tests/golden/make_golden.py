#!/usr/bin/env python3
"""Writes a golden data set: journals made by a given loyaltyd binary, and what that
binary says of them, for tests/golden.rs to check every later build against.

    python3 tests/golden/make_golden.py BINARY OUTDIR

OUTDIR gets:
  t1/journal.log, t2/journal.log   two terminals' journals (every terminal record kind)
  hub/journal.log                  the hub's journal (Init, Remote, Covered, RulesetPublish)
  expected.json                    what BINARY answered about them: members at a fixed
                                   instant, daily reports, journal verify, the hub's
                                   terminals and members

Every business instant is given explicitly (--at) and lies in 2024-2025, with lots
that either expired long ago or never expire and tier windows long past, so that the
answers do not depend on the day the test runs. The state stores are not kept: a
build reads these journals and must rebuild the same state from them.

Run it once per released version (tests/golden/v0.1.0 was made by 0.1.0, commit
9c24a2d; v0.2.0 by this development line, remade until 0.2.0 is released) and commit
the result, then `LOYALTYD_GOLDEN_WRITE=1 cargo test --test golden` for its state
dumps; never regenerate a released version's set.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BIN = os.path.abspath(sys.argv[1])
OUT = os.path.abspath(sys.argv[2])
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HUB_TOKEN = "golden-hub-operator-token"
# A fixed instant to render members at: after every lot that expires, before none.
SHOW_AT = "2026-01-15T12:00:00+08:00"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args, ok=True, stdin=None):
    p = subprocess.run([BIN, "--json"] + args, capture_output=True, text=True, input=stdin)
    if ok and p.returncode != 0:
        sys.exit(f"{args}: exit {p.returncode}: {p.stdout} {p.stderr}")
    if not ok and p.returncode == 0:
        sys.exit(f"{args}: expected a refusal, got {p.stdout}")
    return json.loads(p.stdout) if p.stdout.strip() else None


def http(method, url, body=None, token=HUB_TOKEN):
    data = None if body is None else body.encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if body is not None and body.startswith("{"):
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def wait_for(what, f, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            v = f()
            if v:
                return v
        except Exception:
            pass
        time.sleep(0.1)
    sys.exit(f"timed out waiting for {what}")


def copy_frames(src, dst):
    """Copies a journal without the zeros written ahead of its last frame."""
    data = open(src, "rb").read()
    end = 16
    while end + 16 <= len(data):
        n = int.from_bytes(data[end:end + 4], "little")
        if n == 0 and data[end:end + 16] == bytes(16):
            break
        end += 52 + n
    open(dst, "wb").write(data[:end])


def main():
    work = tempfile.mkdtemp(prefix="golden-")
    rules_a = os.path.join(REPO, "config/rules.toml")
    # Rules B: the same with lots that never expire and a higher version.
    text = open(rules_a).read()
    rules_b_text = text.replace("version = 1", "version = 2", 1)
    rules_b_text = rules_b_text.replace("months = 12", "months = 0", 1)
    assert rules_b_text != text
    rules_b = os.path.join(work, "rules-b.toml")
    open(rules_b, "w").write(rules_b_text)

    secrets = {}
    for t in ["T1", "T2"]:
        secrets[t] = os.path.join(work, f"{t}.secret")
        open(secrets[t], "w").write(f"golden-secret-of-{t}-0123456789\n")

    def terminal_config(t):
        path = os.path.join(work, f"{t}.toml")
        open(path, "w").write(
            f'terminal_id = "{t}"\ndata_dir = "{work}/{t.lower()}"\nrules = "{rules_a}"\n'
            f'clock = "trusted"\ncache_mib = 8\n'
            f'[api]\nlisten = "127.0.0.1:0"\ntoken_file = "{work}/pos.token"\n'
            f'[reader]\nspec = "none"\n[feedback]\nkind = "log"\n'
            f'[sync]\nupstream = ""\nsecret_file = "{secrets[t]}"\ninterval_secs = 1\n'
        )
        return path

    open(os.path.join(work, "pos.token"), "w").write("golden-pos-token-0123\n")
    t1, t2 = terminal_config("T1"), terminal_config("T2")

    def cli(cfg, args, rules=None, ok=True, stdin=None):
        extra = ["--rules", rules] if rules else []
        return run(["--config", cfg] + extra + args, ok=ok, stdin=stdin)

    # 0.2 and later: the records of members, staff and points outside a sale too.
    v02 = subprocess.run([BIN, "member", "find", "--help"], capture_output=True).returncode == 0

    # ---- T1 offline: every terminal record kind but the sync ones ----
    ann = cli(t1, ["member", "add", "--card", "04A1B2C3", "--name", "Ann", "--phone", "13800000001",
                   "--birthday", "03-14", "--pin", "1234"])
    bob = cli(t1, ["member", "add", "--card", "04B0B0B0", "--name", "鲍勃", "--phone", "13800000002"])
    cli(t1, ["member", "add", "--card", "04C0C0C0", "--name", "Cat", "--phone", "+86 138-0000-0003"])
    # Earn in 2024 (these lots expire 2025-04-01 and 2025-05-01).
    big = ["--line", "wine,alcohol,1,120000", "--line", "rice,grocery,2,3450"]
    c1 = cli(t1, ["checkout", "--card", "04A1B2C3", "--key", "g-1", "--at", "2024-03-15T10:00:00+08:00"] + big)
    cli(t1, ["checkout", "--card", "04A1B2C3", "--key", "g-2", "--at", "2024-04-20T10:00:00+08:00",
             "--line", "oil,grocery,3,5990", "--line", "cigarettes,tobacco,1,2500"])
    cli(t1, ["checkout", "--card", "04B0B0B0", "--at", "2024-04-21T18:30:00+08:00",
             "--line", "snack,grocery,4,1500"])
    # A wrong PIN (PinFail), then the right one with a redemption.
    cli(t1, ["checkout", "--card", "04A1B2C3", "--at", "2024-05-01T09:00:00+08:00",
             "--line", "wine,alcohol,1,60000", "--redeem", "1000", "--pin", "9999"], ok=False)
    c2 = cli(t1, ["checkout", "--card", "04A1B2C3", "--key", "g-3", "--at", "2024-05-01T09:05:00+08:00",
                  "--line", "wine,alcohol,1,60000", "--line", "snack,grocery,3,1500",
                  "--redeem", "1000", "--pin", "1234"])
    # A coupon, used in a sale.
    coupon = cli(t1, ["coupon", "issue", "--card", "04B0B0B0", "--type", "welcome5",
                      "--at", "2024-05-02T10:00:00+08:00"])
    cli(t1, ["checkout", "--card", "04B0B0B0", "--at", "2024-05-03T10:00:00+08:00",
             "--coupon", coupon["code"], "--line", "rice,grocery,2,3450"])
    # Refunds: part of the redeeming sale, then the rest; part of the first sale.
    cli(t1, ["refund", "--tx", c2["tx_id"], "--line", "snack,1", "--at", "2024-05-04T10:00:00+08:00"])
    cli(t1, ["refund", "--tx", c2["tx_id"], "--at", "2024-05-05T10:00:00+08:00"])
    cli(t1, ["refund", "--tx", c1["tx_id"], "--line", "rice,1", "--at", "2024-05-06T10:00:00+08:00"])
    # A reward.
    cli(t1, ["reward", "redeem", "--card", "04A1B2C3", "--sku", "mug", "--at", "2024-06-01T10:00:00+08:00"])
    # Cards: block one, replace another.
    cli(t1, ["card", "block", "--card", "04C0C0C0"])
    cli(t1, ["card", "replace", "--card", "04B0B0B0", "--new-card", "04B1B1B1"])
    # 2025-06: the 2024 lots have expired (Expire before the checkout); this lot expires
    # 2026-07-01, before SHOW_AT.
    cli(t1, ["checkout", "--card", "04A1B2C3", "--at", "2025-06-10T10:00:00+08:00",
             "--line", "oil,grocery,2,5990"])
    # Rules B from here: lots that never expire.
    cli(t1, ["checkout", "--card", "04A1B2C3", "--at", "2025-09-06T11:00:00+08:00",
             "--line", "wine,alcohol,1,30000"], rules=rules_b)
    cli(t1, ["checkout", "--card", "04B1B1B1", "--at", "2025-09-07T11:00:00+08:00",
             "--line", "rice,grocery,5,3450"], rules=rules_b)

    if v02:
        # Staff (StaffAdd, StaffChange), member fixes (MemberEdit, MemberStatus, PinSet,
        # CardUnblock), points outside a sale (PointsAdjust, Activity), a virtual card
        # (MemberAddV2 without a card), an import (ImportChunk, ImportCommit). The
        # phones were made canonical (PhonesCanonical) when 0.2 first opened the dir.
        cli(t1, ["staff", "add", "--id", "mia", "--name", "Mia", "--role", "manager", "--password-stdin"],
            stdin="mia-password-1\n")
        cli(t1, ["staff", "password", "--id", "mia", "--password-stdin"], stdin="mia-password-2\n")
        cli(t1, ["member", "edit", "--member", ann["member_id"], "--name", "Ann Lee", "--tag", "vip"])
        cli(t1, ["member", "status", "--member", bob["member_id"], "--status", "inactive"])
        cli(t1, ["member", "status", "--member", bob["member_id"], "--status", "active"])
        cli(t1, ["member", "pin", "--member", ann["member_id"], "--new-pin", "4321"])
        cli(t1, ["card", "unblock", "--card", "04C0C0C0"])
        cli(t1, ["points", "adjust", "--member", ann["member_id"], "--points", "25", "--reason", "goodwill"])
        act_rules = os.path.join(work, "rules-act.toml")
        open(act_rules, "w").write(text + '\n[[activities]]\nid = "checkin"\npoints = 10\nmax_per_day = 1\n')
        cli(t1, ["activity", "--member", ann["member_id"], "--activity", "checkin"], rules=act_rules)
        cli(t1, ["member", "add", "--name", "Vic", "--phone", "13800000007"])
        csv = os.path.join(work, "import.csv")
        open(csv, "w").write("card,name,phone,birthday,points,tier,tags\n"
                             "06A0A0A0,Ian,13800000008,07-01,300,,imported\n"
                             ",Ivy,13800000009,,0,,\n")
        cli(t1, ["member", "import", csv])
        # The same card enrolled at both shops while offline: a conflict on the hub.
        cli(t1, ["member", "add", "--card", "04F0F0F0", "--name", "Fay", "--phone", "13800000010"])

    # 0.2 campaigns: coupons issued by triggers and tier gifts, bought with points, group
    # buys (CheckoutV2, CouponIssueV2, GroupJoin, TriggerPass; HubPullV3 on the pull).
    camp = v02 and subprocess.run([BIN, "group", "join", "--help"], capture_output=True).returncode == 0
    if camp:
        rules_camp = os.path.join(work, "rules-camp.toml")
        camp_text = (text.replace("#gift_points = 100", "gift_points = 100", 1)
                     + '\n[[coupon_types]]\nid = "buy10"\noff_minor = 1000\nmin_minor = 0\nvalid_days = 30\n'
                     'exchange_points = 300\n'
                     '[[triggers]]\nid = "welcome"\non = "enrol"\ncoupon = "welcome5"\n'
                     '[[triggers]]\nid = "silver-up"\non = "tier_up"\ntier = "silver"\ncoupon = "welcome5"\n'
                     '[[triggers]]\nid = "bday"\non = "birthday"\ncoupon = "welcome5"\n'
                     '[[group_buys]]\nid = "hotpot2"\nsku = "hotpot-set"\ngroup_price_minor = 9900\nsize = 2\n'
                     'window_hours = 24\n')
        open(rules_camp, "w").write(camp_text)
        gus = cli(t1, ["member", "add", "--card", "07A0A0A0", "--name", "Gus", "--phone", "13800000011",
                       "--birthday", "10-01"], rules=rules_camp)
        g = cli(t1, ["group", "join", "--deal", "hotpot2", "--card", "07A0A0A0",
                     "--at", "2025-10-01T10:00:00+08:00"], rules=rules_camp)
        cli(t1, ["group", "join", "--deal", "hotpot2", "--card", "04A1B2C3", "--group", g["group_id"],
                 "--at", "2025-10-01T10:30:00+08:00"], rules=rules_camp)
        # The group unit, the silver gift and the tier_up trigger in one checkout.
        cli(t1, ["checkout", "--card", "07A0A0A0", "--key", "g-camp", "--at", "2025-10-01T11:00:00+08:00",
                 "--line", "hotpot-set,food,1,12800", "--line", "wine,alcohol,1,120000"], rules=rules_camp)
        cli(t1, ["coupon", "exchange", "--member", gus["member_id"], "--type", "buy10",
                 "--at", "2025-10-01T11:30:00+08:00"], rules=rules_camp)
        cli(t1, ["triggers", "run", "--at", "2025-10-01T12:00:00+08:00"], rules=rules_camp)

    # ---- T2 offline: members of its own ----
    if v02:
        cli(t2, ["member", "add", "--card", "04F0F0F0", "--name", "Fay T2", "--phone", "13900000010"])
    cli(t2, ["member", "add", "--card", "05D0D0D0", "--name", "Dan", "--phone", "13900000004"])
    cli(t2, ["member", "add", "--card", "05E0E0E0", "--name", "Eve", "--phone", "13900000005"])
    cli(t2, ["checkout", "--card", "05D0D0D0", "--at", "2025-09-08T11:00:00+08:00",
             "--line", "oil,grocery,1,5990"], rules=rules_b)

    # ---- the hub, and both terminals syncing through it ----
    hub_port = free_port()
    hub_cfg = os.path.join(work, "hub.toml")
    open(os.path.join(work, "hub.token"), "w").write(HUB_TOKEN + "\n")
    open(hub_cfg, "w").write(
        f'listen = "127.0.0.1:{hub_port}"\ndata_dir = "{work}/hub"\nrules = "{rules_a}"\n'
        f'token_file = "{work}/hub.token"\ncache_mib = 16\n'
        f'[[terminals]]\nid = "T1"\nsecret_file = "{secrets["T1"]}"\n'
        f'[[terminals]]\nid = "T2"\nsecret_file = "{secrets["T2"]}"\n'
    )
    hub_url = f"http://127.0.0.1:{hub_port}"
    logs = open(os.path.join(work, "daemons.log"), "w")
    hub = subprocess.Popen([BIN, "--config", hub_cfg, "hub", "serve"], stdout=logs, stderr=logs)
    wait_for("the hub", lambda: urllib.request.urlopen(hub_url + "/v1/health", timeout=1))
    # A published ruleset (RulesetPublish), which terminals pull.
    rules_c = rules_b_text.replace("version = 2", "version = 3", 1)
    http("POST", hub_url + "/v1/hub/rulesets", rules_c)

    def serve(cfg):
        return subprocess.Popen([BIN, "--config", cfg, "serve", "--upstream", hub_url], stdout=logs, stderr=logs)

    def synced(terminal, records):
        ts = http("GET", hub_url + "/v1/hub/terminals")
        return any(t["terminal_id"] == terminal and t["acked_seq"] >= records for t in ts)

    def last_seq(cfg):
        return run(["--config", cfg, "journal", "verify"])["records"]

    for cfg, t in [(t1, "T1"), (t2, "T2")]:
        n = last_seq(cfg)
        p = serve(cfg)
        wait_for(f"{t} pushed", lambda: synced(t, n))
        # Let it pull (members, the ruleset) and record the acknowledgement.
        time.sleep(3)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=20)
    if v02:
        # The operator merges the two enrolments of one card (ConflictResolve).
        conflicts = http("GET", hub_url + "/v1/hub/conflicts")["conflicts"]
        assert [c["id"] for c in conflicts] == ["card-04F0F0F0"], conflicts
        keep = conflicts[0]["members"][0]
        http("POST", hub_url + "/v1/hub/conflicts/card-04F0F0F0/resolve",
             json.dumps({"keep": keep, "merge": True}))
    # T1 once more: it pulls what T2 pushed.
    p = serve(t1)
    time.sleep(3)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=20)

    members = {}
    for m in [ann, bob]:
        members[m["member_id"]] = http("GET", hub_url + f"/v1/hub/members/{m['member_id']}")
    hub_view = {
        "terminals": sorted(http("GET", hub_url + "/v1/hub/terminals"), key=lambda t: t["terminal_id"]),
        "overspent": http("GET", hub_url + "/v1/hub/reports/overspent"),
        "members": members,
    }
    hub.send_signal(signal.SIGTERM)
    hub.wait(timeout=20)

    # ---- what the binary says of its terminals' journals ----
    expected = {"made_by": subprocess.run([BIN, "--version"], capture_output=True, text=True).stdout.strip(),
                "show_at": SHOW_AT, "hub": hub_view}
    t1_cards = ["04A1B2C3", "04B0B0B0", "04B1B1B1", "04C0C0C0"] + (["07A0A0A0"] if camp else [])
    for cfg, t, cards in [(t1, "t1", t1_cards),
                          (t2, "t2", ["05D0D0D0", "05E0E0E0"])]:
        shows = {c: cli(cfg, ["member", "show", "--card", c, "--at", SHOW_AT]) for c in cards}
        dates = ["2024-03-15", "2024-04-20", "2024-04-21", "2024-05-01", "2024-05-03", "2024-05-04",
                 "2024-05-05", "2024-05-06", "2024-06-01", "2025-06-10", "2025-09-06", "2025-09-07",
                 "2025-09-08", "2025-10-01"]
        daily = {d: cli(cfg, ["report", "daily", "--date", d]) for d in dates}
        expected[t] = {"members": shows, "daily": daily, "verify": cli(cfg, ["journal", "verify"])}

    os.makedirs(OUT, exist_ok=True)
    for d in ["t1", "t2", "hub"]:
        os.makedirs(os.path.join(OUT, d), exist_ok=True)
        copy_frames(os.path.join(work, d, "journal.log"), os.path.join(OUT, d, "journal.log"))
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False, sort_keys=True)
        f.write("\n")
    shutil.rmtree(work)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
