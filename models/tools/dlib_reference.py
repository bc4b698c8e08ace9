#!/usr/bin/env python3
"""dlib's reference implementation (PyPI dlib-bin), for parity tests against Vigil's ONNX port.

    dlib_reference.py chips --dat RESNET.dat CHIP.png...
        descriptor of each 150x150 chip, exactly as given (no detection, no alignment)
    dlib_reference.py images --dat RESNET.dat --shape-predictor SP5.dat IMAGE...
        dlib's whole pipeline: HOG detector, 5-point landmarks, get_face_chip, descriptor of the
        largest face (null when none is found)

Prints one JSON object: {"descriptors": [[128 floats] | null, ...]} in argument order.
"""
import argparse
import json
import sys

import dlib
import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["chips", "images"])
    parser.add_argument("--dat", required=True)
    parser.add_argument("--shape-predictor")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()

    net = dlib.face_recognition_model_v1(args.dat)
    out = []
    if args.mode == "chips":
        for path in args.files:
            chip = dlib.load_rgb_image(path)
            if chip.shape[:2] != (150, 150):
                sys.exit(f"{path}: a chip must be 150x150, got {chip.shape[1]}x{chip.shape[0]}")
            out.append(list(map(float, net.compute_face_descriptor(chip))))
    else:
        if not args.shape_predictor:
            sys.exit("images mode needs --shape-predictor")
        detector = dlib.get_frontal_face_detector()
        predictor = dlib.shape_predictor(args.shape_predictor)
        for path in args.files:
            img = dlib.load_rgb_image(path)
            faces = detector(img, 1)
            if not faces:
                out.append(None)
                continue
            face = max(faces, key=lambda r: r.area())
            chip = dlib.get_face_chip(img, predictor(img, face), size=150, padding=0.25)
            out.append(list(map(float, net.compute_face_descriptor(np.asarray(chip)))))
    json.dump({"descriptors": out}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
