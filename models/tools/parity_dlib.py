#!/usr/bin/env python3
"""Check an ONNX port of dlib's face recognition ResNet against dlib itself.

Usage:
  parity_dlib.py --model dlib_resnet.onnx --dat dlib_face_recognition_resnet_model_v1.dat \
                 --shape-predictor shape_predictor_5_face_landmarks.dat [--json] IMAGES...

For every image, dlib finds the largest face (HOG detector, one upsample), places the 5-point
landmarks and cuts the 150x150 chip with dlib.get_face_chip(size=150, padding=0.25). The very same
chip goes to dlib (compute_face_descriptor's aligned-image overload, num_jitters=0) and to the ONNX
model (onnxruntime, raw 0..255 RGB, NCHW), and the two 128-d embeddings are compared by cosine
similarity and Euclidean distance. As a guard that the chip really is what dlib's own pipeline
uses, the script also checks that dlib's image+landmarks overload gives the same descriptor.

Pairwise distances are then printed for dlib and ONNX embeddings. The identity of an image is
taken from its file name with trailing digits removed (obama2.jpg -> obama); dlib's rule is
"same person if distance < 0.6".

Exit status: 0 when every cosine >= --min-cosine (default 0.999) and, for every pair, the ONNX
same/different verdict at 0.6 equals dlib's; 1 otherwise; 2 on usage or input errors.
"""

import argparse
import itertools
import json
import os
import re
import sys

import dlib
import numpy as np
import onnxruntime as ort

SAME_PERSON_THRESHOLD = 0.6


def largest_face(detector, img):
    dets = detector(img, 1)
    if len(dets) == 0:
        return None
    return max(dets, key=lambda r: r.width() * r.height())


def identity(path):
    stem = os.path.splitext(os.path.basename(path))[0]
    return re.sub(r"[\d_]+$", "", stem) or stem


def cosine(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def main(argv=None):
    ap = argparse.ArgumentParser(description="ONNX vs dlib parity for the face embedder")
    ap.add_argument("--model", required=True, help="ONNX model from convert_dlib.py")
    ap.add_argument("--dat", required=True, help="dlib_face_recognition_resnet_model_v1.dat")
    ap.add_argument("--shape-predictor", required=True, help="shape_predictor_5_face_landmarks.dat")
    ap.add_argument("--min-cosine", type=float, default=0.999)
    ap.add_argument("--json", action="store_true", help="print results as JSON instead of text")
    ap.add_argument("images", nargs="+")
    args = ap.parse_args(argv)

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(args.shape_predictor)
    facerec = dlib.face_recognition_model_v1(args.dat)
    # Single-threaded, all graph optimisations: the configuration the agent is expected to use.
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
    in_name, out_name = sess.get_inputs()[0].name, sess.get_outputs()[0].name

    results, failures = [], []
    names, chips, dlib_embs = [], [], []
    for path in args.images:
        img = dlib.load_rgb_image(path)
        face = largest_face(detector, img)
        if face is None:
            print(f"error: no face found in {path}", file=sys.stderr)
            return 2
        shape = predictor(img, face)
        chip = dlib.get_face_chip(img, shape, size=150, padding=0.25)
        d_chip = np.array(facerec.compute_face_descriptor(chip, 0), dtype=np.float64)
        d_full = np.array(facerec.compute_face_descriptor(img, shape, 0, 0.25), dtype=np.float64)
        # Both overloads should see the same pixels; if not, the chip we feed ONNX is not dlib's.
        chip_drift = float(np.max(np.abs(d_chip - d_full)))
        names.append(path)
        chips.append(chip)
        dlib_embs.append(d_chip)
        results.append(dict(image=path, identity=identity(path),
                            face=[face.left(), face.top(), face.right(), face.bottom()],
                            dlib_chip_vs_pipeline_max_abs_diff=chip_drift))

    # One batched run also exercises the dynamic batch dimension.
    batch = np.stack(chips).astype(np.float32).transpose(0, 3, 1, 2)   # NHWC uint8 -> NCHW float
    onnx_embs = sess.run([out_name], {in_name: batch})[0].astype(np.float64)

    for res, d, o in zip(results, dlib_embs, onnx_embs):
        res.update(cosine=cosine(d, o), euclidean=float(np.linalg.norm(d - o)),
                   max_abs_diff=float(np.max(np.abs(d - o))),
                   dlib_norm=float(np.linalg.norm(d)), onnx_norm=float(np.linalg.norm(o)))
        if res["cosine"] < args.min_cosine:
            failures.append(f"{res['image']}: cosine {res['cosine']:.6f} < {args.min_cosine}")

    pairs = []
    for i, j in itertools.combinations(range(len(names)), 2):
        dd = float(np.linalg.norm(dlib_embs[i] - dlib_embs[j]))
        do = float(np.linalg.norm(onnx_embs[i] - onnx_embs[j]))
        same = results[i]["identity"] == results[j]["identity"]
        p = dict(a=names[i], b=names[j], same_identity_by_name=same,
                 dlib_distance=dd, onnx_distance=do,
                 dlib_says_same=dd < SAME_PERSON_THRESHOLD,
                 onnx_says_same=do < SAME_PERSON_THRESHOLD)
        p["dlib_matches_names"] = p["dlib_says_same"] == same
        pairs.append(p)
        if p["onnx_says_same"] != p["dlib_says_same"]:
            failures.append(f"{names[i]} vs {names[j]}: ONNX verdict differs from dlib "
                            f"(dlib {dd:.4f}, onnx {do:.4f})")

    ok = not failures
    if args.json:
        json.dump(dict(model=args.model, dat=args.dat, min_cosine=args.min_cosine,
                       threshold=SAME_PERSON_THRESHOLD, images=results, pairs=pairs, ok=ok,
                       failures=failures), sys.stdout, indent=2)
        print()
    else:
        print(f"{'image':<40} {'cosine':>10} {'euclid':>10} {'max|diff|':>10} {'chip drift':>10}")
        for r in results:
            print(f"{os.path.basename(r['image']):<40} {r['cosine']:>10.7f} {r['euclidean']:>10.2e} "
                  f"{r['max_abs_diff']:>10.2e} {r['dlib_chip_vs_pipeline_max_abs_diff']:>10.2e}")
        print()
        print(f"{'pair':<40} {'dlib dist':>10} {'onnx dist':>10}  verdict (< {SAME_PERSON_THRESHOLD} = same)")
        for p in pairs:
            pair = f"{os.path.basename(p['a'])} / {os.path.basename(p['b'])}"
            verdict = "same" if p["dlib_says_same"] else "different"
            note = "" if p["dlib_matches_names"] else "  (names disagree)"
            print(f"{pair:<40} {p['dlib_distance']:>10.4f} {p['onnx_distance']:>10.4f}  {verdict}{note}")
        print()
        print("PASS" if ok else "FAIL:\n  " + "\n  ".join(failures))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
