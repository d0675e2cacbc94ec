#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target from the repository's own fixtures.

Run from anywhere: `python3 fuzz/make_seeds.py`. It (re)writes files named `seed-*`
under fuzz/corpus/<target>/ and leaves every other file there (inputs the fuzzer found,
crash reproducers) alone. Sources: tests/fixtures/readers.json (the shared reader
vectors), tests/golden/v0.1.0/*/journal.log (journals written by 0.1.0), config/*.toml
and the request bodies of README.md.
"""

import hashlib
import json
import struct
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def put(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / f"seed-{name}").write_bytes(data)


# ----- readers ---------------------------------------------------------------------------

readers = json.loads((ROOT / "tests/fixtures/readers.json").read_text())

good = [bytes.fromhex(f["frame_hex"]) for f in readers["rdm6300"]]
bad = [bytes.fromhex(f["frame_hex"]) for f in readers["rdm6300_bad"]]
for i, f in enumerate(good):
    put("rdm6300", f"good{i}-hex", bytes([0x00]) + f)
    put("rdm6300", f"good{i}-decimal", bytes([0x01]) + f)
for i, f in enumerate(bad):
    put("rdm6300", f"bad{i}", bytes([0x00]) + f)
# A tag held in the field (repeats 100 ms apart), noise between frames, a frame cut by
# the next STX, lower-case hex, and reads of 5 bytes.
put("rdm6300", "repeats", bytes([0b0110_0000]) + good[0] * 4)
put("rdm6300", "noise", bytes([0x00]) + b"\xff\x00junk" + good[1] + b"\r\n" + good[2])
put("rdm6300", "cut-then-good", bytes([0x00]) + good[0][:7] + good[1])
put("rdm6300", "lowercase", bytes([0x01]) + good[0][:1] + good[0][1:13].lower() + good[0][13:])
put("rdm6300", "chunks-of-5", bytes([0b0010_1010]) + b"".join(good) + bad[1] + good[0])


def wiegand(bits, unit=5):
    """One byte per bit, `unit` x 400 us apart (5 = 2 ms)."""
    return bytes((unit << 1) | (c == "1") for c in bits)


def after_gap(bits, units=70):
    """A frame whose first edge comes `units` x 400 us after the previous one."""
    return bytes([(units << 1) | (bits[0] == "1")]) + wiegand(bits[1:])


frames = [f["bits"] for k in ("wiegand26", "wiegand34", "wiegand_bad") for f in readers[k]]
for i, bits in enumerate(frames):
    put("wiegand", f"frame{i}", wiegand(bits))
put("wiegand", "two-frames", wiegand(frames[0]) + after_gap(frames[3]))
put("wiegand", "short-then-good", wiegand("1011") + after_gap(frames[1], 63))
put("wiegand", "overlong", wiegand("10" * 40))
put("wiegand", "clock-back", wiegand(frames[3][:10]) + b"\xff" + wiegand(frames[3][10:]))

# evdev codes: KEY_1..KEY_0 = 2..11, KEY_Q = 16, KEY_A = 30, KEY_Z = 44, Enter 28,
# Backspace 14, Left Shift 42, keypad 7 8 9 / 4 5 6 / 1 2 3 / 0 = 71-73, 75-77, 79-81, 82.
DIGIT = {str((i + 1) % 10): 2 + i for i in range(10)}
LETTER = {c: 16 + i for i, c in enumerate("QWERTYUIOP")}
LETTER |= {c: 30 + i for i, c in enumerate("ASDFGHJKL")}
LETTER |= {c: 44 + i for i, c in enumerate("ZXCVBNM")}
KEYS = DIGIT | LETTER


def typed(text, ms=4):
    """Each character as press then release, `ms` apart, then Enter."""
    out = bytearray()
    for c in text:
        out += bytes([KEYS[c], 1, ms, KEYS[c], 0, 1])
    out += bytes([28, 1, ms, 28, 0, 1])
    return bytes(out)


dec = readers["rdm6300"][1]["em4100_decimal"]
put("hid", "decimal-as-typed", b"\x00" + typed(dec))
put("hid", "decimal-to-hex", b"\x01" + typed(dec))
put("hid", "hex-card", b"\x00" + typed(readers["rdm6300"][0]["card"]))
put("hid", "shift-and-backspace", b"\x00" + bytes([42, 1, 2]) + typed("04A1B2C39")[:-12]
    + bytes([14, 1, 3, 14, 0, 1, 28, 1, 3]))
put("hid", "keypad", b"\x01" + bytes(sum(([k, 1, 3, k, 0, 1] for k in (82, 82, 79, 81, 71, 73, 77, 76, 80, 73)), [])
                                      + [96, 1, 3]))
put("hid", "pause-then-line", b"\x00" + typed("1234")[:6] + bytes([3, 1, 250]) + typed("5678"))
put("hid", "too-long", b"\x00" + typed("1" * 40))

# ----- journal and records ---------------------------------------------------------------

HEADER = b"LOYJRNL\x00" + struct.pack("<I", 1) + b"\x00" * 4


def frames_of(path):
    data = path.read_bytes()
    off, out = 16, []
    while off + 16 <= len(data):
        length, _seq = struct.unpack_from("<IQ", data, off)
        end = off + 52 + length
        if end > len(data):
            break
        out.append(data[off:end])
        off = end
    return data[:16], out


def frame(seq, prev, payload):
    head = struct.pack("<IQ", len(payload), seq)
    head += struct.pack("<I", zlib.crc32(head))
    body = struct.pack("<Q", seq) + prev + payload
    return head + prev + payload + struct.pack("<I", zlib.crc32(body)), hashlib.sha256(body).digest()


golden = {t: frames_of(ROOT / f"tests/golden/v0.1.0/{t}/journal.log") for t in ("t1", "t2", "hub")}
header, t1 = golden["t1"]
assert header == HEADER
put("journal", "empty", b"")
put("journal", "partial-header", HEADER[:11])
put("journal", "header-only", HEADER)
put("journal", "t1-first-8", HEADER + b"".join(t1[:8]))
put("journal", "t1-torn-tail", HEADER + b"".join(t1[:8]) + t1[8][:30])
put("journal", "t1-zeros-ahead", HEADER + b"".join(t1[:5]) + b"\x00" * 512)
flipped = bytearray(HEADER + b"".join(t1[:5]))
flipped[16 + len(t1[0]) + 60] ^= 0x01
put("journal", "t1-flipped-in-middle", bytes(flipped))
put("journal", "t2-first-4", HEADER + b"".join(golden["t2"][1][:4]))
put("journal", "hub-first-3", HEADER + b"".join(golden["hub"][1][:3]))
# More frames than one index stride (64), so `read` starts from a later index entry.
prev, many = b"\x00" * 32, bytearray(HEADER)
for seq in range(1, 71):
    f, prev = frame(seq, prev, bytes([seq]) * (seq % 5))
    many += f
put("journal", "seventy-small-frames", bytes(many))

def varint(b, i):
    shift = value = 0
    while True:
        value |= (b[i] & 0x7F) << shift
        shift += 7
        i += 1
        if b[i - 1] < 0x80:
            return value, i


def body_kind(payload):
    """The `Body` variant of an encoded record: postcard writes the `V1` tag, wall, clock
    flag, boot id (16 bytes), mono_us, at and day before it."""
    _, i = varint(payload, 0)
    _, i = varint(payload, i)
    i += 1 + 16
    for _ in range(3):
        _, i = varint(payload, i)
    return varint(payload, i)[0]


seen = set()
for t, (_, fs) in golden.items():
    for i, f in enumerate(fs):
        payload = f[48:-4]
        kind = body_kind(payload)
        if (t, kind) not in seen:
            seen.add((t, kind))
            put("record", f"{t}-{i + 1}-kind{kind}", payload)


# ----- rules, config ---------------------------------------------------------------------

rules = (ROOT / "config/rules.toml").read_text()
put("ruleset", "config-rules", rules)
put("ruleset", "visits-rolling", """version = 3
currency = "USD"
timezone = "America/New_York"
[earn]
unit_minor = 100
points_per_unit = 2
[[tiers]]
name = "member"
qualify = 0
discount_bp = 0
multiplier_bp = 10000
[tier_policy]
metric = "visits"
window_days = 1
downgrade = "rolling"
[redeem]
points_per_unit = 1
unit_minor = 1
min_points = 0
max_share_bp = 10000
pin_required_from = 0
offline_cap_points = 0
[expiry]
months = 0
[[campaigns]]
id = "bonus-only"
bonus_points = 5
[[promotions]]
id = "p"
min_minor = 0
off_minor = 1
[[coupon_types]]
id = "ten-percent"
off_bp = 1000
min_minor = 0
valid_days = 1
[[rewards]]
sku = "pen"
points = 1
stock = 0
""")
put("ruleset", "syntax-error", rules.replace("[earn]", "[earn", 1))

for name in ("loyaltyd", "hub"):
    put("config", name, (ROOT / f"config/{name}.toml").read_text())
minimal = 'terminal_id = "T2"\ndata_dir = "/var/lib/loyaltyd"\nrules = "/etc/loyaltyd/rules.toml"\n'
put("config", "minimal", minimal)
put("config", "wiegand-gpio", minimal + 'clock = "hub"\n[reader]\nspec = "wiegand:17,27"\n'
    '[feedback]\nkind = "gpio"\ngreen_led = 5\nred_led = 6\nbuzzer = 13\n')
put("config", "rdm6300-decimal", minimal + '[reader]\nspec = "rdm6300:/dev/serial0"\nrdm6300_form = "em4100-decimal"\n')
put("config", "hid", minimal + '[reader]\nspec = "hid:/dev/input/by-id/usb-reader"\nhid_output = "decimal-to-hex"\n')

# ----- API bodies (README, "A walk through the POS API") -----------------------------------

sale = {"card": "04A1B2C3", "lines": [
    {"sku": "rice", "category": "grocery", "qty": 2, "unit_price": 3450},
    {"sku": "cigarettes", "category": "tobacco", "qty": 1, "unit_price": 2500},
    {"sku": "oil", "category": "grocery", "qty": 1, "unit_price": 5990}]}
bodies = {
    "members": {"card": "04A1B2C3", "name": "Ann", "phone": "13800000001", "birthday": "03-14", "pin": "1234"},
    "members-bare": {"card": "04:a1-b2 c3", "name": " Bo ", "phone": "+86 (138) 0000-0002"},
    "quote": sale,
    "commit": sale | {"redeem_points": 2000, "pin": "1234", "coupon": " welcome5 "},
    "refund": {"tx_id": "T1-3f2a9c1e-0000000003", "lines": [{"sku": "rice", "qty": 1}]},
    "refund-all": {"tx_id": "T1-3f2a9c1e-0000000003"},
    "coupons": {"card": "04A1B2C3", "type": "welcome5"},
    "rewards": {"card": "04A1B2C3", "sku": "mug", "pin": "1234"},
    "swipe": {"card": "04A1B2C3"},
    "replace": {"new_card": "04A1B2C4"},
}
for name, body in bodies.items():
    route = name.split("-")[0]
    put("api_bodies", name, f"{route}\n{json.dumps(body)}")
put("api_bodies", "daily", "daily\n2026-11-24")
