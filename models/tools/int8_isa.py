#!/usr/bin/env python3
"""Maintainer script: does an int8 variant compute the same on another CPU's integer kernels?

    int8_isa.py dump --emb TABLE|- --det TABLE|- --out OUT.json
    int8_isa.py compare NATIVE.json OTHER.json

`dump` makes the variant's models with quantize.py and runs Vigil's face pipeline (peer_bench.py) on
every pair-list photo and the six photos of tests/models.rs, writing each photo's main face (score,
landmarks) and embedding, plus the models' SHA-256. Run it natively, and again under an emulated CPU,
e.g. x86 without VNNI, where MLAS's u8 x s8 kernels saturate 16-bit sums:

    qemu-x86_64 -cpu Haswell $VIGIL_CACHE/venv/bin/python models/tools/int8_isa.py dump ... --out haswell.json

`compare` (natively: it runs dlib) prints how far the second dump is from the first (landmarks in
inter-ocular distances, embedding distance), and the second dump against the bounds of docs/models.md
("int8"): photos without a face, pair list (int8 on both sides, and int8 probes against float gallery
embeddings computed here), whole-pipeline distance to dlib, and whether the conversions gave the same bytes.
"""
import argparse
import hashlib
import json
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS))
import calibrate  # noqa: E402
import int8_eval  # noqa: E402
import peer_bench as pb  # noqa: E402
import quantize  # noqa: E402


def photos():
    parity = [f"face_recognition-test-images/{p}" for p in int8_eval.PARITY_PHOTOS]
    return list(dict.fromkeys(calibrate.pair_photos() + parity))


def dump(args):
    samples = calibrate.cache_dir() / "samples"
    out = {"models": {}, "faces": {}}
    paths = {"det": str(calibrate.model_path("centerface")), "emb": str(calibrate.model_path("dlib-resnet-v1"))}
    with tempfile.TemporaryDirectory(prefix="vigil-int8-isa.") as tmp:
        for kind, table in (("det", args.det), ("emb", args.emb)):
            if table != "-":
                data = json.loads(Path(table).read_text())
                paths[kind] = str(Path(tmp) / f"{kind}.onnx")
                quantize.quantize(calibrate.model_path(data["model"]), data, Path(paths[kind]))
                out["models"][kind] = {"table": table, "sha256": hashlib.sha256(Path(paths[kind]).read_bytes()).hexdigest()}
        det, emb = pb.CenterFace(paths["det"], 1), pb.Embedder(paths["emb"], 1)
        for p in photos():
            face = int8_eval.main_face(det, emb, pb.ref_detect.load_rgb(str(samples / p)))
            out["faces"][p] = None if face is None else {"landmarks": face[2].tolist(), "embedding": face[1].tolist()}
    Path(args.out).write_text(json.dumps(out) + "\n")


def compare(args):
    import dlib  # noqa: PLC0415

    a, b = (json.loads(Path(f).read_text()) for f in (args.native, args.other))
    emb = {k: {p: (None if f is None else np.array(f["embedding"])) for p, f in d["faces"].items()} for k, d in (("a", a), ("b", b))}
    both = [p for p in a["faces"] if a["faces"][p] and b["faces"].get(p)]
    moved = {p: int8_eval.landmark_shift(np.array(a["faces"][p]["landmarks"]), np.array(b["faces"][p]["landmarks"])) for p in both}
    shift = {p: int8_eval.dist(emb["a"][p], emb["b"][p]) for p in both}
    pairs = []
    with open(calibrate.REPO / "models/face-pairs.csv") as f:
        for line in f:
            if not line.startswith("#"):
                x, y, kind = line.strip().split(",")
                pairs.append((x, y, kind == "same"))
    # Float gallery embeddings, computed here (native float pipeline).
    samples = calibrate.cache_dir() / "samples"
    det32 = pb.CenterFace(str(calibrate.model_path("centerface")), 1)
    emb32 = pb.Embedder(str(calibrate.model_path("dlib-resnet-v1")), 1)
    f32 = {}
    for p in calibrate.pair_photos():
        face = int8_eval.main_face(det32, emb32, pb.ref_detect.load_rgb(str(samples / p)))
        f32[p] = None if face is None else face[1]
    ref = samples / "dlib-reference"
    net = dlib.face_recognition_model_v1(str(ref / "dlib_face_recognition_resnet_model_v1.dat"))
    hog, sp5 = dlib.get_frontal_face_detector(), dlib.shape_predictor(str(ref / "shape_predictor_5_face_landmarks.dat"))
    dlib_d = {}
    for name in int8_eval.PARITY_PHOTOS:
        p = f"face_recognition-test-images/{name}"
        img = pb.ref_detect.load_rgb(str(samples / p))
        face = max(hog(img, 1), key=lambda r: r.area())
        chip = dlib.get_face_chip(img, sp5(img, face), size=150, padding=0.25)
        if emb["b"][p] is not None:
            dlib_d[name] = round(int8_eval.dist(emb["b"][p], np.array(net.compute_face_descriptor(np.asarray(chip)))), 4)
    worst_lm, worst_shift = max(moved, key=moved.get), max(shift, key=shift.get)
    print(json.dumps({
        "same_bytes": {k: a["models"].get(k, {}).get("sha256") == m["sha256"] for k, m in b["models"].items()},
        "landmark_shift_interocular": {"max": round(moved[worst_lm], 4), "median": round(float(np.median(list(moved.values()))), 4),
                                       "worst_photo": worst_lm},
        "embedding_distance_between_cpus": {"max": round(shift[worst_shift], 4),
                                            "median": round(float(np.median(list(shift.values()))), 4), "worst_photo": worst_shift},
        "photos_without_face": sorted(p for p, f in b["faces"].items() if f is None),
        "pairs": int8_eval.pair_scores(pairs, emb["b"], emb["b"]),
        "pairs_int8_probe_vs_f32_gallery": int8_eval.pair_scores(pairs, f32, emb["b"]),
        "gallery_shift_max": round(max(int8_eval.dist(f32[p], emb["b"][p]) for p in f32 if f32[p] is not None and emb["b"].get(p) is not None), 4),
        "dlib_pipeline_distance": dlib_d,
    }, indent=1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--emb", default="-")
    d.add_argument("--det", default="-")
    d.add_argument("--out", required=True)
    c = sub.add_parser("compare")
    c.add_argument("native")
    c.add_argument("other")
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    (dump if args.command == "dump" else compare)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
