#!/usr/bin/env python3
"""Maintainer script: compute the calibration table of an int8 variant (models/calibration/NAME.json).

    calibrate.py --model dlib-resnet-v1|centerface --photos johns-half|johns|pairs
                 [--method minmax|percentile|entropy] [--percentile 99.999]
                 [--activation u8|s8] [--symmetric] [--exclude first-conv,last-matmul,last-convsN,input-norm]
                 [--op-types Conv,MatMul] [--reduce-range]
                 [--fold-affine] --out models/calibration/NAME.json

Runs the float model of $VIGIL_CACHE/models on calibration inputs made exactly as Vigil makes them
(models/tools/peer_bench.py is a bit-exact port of agent/src/analyze): for the embedder, the 150x150
chip of the largest face CenterFace finds in each photo, aligned by Vigil's alignment; for the detector,
each photo resized to Vigil's input size (longest side 640, sides multiples of 32). The photos are those
of the face pair list (models/face-pairs.csv, in $VIGIL_CACHE/samples):
  johns-half  every other photo of dlib's five "johns" (27 chips, session 8's trial)
  johns       all of them (54)
  pairs       every photo of the pair list (70: the 54 johns and 16 uncropped photos)

The table is the recipe (activation and weight types, per-channel weights, nodes left in float) plus
the [min, max] of every float tensor; quantize.py turns model + table into the int8 model without
running anything, so the bytes do not depend on the CPU. Commit the table; never compute it at fetch.
"""
import argparse
import csv
import hashlib
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

TOOLS = Path(__file__).resolve().parent
sys.path.insert(0, str(TOOLS))
import peer_bench as pb  # noqa: E402  (Vigil's face pipeline in numpy, bit-exact)
import quantize  # noqa: E402

REPO = TOOLS.parent.parent
FILES = {"dlib-resnet-v1": "dlib_face_recognition_resnet_v1.onnx", "centerface": "centerface.onnx"}


def cache_dir() -> Path:
    if os.environ.get("VIGIL_CACHE"):
        return Path(os.environ["VIGIL_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vigil"


def pair_photos() -> list[str]:
    """Every photo of the pair list, relative to $VIGIL_CACHE/samples, in first-seen order."""
    seen = {}
    with open(REPO / "models/face-pairs.csv") as f:
        for row in csv.reader(line for line in f if not line.startswith("#")):
            seen.setdefault(row[0], None)
            seen.setdefault(row[1], None)
    return list(seen)


def photo_set(name: str) -> list[str]:
    photos = pair_photos()
    johns = sorted(p for p in photos if p.startswith("dlib-johns/"))
    return {"johns-half": johns[::2], "johns": johns, "pairs": photos}[name]


def model_path(name: str) -> Path:
    return cache_dir() / "models" / FILES[name]


def main_face_chip(detector: "pb.CenterFace", img: np.ndarray):
    """Vigil's main_face: largest CenterFace face, aligned to a 150x150 chip; None when no face."""
    x, meta = detector.preprocess(img)
    face = pb.largest(detector.decode(detector.run(x), meta))
    return None if face is None else pb.extract_chip(img, face["landmarks"])


def calibration_inputs(model: str, photos: list[str]) -> list[dict]:
    samples = cache_dir() / "samples"
    images = [pb.ref_detect.load_rgb(str(samples / p)) for p in photos]
    detector = pb.CenterFace(str(model_path("centerface")), 1)
    if model == "centerface":
        return [{"input.1": detector.preprocess(img)[0]} for img in images]
    chips = [c for c in (main_face_chip(detector, img) for img in images) if c is not None]
    return [{"input": np.ascontiguousarray(c.transpose(2, 0, 1)[None].astype(np.float32))} for c in chips]


def excluded(model: onnx.ModelProto, which: list[str]) -> list[str]:
    nodes = model.graph.node
    names = []
    for w in which:
        if w == "first-conv":
            names.append(next(n.name for n in nodes if n.op_type == "Conv"))
        elif w == "last-matmul":
            names.append(next(n.name for n in reversed(nodes) if n.op_type in ("MatMul", "Gemm")))
        elif w.startswith("last-convs"):  # the last N convolutions (the last residual blocks), e.g. last-convs2
            convs = [n.name for n in nodes if n.op_type == "Conv"]
            names += convs[-int(w[len("last-convs"):] or 1):]
        elif w == "input-norm":  # the graph's own mean subtraction and scaling before the first Conv
            first = next(i for i, n in enumerate(nodes) if n.op_type == "Conv")
            names += [n.name for n in nodes[:first]]
        elif w:
            raise SystemExit(f"--exclude: unknown {w!r} (first-conv, last-matmul, last-convsN, input-norm)")
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, choices=sorted(FILES))
    parser.add_argument("--photos", default="johns-half", choices=["johns-half", "johns", "pairs"])
    parser.add_argument("--method", default="minmax", choices=["minmax", "percentile", "entropy"])
    parser.add_argument("--percentile", type=float, default=99.999)
    parser.add_argument("--activation", default="u8", choices=["u8", "s8"])
    parser.add_argument("--symmetric", action="store_true", help="symmetric activation ranges (zero point 0)")
    parser.add_argument("--exclude", default="", help="comma-separated: first-conv, last-matmul, last-convsN, input-norm")
    parser.add_argument("--fold-affine", action="store_true",
                        help="fold each Conv's following per-channel Mul and Add into it first (dlib's affine layers)")
    parser.add_argument("--op-types", default="", help="comma-separated operator types to quantise (default: all "
                        "onnxruntime can), e.g. Conv,MatMul to keep residual Adds and pools in float")
    parser.add_argument("--reduce-range", action="store_true",
                        help="7-bit weights, ONNX Runtime's advice for x86 without VNNI (u8 x s8 sums saturate)")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)

    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod  # noqa: PLC0415
    from onnxruntime.quantization.calibrate import create_calibrator  # noqa: PLC0415

    src = model_path(args.model)
    recipe = {"activation": args.activation, "weight": "s8", "per_channel": True,
              "activation_symmetric": args.symmetric, "fold_affine": args.fold_affine, "exclude": [],
              "op_types": [t for t in args.op_types.split(",") if t] or None,
              "reduce_range": args.reduce_range}
    model = quantize.prepared(src, recipe)
    recipe["exclude"] = excluded(model, [w for w in args.exclude.split(",") if w])
    photos = photo_set(args.photos)
    inputs = calibration_inputs(args.model, photos)

    class One(CalibrationDataReader):
        def __init__(self, feed):
            self.it = iter([feed])

        def get_next(self):
            return next(self.it, None)

    method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
              "entropy": CalibrationMethod.Entropy}[args.method]
    options = {"symmetric": args.symmetric}
    if args.method == "percentile":
        options["percentile"] = args.percentile
    with tempfile.TemporaryDirectory(prefix="vigil-calibrate.") as tmp:
        prepared = Path(tmp) / "model.onnx"
        onnx.save(model, str(prepared))
        calibrator = create_calibrator(prepared, None, augmented_model_path=str(Path(tmp) / "augmented.onnx"),
                                       calibrate_method=method, extra_options=options)
        # One input a call: the detector's inputs differ in size, and the histogram calibrators stack each
        # call's outputs (ranges and histograms accumulate across calls).
        for feed in inputs:
            calibrator.collect_data(One(feed))
        data = calibrator.compute_data()
    ranges = {name: [float(np.asarray(v, np.float32).reshape(-1)[0]) for v in td.range_value]
              for name, td in sorted(data.items())}
    table = {
        "model": args.model,
        "model_sha256": hashlib.sha256(src.read_bytes()).hexdigest(),
        "calibration": {"method": args.method, "photos": args.photos, "inputs": len(inputs),
                        **({"percentile": args.percentile} if args.method == "percentile" else {})},
        "recipe": recipe,
        "ranges": ranges,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(table, indent=1) + "\n")
    print(f"{args.out}: {len(ranges)} tensor ranges from {len(inputs)} inputs ({args.method})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
