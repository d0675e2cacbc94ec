#!/usr/bin/env python3
"""Fuzzes the POS API of the real daemon with schemathesis, driven by GET /v1/openapi.json.

Starts `loyaltyd serve` on a fresh data dir (a loopback port of its own, the bearer token
from a file, the POS token acting as an owner so that every role's endpoints are
reached; the roles themselves are tests/members.rs'), with staff accounts, an
activity, a coupon type bought with points and a group buy, enrols members and makes sales so that cards, points, transactions and
coupons exist, gives schemathesis those values to draw from (so that requests reach the
business rules, not only the 400s), runs it with every check that applies plus
hooks.py's "a refusal changes no state", then prints what ran per operation and status.
Exit status 0 only when schemathesis passed, no refusal changed state and the daemon
logged no panic.

    python3 tests/api_fuzz/run.py --bin target/debug/loyaltyd --st .venv/bin/st
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

# Active cards of seeded members (PIN 1234 on the first two), a blocked one, unknown ones.
MEMBERS = [
    ("04A1B2C3", "13800000001", "1234"),
    ("04A1B2C4", "13800000002", "1234"),
    ("04A1B2C5", "13800000003", None),
    ("04A1B2C6", "13800000004", None),
]
BLOCKED = ("04B10C4E", "13800000005")
# Members whose cards block and replace may take away; the others keep theirs, so
# that sales, coupons and rewards go on reaching the rules.
SPARE = [("06000001", "13900000001"), ("06000002", "13900000002"), ("06000003", "13900000003")]
UNKNOWN = ["FFFF0000", "0A0A0A0A"]
# Staff accounts made offline before the start: (id, role, password). The staff
# endpoints draw their ids from these; approvals come from APPROVER, whom no staff
# endpoint is pointed at, so that most approvals stay right.
STAFF = [("olu", "owner", "olu-secret-1"), ("mia", "manager", "mia-secret-1"), ("cai", "cashier", "cai-secret-1")]
APPROVER = ("apv", "owner", "apv-secret-1")
# Beside the shipped ruleset: an activity, a coupon type bought with points, a group buy.
CAMPAIGNS = """
[[activities]]
id = "checkin"
points = 10
max_per_day = 3

[[coupon_types]]
id = "swap"
off_minor = 300
min_minor = 0
valid_days = 30
exchange_points = 100

[[group_buys]]
id = "hotpot2"
sku = "hotpot-set"
group_price_minor = 9900
size = 2
window_hours = 24
"""

# Cards and phones nobody has yet: enrolments and replacements take them.
FREE = [f"0500{i:04d}" for i in range(1, 21)]
FREE_PHONES = [f"1370000{i:04d}" for i in range(1, 21)]

# Checks schemathesis leaves out here, and why:
# - positive_data_acceptance wants 2xx for every schema-valid request; this API refuses
#   well-formed requests on business grounds (422, 404, 409) and on limits no schema
#   can state (a sale's subtotal cap, a refund line the sale does not have: 400).
# - object_level_authorization needs two identities; the POS API has one token.
# negative_data_rejection also takes 413 as a refusal: an oversized body is one.
EXCLUDED_CHECKS = ["positive_data_acceptance", "object_level_authorization"]
# The event stream never ends: its head is checked by tests/openapi.rs, its events by
# tests/api.rs.
EXCLUDED_PATHS = ["/v1/events"]


def request(url, token, method, path, body=None, key=None):
    headers = {"Authorization": f"Bearer {token}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if key:
        headers["Idempotency-Key"] = key
    req = urllib.request.Request(url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def must(url, token, method, path, body=None, key=None, status=200):
    got, answer = request(url, token, method, path, body, key)
    if got != status:
        sys.exit(f"seeding: {method} {path} {body}: wanted {status}, got {got} {answer}")
    return answer


def start_daemon(binary, work, token):
    token_file = work / "token"
    token_file.write_text(token + "\n")
    rules = work / "rules.toml"
    rules.write_text((REPO / "config/rules.toml").read_text() + CAMPAIGNS)
    config = work / "loyaltyd.toml"
    text = (REPO / "config/loyaltyd.toml").read_text()
    text, n = re.subn(r'(?m)^pos_role = .*$', 'pos_role = "owner"', text)
    if n == 0:
        text = text.replace("[api]\n", '[api]\npos_role = "owner"\n', 1)
    config.write_text(text)
    common = [str(binary), "--config", str(config), "--data-dir", str(work / "data"), "--rules", str(rules)]
    for staff_id, role, password in STAFF + [APPROVER]:
        subprocess.run(common + ["staff", "add", "--id", staff_id, "--name", staff_id.title(), "--role", role,
                                 "--password-stdin"], cwd=REPO, input=password + "\n", text=True,
                       check=True, stdout=subprocess.DEVNULL)
    args = common + [
        "serve",
        "--listen", "127.0.0.1:0",
        "--token-file", str(token_file),
        "--reader", "none",
        # A closed loopback port: the terminal never reaches a hub someone runs here.
        "--upstream", "http://127.0.0.1:9",
    ]
    log = open(work / "daemon.log", "w")
    env = dict(os.environ, LOYALTYD_LOG="info")
    # The config names files relative to the repository (the terminal secret).
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    found = threading.Event()
    url = []

    def pump():
        for line in proc.stderr:
            log.write(line)
            log.flush()
            if not found.is_set() and "listening on " in line:
                url.append(line.split("listening on ", 1)[1].split()[0])
                found.set()
        found.set()

    threading.Thread(target=pump, daemon=True).start()
    if not found.wait(30) or not url:
        proc.kill()
        sys.exit("the daemon did not start:\n" + (work / "daemon.log").read_text())
    return proc, url[0]


def seed(url, token):
    """Members with points, a blocked card, sales to refund, coupons to use."""
    for i, (card, phone, pin) in enumerate(MEMBERS):
        body = {"card": card, "name": f"Member {i}", "phone": phone}
        if pin:
            body["pin"] = pin
        must(url, token, "POST", "/v1/members", body, status=201)
    must(url, token, "POST", "/v1/members",
         {"card": BLOCKED[0], "name": "Blocked", "phone": BLOCKED[1]}, status=201)
    must(url, token, "POST", f"/v1/cards/{BLOCKED[0]}/block")
    for i, (card, phone) in enumerate(SPARE):
        must(url, token, "POST", "/v1/members", {"card": card, "name": f"Spare {i}", "phone": phone}, status=201)
    tx_ids = []
    for i, (card, _, _) in enumerate(MEMBERS):
        for j, (sku, category, qty, price) in enumerate(
                [("wine", "alcohol", 1, 90000), ("rice", "grocery", 2, 3450), ("oil", "grocery", 3, 5990)]):
            sale = {"card": card, "lines": [{"sku": sku, "category": category, "qty": qty, "unit_price": price}]}
            tx_ids.append(must(url, token, "POST", "/v1/checkout/commit", sale, key=f"seed-{i}-{j}")["tx_id"])
    # Points enough for rewards and PIN-guarded redemptions, from a sale no refund draws.
    big = {"card": MEMBERS[0][0], "lines": [{"sku": "tv", "category": "electronics", "qty": 1, "unit_price": 900000}]}
    must(url, token, "POST", "/v1/checkout/commit", big, key="seed-big")
    coupons = [must(url, token, "POST", "/v1/coupons", {"card": card, "type": "welcome5"})["code"]
               for card, _, _ in MEMBERS[:2]]
    member_ids = [must(url, token, "GET", f"/v1/cards/{card}")["member_id"] for card, _, _ in MEMBERS]
    member_ids += [must(url, token, "GET", f"/v1/cards/{card}")["member_id"] for card, _ in SPARE]
    return tx_ids, coupons, member_ids


def config(token_env, tx_ids, coupons, member_ids, max_examples, seed_value):
    """schemathesis.toml: auth, checks, and the values requests draw from."""
    cards = [m[0] for m in MEMBERS] + [BLOCKED[0]] + UNKNOWN + ["04:a1:b2:c3", "04-a1-b2-c4"]
    dictionaries = {
        "cards": cards,
        "new_cards": FREE + cards[:2],
        "spare_cards": [c for c, _ in SPARE] + UNKNOWN + ["06:00:00:01"],
        "phones": FREE_PHONES + [MEMBERS[0][1], "+86 139-0000-0009"],
        "names": ["Ann", "王小明", " Bob ", "x" * 100],
        "birthdays": ["03-14", "02-29", "12-31", "02-30"],
        "reward_skus": ["mug", "nope"],
        "tx_ids": tx_ids + ["T1-00000000-0000000999"],
        "coupons": coupons + ["NOPE"],
        "coupon_types": ["welcome5", "swap", "nope"],
        "deals": ["hotpot2", "nope"],
        "skus": ["wine", "rice", "oil", "mug", "cigarettes"],
        "categories": ["alcohol", "grocery", "tobacco"],
        "qtys": [1, 2, 3],
        "prices": [0, 100, 3450, 90000],
        "points": [0, 100, 500, 1000, 5000],
        "pins": ["1234", "0000"],
        "keys": ["fuzz-key-1", "fuzz-key-2", "fuzz-key-3"],
        "dates": ["2026-12-01", "2026-02-29", "2024-02-29"],
        "member_ids": member_ids + ["m-0000000000000000"],
        "spare_member_ids": member_ids[len(MEMBERS):] + ["m-0000000000000000"],
        "staff_ids": [s[0] for s in STAFF] + ["nobody"],
        "passwords": [s[2] for s in STAFF] + ["wrong-password"],
        "approvers": [APPROVER[0]],
        "approver_passwords": [APPROVER[2]],
        "activities": ["checkin", "nope"],
        "searches": ["Member", "mem", "0001", "04A1", "王"],
        "reasons": ["goodwill", "typo fix"],
        "adjust_points": [100, -50, 5000],
        "statuses": ["active", "inactive"],
        "roles": ["cashier", "manager", "owner"],
    }
    bindings = {
        "path.card": ("cards", 0.8),
        "body.card": ("cards", 0.8),
        "body.new_card": ("new_cards", 0.7),
        "body.tx_id": ("tx_ids", 0.8),
        "body.lines[*].sku": ("skus", 0.8),
        "body.lines[*].category": ("categories", 0.8),
        "body.lines[*].qty": ("qtys", 0.7),
        "body.lines[*].unit_price": ("prices", 0.7),
        "body.redeem_points": ("points", 0.6),
        "body.sku": ("skus", 0.7),
        "body.coupon": ("coupons", 0.6),
        "body.type": ("coupon_types", 0.8),
        "body.pin": ("pins", 0.6),
        "header.Idempotency-Key": ("keys", 0.15),
        "query.date": ("dates", 0.5),
        "path.id": ("member_ids", 0.8),
        "path.tx_id": ("tx_ids", 0.8),
        "path.deal": ("deals", 0.8),
        "body.activity": ("activities", 0.8),
        "body.phone": ("phones", 0.6),
        "body.name": ("names", 0.5),
        "body.birthday": ("birthdays", 0.5),
        "body.reason": ("reasons", 0.6),
        "body.points": ("adjust_points", 0.7),
        "body.old_pin": ("pins", 0.7),
        "body.new_pin": ("pins", 0.7),
        "body.staff_id": ("staff_ids", 0.7),
        "body.password": ("passwords", 0.7),
        "body.approval.staff_id": ("approvers", 0.95),
        "body.approval.password": ("approver_passwords", 0.95),
        "body.role": ("roles", 0.8),
        "query.q": ("searches", 0.7),
        "query.phone": ("phones", 0.7),
    }
    # Per operation, over the bindings above.
    operations = {
        "/v1/members": {
            "body.card": ("new_cards", 0.8),
            "body.phone": ("phones", 0.8),
            "body.name": ("names", 0.6),
            "body.birthday": ("birthdays", 0.6),
        },
        "/v1/cards/{card}/block": {"path.card": ("spare_cards", 0.9)},
        "/v1/cards/{card}/replace": {"path.card": ("spare_cards", 0.9), "body.new_card": ("new_cards", 0.8)},
        "/v1/rewards/redeem": {"body.sku": ("reward_skus", 0.8)},
        # Status changes and edits go to the spare members, so that sales keep reaching
        # the rules.
        "/v1/members/{id}/status": {"path.id": ("spare_member_ids", 0.9), "body.status": ("statuses", 0.8)},
        "/v1/members/{id}": {"path.id": ("spare_member_ids", 0.9)},
        "/v1/staff/{id}/disable": {"path.id": ("staff_ids", 0.8)},
        "/v1/staff/{id}/password": {"path.id": ("staff_ids", 0.8)},
        "/v1/checkout/commit": {},
    }
    # Operations that need more cases than the rest to reach their rules: a sale goes
    # through only with an active card, no or a right coupon and PIN, and points it may
    # redeem, each drawn on its own.
    more_cases = {"/v1/checkout/commit": 3}
    out = [
        f"seed = {seed_value}" if seed_value is not None else "",
        "workers = 1",
        f'hooks = "{HERE / "hooks.py"}"',
        "",
        "[auth.openapi.bearer]",
        f'bearer = "${{{token_env}}}"',
        "",
        "[generation]",
        f"max-examples = {max_examples}",
        "",
    ]
    for name, values in dictionaries.items():
        out += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    binding = lambda key, name, p: f'"{key}" = {{ dictionary = "{name}", probability = {p} }}'
    out.append("[parameters]")
    out += [binding(key, name, p) for key, (name, p) in bindings.items()]
    out += ["", "[checks.negative_data_rejection]",
            'expected-statuses = ["400", "401", "403", "404", "405", "409", "413", "422", "423"]', ""]
    for path, own in operations.items():
        out += ["[[operations]]", f'include-path = "{path}"', "[operations.parameters]"]
        out += [binding(key, name, p) for key, (name, p) in {**bindings, **own}.items()]
        if path in more_cases:
            out += ["[operations.generation]", f"max-examples = {max_examples * more_cases[path]}"]
        out.append("")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(REPO / "target/debug/loyaltyd"), help="the loyaltyd binary")
    ap.add_argument("--st", default="st", help="the schemathesis command")
    ap.add_argument("--max-examples", type=int, default=40, help="test cases per operation and phase")
    ap.add_argument("--seed", type=int, help="schemathesis seed (default: random, printed)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (data, log, config, report)")
    ap.add_argument("--verbose", action="store_true", help="show sample messages of each refusal")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="loyaltyd-api-fuzz-"))
    token = "fuzz-" + os.urandom(12).hex()
    proc, url = start_daemon(Path(args.bin).resolve(), work, token)
    started = time.monotonic()
    try:
        tx_ids, coupons, member_ids = seed(url, token)
        seeded = must(url, token, "GET", "/v1/health")["journal_records"]
        print(f"daemon at {url}; seeded {len(MEMBERS) + 1 + len(SPARE)} members, {len(tx_ids) + 1} sales, "
              f"{len(coupons)} coupons ({seeded} journal records)", flush=True)
        cfg = work / "schemathesis.toml"
        cfg.write_text(config("LOYALTYD_FUZZ_TOKEN", tx_ids, coupons, member_ids, args.max_examples, args.seed))
        summary = work / "summary.json"
        env = dict(os.environ, LOYALTYD_FUZZ_TOKEN=token, LOYALTYD_FUZZ_URL=url,
                   LOYALTYD_FUZZ_SUMMARY=str(summary), LOYALTYD_FUZZ_APPROVER=f"{APPROVER[0]}:{APPROVER[2]}")
        cmd = [args.st, "--config-file", str(cfg), "run", f"{url}/v1/openapi.json",
               "--checks", "all", "--exclude-checks", ",".join(EXCLUDED_CHECKS),
               "--output-sanitize", "false", "--output-truncate", "true",
               "--report", "junit", "--report-dir", str(work / "report")]
        for path in EXCLUDED_PATHS:
            cmd += ["--exclude-path", path]
        st = subprocess.run(cmd, cwd=work, env=env)
        ok = st.returncode == 0
        report = json.loads(summary.read_text()) if summary.exists() else {"statuses": {}, "violations": []}
        print("\nAnswers per operation (status, code):")
        for what, n in sorted(report["statuses"].items()):
            print(f"  {n:6d}  {what}")
            if args.verbose:
                for m in report.get("messages", {}).get(what, []):
                    print(f"            e.g. {m}")
        print(f"  {sum(report['statuses'].values()):6d}  calls in all")
        if report["violations"]:
            ok = False
            print("\nRefusals that changed state:")
            for v in sorted(set(report["violations"])):
                print(f"  {v}")
        if not summary.exists():
            ok = False
            print("no summary from the hooks: did they load?")
        panics = [l for l in (work / "daemon.log").read_text().splitlines() if "panicked" in l]
        if panics:
            ok = False
            print("\nThe daemon panicked:\n  " + "\n  ".join(panics))
        kept = f"; kept {work}" if args.keep else ""
        print(f"\napi fuzz: {'passed' if ok else 'FAILED'} in {time.monotonic() - started:.0f} s "
              f"(schemathesis exit {st.returncode}){kept}")
        return 0 if ok else 1
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
