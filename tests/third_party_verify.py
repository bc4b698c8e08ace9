#!/usr/bin/env python3
"""Verifies Vigil evidence bundles following docs/evidence.md only — no Vigil code — with the Python
standard library and `cryptography`. Prints one line per problem; exit 0 when all is well.

    third_party_verify.py PUBLIC_KEY.pem EVIDENCE_DIR
"""
import hashlib
import json
import os
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import load_pem_public_key

MARKERS = {"ACKED", "HOLD", "PRUNED"}


def main() -> int:
    key = load_pem_public_key(open(sys.argv[1], "rb").read())
    root = sys.argv[2]
    problems, chain = [], []
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if not os.path.isdir(path) or name.startswith(".tmp-"):
            continue
        manifest_bytes = open(os.path.join(path, "manifest.json"), "rb").read()
        signature = open(os.path.join(path, "manifest.sig"), "rb").read()
        try:
            key.verify(signature, manifest_bytes)
        except InvalidSignature:
            problems.append(f"{name}: bad signature")
            continue
        manifest = json.loads(manifest_bytes)
        canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        if canonical != manifest_bytes:
            problems.append(f"{name}: manifest not canonical")
        if name != f"{manifest['sequence']:010d}-{manifest['event']['id']}":
            problems.append(f"{name}: name does not match the manifest")
        for file, expected in manifest["files"].items():
            data = open(os.path.join(path, file), "rb").read()
            if hashlib.sha256(data).hexdigest() != expected["sha256"] or len(data) != expected["bytes"]:
                problems.append(f"{name}: {file} modified")
        extra = set(os.listdir(path)) - set(manifest["files"]) - {"manifest.json", "manifest.sig"} - MARKERS
        if extra:
            problems.append(f"{name}: unexpected files {sorted(extra)}")
        chain.append((manifest["sequence"], manifest["previous_manifest_sha256"], hashlib.sha256(manifest_bytes).hexdigest(), name))
    chain.sort()
    for (seq_a, _, hash_a, name_a), (seq_b, prev_b, _, name_b) in zip(chain, chain[1:]):
        if seq_b != seq_a + 1:
            problems.append(f"{name_b}: sequence gap after {name_a}")
        elif prev_b != hash_a:
            problems.append(f"{name_b}: chain broken after {name_a}")
    if chain and chain[0][0] == 1 and chain[0][1] != "0" * 64:
        problems.append(f"{chain[0][3]}: bad genesis link")
    for p in problems:
        print(p)
    print(f"{len(chain)} bundles, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
