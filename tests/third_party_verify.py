#!/usr/bin/env python3
"""Verifies Vigil evidence (format vigil.evidence.v1 and v2) following docs/evidence.md only — no Vigil
code — with the Python standard library and `cryptography`. Prints one line per problem and per warning;
exit 0 when there is no problem, 1 otherwise.

    third_party_verify.py PUBLIC_KEY.pem PATH... [--expect-head SEQ:SHA256]... [--heads FILE]...

A PATH is a store (every entry in it, and the chain across all entries given) or one entry directory
(checked alone; the chain is then not checked).
"""
import argparse
import base64
import datetime
import hashlib
import json
import os
import re
import stat
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

ZEROS = "0" * 64
ENTRY_NAME = re.compile(r"^([0-9]{10})-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")
TIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$")
DECIMAL = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
HEAD = re.compile(r"^([0-9]+):([0-9a-fA-F]{64})$")
ALWAYS_ALLOWED = {"manifest.json", "manifest.sig", "timestamp.tsr"}
RECORD_TYPES = {"ack", "hold", "release", "prune", "epoch"}


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_time(v):
    if not isinstance(v, str) or not TIME.match(v):
        return False
    try:
        datetime.datetime.strptime(v, "%Y-%m-%dT%H:%M:%S.%fZ")
        return True
    except ValueError:
        return False


def parse_time(v):
    return datetime.datetime.strptime(v, "%Y-%m-%dT%H:%M:%S.%fZ")


CHECKS = {
    "string": lambda v: isinstance(v, str),
    "integer": is_int,
    "integer >= 1": lambda v: is_int(v) and v >= 1,
    "integer >= 0": lambda v: is_int(v) and v >= 0,
    "boolean": lambda v: isinstance(v, bool),
    "time": is_time,
    "uuid": lambda v: isinstance(v, str) and bool(UUID.match(v)),
    "sha256": lambda v: isinstance(v, str) and bool(HEX64.match(v)),
    "decimal string": lambda v: isinstance(v, str) and bool(DECIMAL.match(v)),
    "object": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
    "box": lambda v: isinstance(v, list) and len(v) == 4 and all(is_int(n) for n in v),
}


class Fields:
    """Checks fields by dotted path against the tables of docs/evidence.md."""

    def __init__(self, doc, problems, prefix=""):
        self.doc, self.problems, self.prefix = doc, problems, prefix

    def get(self, path, optional=False):
        at = self.doc
        for part in path.split("."):
            if isinstance(at, dict) and part in at:
                at = at[part]
            else:
                if not optional:
                    self.problems.append(f"missing field {self.prefix}{path}")
                return None
        return at

    def want(self, path, kind, optional=False):
        value = self.get(path, optional)
        if value is None:
            return None
        if not CHECKS[kind](value):
            self.problems.append(f"field {self.prefix}{path} is {json.dumps(value)[:60]}, not {kind}")
            return None
        return value


def target_of(f, path):
    p = path + "." if path else ""
    seq = f.want(p + "sequence", "integer >= 1")
    event_id = f.want(p + "event_id", "uuid")
    sha = f.want(p + "manifest_sha256", "sha256")
    return None if None in (seq, event_id, sha) else (seq, event_id, sha)


PHOTO_FILES = ("photo.jpg", "photo.png", "photo.bin")


def check_checkin_fields(f, m, problems):
    """A phone upload's bundle (docs/evidence.md, "Check-in bundles"): the photo as sent, the annotated
    photo when it decoded, the checks; no clip. Returns event.id."""
    entry_id = f.want("event.id", "uuid")
    for field in ("event.kind", "event.camera", "agent.name", "agent.version"):
        f.want(field, "string")
    f.want("event.at", "time")
    for key, value in (f.want("event.details", "object") or {}).items():
        if not isinstance(value, str):
            problems.append(f"field event.details.{key} is {json.dumps(value)[:60]}, not string")
    for i, d in enumerate(f.want("models", "list") or []):
        g = Fields(d, problems, f"models[{i}].")
        g.want("name", "string")
        g.want("sha256", "sha256")
    if f.get("camera", optional=True) is not None:
        for field in ("camera.id", "camera.role", "camera.url_redacted"):
            f.want(field, "string")
        f.want("camera.name", "string", optional=True)
    for field in ("checkin.phone", "checkin.ward", "checkin.mode", "checkin.claimed"):
        f.want(field, "string")
    f.want("checkin.bed", "string", optional=True)
    f.want("checkin.camera", "string", optional=True)
    f.want("checkin.capture_id", "uuid")
    f.want("checkin.captured_at", "time")
    f.want("checkin.received_at", "time")
    f.want("checkin.late", "boolean")
    if f.get("checkin.position", optional=True) is not None:
        for field in ("lat", "lon", "accuracy_m"):
            f.want("checkin.position." + field, "decimal string")
    checks = f.want("checkin.checks", "list") or []
    if not checks:
        problems.append("field checkin.checks names no check")
    for i, c in enumerate(checks):
        g = Fields(c, problems, f"checkin.checks[{i}].")
        for field in ("name", "reason", "detail"):
            g.want(field, "string")
        if g.want("outcome", "string") not in (None, "passed", "failed", "skipped"):
            problems.append(f"field checkin.checks[{i}].outcome is not passed, failed or skipped")
        for key, value in (g.want("facts", "object", optional=True) or {}).items():
            if not isinstance(value, str):
                problems.append(f"field checkin.checks[{i}].facts.{key} is not a string")
    if f.get("annotated", optional=True) is not None:
        f.want("annotated.width", "integer >= 0")
        f.want("annotated.height", "integer >= 0")
        for j, b in enumerate(f.want("annotated.faces", "list") or []):
            if not CHECKS["box"](b):
                problems.append(f"field annotated.faces[{j}] is not a box")
    files = m.get("files")
    if not isinstance(files, dict):
        problems.append("field files is missing or not an object")
    else:
        photos = [name for name in PHOTO_FILES if name in files]
        if len(photos) != 1:
            problems.append(f"a check-in bundle lists exactly one of {', '.join(PHOTO_FILES)}; it lists {photos}")
        if ("annotated" in m) != ("annotated.jpg" in files):
            problems.append("files lists annotated.jpg if and only if the manifest has `annotated`")
    return entry_id


def check_fields(m, problems):
    """Field types and formats; returns (version, type, id, parsed record) — the record as a dict of what
    the cross-checks need, or None."""
    schema = m.get("schema")
    version = {"vigil.evidence.v1": 1, "vigil.evidence.v2": 2}.get(schema)
    if version is None:
        problems.append(f"unknown schema {schema!r}")
        return None
    f = Fields(m, problems)
    kind = f.want("type", "string") if version == 2 else "bundle"
    f.want("sequence", "integer >= 1")
    f.want("previous_manifest_sha256", "sha256")
    if version == 2:
        f.want("epoch", "integer >= 1")
        f.want("clock.synchronized", "boolean")
        f.want("clock.source", "string")
        f.want("clock.max_error_us", "integer")
        f.want("clock.est_error_us", "integer")
    for field in ("device.site", "device.device", "device.public_key"):
        f.want(field, "string")
    f.want("created", "time")
    record = {}
    if kind == "bundle" and version == 2 and "checkin" in m:
        entry_id = check_checkin_fields(f, m, problems)
    elif kind == "bundle":
        entry_id = f.want("event.id", "uuid")
        for field in ("event.kind", "event.camera"):
            f.want(field, "string")
        for field in ("event.at", "clip.requested_from", "clip.requested_to", "clip.start", "clip.end", "snapshot.at"):
            f.want(field, "time")
        for key, value in (f.want("event.details", "object") or {}).items():
            if not isinstance(value, str):
                problems.append(f"field event.details.{key} is {json.dumps(value)[:60]}, not string")
        for field in ("clip.frames", "snapshot.width", "snapshot.height"):
            f.want(field, "integer >= 0")
        for i, d in enumerate(f.want("detections", "list") or []):
            g = Fields(d, problems, f"detections[{i}].")
            g.want("label", "string")
            g.want("box", "box")
            g.want("score", "decimal string")
        for i, d in enumerate(f.want("models", "list") or []):
            g = Fields(d, problems, f"models[{i}].")
            g.want("name", "string")
            g.want("sha256", "sha256")
        if version == 2:
            for field in ("agent.name", "agent.version", "camera.id", "camera.role", "camera.url_redacted"):
                f.want(field, "string")
            f.want("camera.name", "string", optional=True)
            for key, value in (f.want("decision.thresholds", "object") or {}).items():
                if not CHECKS["decimal string"](value):
                    problems.append(f"field decision.thresholds.{key} is {json.dumps(value)[:60]}, not decimal string")
            f.want("event.onset", "time", optional=True)
            for i, gap in enumerate(f.want("clip.missing", "list", optional=True) or []):
                g = Fields(gap, problems, f"clip.missing[{i}].")
                g.want("from", "time")
                g.want("to", "time")
                g.want("reason", "string")
        files = m.get("files")
        if not isinstance(files, dict):
            problems.append("field files is missing or not an object")
        else:
            media = ["clip.mp4", "snapshot.jpg"] + (["frame.jpg"] if version == 2 else [])
            for name in media:
                if name not in files:
                    problems.append(f"files does not list {name}")
    elif kind in RECORD_TYPES:
        entry_id = f.want("record.id", "uuid")
        if m.get("files"):
            problems.append("a record lists files")
        if kind == "ack":
            f.want("record.acknowledged_at", "time")
            record["targets"] = [(target_of(f, "record.target"), [])]
        elif kind in ("hold", "release"):
            f.want("record.reason", "string")
            record["targets"] = [(target_of(f, "record.target"), [])]
        elif kind == "prune":
            record["days"] = f.want("record.policy.evidence_days", "integer >= 0")
            record["targets"] = []
            targets = f.want("record.targets", "list") or []
            if not targets:
                problems.append("a prune record names no target")
            for i, t in enumerate(targets):
                g = Fields(t, problems, f"record.targets[{i}].")
                removed = g.want("removed", "list") or []
                for name in removed:
                    if not isinstance(name, str) or not FILE_NAME.match(name):
                        problems.append(f"record.targets[{i}].removed lists {name!r}, not a file name")
                if not removed:
                    problems.append(f"record.targets[{i}].removed names no file")
                record["targets"].append((target_of(g, ""), removed))
        else:  # epoch
            f.want("record.reason", "string")
            record["epoch"] = f.want("record.epoch", "integer >= 1")
            head = f.get("record.previous_head")
            if head is not None and not (isinstance(head, dict) and is_int(head.get("sequence")) and CHECKS["sha256"](head.get("manifest_sha256"))):
                problems.append("field record.previous_head is not null or {sequence, manifest_sha256}")
            record["previous_head"] = head
            if record["epoch"] is not None and record["epoch"] != m.get("epoch"):
                problems.append("record.epoch differs from the manifest's epoch")
            seq, prev = m.get("sequence"), m.get("previous_manifest_sha256")
            if isinstance(head, dict) and (head.get("sequence") != (seq or 0) - 1 or head.get("manifest_sha256") != prev):
                problems.append("record.previous_head is not the entry this one follows")
            if "previous_head" in m.get("record", {}) and head is None and seq != 1:
                problems.append("record.previous_head is null after sequence 1")
    else:
        problems.append(f"field type is {kind!r}, not one of bundle, {', '.join(sorted(RECORD_TYPES))}")
        return None
    if m.get("sequence") == 1 and m.get("previous_manifest_sha256") != ZEROS:
        problems.append("sequence 1 must have previous_manifest_sha256 of 64 zeros")
    return version, kind, entry_id, record


def read_nofollow(path):
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise OSError("not a regular file")
        return f.read()


def check_entry(path, name, key, raw_key, problems):
    """One entry directory alone. Returns a dict for the chain and cross-checks."""
    out = []
    match = ENTRY_NAME.match(name)
    entry = {"name": name, "sequence": int(match.group(1)) if match else 0, "hash": None, "m": None,
             "missing": [], "present": set()}
    listing = {}
    for item in os.listdir(path):
        mode = os.lstat(os.path.join(path, item)).st_mode
        listing[item] = mode
        if stat.S_ISLNK(mode):
            out.append(f"{item} is a symbolic link (never followed)")
        elif not stat.S_ISREG(mode):
            out.append(f"{item} is not a regular file")
    for needed in ("manifest.json", "manifest.sig"):
        if needed not in listing:
            out.append(f"{needed} is missing")
    manifest_bytes = signature = None
    if stat.S_ISREG(listing.get("manifest.json", 0)):
        manifest_bytes = read_nofollow(os.path.join(path, "manifest.json"))
        entry["hash"] = hashlib.sha256(manifest_bytes).hexdigest()
    if stat.S_ISREG(listing.get("manifest.sig", 0)):
        signature = read_nofollow(os.path.join(path, "manifest.sig"))
    if manifest_bytes is not None and signature is not None:
        try:
            key.verify(signature, manifest_bytes)
            trusted = True
        except InvalidSignature:
            out.append("bad signature")
            trusted = False
        if trusted:
            try:
                m = json.loads(manifest_bytes)
            except ValueError as e:
                m = None
                out.append(f"manifest.json is not JSON: {e}")
            if m is not None:
                canonical = json.dumps(m, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
                if canonical != manifest_bytes:
                    out.append("manifest not canonical")
            if m is not None and not isinstance(m, dict):
                out.append("manifest.json is not a JSON object")
            parsed = check_fields(m, out) if isinstance(m, dict) else None
            if parsed is not None:
                version, kind, entry_id, record = parsed
                if not isinstance(m.get("device"), dict) or m["device"].get("public_key") != raw_key:
                    out.append("device.public_key is not the key given")
                if not is_int(m.get("sequence")) or name != f"{m['sequence']:010d}-{entry_id}":
                    out.append("name does not match the manifest")
                allowed = set(ALWAYS_ALLOWED)
                files = m.get("files") if isinstance(m.get("files"), dict) else {}
                for file, expected in files.items():
                    if not isinstance(expected, dict):
                        expected = {}
                    if not FILE_NAME.match(file) or file in ALWAYS_ALLOWED:
                        out.append(f"{file!r} is not an allowed file name")
                        continue
                    allowed.add(file)
                    if file not in listing:
                        entry["missing"].append(file)
                    elif stat.S_ISREG(listing[file]):
                        entry["present"].add(file)
                        data = read_nofollow(os.path.join(path, file))
                        if hashlib.sha256(data).hexdigest() != expected.get("sha256") or len(data) != expected.get("bytes"):
                            out.append(f"{file} modified")
                extra = sorted(f for f in listing if f not in allowed and stat.S_ISREG(listing[f]))
                if extra:
                    out.append(f"unexpected files {extra}")
                entry.update(m=m, version=version, kind=kind, id=entry_id, record=record,
                             sequence=m.get("sequence") if is_int(m.get("sequence")) else entry["sequence"],
                             epoch=m.get("epoch", 1) if version == 2 else 1)
    problems.extend(f"{name}: {p}" for p in out)
    return entry


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("key")
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--expect-head", action="append", default=[])
    parser.add_argument("--heads", action="append", default=[])
    args = parser.parse_intermixed_args()
    key = load_pem_public_key(open(args.key, "rb").read())
    raw_key = base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
    heads = list(args.expect_head)
    for file in args.heads:
        for line in open(file, encoding="utf-8"):
            line = line.strip()
            if line and not line.startswith("#"):
                heads.append(line.split()[0])
    problems, warnings, entries, stores = [], [], [], 0
    for root in args.paths:
        if os.path.lexists(os.path.join(root, "manifest.json")):
            name = os.path.basename(os.path.normpath(root))
            if not ENTRY_NAME.match(name) or int(name[:10]) == 0:
                problems.append(f"{name}: not an evidence entry name")
            entries.append(check_entry(root, name, key, raw_key, problems))
            continue
        stores += 1
        found = 0
        for name in sorted(os.listdir(root)):
            path = os.path.join(root, name)
            if name.startswith(".tmp-"):
                warnings.append(f"{name}: ignored (an entry being written or left by a crash)")
            elif not ENTRY_NAME.match(name) or int(name[:10]) == 0:
                problems.append(f"{name}: not an evidence entry")
            elif os.path.islink(path):
                problems.append(f"{name}: is a symbolic link (never followed)")
            elif not os.path.isdir(path):
                problems.append(f"{name}: not a directory")
            else:
                found += 1
                entries.append(check_entry(path, name, key, raw_key, problems))
        if not found:
            problems.append(f"{root}: no evidence entries")

    entries.sort(key=lambda e: (e["sequence"], e["name"]))
    by_seq = {e["sequence"]: e for e in entries}
    trusted = [e for e in entries if e["m"] is not None]
    chain_text = "chain not checked (entry directories given, not a store)"
    if stores and entries:
        first = entries[0]
        if first["sequence"] == 1:
            chain_text = f"chain of {len(entries)} entries from sequence 1 to {entries[-1]['sequence']}"
        elif first["m"] is not None and first.get("kind") == "epoch":
            chain_text = (f"chain of {len(entries)} entries from sequence {first['sequence']} to {entries[-1]['sequence']}; "
                          f"chain starts at a checkpoint (epoch {first['epoch']} at sequence {first['sequence']})")
        else:
            problems.append(f"{first['name']}: chain starts at sequence {first['sequence']}, neither 1 nor an epoch record")
        for a, b in zip(entries, entries[1:]):
            if a["sequence"] == b["sequence"]:
                problems.append(f"{a['name']} and {b['name']}: both claim sequence {a['sequence']}")
                continue
            if b["sequence"] != a["sequence"] + 1:
                problems.append(f"{b['name']}: sequence gap after {a['name']}")
                continue
            if a["m"] is None or b["m"] is None:
                continue
            if b["m"].get("previous_manifest_sha256") != a["hash"]:
                problems.append(f"{b['name']}: chain broken after {a['name']}")
            if b["version"] < a["version"]:
                problems.append(f"{b['name']}: a v1 entry after a v2 entry")
            if b["kind"] == "epoch":
                if b["epoch"] != a["epoch"] + 1:
                    problems.append(f"{b['name']}: epoch record does not start epoch {a['epoch'] + 1}")
            elif b["epoch"] != a["epoch"]:
                problems.append(f"{b['name']}: epoch changes without an epoch record")
            if is_time(b["m"].get("created")) and is_time(a["m"].get("created")) and b["m"]["created"] < a["m"]["created"]:
                text = f"{b['name']}: created before the previous entry: the clock went back"
                (problems if a["version"] == b["version"] == 2 else warnings).append(text)

    # Records against the bundles they name.
    complete = bool(stores)
    acked, held, removed = set(), {}, {}
    for r in trusted:
        if r["kind"] in ("bundle", "epoch"):
            continue
        valid = []
        for target, files in r["record"]["targets"]:
            if target is None:
                continue
            seq, event_id, sha = target
            b = by_seq.get(seq)
            if seq >= r["sequence"]:
                problems.append(f"{r['name']}: target {seq} is not before the record")
            elif b is None:
                if complete:
                    problems.append(f"{r['name']}: names entry {seq}, which is not in the chain")
            elif b["m"] is None or b["kind"] != "bundle" or b["id"] != event_id or b["hash"] != sha:
                problems.append(f"{r['name']}: names entry {seq}, which is not that bundle")
            else:
                valid.append(seq)
            if r["kind"] == "ack":
                acked.add(seq)
            elif r["kind"] == "hold":
                held[seq] = r["sequence"]
            elif r["kind"] == "release":
                held.pop(seq, None)
            elif r["kind"] == "prune":
                if complete and seq in valid:
                    if seq not in acked:
                        problems.append(f"{r['name']}: prunes bundle {seq}, which was never acknowledged")
                    if seq in held:
                        problems.append(f"{r['name']}: prunes bundle {seq} under legal hold (hold at sequence {held[seq]})")
                if (b is not None and b["m"] is not None and r["record"]["days"] is not None
                        and is_time(b["m"].get("created")) and is_time(r["m"].get("created"))):
                    age = parse_time(r["m"]["created"]) - parse_time(b["m"]["created"])
                    if age < datetime.timedelta(days=r["record"]["days"]):
                        problems.append(f"{r['name']}: prunes bundle {seq} before its retention ended")
                    for file in files:
                        if file not in (b["m"].get("files") or {}):
                            problems.append(f"{r['name']}: removes {file}, which bundle {seq} does not list")
                for file in files:
                    removed.setdefault(seq, set()).add(file)
    for e in entries:
        for file in e["missing"]:
            if file not in removed.get(e["sequence"], set()):
                problems.append(f"{e['name']}: {file} is missing")
        for file in sorted(removed.get(e["sequence"], set()) & e["present"]):
            warnings.append(f"{e['name']}: {file} was pruned by a record but is still present")

    # Heads the platform holds.
    last = max((e["sequence"] for e in entries), default=0)
    for text in heads:
        match = HEAD.match(text)
        if not match:
            problems.append(f"{text!r} is not a head (SEQ:SHA256)")
            continue
        seq, sha = int(match.group(1)), match.group(2).lower()
        head = f"{seq}:{sha}"
        at = [e for e in entries if e["sequence"] == seq]
        if not at:
            why = "entries removed from the end of the chain" if seq > last else "the entry was removed"
            problems.append(f"entry {seq} is missing: the platform holds head {head} ({why})")
        elif not any(e["hash"] == sha for e in at):
            problems.append(f"entry {seq} was replaced: the platform holds head {head}")

    for p in problems:
        print(p)
    for w in warnings:
        print(f"warning: {w}")
    bundles = sum(1 for e in trusted if e["kind"] == "bundle")
    records = sum(1 for e in trusted if e["kind"] != "bundle")
    print(f"{bundles} bundles, {len(problems)} problems, {records} records, {len(warnings)} warnings; {chain_text}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
