#!/usr/bin/env python3
"""Maintainer script: int8 variants of the bundle's face models against their bounds (docs/models.md, "int8").

    int8_eval.py [--runs N] [--out results.json] NAME:EMBEDDER_TABLE:DETECTOR_TABLE...

Each variant names a calibration table for the embedder and/or the detector ("-" keeps the float model;
"f32@N" as the detector is a reference row: the float detector with a longest input side of N; TABLE@N
runs the int8 detector with that longest side instead of 640).
For each, the tables are turned into int8 models twice with quantize.py (same SHA-256 both times, or
the variant is not deterministic), then measured with Vigil's face pipeline in numpy (peer_bench.py,
a bit-exact port of agent/src/analyze) and ONNX Runtime on 1 thread:

  parity        cosine(int8 embedder, dlib's network) on the chips of tests/models.rs's six photos
                (the chips the variant's own pipeline cuts), as onnx_embeddings_match_dlib_on_the_same_chips
  shift         |f32 - int8| (Euclidean) of every pair-list photo's main-face embedding, whole pipeline
  pair list     models/face-pairs.csv as `vigil bench faces --pairs` scores it (largest face of each
                photo, threshold 0.6): TAR, FAR, separated, largest genuine and smallest impostor
                distance, photos without a face; also int8 probes against float "gallery" embeddings
  dlib pipeline distance of our whole pipeline to dlib's (HOG, 5 points, get_face_chip, network) on the
                six photos, as whole_pipeline_agrees_with_dlib_and_separates_people
  detector      (when the detector changed) tests/models.rs's sample-photo checks (one face, score > 0.7,
                landmarks inside the box and in order), and the largest landmark displacement against
                the float detector, in inter-ocular distances
  speed         median ms of `session.run` (wall and thread CPU time) over --runs calls of each model,
                float and int8 alternating (A B A B) in one process, embedder batch 1, detector at
                640x384 (--runs / 5 calls), 320x192 (the frame scaled) and 192x192 (a window of it)

Prints a JSON report (and writes it to --out).
"""
import argparse
import hashlib
import json
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS))
import calibrate  # noqa: E402
import peer_bench as pb  # noqa: E402

PARITY_PHOTOS = ["obama.jpg", "obama2.jpg", "obama3.jpg", "obama_partial_face.jpg", "obama_partial_face2.jpg",
                 "biden.jpg"]
THRESHOLD = 0.6


def cosine(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def dist(a, b):
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


def main_face(detector, embedder, img):
    """(chip, embedding, landmarks) of the largest face, or None, as vigil's main_face."""
    x, meta = detector.preprocess(img)
    face = pb.largest(detector.decode(detector.run(x), meta))
    if face is None:
        return None
    chip = pb.extract_chip(img, face["landmarks"])
    return chip, embedder.decode(embedder.run(embedder.preprocess([chip])[0]), None)[0], np.array(face["landmarks"])


def landmark_shift(a, b):
    """Largest landmark displacement between two detections of a face, in inter-ocular distances."""
    return float(np.linalg.norm(a - b, axis=1).max() / np.linalg.norm(a[0] - a[1]))


def pair_scores(pairs, emb_a, emb_b):
    """TAR/FAR at 0.6 of every pair, a's embedding from emb_a, b's from emb_b."""
    genuine, impostor, skipped = [], [], 0
    for a, b, same in pairs:
        if emb_a.get(a) is None or emb_b.get(b) is None:
            skipped += 1
            continue
        (genuine if same else impostor).append(dist(emb_a[a], emb_b[b]))
    g, i = np.array(genuine), np.array(impostor)
    return {"evaluated": len(g) + len(i), "skipped_pairs": skipped, "tar": float((g < THRESHOLD).mean()),
            "far": float((i < THRESHOLD).mean()), "false_accepts": int((i < THRESHOLD).sum()),
            "impostor_pairs": len(i), "separated": bool(g.max() < i.min()),
            "genuine_max": round(float(g.max()), 4), "impostor_min": round(float(i.min()), 4)}


def quantized(table, tmp, tag):
    """Quantises the table's model twice; returns (path, sha256, deterministic, seconds)."""
    table_data = json.loads(Path(table).read_text())
    src = calibrate.model_path(table_data["model"])
    digests, started = [], time.monotonic()
    for i in (1, 2):
        out = Path(tmp) / f"{tag}-{i}.onnx"
        subprocess.run([sys.executable, str(TOOLS / "quantize.py"), "--in", str(src), "--table", str(table),
                        "--out", str(out)], check=True)
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
    return str(Path(tmp) / f"{tag}-1.onnx"), digests[0], digests[0] == digests[1], (time.monotonic() - started) / 2


def median_run_ms(sessions, feed, runs):
    """Median session.run time of each session, calls alternating between them: wall time, and the
    calling thread's CPU time (ONNX Runtime on 1 thread computes on the caller's thread), which other
    processes' load disturbs less."""
    wall, cpu = [[] for _ in sessions], [[] for _ in sessions]
    for s in sessions:
        s.run(None, feed)
    for _ in range(runs):
        for k, s in enumerate(sessions):
            c, t = time.thread_time(), time.perf_counter()
            s.run(None, feed)
            wall[k].append(time.perf_counter() - t)
            cpu[k].append(time.thread_time() - c)
    return [(round(float(np.median(w)) * 1000, 2), round(float(np.median(c)) * 1000, 2)) for w, c in zip(wall, cpu)]


def speed(f32, int8):
    (fw, fc), (qw, qc) = f32, int8
    return {"f32": fw, "int8": qw, "ratio": round(fw / qw, 2), "f32_cpu": fc, "int8_cpu": qc, "cpu_ratio": round(fc / qc, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100, help="timed calls per model (detector: a fifth)")
    parser.add_argument("--out", type=Path)
    parser.add_argument("variants", nargs="+", metavar="NAME:EMBEDDER_TABLE:DETECTOR_TABLE")
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    import dlib  # noqa: PLC0415

    samples = calibrate.cache_dir() / "samples"
    photos = calibrate.pair_photos()
    pairs = []
    with open(calibrate.REPO / "models/face-pairs.csv") as f:
        for line in f:
            if not line.startswith("#"):
                a, b, kind = line.strip().split(",")
                pairs.append((a, b, kind == "same"))
    parity = [f"face_recognition-test-images/{p}" for p in PARITY_PHOTOS]
    images = {p: pb.ref_detect.load_rgb(str(samples / p)) for p in dict.fromkeys(photos + parity)}

    ref = samples / "dlib-reference"
    net = dlib.face_recognition_model_v1(str(ref / "dlib_face_recognition_resnet_model_v1.dat"))
    hog, sp5 = dlib.get_frontal_face_detector(), dlib.shape_predictor(str(ref / "shape_predictor_5_face_landmarks.dat"))
    dlib_pipeline = {}
    for p in parity:
        faces = hog(images[p], 1)
        face = max(faces, key=lambda r: r.area())
        chip = dlib.get_face_chip(images[p], sp5(images[p], face), size=150, padding=0.25)
        dlib_pipeline[p] = np.array(net.compute_face_descriptor(np.asarray(chip)))

    det32 = pb.CenterFace(str(calibrate.model_path("centerface")), 1)
    emb32 = pb.Embedder(str(calibrate.model_path("dlib-resnet-v1")), 1)

    def evaluate(det, emb):
        out = {p: main_face(det, emb, images[p]) for p in images}
        return {p: (None if v is None else v[1]) for p, v in out.items()}, {p: v for p, v in out.items()}

    f32_emb, f32_faces = evaluate(det32, emb32)
    chip = f32_faces[parity[2]][0]
    emb_feed = {"input": np.ascontiguousarray(chip.transpose(2, 0, 1)[None].astype(np.float32))}
    big = pb.resize_planar(images[parity[2]], 384, 640)[None]
    det_feeds = {"640x384": {"input.1": big}, "320x192": {"input.1": pb.resize_planar(images[parity[2]], 192, 320)[None]},
                 "192x192": {"input.1": np.ascontiguousarray(big[:, :, 96:288, 224:416])}}

    def report(name, det, emb, det_int8, emb_int8, det_changed=False):
        embs, faces = evaluate(det, emb)
        r = {"variant": name}
        r["photos_without_face"] = sorted(p for p in photos if embs[p] is None)
        shifts = {p: dist(f32_emb[p], embs[p]) for p in photos if embs[p] is not None and f32_emb[p] is not None}
        worst = max(shifts, key=shifts.get)
        r["shift"] = {"max": round(shifts[worst], 4), "median": round(float(np.median(list(shifts.values()))), 4),
                      "worst_photo": worst, "over_0.03": sum(v > 0.03 for v in shifts.values()), "faces": len(shifts)}
        cos = {p: cosine(faces[p][1], np.array(net.compute_face_descriptor(faces[p][0]))) for p in parity}
        r["parity_cosine_min"] = round(min(cos.values()), 5)
        r["parity_cosine"] = {Path(p).name: round(c, 5) for p, c in cos.items()}
        if det_changed:
            # tests/models.rs finds_the_face_and_the_person_in_every_sample_photo: one face a photo, score
            # above 0.7, landmarks inside the box and in order.
            checks = {}
            for p in parity:
                x, meta = det.preprocess(images[p])
                found = det.decode(det.run(x), meta)
                ok = len(found) == 1 and found[0]["score"] > 0.7
                if found:
                    b, (le, re_, nose, lm, rm) = found[0]["box"], found[0]["landmarks"]
                    ok &= all(b[0] - 1 <= q[0] <= b[2] + 1 and b[1] - 1 <= q[1] <= b[3] + 1 for q in found[0]["landmarks"])
                    ok &= le[0] < re_[0] and lm[0] < rm[0] and le[1] < nose[1] < lm[1]
                checks[Path(p).name] = {"faces": len(found), "score": round(max((f["score"] for f in found), default=0), 3),
                                        "ok": bool(ok)}
            r["sample_photo_detections"] = checks
            moved = {p: landmark_shift(f32_faces[p][2], faces[p][2]) for p in photos
                     if faces[p] is not None and f32_faces[p] is not None}
            worst = max(moved, key=moved.get)
            r["landmark_shift_interocular"] = {"max": round(moved[worst], 4), "worst_photo": worst,
                                              "median": round(float(np.median(list(moved.values()))), 4)}
        dlib_d = {p: dist(embs[p], dlib_pipeline[p]) for p in parity}
        r["dlib_pipeline_distance"] = {Path(p).name: round(d, 4) for p, d in dlib_d.items()}
        r["dlib_pipeline_distance_max"] = round(max(dist(embs[p], dlib_pipeline[p]) for p in parity), 4)
        r["pairs"] = pair_scores(pairs, embs, embs)
        r["pairs_int8_probe_vs_f32_gallery"] = pair_scores(pairs, f32_emb, embs)
        r["speed_ms"] = {}
        if emb_int8:
            r["speed_ms"]["embedder"] = speed(*median_run_ms([emb32.sess, emb.sess], emb_feed, args.runs))
        if det_int8:
            for size, feed in det_feeds.items():
                runs = max(args.runs // 5, 10) if size == "640x384" else args.runs
                r["speed_ms"][f"detector_{size}"] = speed(*median_run_ms([det32.sess, det.sess], feed, runs))
        return r

    results = [report("f32", det32, emb32, False, False)]
    with tempfile.TemporaryDirectory(prefix="vigil-int8.") as tmp:
        for spec in args.variants:
            name, emb_table, det_table = spec.split(":")
            entry, det, emb = {}, det32, emb32
            if emb_table != "-":
                path, digest, same, secs = quantized(emb_table, tmp, name + "-emb")
                entry["embedder"] = {"table": emb_table, "sha256": digest, "deterministic": same, "seconds": round(secs, 1)}
                emb = pb.Embedder(path, 1)
            if det_table.startswith("f32@"):  # a reference row: the float detector at another input size
                det = pb.CenterFace(str(calibrate.model_path("centerface")), 1, max_side=int(det_table[4:]))
            elif det_table != "-":
                det_table, _, side = det_table.partition("@")
                path, digest, same, secs = quantized(det_table, tmp, name + "-det")
                entry["detector"] = {"table": det_table, "sha256": digest, "deterministic": same, "seconds": round(secs, 1),
                                     "max_side": int(side or 640)}
                det = pb.CenterFace(path, 1, max_side=int(side or 640))
            r = report(name, det, emb, "detector" in entry, "embedder" in entry, det is not det32)
            r.update(entry)
            results.append(r)
            print(json.dumps(r), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results[0]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
