#!/usr/bin/env python3
"""int8 (QDQ) variant of one of the bundle's float models, from a committed calibration table.

    quantize.py --in MODEL.onnx --table models/calibration/NAME.json --out MODEL-int8.onnx

The table (written once by the maintainer script calibrate.py) holds the quantisation recipe (activation
type, per-channel weights, nodes left in float) and the [min, max] range of every activation tensor. No
calibration runs here, so the output depends only on the float model, the table and the pinned onnx and
onnxruntime versions: the same bytes on every machine, whatever its CPU. (Calibration runs the model,
and MLAS's float sums differ between AVX2, AVX512 and NEON: ranges computed at fetch time would give
other bytes on another CPU.)

The table names the SHA-256 of the float model it was computed on; another model is refused, since its
tensor ranges would be wrong without any error.

Models older than opset 13 (CenterFace is opset 9) are first converted to opset 13 with onnx's version
converter: per-channel DequantizeLinear needs its `axis` attribute, which exists from opset 13.
"""
import argparse
import hashlib
import json
import logging
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper, version_converter
from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.calibrate import TensorsData, save_tensors_data

MIN_OPSET = 13
TYPES = {"u8": QuantType.QUInt8, "s8": QuantType.QInt8}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fold_affine(model: onnx.ModelProto) -> None:
    """Folds each Conv -> Mul(per-channel constant) -> Add(per-channel constant) chain (dlib's affine
    layers, its batch norm after training) into the Conv's weights and bias, in place. In float this
    is the same function up to rounding; for int8 it removes a requantisation per layer and lets the
    per-channel weight scales absorb the affine scale."""
    graph = model.graph
    init = {i.name: i for i in graph.initializer}
    consumers = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    dropped = set()
    for conv in graph.node:
        if conv.op_type != "Conv" or len(consumers.get(conv.output[0], [])) != 1:
            continue
        mul = consumers[conv.output[0]][0]
        if mul.op_type != "Mul" or mul.input[1] not in init or len(consumers.get(mul.output[0], [])) != 1:
            continue
        add = consumers[mul.output[0]][0]
        if add.op_type != "Add" or add.input[1] not in init:
            continue
        w = numpy_helper.to_array(init[conv.input[1]])
        scale = numpy_helper.to_array(init[mul.input[1]]).reshape(-1)
        shift = numpy_helper.to_array(init[add.input[1]]).reshape(-1)
        if scale.shape != (w.shape[0],) or shift.shape != (w.shape[0],):
            continue
        bias = numpy_helper.to_array(init[conv.input[2]]) if len(conv.input) > 2 else np.zeros(w.shape[0], np.float32)
        init[conv.input[1]].CopyFrom(numpy_helper.from_array((w * scale[:, None, None, None]).astype(np.float32),
                                                             conv.input[1]))
        folded = (bias * scale + shift).astype(np.float32)
        if len(conv.input) > 2:
            init[conv.input[2]].CopyFrom(numpy_helper.from_array(folded, conv.input[2]))
        else:
            graph.initializer.append(numpy_helper.from_array(folded, conv.name + "_folded_bias"))
            conv.input.append(conv.name + "_folded_bias")
        conv.output[0] = add.output[0]
        dropped.update([mul.name, add.name, mul.input[1], add.input[1]])
    keep = [n for n in graph.node if n.name not in dropped]
    del graph.node[:]
    graph.node.extend(keep)
    used = {i for n in graph.node for i in n.input}
    keep_init = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep_init)


def prepared(path: Path, recipe: dict) -> onnx.ModelProto:
    """The float model as calibrated and quantised: every node named (CenterFace's are not: the names
    are how nodes are left in float), opset raised to 13 when below (same tensor names), dlib's
    affine layers folded into their convolutions when the recipe says so."""
    model = onnx.load(str(path))
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type.lower()}_n{i}"
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < MIN_OPSET:
        model = version_converter.convert_version(model, MIN_OPSET)
    if recipe.get("fold_affine"):
        fold_affine(model)
    return model


def quantize(model_path: Path, table: dict, out: Path) -> None:
    digest = sha256(model_path)
    if digest != table["model_sha256"]:
        raise SystemExit(f"{model_path}: SHA-256 {digest}, but the table was computed on {table['model_sha256']}; "
                         "run models/tools/calibrate.py again for this model")
    recipe = table["recipe"]
    ranges = {name: (np.float32(lo), np.float32(hi)) for name, (lo, hi) in table["ranges"].items()}
    with tempfile.TemporaryDirectory(prefix="vigil-quantize.") as tmp:
        # quantize_static reads committed ranges through its calibration cache (a JSON file of its own
        # format); with a cache it never runs the model. The ranges are plain min/max pairs whatever
        # method chose them (the quantiser only reads `lowest` and `highest`).
        cache = Path(tmp) / "ranges.json"
        save_tensors_data(TensorsData(CalibrationMethod.MinMax, ranges), cache)
        quantize_static(
            prepared(model_path, recipe),
            str(out),
            calibration_data_reader=None,
            quant_format=QuantFormat.QDQ,
            per_channel=recipe["per_channel"],
            reduce_range=recipe.get("reduce_range", False),
            activation_type=TYPES[recipe["activation"]],
            weight_type=TYPES[recipe["weight"]],
            nodes_to_exclude=list(recipe["exclude"]),
            op_types_to_quantize=recipe.get("op_types"),
            calibrate_method=CalibrationMethod.MinMax,
            calibration_cache_path=str(cache),
            extra_options={"ActivationSymmetric": recipe["activation_symmetric"]},
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--in", dest="model", required=True, type=Path, help="float ONNX model")
    parser.add_argument("--table", required=True, type=Path, help="calibration table (models/calibration/*.json)")
    parser.add_argument("--out", required=True, type=Path)
    args = parser.parse_args()
    # onnxruntime advises its pre-processing (symbolic shape inference, needs sympy) on every call; the
    # bundle's models have static ranks and need none.
    logging.getLogger().setLevel(logging.ERROR)
    table = json.loads(args.table.read_text())
    quantize(args.model, table, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
