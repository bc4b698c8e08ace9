#!/usr/bin/env python3
"""Python peer of `vigil bench cameras --analysis faces`: one settlement-window camera written as a fair,
competent script would be (OpenCV + numpy + onnxruntime), measured the way Vigil measures itself.

    pipeline_peer.py --file CLIP.mp4 [--seconds 30] [--analysis-fps 5] [--detector-side 640]
                     [--face-window X0,Y0,X1,Y1 --face-px PX]

What it does, per frame of the clip (looped, paced at the clip's frame rate as a live camera or Vigil's
`file://` source plays it):
- `cv2.VideoCapture` (OpenCV's bundled FFmpeg, one decoder thread as Vigil's avdec_h264
  `max-threads=1`): `grab()` every frame, which decodes it (H.264 P-frames need their predecessors),
  `retrieve()` (the BGR conversion) only every fps/analysis-fps-th frame;
- CenterFace on the frame (or on the face window's crop, a numpy view, no copy): `cv2.resize`
  (INTER_LINEAR) to Vigil's input size rule (longest side ≤ --detector-side, each side rounded up to a
  multiple of 32; with --face-px also scaled by face_px / --min-face-px), `cv2.dnn.blobFromImage` with
  swapRB (so the full frame is never colour-converted), vectorised numpy decoding of the heat map, and
  `cv2.dnn.NMSBoxes`;
- the cheap part of Vigil's quality gate first (box ≥ min_face_px, detector score, roll and yaw from the
  landmarks), then alignment: `cv2.estimateAffinePartial2D` from the five landmarks to dlib's five-point
  template in a 150×150 chip with 25 % padding (the template of agent/src/analyze/align.rs, taken from
  peer_bench.py) and `cv2.warpAffine`; the sharpness gate: variance of the 4-neighbour Laplacian of the
  chip's luma (agent/src/analyze/quality.rs; `cv2.Laplacian` ksize 1, borders excluded as quality.rs);
- the dlib ResNet embedder (ONNX) on every face that passes, in one batch; then a numpy 1:N search over
  the same 1,000 synthetic embeddings as `vigil bench cameras` (one matrix-vector product).
ONNX Runtime as Vigil: the same models from the bundle, 1 intra-op thread, 1 inter-op thread,
ORT_ENABLE_ALL (ref_detect.make_session).

CPU time is the whole process's (`getrusage(RUSAGE_SELF)`: every thread, FFmpeg's included), over
--seconds after 5 s of warm-up, as Vigil's /proc/self/stat. It prints JSON with the fields of Vigil's
CameraBench: faces_per_cpu_s (faces embedded per CPU-second), cpu_per_camera,
frames_analysed_per_camera_per_s, faces_per_s, rss_bytes, peak_rss_bytes.

What it does not do that Vigil does on the same frames: tamper detection, recording, track bookkeeping
and the settlement rules. It counts the same thing: faces that passed the quality gate and were embedded.
"""
import argparse
import json
import math
import os
import platform
import resource
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import peer_bench  # noqa: E402  (dlib's five-point chip template, as align.rs)
import ref_detect  # noqa: E402  (ONNX Runtime session options, CenterFace's tensor names)

# Vigil's defaults (config/raw.rs [faces], analyze/quality.rs, analyze/face_detector.rs).
DETECTOR_THRESHOLD = 0.5
NMS_IOU = 0.3
MIN_FACE_PX = 80.0
MIN_SCORE = 0.6
MIN_SHARPNESS_VIDEO = 30.0
MAX_ROLL_DEG = 25.0
MAX_YAW_RATIO = 0.35
CHIP = 150
GALLERY = 1000


def synthetic_gallery():
    """cameras.rs `synthetic_gallery`: 1,000 people, one 128-d embedding each."""
    i = np.arange(GALLERY, dtype=np.int64)[:, None]
    d = np.arange(128, dtype=np.int64)[None, :]
    return (((i * 131 + d * 7) % 97).astype(np.float32) / np.float32(500.0) - np.float32(0.1)).astype(np.float32)


def input_size(w, h, max_side, scale_cap):
    """face_detector.rs `input_size`, plus the face-sized cap: each side scaled by
    min(1, scale_cap, max_side / longest side), rounded up to a multiple of 32 (at least 32)."""
    scale = min(1.0, scale_cap, max_side / max(w, h))
    return max(32, math.ceil(w * scale / 32) * 32), max(32, math.ceil(h * scale / 32) * 32)


class Peer:
    def __init__(self, models, detector_side, face_px, window, min_face_px=MIN_FACE_PX):
        self.cf = ref_detect.make_session(os.path.join(models, "centerface.onnx"), 1)
        self.emb = ref_detect.make_session(os.path.join(models, "dlib_face_recognition_resnet_v1.onnx"), 1)
        self.detector_side = detector_side
        # Vigil's sized input: the smallest wanted face (min_face_px) is scaled to face_px input pixels.
        self.min_face_px = min_face_px
        self.scale_cap = face_px / min_face_px if face_px > 0 else 1.0
        self.window = window  # normalised (x0, y0, x1, y1) or None
        self.template = peer_bench.TEMPLATE.astype(np.float32)
        self.gallery = synthetic_gallery()
        self.gallery_sq = (self.gallery * self.gallery).sum(axis=1)
        self.embedded = 0

    def detect(self, bgr):
        """Faces as (boxes [n, 4] x0 y0 x1 y1, scores [n], landmarks [n, 5, 2]) in frame pixels."""
        fh, fw = bgr.shape[:2]
        x0 = y0 = 0
        region = bgr
        if self.window is not None:
            x0, y0 = int(self.window[0] * fw), int(self.window[1] * fh)
            x1, y1 = math.ceil(self.window[2] * fw), math.ceil(self.window[3] * fh)
            region = bgr[y0:y1, x0:x1]
        h, w = region.shape[:2]
        iw, ih = input_size(w, h, self.detector_side, self.scale_cap)
        resized = cv2.resize(region, (iw, ih), interpolation=cv2.INTER_LINEAR)
        # RGB 0..255 planar float, as CenterFace was converted (face_detector.rs).
        blob = cv2.dnn.blobFromImage(resized, 1.0, swapRB=True)
        heat, scale, offset, marks = (o[0] for o in self.cf.run(ref_detect.CF_OUTPUTS, {ref_detect.CF_INPUT: blob}))
        ys, xs = np.nonzero(heat[0] > DETECTOR_THRESHOLD)
        if len(ys) == 0:
            return None
        bh = np.exp(scale[0, ys, xs]) * 4
        bw = np.exp(scale[1, ys, xs]) * 4
        bx = (xs + offset[1, ys, xs] + 0.5) * 4 - bw / 2
        by = (ys + offset[0, ys, xs] + 0.5) * 4 - bh / 2
        scores = heat[0, ys, xs]
        keep = cv2.dnn.NMSBoxes(np.stack([bx, by, bw, bh], axis=1).tolist(), scores.tolist(),
                                DETECTOR_THRESHOLD, NMS_IOU)
        keep = np.asarray(keep, dtype=np.intp).reshape(-1)
        sx, sy = iw / w, ih / h
        boxes = np.stack([np.clip(bx[keep], 0, iw), np.clip(by[keep], 0, ih),
                          np.clip(bx[keep] + bw[keep], 0, iw), np.clip(by[keep] + bh[keep], 0, ih)], axis=1)
        boxes = boxes / np.array([sx, sy, sx, sy]) + np.array([x0, y0, x0, y0])
        # Landmark channel 2j is y, 2j+1 is x, relative to the (unclipped) box.
        lx = (marks[1::2][:, ys[keep], xs[keep]] * bw[keep] + bx[keep]) / sx + x0
        ly = (marks[0::2][:, ys[keep], xs[keep]] * bh[keep] + by[keep]) / sy + y0
        return boxes, scores[keep], np.stack([lx.T, ly.T], axis=2)

    def analyse(self, bgr):
        """Detect, gate, align, embed and search one frame; returns the faces embedded."""
        found = self.detect(bgr)
        if found is None:
            return 0
        chips = []
        for box, score, marks in zip(*found):
            if min(box[2] - box[0], box[3] - box[1]) < self.min_face_px or score < MIN_SCORE:
                continue
            (lex, ley), (rex, rey), (nx, _) = marks[0], marks[1], marks[2]
            dx, dy = rex - lex, rey - ley
            eyes = max(math.hypot(dx, dy), 1.0)
            if abs(math.degrees(math.atan2(dy, dx))) > MAX_ROLL_DEG or abs(nx - (lex + rex) / 2) / eyes > MAX_YAW_RATIO:
                continue
            m, _ = cv2.estimateAffinePartial2D(marks.astype(np.float32), self.template)
            if m is None:
                continue
            chip = cv2.warpAffine(bgr, m, (CHIP, CHIP), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            luma = cv2.cvtColor(chip, cv2.COLOR_BGR2GRAY)
            if cv2.Laplacian(luma, cv2.CV_64F, ksize=1)[1:-1, 1:-1].var() < MIN_SHARPNESS_VIDEO:
                continue
            chips.append(chip)
        if not chips:
            return 0
        # The embedder takes RGB 0..255, planar; it subtracts dlib's mean itself.
        batch = cv2.dnn.blobFromImages(chips, 1.0, swapRB=True)
        embeddings = self.emb.run(["embedding"], {"input": batch})[0]
        for e in embeddings:
            d2 = self.gallery_sq - 2.0 * (self.gallery @ e) + float(e @ e)
            best = int(np.argmin(d2))
            self.best = (best, math.sqrt(max(float(d2[best]), 0.0)))
        self.embedded += len(chips)
        return len(chips)


class Clip:
    """A looped file played at its own frame rate, as a live camera delivers frames."""

    def __init__(self, path, threads, paced):
        self.path, self.threads, self.paced = path, threads, paced
        self.cap = self.open()
        self.fps = self.cap.get(cv2.CAP_PROP_FPS) or 25.0
        self.due = time.monotonic()

    def open(self):
        cap = cv2.VideoCapture(self.path, cv2.CAP_FFMPEG,
                               [cv2.CAP_PROP_N_THREADS, self.threads,
                                cv2.CAP_PROP_HW_ACCELERATION, cv2.VIDEO_ACCELERATION_NONE])
        if not cap.isOpened():
            raise SystemExit(f"pipeline_peer: OpenCV cannot open {self.path} with its FFmpeg backend")
        return cap

    def grab(self):
        if self.paced:
            self.due += 1.0 / self.fps
            late = self.due - time.monotonic()
            if late > 0:
                time.sleep(late)
        if self.cap.grab():
            return True
        self.cap.release()  # end of the clip: play it again
        self.cap = self.open()
        if not self.cap.grab():
            raise SystemExit(f"pipeline_peer: no frame could be decoded from {self.path}")
        return True


def cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def rss_bytes():
    with open("/proc/self/status") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    kb = lambda name: int(fields[name].split()[0]) * 1024  # noqa: E731
    return kb("VmRSS"), kb("VmHWM")


def window_arg(text):
    try:
        x0, y0, x1, y1 = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected X0,Y0,X1,Y1 (normalised 0..1)") from None
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= X0 < X1 <= 1 and 0 <= Y0 < Y1 <= 1")
    return (x0, y0, x1, y1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--file", required=True, help="H.264 clip (e.g. target/bench/window-1080p25.mp4)")
    ap.add_argument("--models", default=os.path.join(os.environ.get("VIGIL_CACHE", os.path.expanduser("~/.cache/vigil")), "models"),
                    help="model bundle directory (default $VIGIL_CACHE/models)")
    ap.add_argument("--seconds", type=float, default=30.0, help="measured seconds, after the warm-up")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds before the measured window")
    ap.add_argument("--analysis-fps", type=float, default=5.0, help="frames per second analysed (of the clip's)")
    ap.add_argument("--detector-side", type=int, default=640, help="longest side of CenterFace's input")
    ap.add_argument("--face-px", type=float, default=0.0,
                    help="size in detector-input pixels the smallest wanted face (--min-face-px) is scaled to; "
                         "0: --detector-side only (Vigil's [faces] detector_face_px)")
    ap.add_argument("--min-face-px", type=float, default=MIN_FACE_PX,
                    help="the quality gate's smallest face, in frame pixels (Vigil's [faces] min_face_px, 80, "
                         "counts pixels of its analysed frame, 1280 wide: 120 in a 1920-wide frame)")
    ap.add_argument("--face-window", type=window_arg, metavar="X0,Y0,X1,Y1",
                    help="look for faces in this rectangle only (normalised), as a camera's face_window")
    ap.add_argument("--decoder-threads", type=int, default=1, help="FFmpeg decoding threads (0: FFmpeg's choice)")
    ap.add_argument("--unpaced", action="store_true", help="decode as fast as possible instead of at the clip's rate")
    args = ap.parse_args()
    if not os.path.isfile(args.file):
        raise SystemExit(f"pipeline_peer: {args.file} does not exist")
    for name in ("centerface.onnx", "dlib_face_recognition_resnet_v1.onnx"):
        if not os.path.isfile(os.path.join(args.models, name)):
            raise SystemExit(f"pipeline_peer: {name} missing in {args.models} (run scripts/setup)")
    if not 0 < args.analysis_fps <= 30 or args.seconds <= 0 or args.detector_side < 32:
        raise SystemExit("pipeline_peer: --analysis-fps in (0, 30], --seconds > 0, --detector-side >= 32")

    import onnxruntime  # noqa: PLC0415  (loaded by ref_detect.make_session)

    peer = Peer(args.models, args.detector_side, args.face_px, args.face_window, args.min_face_px)
    clip = Clip(args.file, args.decoder_threads, not args.unpaced)
    every = max(1, round(clip.fps / args.analysis_fps))
    frames = analysed = 0
    started = time.monotonic()
    mark = None
    while True:
        now = time.monotonic()
        if mark is None and now - started >= args.warmup:
            mark = (now, cpu_seconds(), analysed, peer.embedded, frames)
        if mark is not None and now - mark[0] >= args.seconds:
            break
        clip.grab()
        frames += 1
        if frames % every:
            continue
        ok, bgr = clip.cap.retrieve()
        if not ok:
            raise SystemExit(f"pipeline_peer: OpenCV could not convert a frame of {args.file}")
        peer.analyse(bgr)
        analysed += 1
    secs = time.monotonic() - mark[0]
    cpu = cpu_seconds() - mark[1]
    faces = peer.embedded - mark[3]
    rss, peak = rss_bytes()
    report = {
        "analysis": "faces",
        "peer": f"python {platform.python_version()}, opencv {cv2.__version__}, numpy {np.__version__}, "
                f"onnxruntime {onnxruntime.__version__}",
        "file": os.path.abspath(args.file),
        "cameras": 1,
        "analysis_fps": args.analysis_fps,
        "detector_side": args.detector_side,
        "face_px": args.face_px or None,
        "min_face_px": args.min_face_px,
        "face_window": list(args.face_window) if args.face_window else None,
        "seconds": secs,
        "cpu_per_camera": cpu / secs,
        "frames_decoded_per_s": (frames - mark[4]) / secs,
        "frames_analysed_per_camera_per_s": (analysed - mark[2]) / secs,
        "faces_per_s": faces / secs,
        "faces_per_cpu_s": faces / max(cpu, 1e-9),
        "rss_bytes": rss,
        "peak_rss_bytes": peak,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
