#!/usr/bin/env python3
"""Which person model finds lying, sitting and covered patients (issue 19): recall, false occupancy
and speed of each candidate, on generated ward scenes and on real photos from registry packages.

Candidates (ONNX files made by convert_nanodet.py / convert_tfjs.py; see docs/models.md):
  nanodet    NanoDet-g-416, the agent's former detector (person class), letterboxed 416
  movenet    MoveNet multi-pose lightning, cut before its decoder, letterboxed 256 (the agent's first stage)
  centernet  MobileNetV3 CenterNet (COCO), whole frame stretched to 512 as @vladmandic/human does
  blazepose  MediaPipe BlazePose person detector (face-anchored, rotation-aware), letterboxed 224 (the
             agent's second stage);
             a person box is built from its hip centre, body-circle radius and hip->shoulder axis
  selfie     MediaPipe selfie segmentation, stretched to 256; a person box per connected blob of
             the mask (> 0.5)

Generated scenes follow tests/common/scenes.rs: the same room (wall, tiled floor, bed with a checked
sheet and pillow, dialysis chair), people cut out of ultralytics' bus.jpg and zidane.jpg with the same
soft elliptical mask, turned to lie on the mattress (head left or right, tilted), a blanket drawn over
a share of the body (none / legs / to the chest / to the chin), the upper body placed in the chair;
empty beds in plain light, dimmed, night IR (grey, flat, noisy), with a crumpled blanket, and with a
nurse standing at the bed. Each frame gets sensor noise. A bed or chair counts as occupied by a model
when one of its boxes passes the agent's rule (decide/presence.rs, `Overlap::occupies`: score >= 0.35,
at least half the box inside the region and 10 % of the region covered, or 60 % of the region covered).

Real photos: dlib's examples/faces (Debian source package dlib 19.24+dfsg-1, already a sample set of
models/manifest.toml) has four photos of 17 people seated on chairs, at tables, indoors. Their seated
people are counted by hand below (SEATED); a model's recall is the share of those boxes it matches
(IoU >= 0.3 with a box of its own); the share with a box centre inside is given too (BlazePose
guesses the body's extent from the face, and behind a table guesses it too large). No registry package searched has a photo of a person in a bed.

    presence_eval.py --models DIR [--dlib-faces DIR] [--out results.json] [--preview DIR]
"""
import argparse
import glob
import json
import os
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_detect import NanoDet, make_session, nms  # noqa: E402

MIN_SCORE, MIN_INSIDE, MIN_COVER, FULL_COVER = 0.35, 0.5, 0.1, 0.6
W, H = 1280, 720

# ----------------------------------------------------------------------------- candidates


class Nano:
    name = "nanodet"

    def __init__(self, path):
        self.det = NanoDet(path, 1)

    def detect(self, rgb):
        x, meta = self.det.preprocess(rgb)
        return [(p["box"], p["score"]) for p in self.det.decode(self.det.run(x), meta)[0]]


class CenterNet:
    name = "centernet"
    SIZE = 512

    def __init__(self, path, threshold=0.35):
        self.sess, self.threshold = make_session(path, 1), threshold

    def detect(self, rgb):
        h, w = rgb.shape[:2]
        x = cv2.resize(rgb, (self.SIZE, self.SIZE), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        heat, wh = self.sess.run(["heatmap", "wh"], {"input": x.transpose(2, 0, 1)[None]})
        heat, wh = heat[0, :, :, 0], wh[0]
        # CenterNet's NMS: a peak is a cell equal to the max of its 3x3 neighbourhood
        peak = heat == cv2.dilate(heat, np.ones((3, 3), np.uint8))
        ys, xs = np.nonzero(peak & (heat > self.threshold))
        out = []
        for y, x_ in zip(ys, xs):
            d = wh[y, x_]
            box = [(x_ * 4 - d[0]) * w / self.SIZE, (y * 4 - d[1]) * h / self.SIZE,
                   (x_ * 4 + d[2]) * w / self.SIZE, (y * 4 + d[3]) * h / self.SIZE]
            out.append(([float(np.clip(v, 0, lim)) for v, lim in zip(box, (w, h, w, h))], float(heat[y, x_])))
        return out


def blazepose_anchors():
    """MediaPipe pose_detection's SSD anchors: 224x224, strides 8,16,32,32,32, two per cell on the
    first layers (the last three share one grid and add up to six), centres only."""
    anchors = []
    for stride, per_cell in ((8, 2), (16, 2), (32, 6)):
        g = 224 // stride
        for y in range(g):
            for x in range(g):
                anchors += [((x + 0.5) / g, (y + 0.5) / g)] * per_cell
    return np.array(anchors)


class BlazePose:
    name = "blazepose"
    SIZE = 224

    def __init__(self, path, threshold=0.5, tiles=False):
        self.sess, self.threshold, self.tiles = make_session(path, 1), threshold, tiles
        self.anchors = blazepose_anchors()
        if tiles:
            self.name = "blazepose-tiles"

    def detect(self, rgb):
        h, w = rgb.shape[:2]
        if not self.tiles or w <= h:
            return self.detect_one(rgb)
        # square tiles, as few as cover the width, overlapping evenly: a 16:9 frame gives two
        n = int(np.ceil(w / h))
        step = (w - h) / (n - 1)
        found = []
        for k in range(n):
            x0 = int(round(k * step))
            for b, s in self.detect_one(rgb[:, x0:x0 + h]):
                found.append(([b[0] + x0, b[1], b[2] + x0, b[3]], s))
        if not found:
            return []
        boxes = np.array([b for b, _ in found])
        scores = np.array([s for _, s in found])
        return [found[k] for k in nms(boxes, scores, 0.5, suppress_equal=False)]

    def detect_one(self, rgb):
        h, w = rgb.shape[:2]
        r = min(self.SIZE / w, self.SIZE / h)
        nw, nh = round(w * r), round(h * r)
        left, top = (self.SIZE - nw) // 2, (self.SIZE - nh) // 2
        canvas = np.zeros((self.SIZE, self.SIZE, 3), np.float32)
        canvas[top:top + nh, left:left + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
        raw = self.sess.run(["person"], {"input": canvas.transpose(2, 0, 1)[None]})[0][0]
        return blazepose_decode(raw, self.anchors, self.threshold, (left, top, r, w, h))


def blazepose_decode(raw, anchors, threshold, meta):
    """BlazePose detector output [2254, 13] -> [(box, score)] in the picture's pixels; meta: the
    letterbox (left, top, ratio) and the picture's width and height."""
    left, top, r, w, h = meta
    size = BlazePose.SIZE
    raw = raw.astype(np.float64)
    score = 1 / (1 + np.exp(-np.clip(raw[:, 0], -100, 100)))
    idx = np.nonzero(score > threshold)[0]
    if len(idx) == 0:
        return []
    a = anchors[idx]
    c = raw[idx, 1:] / size
    face = np.stack([a[:, 0] + c[:, 0] - c[:, 2] / 2, a[:, 1] + c[:, 1] - c[:, 3] / 2,
                     a[:, 0] + c[:, 0] + c[:, 2] / 2, a[:, 1] + c[:, 1] + c[:, 3] / 2], 1)
    kp = a[:, None, :] + c[:, 4:12].reshape(-1, 4, 2)  # hip centre, body circle, shoulders, upper circle
    keep = nms(face, score[idx], 0.3, suppress_equal=False)
    out = []
    for k in keep:
        hip, circle, shoulder = kp[k, 0], kp[k, 1], kp[k, 2]
        radius = np.linalg.norm(circle - hip)
        axis = shoulder - hip
        axis = axis / (np.linalg.norm(axis) + 1e-9)
        across = np.array([-axis[1], axis[0]])
        # the body: from a radius below the hips to a radius above them along the hip->shoulder
        # axis, a quarter radius to either side; its axis-aligned bounds, with the face box
        corners = [hip + s * radius * axis + t * 0.25 * radius * across for s in (-1, 1) for t in (-1, 1)]
        pts = np.array(corners + [face[k, :2], face[k, 2:]])
        x1, y1 = pts.min(0)
        x2, y2 = pts.max(0)
        box = [(x1 * size - left) / r, (y1 * size - top) / r, (x2 * size - left) / r, (y2 * size - top) / r]
        out.append(([float(np.clip(v, 0, lim)) for v, lim in zip(box, (w, h, w, h))], float(score[idx][k])))
    return out

class MoveNet:
    """MoveNet multi-pose lightning, cut before its in-graph decoder: centre heatmap and box heads on a
    64x64 grid of a 256x256 letterbox; up to 6 people, as the graph's own top-k."""
    name = "movenet"
    SIZE = 256

    def __init__(self, path, threshold=0.35):
        self.sess, self.threshold = make_session(path, 1), threshold

    def detect(self, rgb):
        h, w = rgb.shape[:2]
        r = min(self.SIZE / w, self.SIZE / h)
        nw, nh = round(w * r), round(h * r)
        left, top = (self.SIZE - nw) // 2, (self.SIZE - nh) // 2
        canvas = np.zeros((self.SIZE, self.SIZE, 3), np.float32)
        canvas[top:top + nh, left:left + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
        centre, scale, offset = (o[0] for o in self.sess.run(
            ["center", "box_scale", "box_offset"], {"input": canvas.transpose(2, 0, 1)[None]}))
        return movenet_decode(centre, scale, offset, self.threshold, (left, top, r, w, h))


def movenet_decode(centre, scale, offset, threshold, meta):
    """MoveNet heads [64, 64, C] -> [(box, score)] in the picture's pixels (as its graph decodes)."""
    left, top, r, w, h = meta
    size = MoveNet.SIZE
    heat = 1 / (1 + np.exp(-centre[:, :, 0]))
    g = heat.shape[0]
    peak = np.abs(heat - cv2.dilate(heat, np.ones((3, 3), np.uint8))) < 1.013279e-06
    ys, xs = np.nonzero(peak & (heat > threshold))
    order = np.argsort(-heat[ys, xs], kind="stable")[:6]
    out = []
    for k in order:
        y, x = ys[k], xs[k]
        sy, sx = np.maximum(scale[y, x], 0)
        cy, cx = y + offset[y, x, 0], x + offset[y, x, 1]
        box = [(cx - sx / 2) / g, (cy - sy / 2) / g, (cx + sx / 2) / g, (cy + sy / 2) / g]
        box = [(box[0] * size - left) / r, (box[1] * size - top) / r,
               (box[2] * size - left) / r, (box[3] * size - top) / r]
        out.append(([float(np.clip(v, 0, lim)) for v, lim in zip(box, (w, h, w, h))], float(heat[y, x])))
    return out

class Selfie:
    name = "selfie"
    SIZE = 256

    def __init__(self, path):
        self.sess = make_session(path, 1)

    def detect(self, rgb):
        h, w = rgb.shape[:2]
        x = cv2.resize(rgb, (self.SIZE, self.SIZE), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        mask = self.sess.run(["mask"], {"input": x.transpose(2, 0, 1)[None]})[0][0, :, :, 0]
        n, labels, stats, _ = cv2.connectedComponentsWithStats((mask > 0.5).astype(np.uint8))
        out = []
        for i in range(1, n):
            bx, by, bw, bh, area = stats[i]
            if area < 0.002 * self.SIZE * self.SIZE:
                continue
            box = [bx * w / self.SIZE, by * h / self.SIZE, (bx + bw) * w / self.SIZE, (by + bh) * h / self.SIZE]
            out.append((box, float(mask[labels == i].mean())))
        return out


class Union:
    """Two detectors on the same frame, as the agent's PersonDetector joins MoveNet and BlazePose: the
    second's boxes are added unless the first has the same person (IoU >= 0.5)."""

    def __init__(self, a, b):
        self.a, self.b, self.name = a, b, f"{a.name}+{b.name}"

    def detect(self, rgb):
        first = self.a.detect(rgb)
        return first + [(b, s) for b, s in self.b.detect(rgb) if not any(iou(b, f) >= 0.5 for f, _ in first)]


CANDIDATES = {
    "nanodet": ("nanodet.onnx", Nano),
    "centernet": ("centernet.onnx", CenterNet),
    "blazepose": ("blazepose_detector.onnx", BlazePose),
    "blazepose-tiles": ("blazepose_detector.onnx", lambda p: BlazePose(p, tiles=True)),
    "selfie": ("selfie.onnx", Selfie),
    "movenet": ("movenet_multipose.onnx", MoveNet),
    "nanodet+blazepose": (None, None),
    "movenet+blazepose": (None, None),
    "nanodet+movenet": (None, None),
    "nanodet+blazepose-tiles": (None, None),
}

# ----------------------------------------------------------------------------- occupancy rule


def occupies(region, box, score):
    x1, y1, x2, y2 = region
    ix = max(0.0, min(x2, box[2]) - max(x1, box[0]))
    iy = max(0.0, min(y2, box[3]) - max(y1, box[1]))
    common = ix * iy
    barea = max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])
    inside = min(common / barea, 1.0) if barea > 0 else 0.0
    cover = min(common / ((x2 - x1) * (y2 - y1)), 1.0)
    return score >= MIN_SCORE and ((inside >= MIN_INSIDE and cover >= MIN_COVER) or cover >= FULL_COVER)


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    u = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - ix * iy
    return ix * iy / u if u > 0 else 0.0

# ----------------------------------------------------------------------------- scenes (tests/common/scenes.rs)


BED_X, MATTRESS_Y, SEAT, WALL_BOTTOM = (0.12, 0.62), (0.50, 0.62), (0.76, 0.58, 0.90, 0.64), 0.42
BODY_BOTTOM = 0.58
BED_REGION = (0.12 * W, 0.30 * H, 0.63 * W, 0.66 * H)
CHAIR_REGION = (0.74 * W, 0.22 * H, 0.94 * W, 0.70 * H)


def px(n):
    return int(n[0] * W), int(n[1] * H), int(n[2] * W), int(n[3] * H)


def fill(img, b, colour):
    x1, y1, x2, y2 = b
    img[max(y1, 0):y2, max(x1, 0):x2] = colour


def draw_room():
    img = np.zeros((H, W, 3), np.int32)
    wb = int(WALL_BOTTOM * H)
    ys, xs = np.mgrid[0:H, 0:W]
    stripe = np.where((xs // 20) % 2 == 0, 4, 0)
    v = 20 * (wb - ys) // max(wb, 1)
    wall = np.stack([208 - v + stripe, 200 - v + stripe, 182 - v + stripe], -1)
    grout = ((xs % 64) < 3) | (((ys - wb) % 48) < 3)
    fv = 25 * (ys - wb) // (H - wb)
    floor = np.where(grout[..., None], np.array([130, 130, 126]), np.stack([178 - fv, 178 - fv, 170 - fv], -1))
    img[:] = np.where((ys < wb)[..., None], wall, floor)
    fill(img, px((0, WALL_BOTTOM, 1, WALL_BOTTOM + 0.02)), (150, 140, 120))
    fill(img, px((0.66, 0.08, 0.86, 0.30)), (120, 115, 105))
    fill(img, px((0.67, 0.10, 0.85, 0.28)), (170, 195, 215))
    for lx in (BED_X[0] + 0.02, BED_X[1] - 0.03):
        fill(img, px((lx, MATTRESS_Y[1], lx + 0.012, 0.78)), (105, 110, 115))
        fill(img, px((lx - 0.008, 0.775, lx + 0.02, 0.80)), (40, 40, 45))
    fill(img, px((BED_X[0], MATTRESS_Y[1], BED_X[1], MATTRESS_Y[1] + 0.04)), (120, 125, 132))
    x1, y1, x2, y2 = px((BED_X[0], MATTRESS_Y[0], BED_X[1], MATTRESS_Y[1]))
    check = ((xs % 24) < 2) | ((ys % 24) < 2)
    img[y1:y2, x1:x2] = np.where(check[y1:y2, x1:x2, None], np.array([200, 212, 228]), np.array([234, 236, 240]))
    p = px((BED_X[0] + 0.015, 0.445, BED_X[0] + 0.11, 0.51))
    cx, cy, rx, ry = (p[0] + p[2]) / 2, (p[1] + p[3]) / 2, (p[2] - p[0]) / 2, (p[3] - p[1]) / 2
    d = ((xs - cx) / rx) ** 2 + ((ys - cy) / ry) ** 2
    pv = (248 - 30 * d).astype(np.int32)
    img = np.where((d <= 1)[..., None], np.stack([pv, pv, pv - 6], -1), img)
    fill(img, px((BED_X[0] - 0.02, 0.36, BED_X[0] + 0.005, 0.70)), (150, 128, 100))
    fill(img, px((BED_X[1] - 0.005, 0.46, BED_X[1] + 0.015, 0.68)), (150, 128, 100))
    fill(img, px((0.81, SEAT[3], 0.85, 0.78)), (90, 90, 95))
    fill(img, px((0.77, 0.78, 0.89, 0.80)), (60, 60, 65))
    fill(img, px(SEAT), (55, 105, 115))
    fill(img, px((0.88, 0.28, 0.92, SEAT[3])), (55, 112, 115))
    fill(img, px((0.77, 0.55, 0.89, 0.575)), (50, 95, 105))
    fill(img, px((0.955, 0.15, 0.96, 0.80)), (170, 170, 175))
    fill(img, px((0.945, 0.15, 0.97, 0.22)), (225, 230, 200))
    return np.clip(img, 0, 255).astype(np.uint8)


def cutout(photo, box):
    """The soft elliptical cut-out of scenes.rs: RGBA float."""
    x1, y1, x2, y2 = (int(v) for v in box)
    crop = photo[y1:y2, x1:x2].astype(np.float32)
    h, w = crop.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w]
    d = np.sqrt(((xs + 0.5 - w / 2) / (0.56 * w)) ** 2 + ((ys + 0.5 - h / 2) / (0.54 * h)) ** 2)
    alpha = np.clip((1 - d) / 0.12, 0, 1)
    return np.dstack([crop, alpha])


def paste(img, sprite, x, y):
    h, w = sprite.shape[:2]
    X1, Y1, X2, Y2 = max(x, 0), max(y, 0), min(x + w, W), min(y + h, H)
    s = sprite[Y1 - y:Y2 - y, X1 - x:X2 - x]
    a = s[..., 3:4]
    img[Y1:Y2, X1:X2] = (s[..., :3] * a + img[Y1:Y2, X1:X2] * (1 - a)).round().astype(np.uint8)


def rotate(sprite, degrees):
    h, w = sprite.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    c, s = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(h * s + w * c), int(h * c + w * s)
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(sprite, m, (nw, nh), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0, 0))


def noise(img, seed, amplitude=8):
    rng = np.random.default_rng(seed)
    n = rng.integers(-amplitude, amplitude + 1, img.shape[:2])[..., None]
    return np.clip(img.astype(np.int32) + n, 0, 255).astype(np.uint8)


def night_ir(img, seed):
    """What an IR camera at night gives: no chroma, flat and dim, skin and cloth alike, more noise."""
    grey = img.astype(np.float32) @ np.array([0.299, 0.587, 0.114])
    grey = 40 + 0.45 * grey
    return noise(np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, 2), seed, 14)


def blanket(img, x1, y1, x2, y2, colour=(100, 135, 180)):
    ys, xs = np.mgrid[y1:y2, x1:x2]
    fold = np.where((xs - x1 + (ys - y1) // 3) % 48 < 6, 18, 0)
    shade = (ys - y1) * 20 // max(y2 - y1, 1)
    img[y1:y2, x1:x2] = np.clip(np.array(colour)[None, None] - (fold + shade)[..., None], 0, 255)


# The people cut out of the registry photos, [x1, y1, x2, y2] (NanoDet's boxes on these photos), and
# whether head to feet is in the box: bus.jpg's pedestrians (cream coat, black coat, the man cut by
# the photo's right edge) and zidane.jpg's two men, seen to the waist.
PEOPLE = [
    ("bus.jpg", [52, 396, 221, 893], True),
    ("bus.jpg", [206, 397, 360, 854], True),
    ("bus.jpg", [680, 398, 810, 878], True),
    ("zidane.jpg", [758, 43, 1145, 717], False),
    ("zidane.jpg", [154, 225, 658, 718], False),
]


def people(samples):
    out = []
    for name, box, whole in PEOPLE:
        rgb = cv2.cvtColor(cv2.imread(os.path.join(samples, name)), cv2.COLOR_BGR2RGB)
        out.append((f"{name}:{box[0]},{box[1]}", cutout(rgb, box), whole))
    return out


COVERS = {"none": 0.0, "legs": 0.45, "chest": 0.7, "chin": 0.9}


def lying_frame(room, person, length_share, head_left, tilt, cover):
    """A person lying on the mattress, head on the pillow side given; `length_share` of a body's length
    is in the cut-out (0.55: head to waist), the rest of the body is under the blanket."""
    img = room.copy()
    turned = rotate(person, (90 if head_left else -90) + tilt)
    full = int((BED_X[1] - BED_X[0] - 0.04) * W)
    length = int(full * length_share)
    thick = int(turned.shape[0] * length / turned.shape[1])
    sprite = cv2.resize(turned, (length, max(thick, 1)), interpolation=cv2.INTER_LINEAR)
    head_end = int((BED_X[0] + 0.02) * W) if head_left else int((BED_X[1] - 0.02) * W)
    x = head_end if head_left else head_end - length
    y = int(BODY_BOTTOM * H) - sprite.shape[0]
    paste(img, sprite, x, y)
    share = COVERS[cover]
    if share > 0:
        by = max(y + sprite.shape[0] // 5, int(0.40 * H))
        by2 = int((MATTRESS_Y[1] + 0.015) * H)
        if head_left:
            bx, bx2 = head_end + int(full * (1 - share)), int((BED_X[1] - 0.005) * W)
        else:
            bx, bx2 = int((BED_X[0] + 0.005) * W), head_end - int(full * (1 - share))
        blanket(img, bx, by, bx2, by2)
    return img


def sitting_frame(room, person):
    img = room.copy()
    upper = person[: int(person.shape[0] * 0.58)]
    hgt = int(0.34 * H)
    sprite = cv2.resize(upper, (int(upper.shape[1] * hgt / upper.shape[0]), hgt), interpolation=cv2.INTER_LINEAR)
    cx = int((SEAT[0] + SEAT[2]) / 2 * W)
    paste(img, sprite, cx - sprite.shape[1] // 2, int((SEAT[1] + 0.01) * H) - hgt)
    fill(img, px((0.77, 0.55, 0.89, 0.575)), (50, 95, 105))
    return img


def scenes(room, persons):
    """(kind, label, image, bed occupied, chair occupied)"""
    seed = 0
    for light in ("day", "ir"):
        def lit(img):
            nonlocal seed
            seed += 1
            return noise(img, seed) if light == "day" else night_ir(img, seed)
        for pname, person, whole in persons:
            for head_left in (True, False):
                for tilt in (0, 8):
                    for cover in COVERS:
                        if not whole and cover == "none":
                            continue  # a body cut at the waist needs a blanket over the rest
                        img = lying_frame(room, person, 1.0 if whole else 0.55, head_left, tilt, cover)
                        yield (f"lying-{cover}", light, f"{pname} head_{'left' if head_left else 'right'} tilt {tilt}",
                               lit(img), True, False)
            yield "sitting", light, pname, lit(sitting_frame(room, person)), False, True
        for k in range(4):
            yield "empty", light, f"empty {k}", lit(room.copy()), False, False
            dim = (room.astype(np.float32) * (0.7 if k % 2 else 1.25)).clip(0, 255).astype(np.uint8)
            yield "empty", light, f"empty {'dim' if k % 2 else 'bright'} {k}", lit(dim), False, False
            img = room.copy()  # a crumpled blanket left on the empty bed
            x0 = int((BED_X[0] + 0.12 + 0.05 * k) * W)
            blanket(img, x0, int(0.49 * H), x0 + int(0.22 * W), int(0.625 * H), colour=(120 + 20 * k, 135, 170))
            yield "empty", light, f"blanket only {k}", lit(img), False, False
        for pname, person, whole in persons:  # a nurse standing in front of the bed's foot end
            if not whole or "zidane" in pname:
                continue
            img = room.copy()
            hgt = int(0.60 * H)
            sprite = cv2.resize(person, (int(person.shape[1] * hgt / person.shape[0]), hgt))
            paste(img, sprite, int(0.50 * W), int(0.93 * H) - hgt)
            yield "empty+nurse", light, pname, lit(img), False, False

# ----------------------------------------------------------------------------- real photos

# Seated people in dlib's examples/faces photos, [x1, y1, x2, y2] in the photo's pixels, drawn by
# hand around each seated person visible down to the seat (people standing behind are not listed).
SEATED = {
    "2007_007763.jpg": [[55, 180, 165, 375], [120, 200, 245, 375], [270, 215, 395, 375]],
    "2008_002079.jpg": [[0, 165, 110, 375], [45, 115, 160, 350], [105, 120, 175, 260], [305, 110, 390, 250],
                        [380, 150, 460, 340], [430, 145, 500, 375]],
    "2008_002470.jpg": [[0, 135, 120, 300], [140, 150, 205, 270], [205, 150, 400, 332]],
    "2008_007676.jpg": [[30, 115, 195, 334], [165, 100, 250, 290], [235, 105, 330, 260], [310, 105, 370, 240],
                        [355, 115, 480, 290]],
}


def real_photos(dlib_faces, models, preview):
    rows = {}
    for name, truth in SEATED.items():
        path = os.path.join(dlib_faces, name)
        rgb = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        for m in models:
            found = [b for b, s in m.detect(rgb) if s >= MIN_SCORE]
            hit = sum(1 for t in truth if any(iou(t, b) >= 0.3 for b in found))
            centres = [((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in found]
            centre_hit = sum(1 for t in truth if any(t[0] <= x <= t[2] and t[1] <= y <= t[3] for x, y in centres))
            r = rows.setdefault(m.name, {"seated": 0, "found": 0, "centre": 0, "boxes": 0})
            r["seated"] += len(truth)
            r["found"] += hit
            r["centre"] += centre_hit
            r["boxes"] += len(found)
            if preview:
                out = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
                for t in truth:
                    cv2.rectangle(out, (int(t[0]), int(t[1])), (int(t[2]), int(t[3])), (0, 255, 0), 1)
                for b in found:
                    cv2.rectangle(out, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), (0, 0, 255), 2)
                cv2.imwrite(os.path.join(preview, f"real-{m.name}-{name[:-4]}.png"), out)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", required=True, help="directory with the candidates' ONNX files")
    ap.add_argument("--samples", default=os.path.expanduser("~/.cache/vigil/samples/ultralytics-assets"))
    ap.add_argument("--dlib-faces", help="dlib's examples/faces directory (Debian source dlib 19.24+dfsg)")
    ap.add_argument("--only", default=",".join(CANDIDATES))
    ap.add_argument("--out")
    ap.add_argument("--preview", help="write a few frames with each model's boxes as PNG here")
    ap.add_argument("--bench", type=int, default=0, metavar="N",
                    help="then time N more frames per model, the models interleaved frame by frame")
    args = ap.parse_args()

    models = []
    for key in args.only.split(","):
        file, cls = CANDIDATES[key]
        if file is None:  # a union of two candidates
            a, b = key.split("+")
            models.append(Union(CANDIDATES[a][1](os.path.join(args.models, CANDIDATES[a][0])),
                                CANDIDATES[b][1](os.path.join(args.models, CANDIDATES[b][0]))))
            continue
        path = os.path.join(args.models, file)
        if not os.path.exists(path):
            raise SystemExit(f"{path} missing: convert it first (see docs/models.md)")
        models.append(cls(path))
    room = draw_room()
    persons = people(args.samples)
    print(f"{len(persons)} people cut out: {[p[0] for p in persons]}")
    res = {m.name: {} for m in models}
    times = {m.name: [] for m in models}
    shown = set()
    for kind, light, label, img, bed, chair in scenes(room, persons):
        for m in models:
            t0 = time.perf_counter()
            dets = m.detect(img)
            times[m.name].append(time.perf_counter() - t0)
            bed_hit = any(occupies(BED_REGION, b, s) for b, s in dets)
            chair_hit = any(occupies(CHAIR_REGION, b, s) for b, s in dets)
            key = f"{kind}/{light}"
            r = res[m.name].setdefault(key, {"n": 0, "bed": 0, "chair": 0})
            r["n"] += 1
            r["bed"] += bed_hit
            r["chair"] += chair_hit
            if args.preview and (m.name, key) not in shown:
                shown.add((m.name, key))
                out = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
                for b, s in dets:
                    cv2.rectangle(out, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), (0, 0, 255), 2)
                    cv2.putText(out, f"{s:.2f}", (int(b[0]), int(b[1]) + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 255), 2)
                cv2.imwrite(os.path.join(args.preview, f"{m.name}-{kind}-{light}.png"), out)
    real = real_photos(args.dlib_faces, models, args.preview) if args.dlib_faces else {}
    summary = {}
    for m in models:
        r = res[m.name]
        s = summary[m.name] = {"ms_per_frame_median": round(1000 * float(np.median(times[m.name])), 1), "scenes": r}
        print(f"\n== {m.name}: {s['ms_per_frame_median']} ms/frame (median, 1 thread, pre+post included)")
        for key in sorted(r):
            v = r[key]
            what = "chair" if key.startswith("sitting") else "bed"
            print(f"  {key:22s} {what} occupied {v[what]:3d}/{v['n']:3d}" +
                  (f"   (chair {v['chair']}/{v['n']})" if what == "bed" and v["chair"] else ""))
        if m.name in real:
            s["real"] = real[m.name]
            rr = real[m.name]
            print(f"  real seated (dlib faces): {rr['found']}/{rr['seated']} matched (IoU >= 0.3), "
                  f"{rr['centre']}/{rr['seated']} with a box centre inside ({rr['boxes']} boxes)")
    if args.bench:
        # interleaved A B C A B C on the same frames, so machine load hits every model alike
        frames = [img for _, _, _, img, _, _ in scenes(room, persons)][:args.bench]
        bench = {m.name: [] for m in models}
        for img in frames:
            for m in models:
                t0 = time.perf_counter()
                m.detect(img)
                bench[m.name].append(time.perf_counter() - t0)
        print(f"\nms per 1280x720 frame, {len(frames)} frames interleaved, 1 ORT thread, pre+post included:")
        for m in models:
            t = np.array(bench[m.name]) * 1000
            summary[m.name]["bench_ms"] = {"median": round(float(np.median(t)), 1),
                                           "p90": round(float(np.percentile(t, 90)), 1)}
            print(f"  {m.name:10s} median {np.median(t):6.1f}  p90 {np.percentile(t, 90):6.1f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(summary, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
