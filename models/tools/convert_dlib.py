#!/usr/bin/env python3
"""Convert dlib's face recognition ResNet (dlib_face_recognition_resnet_model_v1.dat) to ONNX.

Usage:  convert_dlib.py INPUT.dat OUTPUT.onnx

Only numpy, onnx and the standard library are used; dlib itself is not needed (parity_dlib.py
checks the result against dlib).

ONNX model produced
-------------------
  input      float32 [N, 3, 150, 150], NCHW, channel order R, G, B, raw pixel values 0..255 (an 8-bit
             RGB face chip cast to float, no scaling). The chip must be aligned the way
             dlib.get_face_chip(img, shape_5pt, size=150, padding=0.25) does it.
             Normalisation is inside the graph and is exactly dlib's input_rgb_image_sized:
             (pixel - avg[c]) / 256 with avg = (122.782, 117.001, 104.298) for R, G, B (the values are
             read from the .dat file, not hard-coded).
  embedding  float32 [N, 128]: the output of the final fc_no_bias layer, NOT L2-normalised. This is
             what loss_metric::to_label returns and what dlib's compute_face_descriptor gives back
             (cast to double). dlib separates same / different people at Euclidean distance 0.6.

The dlib serialization format, as read from dlib's source (dlib/serialize.h, dlib/dnn/core.h,
layers.h, input.h, loss.h, cuda/tensor.h)
-----------------------------------------------------------------------------------------
Primitive encodings:
  * integers: one control byte, then that many little-endian magnitude bytes. The low nibble of
    the control byte is the byte count (1..8); for signed types bit 0x80 marks a negative value.
  * floating point scalars: a "float_details" pair (int64 mantissa, int16 exponent), each an
    integer as above; value = mantissa * 2**exponent (exponents 32000/32001/32002 mean
    +inf/-inf/NaN). Very old files used ASCII floats; those are rejected here.
  * bool: a single ASCII byte '0' or '1'.
  * std::string (also C string literals): unsigned length, then the raw bytes.
  * tensor (resizable_tensor): int version (2), four signed dims num_samples, k, nr, nc, then
    num_samples*k*nr*nc float32 values, little-endian IEEE, row-major (NCHW).
  * alias_tensor (a view into a layer's flat params tensor): int version (1) and four dims, no data.

Network structure: a dlib network is a C++ type, nested from the loss layer (outermost) down to
the input layer, e.g. loss_metric<fc_no_bias<128, avg_pool_everything<... input_rgb_image_sized<150>>>>.
Each wrapper serializes its own version number *before* recursing into its subnetwork, and its
layer details *after* it:
  * add_loss_layer: int version (1), loss details, subnetwork.
  * add_layer (one computational layer): int version (1..2), subnetwork, layer details, three
    bools, x_grad tensor, cached_output tensor, and (version 2) params_grad tensor.
  * add_layer directly on the input layer: int version (2..3), input layer details, layer details,
    three bools, x_grad, cached_output, grad_final tensors, (version 3) unsigned sample expansion
    factor.
  * add_tag_layer (tagN) and add_skip_layer (skipN): int version (1), subnetwork. Nothing else:
    in particular the tag numbers exist only in the C++ type.
So the file is: loss header, a run of wrapper version numbers from the outside in, the input layer,
then the layer details from the inside out. Because tag/skip ids and the wrapper kinds are not in
the file, the stream is not self-describing; like dlib, this parser is driven by the network type
(NETWORK below, transcribed from dlib's tools/python/src/face_recognition.cpp) and checks every
version number, layer tag string and hyper-parameter stored in the file against it.

Each layer's details begin with a version string naming the layer:
  con_4/5/6       params, num_filters, nr, nc, stride_y, stride_x, padding_y, padding_x, filters
                  alias (num_filters, k, nr, nc), biases alias, 4 doubles (learning-rate/decay
                  multipliers), [use_bias bool (5,6)], [use_relu bool (6)]. params holds the OIHW
                  filters followed by the biases.
  affine_/affine_2  params (gamma then beta), gamma alias, beta alias, int mode, [disabled bool].
  bn_con2/bn_fc2  a batch-norm layer an affine layer may be loaded from; folded here the same way
                  dlib does: gamma' = gamma / sqrt(running_var + eps), beta' = beta - gamma' * mean.
  relu_/relu_2    [disabled bool].
  max_pool_2, avg_pool_2  nr, nc, stride_y, stride_x, padding_y, padding_x (nr = nc = 0 means
                  "whole input", i.e. global pooling).
  fc_2/fc_3       num_outputs, num_inputs, params, weights alias (num_inputs, num_outputs),
                  biases alias, int bias mode (1 = no bias), 4 doubles, [use_bias bool (fc_3)].
  add_prev_       nothing else.
  input_rgb_image_sized  avg_red, avg_green, avg_blue (floats), nr, nc.
  loss_metric_2   margin, distance threshold (floats).

Semantics that matter for a faithful port (dlib/cuda/cpu_dlib.cpp):
  * con_ is a plain cross-correlation with zero padding; default padding is nr/2 when the stride
    is 1 and 0 otherwise, output size 1 + (H + 2p - k) / s (floor), same as ONNX Conv.
  * pooling windows start at (out * stride - padding); same layout as ONNX pooling.
  * add_prev_ output has the per-dimension maximum of both shapes; each input is zero-extended at
    the end (channels, bottom rows, right columns). This matters: residual_down downsamples the
    block path with a 3x3/2 unpadded conv and the skip path with avg_pool 2x2/2, which disagree on
    even sizes (8x8 -> 3x3 vs 4x4), and it also widens the channel count of the skip path.
  * residual_down = add_prev2<avg_pool<2,2,2,2, skip1<tag2<block<tag1<x>>>>>>: the skip path is
    avg_pool(x), the main path block(x).
"""

import argparse
import hashlib
import os
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
# IR version 8 is what opset 17 was released with; pinning it keeps the file loadable by older
# ONNX Runtime builds and independent of the installed onnx package's default.
IR_VERSION = 8

INPUT_SPEC = (
    "input: float32 [N,3,150,150] NCHW, RGB, raw pixel values 0..255 of a 150x150 chip aligned like "
    "dlib.get_face_chip(img, shape5, size=150, padding=0.25); normalisation (x - avg_rgb) / 256 is "
    "inside the graph. output: embedding float32 [N,128], dlib's raw descriptor (not L2-normalised); "
    "same person if Euclidean distance < 0.6."
)


class DlibFormatError(Exception):
    pass


# --------------------------------------------------------------------------------------------
# Network type, transcribed from anet_type in dlib's tools/python/src/face_recognition.cpp.
# A network is a list of nodes from the outermost (just below the loss) to the innermost (just
# above the input), in the same nesting order as the C++ template.
# --------------------------------------------------------------------------------------------

def layer(kind, **cfg):
    return ("layer", kind, cfg)


def con(n, k, stride):
    # dlib's con_ default: pad k/2 when stride is 1, no padding otherwise.
    pad = k // 2 if stride == 1 else 0
    return layer("con", num_filters=n, nr=k, nc=k, stride_y=stride, stride_x=stride,
             padding_y=pad, padding_x=pad)


def pool(kind, k, stride):
    pad = k // 2 if stride == 1 else 0
    return layer(kind, nr=k, nc=k, stride_y=stride, stride_x=stride, padding_y=pad, padding_x=pad)


def tag(i):
    return ("tag", i)


def skip(i):
    return ("skip", i)


def block(n, stride):
    # BN<con<N,3,3,1,1,relu<BN<con<N,3,3,stride,stride,SUBNET>>>>> with BN = affine
    return [layer("affine"), con(n, 3, 1), layer("relu"), layer("affine"), con(n, 3, stride)]


def ares(n):
    # relu<add_prev1<block<N,affine,1,tag1<SUBNET>>>>
    return [layer("relu"), layer("add_prev", tag=1)] + block(n, 1) + [tag(1)]


def ares_down(n):
    # relu<add_prev2<avg_pool<2,2,2,2,skip1<tag2<block<N,affine,2,tag1<SUBNET>>>>>>>
    return ([layer("relu"), layer("add_prev", tag=2), pool("avg_pool", 2, 2), skip(1), tag(2)]
            + block(n, 2) + [tag(1)])


NETWORK = (
    [layer("fc", num_outputs=128, bias_mode=1),                   # fc_no_bias<128>
     layer("avg_pool", nr=0, nc=0, stride_y=1, stride_x=1, padding_y=0, padding_x=0)]  # avg_pool_everything
    + ares_down(256)                                           # alevel0
    + ares(256) + ares(256) + ares_down(256)                   # alevel1
    + ares(128) + ares(128) + ares_down(128)                   # alevel2
    + ares(64) + ares(64) + ares(64) + ares_down(64)           # alevel3
    + ares(32) + ares(32) + ares(32)                           # alevel4
    + [pool("max_pool", 3, 2), layer("relu"), layer("affine"), con(32, 7, 2)]
)
INPUT_SIZE = 150


# --------------------------------------------------------------------------------------------
# Primitive reader
# --------------------------------------------------------------------------------------------

class Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def fail(self, msg):
        raise DlibFormatError(f"at byte offset {self.pos}: {msg}")

    def raw(self, n):
        if self.pos + n > len(self.data):
            self.fail(f"unexpected end of file (wanted {n} bytes, {len(self.data) - self.pos} left)")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def int(self, signed=True, what="integer"):
        start = self.pos
        ctrl = self.raw(1)[0]
        if signed:
            neg, size = bool(ctrl & 0x80), ctrl & 0x0F
        else:
            # dlib masks out three reserved bits; a set sign bit then makes size invalid.
            neg, size = False, ctrl & 0x8F
        if size == 0 or size > 8:
            self.pos = start
            self.fail(f"bad control byte 0x{ctrl:02x} for {what}")
        v = int.from_bytes(self.raw(size), "little")
        return -v if neg else v

    def uint(self, what="unsigned integer"):
        return self.int(signed=False, what=what)

    def version(self, what, allowed):
        v = self.int(what=f"{what} version")
        if v not in allowed:
            self.fail(f"unexpected {what} version {v}, expected one of {sorted(allowed)}")
        return v

    def float(self, what="float"):
        # float_details; the old ASCII encoding has one of bits 0x70 set in its first byte.
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            self.fail(f"{what} uses dlib's old ASCII float encoding, not supported")
        mantissa = self.int(what=f"{what} mantissa")
        exponent = self.int(what=f"{what} exponent")
        if exponent == 32000:
            return float("inf")
        if exponent == 32001:
            return float("-inf")
        if exponent == 32002:
            return float("nan")
        return float(np.ldexp(float(mantissa), exponent))

    def float32(self, what="float"):
        # dlib converts a float_details to float as ldexp((float)mantissa, exponent).
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            self.fail(f"{what} uses dlib's old ASCII float encoding, not supported")
        mantissa = self.int(what=f"{what} mantissa")
        exponent = self.int(what=f"{what} exponent")
        if exponent >= 32000:
            self.fail(f"{what} is inf/nan")
        return np.float32(np.ldexp(np.float32(mantissa), exponent))

    def bool(self, what="bool"):
        c = self.raw(1)
        if c not in (b"0", b"1"):
            self.pos -= 1
            self.fail(f"bad bool byte {c!r} for {what}")
        return c == b"1"

    def string(self, what="string"):
        n = self.uint(what=f"{what} length")
        if n > 256:
            self.fail(f"implausible {what} length {n}")
        return self.raw(n).decode("latin-1")

    def tag_string(self, what, allowed):
        start = self.pos
        s = self.string(what=f"{what} version string")
        if s not in allowed:
            self.pos = start
            self.fail(f"unexpected version string {s!r} for {what}, expected one of {sorted(allowed)}")
        return s

    def dims(self, what):
        return tuple(self.int(what=f"{what} dim") for _ in range(4))

    def tensor(self, what="tensor"):
        self.version(f"{what} tensor", {2})
        shape = self.dims(what)
        if min(shape) < 0:
            self.fail(f"negative dims {shape} for {what}")
        count = int(np.prod(shape, dtype=np.int64))
        arr = np.frombuffer(self.raw(4 * count), dtype="<f4").astype(np.float32)
        return arr.reshape(shape)

    def alias(self, what="alias_tensor"):
        self.version(f"{what} alias_tensor", {1})
        return self.dims(what)


def _check(r, what, got, expected):
    if got != expected:
        r.fail(f"{what}: file has {got}, network definition expects {expected}")


# --------------------------------------------------------------------------------------------
# Layer details
# --------------------------------------------------------------------------------------------

def _multipliers(r, n):
    for _ in range(n):
        r.float(what="learning rate / weight decay multiplier")


def read_con(r, cfg):
    ver = r.tag_string("con_", {"con_4", "con_5", "con_6"})
    params = r.tensor("con params").ravel()
    num_filters = r.int(what="num_filters")
    hp = dict(num_filters=num_filters, nr=r.int(), nc=r.int(), stride_y=r.int(), stride_x=r.int(),
              padding_y=r.int(), padding_x=r.int())
    for k, v in cfg.items():
        _check(r, f"con_ {k}", hp[k], v)
    fdims = r.alias("con filters")
    bdims = r.alias("con biases")
    _multipliers(r, 4)
    use_bias = r.bool("con use_bias") if ver in ("con_5", "con_6") else True
    use_relu = r.bool("con use_relu") if ver == "con_6" else False
    if fdims[0] != num_filters or fdims[2:] != (hp["nr"], hp["nc"]):
        r.fail(f"con filters alias {fdims} inconsistent with num_filters/nr/nc {hp}")
    nf = int(np.prod(fdims))
    nb = num_filters if use_bias else 0
    if use_bias and int(np.prod(bdims)) != num_filters:
        r.fail(f"con biases alias {bdims} does not hold {num_filters} values")
    if params.size != nf + nb:
        r.fail(f"con params has {params.size} values, expected {nf} filters + {nb} biases")
    return dict(hp, weight=params[:nf].reshape(fdims),
                bias=params[nf:] if use_bias else None, use_relu=use_relu)


def read_affine(r, cfg):
    ver = r.tag_string("affine_", {"affine_", "affine_2", "bn_con2", "bn_fc2"})
    params = r.tensor("affine params").ravel()
    gdims = r.alias("gamma")
    bdims = r.alias("beta")
    n = int(np.prod(gdims))
    if gdims != bdims or params.size != 2 * n:
        r.fail(f"affine params ({params.size}) inconsistent with gamma {gdims} / beta {bdims}")
    gamma, beta = params[:n], params[n:]
    if ver.startswith("bn_"):
        for name in ("means", "invstds"):
            r.tensor(f"bn {name}")
        mean = r.tensor("bn running_means").ravel()
        var = r.tensor("bn running_variances").ravel()
        r.uint(what="bn num_updates")
        r.uint(what="bn running_stats_window_size")
        _multipliers(r, 4)
        eps = r.float("bn eps")
        if mean.size != n or var.size != n:
            r.fail("bn running statistics do not match gamma size")
        # Same folding as dlib's affine_(const bn_&) constructor.
        g = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + eps)
        b = beta.astype(np.float64) - g * mean
        gamma, beta = g.astype(np.float32), b.astype(np.float32)
        mode, disabled = (0 if ver == "bn_con2" else 1), False
    else:
        mode = r.int(what="affine mode")
        disabled = r.bool("affine disabled") if ver == "affine_2" else False
    if mode not in (0, 1):
        r.fail(f"unknown affine layer_mode {mode}")
    # CONV_MODE (0): one gamma/beta per channel; FC_MODE (1): one per element. Either way the
    # alias dims (1, k, nr, nc) broadcast correctly against an NCHW tensor.
    shape = (1,) + gdims[1:]
    return dict(gamma=gamma.reshape(shape), beta=beta.reshape(shape), mode=mode, disabled=disabled)


def read_relu(r, cfg):
    ver = r.tag_string("relu_", {"relu_", "relu_2"})
    return dict(disabled=r.bool("relu disabled") if ver == "relu_2" else False)


def _read_pool(r, cfg, name):
    r.tag_string(name, {name + "2"})
    hp = dict(nr=r.int(), nc=r.int(), stride_y=r.int(), stride_x=r.int(),
              padding_y=r.int(), padding_x=r.int())
    for k, v in cfg.items():
        _check(r, f"{name} {k}", hp[k], v)
    return hp


def read_max_pool(r, cfg):
    return _read_pool(r, cfg, "max_pool_")


def read_avg_pool(r, cfg):
    return _read_pool(r, cfg, "avg_pool_")


def read_fc(r, cfg):
    ver = r.tag_string("fc_", {"fc_2", "fc_3"})
    num_outputs = r.uint(what="fc num_outputs")
    num_inputs = r.uint(what="fc num_inputs")
    params = r.tensor("fc params").ravel()
    wdims = r.alias("fc weights")
    r.alias("fc biases")
    bias_mode = r.int(what="fc bias_mode")
    _multipliers(r, 4)
    use_bias = r.bool("fc use_bias") if ver == "fc_3" else True
    _check(r, "fc num_outputs", num_outputs, cfg["num_outputs"])
    _check(r, "fc bias_mode", bias_mode, cfg["bias_mode"])
    has_bias = bias_mode == 0 and use_bias
    nw = num_inputs * num_outputs
    if wdims[:2] != (num_inputs, num_outputs):
        r.fail(f"fc weights alias {wdims} is not ({num_inputs}, {num_outputs}, ...)")
    if params.size != nw + (num_outputs if has_bias else 0):
        r.fail(f"fc params has {params.size} values, expected {nw} weights"
               + (f" + {num_outputs} biases" if has_bias else ""))
    # dlib computes output = input(N, num_inputs) x W(num_inputs, num_outputs), W row-major.
    return dict(num_inputs=num_inputs, num_outputs=num_outputs,
                weight=params[:nw].reshape(num_inputs, num_outputs),
                bias=params[nw:] if has_bias else None)


def read_add_prev(r, cfg):
    r.tag_string("add_prev_", {"add_prev_"})
    return dict(cfg)


READERS = dict(con=read_con, affine=read_affine, relu=read_relu, max_pool=read_max_pool,
               avg_pool=read_avg_pool, fc=read_fc, add_prev=read_add_prev)


def read_input_layer(r):
    r.tag_string("input layer", {"input_rgb_image_sized"})
    avg = np.array([r.float32("avg_red"), r.float32("avg_green"), r.float32("avg_blue")],
                   dtype=np.float32)
    nr, nc = r.uint(what="input nr"), r.uint(what="input nc")
    if (nr, nc) != (INPUT_SIZE, INPUT_SIZE):
        r.fail(f"input_rgb_image_sized is {nr}x{nc}, expected {INPUT_SIZE}x{INPUT_SIZE}")
    return dict(avg=avg, nr=nr, nc=nc)


def parse(data, network=NETWORK):
    """Parse a serialized loss_metric network; return (loss, input, [(node, details|None)])."""
    r = Reader(data)
    r.version("add_loss_layer", {1})
    ver = r.tag_string("loss layer", {"loss_metric_", "loss_metric_2"})
    if ver == "loss_metric_2":
        loss = dict(margin=r.float("margin"), dist_thresh=r.float("distance threshold"))
    else:
        loss = dict(margin=0.1, dist_thresh=0.75)

    # Wrapper headers, outermost first. The innermost add_layer sits on the input layer and uses
    # the input-layer specialisation of add_layer, which has its own version range.
    last = len(network) - 1
    if network[last][0] != "layer":
        raise DlibFormatError("network definition must end with a computational layer")
    header_versions = []   # decides which trailing fields follow each layer's details
    for i, node in enumerate(network):
        if node[0] == "layer":
            what = f"add_layer ({node[1]}, node {i})"
            header_versions.append(r.version(what, {2, 3} if i == last else {1, 2}))
        else:
            header_versions.append(
                r.version(f"add_{node[0]}_layer ({node[0]}{node[1]}, node {i})", {1}))

    inp = read_input_layer(r)

    layers = [None] * len(network)
    for i in range(last, -1, -1):
        node = network[i]
        if node[0] != "layer":
            continue
        kind, cfg = node[1], node[2]
        try:
            details = READERS[kind](r, cfg)
        except DlibFormatError as e:
            raise DlibFormatError(f"{e} (while reading layer {i}: {kind} {cfg})") from None
        # add_layer's own state after the details: three bools and gradient/cache tensors that
        # are empty in a saved inference model but must be skipped over all the same.
        for flag in ("this_layer_setup_called", "gradient_input_is_stale",
                     "get_output_and_gradient_input_disabled"):
            r.bool(flag)
        r.tensor("x_grad")
        r.tensor("cached_output")
        if i == last:
            r.tensor("grad_final")
            if header_versions[i] >= 3:
                r.uint(what="sample_expansion_factor")
        elif header_versions[i] >= 2:
            r.tensor("params_grad")
        layers[i] = details
    if r.pos != len(data):
        r.fail(f"{len(data) - r.pos} trailing bytes after the network")
    return loss, inp, list(zip(network, layers))


# --------------------------------------------------------------------------------------------
# ONNX graph
# --------------------------------------------------------------------------------------------

class GraphBuilder:
    def __init__(self):
        self.nodes = []
        self.inits = []
        self.counts = {}

    def name(self, prefix):
        n = self.counts.get(prefix, 0)
        self.counts[prefix] = n + 1
        return f"{prefix}_{n}"

    def const(self, prefix, arr):
        nm = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), nm))
        return nm

    def op(self, op_type, inputs, prefix=None, **attrs):
        nm = self.name(prefix or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [nm], name=nm, **attrs))
        return nm


def _out_size(size, k, s, p):
    return 1 + (size + 2 * p - k) // s


def build_onnx(loss, inp, layers, doc):
    g = GraphBuilder()
    avg = g.const("input_mean", inp["avg"].reshape(1, 3, 1, 1))
    # 1/256 is a power of two, so multiplying is bit-identical to dlib's division.
    scale = g.const("input_scale", np.array(1.0 / 256.0, dtype=np.float32))
    x = g.op("Mul", [g.op("Sub", ["input", avg]), scale])
    shape = (3, inp["nr"], inp["nc"])      # (C, H, W) of x, tracked statically
    tags = {}
    n_params = 0

    # Walk from the input outwards, i.e. the reverse of the nesting order. A tag records the
    # current value; later (outer) skip/add_prev layers refer to the nearest tag below them,
    # which is the most recently recorded one.
    for node, d in reversed(layers):
        if node[0] == "tag":
            tags[node[1]] = (x, shape)
            continue
        if node[0] == "skip":
            if node[1] not in tags:
                raise DlibFormatError(f"skip{node[1]} without a tag{node[1]} below it")
            x, shape = tags[node[1]]
            continue
        kind = node[1]
        c, h, w = shape
        if kind == "con":
            wgt = d["weight"]
            if wgt.shape[1] != c:
                raise DlibFormatError(f"con expects {wgt.shape[1]} input channels, got {c}")
            inputs = [x, g.const("conv_w", wgt)]
            n_params += wgt.size
            if d["bias"] is not None:
                inputs.append(g.const("conv_b", d["bias"]))
                n_params += d["bias"].size
            py, px = d["padding_y"], d["padding_x"]
            x = g.op("Conv", inputs, kernel_shape=[d["nr"], d["nc"]],
                     strides=[d["stride_y"], d["stride_x"]], pads=[py, px, py, px])
            if d["use_relu"]:
                x = g.op("Relu", [x])
            shape = (d["num_filters"], _out_size(h, d["nr"], d["stride_y"], py),
                     _out_size(w, d["nc"], d["stride_x"], px))
        elif kind == "affine":
            if d["disabled"]:
                continue
            if d["gamma"].shape[1] != c or (d["mode"] == 1 and d["gamma"].shape[2:] != (h, w)):
                raise DlibFormatError(f"affine params {d['gamma'].shape} do not fit input {shape}")
            n_params += d["gamma"].size + d["beta"].size
            x = g.op("Mul", [x, g.const("affine_gamma", d["gamma"])])
            x = g.op("Add", [x, g.const("affine_beta", d["beta"])])
        elif kind == "relu":
            if not d["disabled"]:
                x = g.op("Relu", [x])
        elif kind in ("max_pool", "avg_pool"):
            if d["nr"] == 0 and d["nc"] == 0:
                op = "GlobalMaxPool" if kind == "max_pool" else "GlobalAveragePool"
                x = g.op(op, [x])
                shape = (c, 1, 1)
            else:
                py, px = d["padding_y"], d["padding_x"]
                if (py or px) and kind == "avg_pool":
                    # dlib averages only the in-bounds part of a clipped window.
                    extra = dict(count_include_pad=0)
                else:
                    extra = {}
                x = g.op("MaxPool" if kind == "max_pool" else "AveragePool", [x],
                         kernel_shape=[d["nr"], d["nc"]], strides=[d["stride_y"], d["stride_x"]],
                         pads=[py, px, py, px], **extra)
                shape = (c, _out_size(h, d["nr"], d["stride_y"], py),
                         _out_size(w, d["nc"], d["stride_x"], px))
        elif kind == "add_prev":
            if d["tag"] not in tags:
                raise DlibFormatError(f"add_prev{d['tag']} without a tag{d['tag']} below it")
            y, yshape = tags[d["tag"]]
            out = tuple(max(a, b) for a, b in zip(shape, yshape))
            terms = []
            for t, s in ((x, shape), (y, yshape)):
                if s != out:
                    # Zero-extend at the end of C, H and W, as dlib's tt::add does.
                    pads = [0, 0, 0, 0, 0, out[0] - s[0], out[1] - s[1], out[2] - s[2]]
                    t = g.op("Pad", [t, g.const("pad", np.array(pads, dtype=np.int64))])
                terms.append(t)
            x = g.op("Add", terms)
            shape = out
        elif kind == "fc":
            if c * h * w != d["num_inputs"]:
                raise DlibFormatError(f"fc expects {d['num_inputs']} inputs, got {shape}")
            x = g.op("Flatten", [x], axis=1)
            x = g.op("MatMul", [x, g.const("fc_w", d["weight"])])
            n_params += d["weight"].size
            if d["bias"] is not None:
                x = g.op("Add", [x, g.const("fc_b", d["bias"])])
                n_params += d["bias"].size
            shape = (d["num_outputs"],)
        else:
            raise DlibFormatError(f"no ONNX mapping for layer kind {kind}")

    if len(shape) != 1:
        raise DlibFormatError(f"network output has shape {shape}, expected a vector")
    # loss_metric's to_label copies the fc output as is; give it a stable public name.
    g.nodes.append(helper.make_node("Identity", [x], ["embedding"], name="embedding"))

    graph = helper.make_graph(
        g.nodes, "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, inp["nr"], inp["nc"]])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", shape[0]])],
        initializer=g.inits)
    model = helper.make_model(graph, producer_name="vigil convert_dlib.py", producer_version="1",
                              opset_imports=[helper.make_opsetid("", OPSET)], doc_string=doc)
    model.ir_version = IR_VERSION
    return model, n_params, g


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("input", help="dlib_face_recognition_resnet_model_v1.dat (uncompressed)")
    ap.add_argument("output", help="output .onnx path")
    args = ap.parse_args(argv)

    t0 = time.monotonic()
    with open(args.input, "rb") as f:
        data = f.read()
    if data[:3] == b"BZh":
        sys.exit(f"{args.input} is bzip2-compressed; decompress it first")
    src_sha = hashlib.sha256(data).hexdigest()
    try:
        loss, inp, layers = parse(data)
        model, n_params, g = build_onnx(loss, inp, layers, INPUT_SPEC)
    except DlibFormatError as e:
        sys.exit(f"error: {args.input}: {e}")

    for k, v in (("source", os.path.basename(args.input)), ("source_sha256", src_sha),
                 ("input_spec", INPUT_SPEC),
                 ("input_mean_rgb", ",".join(repr(float(a)) for a in inp["avg"])),
                 ("input_scale", "1/256"),
                 ("loss", f"loss_metric margin={loss['margin']:.6g} "
                          f"distance_threshold={loss['dist_thresh']:.6g}")):
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model, full_check=True)

    blob = model.SerializeToString()
    tmp = args.output + ".tmp"
    with open(tmp, "wb") as f:
        f.write(blob)
    os.replace(tmp, args.output)

    kinds = {}
    for node, _ in layers:
        key = node[1] if node[0] == "layer" else node[0]
        kinds[key] = kinds.get(key, 0) + 1
    print(f"parsed {args.input} ({len(data)} bytes, sha256 {src_sha})")
    print("  dlib layers: " + ", ".join(f"{k}={v}" for k, v in sorted(kinds.items()))
          + f" (+ input_rgb_image_sized<{inp['nr']}>, loss_metric)")
    print(f"  input mean RGB {[float(a) for a in inp['avg']]}, scale 1/256; "
          f"loss_metric margin {loss['margin']:.6g}, distance threshold {loss['dist_thresh']:.6g}")
    print(f"  parameters: {n_params}")
    print(f"wrote {args.output}: {len(g.nodes)} ONNX nodes, opset {OPSET}, {len(blob)} bytes, "
          f"sha256 {hashlib.sha256(blob).hexdigest()}")
    print(f"  {INPUT_SPEC}")
    print(f"  took {time.monotonic() - t0:.2f} s")


if __name__ == "__main__":
    main()
