#!/usr/bin/env python3
"""The console in a real browser: Playwright driving Debian's Chromium, headless, against
the real daemons (a hub, and a terminal syncing to it every second).

Logs in with the keyboard, finds a member by phone, edits the phone, reads the dashboard
and checks every figure on the page against GET /v1/reports/summary, downloads the
summary CSV and compares it with the API's, adjusts points as a cashier with a manager's
approval on the form, is refused a manager page as a cashier, posts a form whose CSRF
token was taken out (refused, nothing changed), publishes a ruleset on the hub's console
and sees the terminal's console show it after a sync. Writes screenshots of the dashboard
and a member page to docs/screenshots/.

    python3 tests/console_e2e/run.py --bin target/debug/loyaltyd [--keep] [--chromium PATH]

Exit status 0 only when every check passed and no daemon logged a panic.
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

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parents[2]
TOKEN = "e2e-pos-token-0123456789"
HUB_TOKEN = "e2e-hub-operator-token-0123"
SECRET = "e2e-secret-of-T1-0123456789abcdef"
STAFF = [("olu", "owner", "olu-secret-1"), ("mia", "manager", "mia-secret-1"), ("cai", "cashier", "cai-secret-1")]
MEMBERS = [("04A1B2C3", "王小明", "13800000001"), ("04A1B2C4", "Li Lei", "13800000002"), ("04A1B2C5", "Han Meimei", "13800000003")]
NEW_PHONE = "13900000009"
DEADLINE_S = 30


def request(url, method, path, token=None, body=None, key=None, raw=False):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url + path, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if key:
        req.add_header("Idempotency-Key", key)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            text = r.read().decode()
            return r.status, (text if raw else json.loads(text or "null"))
    except urllib.error.HTTPError as e:
        text = e.read().decode()
        return e.code, (text if raw else json.loads(text or "null"))


def must(url, method, path, token=None, body=None, key=None, status=200, raw=False):
    got, answer = request(url, method, path, token, body, key, raw)
    if got != status:
        sys.exit(f"{method} {path}: {got} {answer}, wanted {status}")
    return answer


class Proc:
    """A daemon with its log pumped into a list; the URL read from the line with `marker`."""

    def __init__(self, name, args, marker):
        self.name, self.lines = name, []
        env = dict(os.environ, LOYALTYD_LOG="info")
        self.proc = subprocess.Popen(args, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        found = threading.Event()
        self.url = None

        def pump():
            for line in self.proc.stderr:
                self.lines.append(line.rstrip())
                m = re.search(re.escape(marker) + r"(https?://[0-9.:]+)", line)
                if m and not self.url:
                    self.url = m.group(1)
                    found.set()
        threading.Thread(target=pump, daemon=True).start()
        if not found.wait(30):
            self.stop()
            sys.exit(f"{name} did not start:\n" + "\n".join(self.lines))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def panicked(self):
        return [l for l in self.lines if "panicked" in l]


def start(binary, work):
    rules = work / "rules.toml"
    shutil.copy(REPO / "config/rules.toml", rules)
    (work / "pos.token").write_text(TOKEN + "\n")
    (work / "hub.token").write_text(HUB_TOKEN + "\n")
    (work / "T1.secret").write_text(SECRET + "\n")
    (work / "hub.toml").write_text(
        f'listen = "127.0.0.1:0"\ndata_dir = "{work / "hub"}"\nrules = "{rules}"\n'
        f'token_file = "{work / "hub.token"}"\ncache_mib = 16\n'
        f'[[terminals]]\nid = "T1"\nsecret_file = "{work / "T1.secret"}"\n')
    hub = Proc("hub", [binary, "--config", str(work / "hub.toml"), "hub", "serve"], "hub listening on ")
    common = [binary, "--config", str(REPO / "config/loyaltyd.toml"), "--data-dir", str(work / "data"),
              "--rules", str(rules)]
    for staff_id, role, password in STAFF:
        subprocess.run(common + ["staff", "add", "--id", staff_id, "--name", staff_id.title(), "--role", role,
                                 "--password-stdin"], input=password + "\n", text=True, check=True,
                       stdout=subprocess.DEVNULL)
    term = Proc("terminal", common + ["serve", "--listen", "127.0.0.1:0", "--token-file", str(work / "pos.token"),
                                      "--reader", "none", "--upstream", hub.url, "--upstream-secret-file",
                                      str(work / "T1.secret"), "--sync-interval", "1"], "listening on ")
    return hub, term


def seed(url):
    ids = []
    for card, name, phone in MEMBERS:
        ids.append(must(url, "POST", "/v1/members", TOKEN, {"card": card, "name": name, "phone": phone},
                        status=201)["member_id"])
    total = 0
    for i, (card, price) in enumerate([("04A1B2C3", 2500), ("04A1B2C4", 11800), ("04A1B2C3", 4300),
                                       ("04A1B2C5", 990)]):
        total += must(url, "POST", "/v1/checkout/commit", TOKEN,
             {"card": card, "lines": [{"sku": "rice", "category": "grocery", "qty": 1, "unit_price": price}]},
             key=f"e2e-sale-{i}")["total"]
    return ids, total


def session_token(url, staff_id, password):
    return must(url, "POST", "/v1/sessions", body={"staff_id": staff_id, "password": password})["token"]


class Checks:
    def __init__(self):
        self.passed = []

    def ok(self, cond, what):
        if not cond:
            raise AssertionError(what)
        self.passed.append(what)
        print(f"  ok  {what}", flush=True)


def login(page, base, staff_id, password):
    """Logs in with the keyboard: into the staff id field, Tab to the password, Enter."""
    page.goto(base + "/console/login")
    page.focus("#staff_id")
    page.keyboard.type(staff_id)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda u: "/console/login" not in u, timeout=10_000)


def figures(page):
    return {el.get_attribute("data-figure"): int(el.get_attribute("data-value"))
            for el in page.query_selector_all("[data-figure]")}


def run(args):
    work = Path(tempfile.mkdtemp(prefix="console-e2e-"))
    shots = REPO / "docs/screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    hub, term = start(args.bin, work)
    c = Checks()
    try:
        ids, sales = seed(term.url)
        mia = session_token(term.url, "mia", "mia-secret-1")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, headless=True,
                                        args=["--no-sandbox", "--disable-gpu"])
            ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True,
                                      locale="zh-CN")
            page = ctx.new_page()

            # A manager logs in with the keyboard and lands on the dashboard.
            login(page, term.url, "mia", "mia-secret-1")
            c.ok(page.url.endswith("/console/"), "a manager's login lands on the dashboard")
            cookie = next(k for k in ctx.cookies() if k["name"] == "loyaltyd_console")
            c.ok(cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console",
                 "the session cookie is HttpOnly, SameSite=Strict, Path=/console")

            # The dashboard's figures equal the JSON report's for the same window.
            frm = page.input_value("#from")
            to = page.input_value("#to")
            shown = figures(page)
            summary = must(term.url, "GET", f"/v1/reports/summary?from={frm}&to={to}", mia)
            for name, value in shown.items():
                want = summary["tier_mix"].get(name[len("tier_mix."):]) if name.startswith("tier_mix.") \
                    else summary[name]
                c.ok(value == want, f"dashboard {name} = {value} = the report's")
            c.ok(shown["transactions"] == 4 and shown["sales"] == sales,
                 "the dashboard counts the four sales")
            c.ok(len(page.query_selector_all("figure svg")) == 5, "five SVG charts")
            page.screenshot(path=str(shots / "dashboard.png"), full_page=True)

            # Find a member by phone, edit the phone.
            page.click("text=会员")
            page.fill("#q", "138 0000 0002")
            page.keyboard.press("Enter")
            page.wait_for_load_state()
            page.click("#results a")
            page.wait_for_load_state()
            c.ok(page.text_content("#member-name") == "Li Lei", "found Li Lei by phone")
            page.fill("#phone", NEW_PHONE)
            page.click("#edit-form button[type=submit]")
            page.wait_for_load_state()
            c.ok("资料已保存" in page.text_content("#notice"), "the edit is confirmed on the page")
            c.ok(page.text_content("#member-phone") == "+86" + NEW_PHONE, "the new phone is shown")
            api_member = must(term.url, "GET", f"/v1/members/{ids[1]}", TOKEN)
            c.ok(api_member["phone"] == "+86" + NEW_PHONE, "the API has the new phone")
            page.screenshot(path=str(shots / "member.png"), full_page=True)

            # Download the summary CSV: the API's CSV, byte for byte.
            page.goto(term.url + "/console/reports")
            with page.expect_download() as dl:
                page.click("#summary-csv")
            got = Path(dl.value.path()).read_text()
            rfrom, rto = page.input_value("#from"), page.input_value("#to")
            want = must(term.url, "GET", f"/v1/reports/summary?from={rfrom}&to={rto}&format=csv", mia, raw=True)
            c.ok(got == want, "the downloaded CSV is the API's")
            # The campaigns report: the table holds the API's rows, the CSV is the API's.
            api_campaigns = must(term.url, "GET", f"/v1/reports/campaigns?from={rfrom}&to={rto}", mia)["campaigns"]
            rows = page.query_selector_all("#campaigns tbody tr")
            c.ok([r.get_attribute("data-campaign") for r in rows]
                 == [f"{x['kind']}:{x['id']}" for x in api_campaigns],
                 f"the campaigns table lists the API's {len(api_campaigns)} campaign(s)")
            with page.expect_download() as dl:
                page.click("#campaigns-csv")
            got = Path(dl.value.path()).read_text()
            want = must(term.url, "GET", f"/v1/reports/campaigns?from={rfrom}&to={rto}&format=csv", mia, raw=True)
            c.ok(got == want, "the campaigns CSV is the API's")

            # A cashier: adjust points with a manager's approval on the form.
            cctx = browser.new_context(locale="en-US")
            cpage = cctx.new_page()
            login(cpage, term.url, "cai", "cai-secret-1")
            c.ok(cpage.url.endswith("/console/members"), "a cashier lands on members")
            c.ok("Members" in cpage.text_content("h1"), "English from the browser's preference")
            before = must(term.url, "GET", f"/v1/members/{ids[0]}", TOKEN)["balance"]
            cpage.goto(term.url + f"/console/members/{ids[0]}")
            form = "#points-form"
            cpage.fill(f"{form} #points", "120")
            cpage.fill(f"{form} #reason", "e2e goodwill")
            cpage.fill(f"{form} input[name=approval_staff_id]", "mia")
            cpage.fill(f"{form} input[name=approval_password]", "mia-secret-1")
            cpage.click(f"{form} button[type=submit]")
            cpage.wait_for_load_state()
            after = must(term.url, "GET", f"/v1/members/{ids[0]}", TOKEN)["balance"]
            c.ok(after == before + 120, "the cashier's adjustment with approval is booked")
            entry = must(term.url, "GET", f"/v1/members/{ids[0]}/points", TOKEN)["entries"][0]
            c.ok(entry["by"] == "mia" and entry["points"] == 120, "the ledger names the approving manager")
            c.ok(cpage.text_content("#member-balance") == str(after), "the page shows the new balance")

            # A cashier is refused a manager page.
            resp = cpage.goto(term.url + "/console/reports")
            c.ok(resp.status == 403 and "Not allowed" in cpage.text_content("#error"),
                 "a cashier is refused the reports (403)")

            # A form whose CSRF token was taken out is refused and changes nothing.
            cpage.goto(term.url + f"/console/members/{ids[0]}")
            cpage.eval_on_selector(f"{form} input[name=csrf]", "e => e.remove()")
            cpage.fill(f"{form} #points", "5")
            cpage.fill(f"{form} #reason", "no token")
            cpage.fill(f"{form} input[name=approval_staff_id]", "mia")
            cpage.fill(f"{form} input[name=approval_password]", "mia-secret-1")
            with cpage.expect_response(lambda r: r.request.method == "POST") as posted:
                cpage.click(f"{form} button[type=submit]")
            c.ok(posted.value.status == 403, "a form without its CSRF token is refused (403)")
            c.ok(must(term.url, "GET", f"/v1/members/{ids[0]}", TOKEN)["balance"] == after, "and changed nothing")

            # The hub: publish a ruleset; the terminal's console shows it after a sync.
            hctx = browser.new_context(locale="en-US")
            hpage = hctx.new_page()
            login(hpage, hub.url, "operator", HUB_TOKEN)
            hpage.goto(hub.url + "/console/campaigns")
            text = (REPO / "config/rules.toml").read_text()
            version = int(re.search(r"^version = (\d+)", text, re.M).group(1)) + 1
            new_rules = re.sub(r"^version = \d+", f"version = {version}", text, count=1, flags=re.M) + \
                '\n[[activities]]\nid = "e2e_checkin"\npoints = 10\nmax_per_day = 1\n'
            hpage.fill("#ruleset", "version = 0\n" + new_rules.split("\n", 1)[1])
            hpage.click("#publish-form button[type=submit]")
            hpage.wait_for_load_state()
            c.ok("version" in hpage.text_content("#notice"),
                 "a bad ruleset is refused with the validation's message")
            hpage.fill("#ruleset", new_rules)
            hpage.click("#publish-form button[type=submit]")
            hpage.wait_for_load_state()
            c.ok(f"Published ruleset version {version}" in hpage.text_content("#notice"), "the hub publishes it")
            deadline = time.time() + DEADLINE_S
            seen = False
            while time.time() < deadline:
                page.goto(term.url + "/console/campaigns")
                if page.text_content("#ruleset-version") == str(version) and "e2e_checkin" in page.content():
                    seen = True
                    break
                time.sleep(0.5)
            c.ok(seen, f"the terminal's console shows version {version} with its new activity after a sync")
            browser.close()
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        return 1
    finally:
        term.stop()
        hub.stop()
        for d in (term, hub):
            for line in d.panicked():
                print(f"{d.name}: {line}", file=sys.stderr)
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if term.panicked() or hub.panicked():
        return 1
    print(f"console e2e: {len(c.passed)} checks passed; screenshots in {shots.relative_to(REPO)}/")
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--keep", action="store_true")
    sys.exit(run(ap.parse_args()))
