"""Schemathesis hooks for the POS API fuzz run (loaded by run.py).

The custom check: a refusal (4xx) changes no state. `GET /v1/health`'s
`journal_records` is read before and after every call; the journal is the source of
truth, so a refusal that appended a record changed state. The one designed exception
is a wrong PIN (422 `pin_invalid`), which appends one PinFail record so that it counts
towards the lock. Runs with one worker: a count is only meaningful between two calls
of the same thread.

Approvals: run.py makes one staff account for them (LOYALTYD_FUZZ_APPROVER, `id:password`).
Five wrong passwords in a row would lock it for 15 minutes, and every approval after
that would be refused, so a string password given with that id is made the right one
before the call (a string password is as valid to the schema as any other: the case
stays what it was generated as), and the staff endpoints are pointed away from that
account (a stateful run would otherwise disable it or change its password). Of the
schema-valid cases, 7 approvals in 8 that name another id are made the approver's too:
made-up ids are refused (401), and after 5 of one id (hypothesis likes "0") locked
(423), so that most requests with an approval would otherwise never reach the rules;
the eighth goes as generated, and so does every approval of a schema-violating case.
"""

import atexit
import http.client
import json
import os
import urllib.parse
from collections import Counter

import schemathesis

_URL = urllib.parse.urlsplit(os.environ["LOYALTYD_FUZZ_URL"])
_APPROVER_ID, _APPROVER_PASSWORD = os.environ["LOYALTYD_FUZZ_APPROVER"].split(":", 1)
_SUMMARY = os.environ["LOYALTYD_FUZZ_SUMMARY"]

# Records a refusal with this code may append.
ALLOWED_RECORDS = {"pin_invalid": 1}

_conn = None
# Case id -> (status, error code, records before, records after).
_seen = {}
_statuses = Counter()
# (operation, status, code) -> a few distinct messages, to see what refused.
_messages = {}
_violations = []


def journal_records():
    """The journal's record count, over a kept-alive connection (reopened if it dropped)."""
    global _conn
    for _ in range(2):
        try:
            if _conn is None:
                _conn = http.client.HTTPConnection(_URL.hostname, _URL.port, timeout=10)
            _conn.request("GET", "/v1/health")
            resp = _conn.getresponse()
            return json.loads(resp.read())["journal_records"]
        except (OSError, http.client.HTTPException):
            _conn = None
    raise RuntimeError("GET /v1/health failed twice")


def _error(response):
    try:
        e = json.loads(response.content)["error"]
        return e["code"], e["message"]
    except (ValueError, KeyError, TypeError):
        return None, None


_approvals_seen = 0


def _approver_kept_unlocked(case):
    global _approvals_seen
    body = case.body
    approval = body.get("approval") if isinstance(body, dict) else None
    if not isinstance(approval, dict):
        return
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if positive and approval.get("staff_id") != _APPROVER_ID:
        _approvals_seen += 1
        if _approvals_seen % 8:
            approval["staff_id"] = _APPROVER_ID
    if approval.get("staff_id") == _APPROVER_ID and isinstance(approval.get("password"), str):
        approval["password"] = _APPROVER_PASSWORD


def _approver_left_alone(case):
    params = case.path_parameters
    if case.operation.path.startswith("/v1/staff/") and params and params.get("id") == _APPROVER_ID:
        params["id"] = "nobody"


@schemathesis.hook
def filter_case(ctx, case):
    """Drops a case whose only claim to break the schema is a dictionary entry.

    schemathesis 4.32 classifies dictionary entries against the schema it mutated for a
    negative case, so a valid entry ("Ann" for a name) can overwrite the one mutation and
    the case is still sent as schema-violating: a 2xx answer is then reported as a
    rejected-invalid-data failure that is not one (seen on POST /v1/staff). Every entry
    in run.py's dictionaries is schema-valid by design, so nothing real is lost.
    """
    meta = case.meta
    if meta is None or not meta.generation.mode.is_negative:
        return True
    description = getattr(meta.phase.data, "description", None) or ""
    return not description.startswith("Dictionary `")


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    _approver_kept_unlocked(case)
    _approver_left_alone(case)
    _seen[case.id] = (None, None, journal_records(), None)


@schemathesis.hook
def after_call(ctx, case, response):
    _, _, before, _ = _seen.get(case.id, (None, None, None, None))
    if before is None:
        return
    after = journal_records()
    status = response.status_code
    code, message = _error(response) if status >= 400 else (None, None)
    _seen[case.id] = (status, code, before, after)
    what = f"{case.operation.label} {status}{' ' + code if code else ''}"
    _statuses[what] += 1
    kept = _messages.setdefault(what, [])
    if message and len(kept) < 3 and message[:80] not in kept:
        kept.append(message[:80])
    problem = _problem(status, code, after - before)
    if problem:
        # Calls made inside other checks have no check of this one: kept for the summary.
        _violations.append(f"{case.operation.label}: {problem}")


def _problem(status, code, appended):
    if not 400 <= status < 500:
        return None
    allowed = ALLOWED_RECORDS.get(code, 0)
    if 0 <= appended <= allowed:
        return None
    return f"refused {status} {code} but the journal grew by {appended} record(s) (at most {allowed} allowed)"


@schemathesis.check
def refusal_changes_no_state(ctx, response, case):
    status, code, before, after = _seen.get(case.id, (None, None, None, None))
    if status is None or status != response.status_code:
        return None
    problem = _problem(status, code, after - before)
    if problem:
        raise AssertionError(problem)
    return None


@atexit.register
def _write_summary():
    with open(_SUMMARY, "w") as f:
        json.dump({"statuses": dict(_statuses), "messages": _messages, "violations": _violations}, f, indent=1)
