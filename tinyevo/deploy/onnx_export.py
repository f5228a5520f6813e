"""ONNX export, written from tinyevo's own graphs with ``onnx.helper`` (no tracing).

* ``to_onnx(float_graph)``: the folded float network, NCHW float input and output exactly like the
  PyTorch module of ``tinyevo.nn.build`` (a flat output is (N, classes)).
* ``to_onnx_qdq(quantized_model)``: the int8 network in QDQ form: int8 NHWC input and output with
  the .tflite's quantization; every weight is an int8 initializer behind a DequantizeLinear
  (per channel), every activation passes through QuantizeLinear/DequantizeLinear with its scale
  and zero point. onnxruntime runs it (and fuses it into QLinear ops where it can).

  The graph computes the int8 model: average pools round their ties away from zero as TFLM does,
  and the rest differs by single steps where a float requantization (rounded half to even) and
  TFLM's fixed-point multiplier (rounded twice) disagree. On x86 CPUs without VNNI, onnxruntime's
  default uint8 x int8 QLinearConv kernel does not: it saturates int16 sums of products and misses
  by tens of steps. Run it with ``session.x64quantprecision = 1``
  (``tinyevo.deploy.runtimes.onnxruntime_session`` explains it and sets it).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tinyevo.arch import INPUT, same_padding
from tinyevo.deploy.fold import FloatGraph, fold
from tinyevo.deploy.quantized_model import QuantizedModel

OPSET = 17
IR_VERSION = 8  # what opset 17 needs; older onnxruntime builds read it too


def to_onnx(graph: FloatGraph) -> onnx.ModelProto:
    """The float network of a ``FloatGraph`` (batch norm folded), NCHW like PyTorch."""
    e = _Emitter()
    shapes = {name: shape for name, shape in graph.shapes.items()}
    e.inputs.append(helper.make_tensor_value_info(INPUT, TensorProto.FLOAT,
                                                  ["N", *_nchw(graph.input_shape)]))
    for op in graph.ops:
        e.float_op(op.kind, op.name, list(op.inputs), op.attrs, shapes, op.weights, op.bias)
    output = graph.output
    out_shape = ["N", *_nchw(graph.shapes[output])]
    if graph.shapes[output][:2] == (1, 1):
        output = e.node("Flatten", [output], "output", axis=1)
        out_shape = ["N", graph.shapes[graph.output][2]]
    e.outputs.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, out_shape))
    return e.model(graph.name or "tinyevo")


def export_onnx(architecture, module, path: str | Path) -> onnx.ModelProto:
    """Fold ``module`` (eval mode) and write its float ONNX model to ``path``."""
    module.eval()
    model = to_onnx(fold(architecture, module))
    onnx.save(model, str(path))
    return model


def to_onnx_qdq(model: QuantizedModel) -> onnx.ModelProto:
    """The int8 network in QuantizeLinear/DequantizeLinear form, int8 NHWC in and out."""
    e = _Emitter()
    shapes = {name: tuple(spec.shape[1:]) for name, spec in model.tensors.items()}
    e.inputs.append(helper.make_tensor_value_info(model.input, TensorProto.INT8,
                                                  ["N", *model.input_spec.shape[1:]]))
    nhwc = e.dequantize(model.input, model.input_spec, f"{model.input}:dq")
    e.floats[model.input] = e.node("Transpose", [nhwc], f"{model.input}:float", perm=[0, 3, 1, 2])
    for op in model.ops:
        e.quantized_op(op, model, shapes)
    output = e.node("Transpose", [f"{model.output}:q"], "output", perm=[0, 2, 3, 1])
    e.outputs.append(helper.make_tensor_value_info(output, TensorProto.INT8,
                                                   ["N", *model.output_spec.shape[1:]]))
    return e.model(model.name or "tinyevo")


def _nchw(shape) -> list[int]:
    h, w, c = shape
    return [c, h, w]


def _pads(attrs: dict, in_shape) -> list[int]:
    """ONNX pads [top, left, bottom, right] of TFLite's SAME rule (zeros for VALID)."""
    if attrs.get("padding") != "same":
        return [0, 0, 0, 0]
    (kh, kw), (sh, sw) = attrs["kernel"], attrs["stride"]
    dh, dw = attrs.get("dilation", (1, 1))
    top, bottom = same_padding(in_shape[0], kh, sh, dh)
    left, right = same_padding(in_shape[1], kw, sw, dw)
    return [top, left, bottom, right]


class _Emitter:
    """Accumulates nodes and initializers; ``floats`` maps a tensor to its float NCHW value."""

    def __init__(self):
        self.nodes, self.initializers, self.inputs, self.outputs = [], [], [], []
        self.floats: dict[str, str] = {}

    def node(self, op_type: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output

    def const(self, name: str, values: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.array(values, order="C"), name))
        return name

    def model(self, name: str) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, name, self.inputs, self.outputs, self.initializers)
        proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="tinyevo")
        proto.ir_version = IR_VERSION
        onnx.checker.check_model(proto)
        return proto

    # --- float ops (NCHW) ------------------------------------------------------------------------
    def float_op(self, kind, name, inputs, attrs, shapes, weights=None, bias=None) -> str:
        """Emit one op on float NCHW tensors ``self.floats[...]`` (or raw names); returns its output."""
        xs = [self.floats.get(s, s) for s in inputs]
        raw = f"{name}:raw"
        if kind in ("conv_2d", "depthwise_conv_2d", "fully_connected"):
            raw = self._conv(kind, name, xs[0], attrs, shapes[inputs[0]], weights, bias)
        elif kind in ("max_pool_2d", "average_pool_2d"):
            extra = {} if kind == "max_pool_2d" else {"count_include_pad": 0}
            self.node("MaxPool" if kind == "max_pool_2d" else "AveragePool", xs, raw,
                      kernel_shape=list(attrs["kernel"]), strides=list(attrs["stride"]),
                      pads=_pads(attrs, shapes[inputs[0]]), **extra)
        elif kind == "add":
            self.node("Sum", xs, raw)
        elif kind == "concatenation":
            self.node("Concat", xs, raw, axis=1)
        elif kind == "reshape":
            # TFLite reshapes NHWC data: go to NHWC, reshape there, come back to NCHW
            h, w, c = shapes[name]
            nhwc = self.node("Transpose", xs, f"{name}:nhwc", perm=[0, 2, 3, 1])
            target = self.const(f"{name}:shape", np.array([-1, h, w, c]))
            reshaped = self.node("Reshape", [nhwc, target], f"{name}:reshaped")
            self.node("Transpose", [reshaped], raw, perm=[0, 3, 1, 2])
        elif kind in ("relu", "relu6"):
            raw = self._activation(kind, xs[0], raw)
        elif kind == "quantize":
            raw = xs[0]
        else:  # pragma: no cover - every FloatOp / QuantizedOp kind is handled above
            raise ValueError(f"no ONNX form for op kind {kind!r}")
        return self._activation(attrs.get("activation", "none"), raw, name)

    def _conv(self, kind, name, x, attrs, in_shape, weights, bias) -> str:
        """Conv in ONNX layout: weights given float, or already the name of a float tensor."""
        if isinstance(weights, np.ndarray):
            weights = self.const(f"{name}/weights", onnx_weights(kind, weights).astype(np.float32))
            bias = self.const(f"{name}/bias", np.asarray(bias, dtype=np.float32))
        group = in_shape[2] if kind == "depthwise_conv_2d" else attrs.get("groups", 1)
        conv_attrs = dict(kernel_shape=list(attrs.get("kernel", (1, 1))),
                          strides=list(attrs.get("stride", (1, 1))),
                          dilations=list(attrs.get("dilation", (1, 1))),
                          pads=_pads(attrs, in_shape), group=group)
        return self.node("Conv", [x, weights, bias], f"{name}:raw", **conv_attrs)

    def _activation(self, activation: str, x: str, output: str) -> str:
        if activation == "relu":
            return self.node("Relu", [x], output)
        if activation == "relu6":
            zero, six = np.array(0.0, np.float32), np.array(6.0, np.float32)
            return self.node("Clip", [x, self.const(f"{output}:0", zero),
                                      self.const(f"{output}:6", six)], output)
        return self.node("Identity", [x], output)

    # --- QDQ -------------------------------------------------------------------------------------
    def dequantize(self, tensor: str, spec, output: str) -> str:
        scale = self.const(f"{tensor}:scale", np.array(spec.scale, np.float32))
        zero_point = self.const(f"{tensor}:zero_point", np.array(spec.zero_point, np.int8))
        return self.node("DequantizeLinear", [tensor, scale, zero_point], output)

    def quantized_op(self, op, model: QuantizedModel, shapes) -> None:
        weights = bias = None
        if op.weights is not None:
            weights, bias = self._dequantized_weights(op, model.tensors[op.inputs[0]].scale)
        value = self.float_op(op.kind, op.name, op.inputs, op.attrs, shapes, weights, bias)
        spec = model.tensors[op.name]
        if op.kind == "average_pool_2d":
            value = self._ties_away_from_zero(op, value, spec)
        scale = self.const(f"{op.name}:scale", np.array(spec.scale, np.float32))
        zero_point = self.const(f"{op.name}:zero_point", np.array(spec.zero_point, np.int8))
        quantized = self.node("QuantizeLinear", [value, scale, zero_point], f"{op.name}:q")
        self.floats[op.name] = self.node("DequantizeLinear", [quantized, scale, zero_point],
                                         f"{op.name}:dq")

    def _ties_away_from_zero(self, op, value: str, spec) -> str:
        """TFLM's int8 average rounds the mean of the raw int8 values (zero point included) half away
        from zero; QuantizeLinear rounds half to even. The mean of n <= kh * kw values is a multiple
        of 1 / n, so a value that is not a tie lies at least 1 / (2 * kh * kw) steps from one; a
        nudge of half that toward the sign of the raw mean, ``value / scale + zero_point``, settles
        every tie TFLM's way and moves nothing else (float32 error in the average stays far below
        it, even for a 32x32 pool)."""
        kh, kw = op.attrs["kernel"]
        zero = self.const(f"{op.name}:zero_point_real",
                          np.array(spec.scale * spec.zero_point, np.float32))
        step = self.const(f"{op.name}:tie_step", np.array(spec.scale / (4 * kh * kw), np.float32))
        sign = self.node("Sign", [self.node("Add", [value, zero], f"{op.name}:raw_mean")],
                         f"{op.name}:sign")
        nudge = self.node("Mul", [sign, step], f"{op.name}:nudge")
        return self.node("Add", [value, nudge], f"{op.name}:ties_away")

    def _dequantized_weights(self, op, input_scale: float) -> tuple[str, str]:
        scales = op.weight_scales.astype(np.float32)
        per_channel = len(scales) > 1
        shaped = scales if per_channel else scales.reshape(())
        zeros8 = np.zeros(shaped.shape, np.int8)
        axis = {"axis": 0} if per_channel else {}
        weights = self.node("DequantizeLinear", [
            self.const(f"{op.name}/weights_q", onnx_weights(op.kind, op.weights)),
            self.const(f"{op.name}/weights_scale", shaped),
            self.const(f"{op.name}/weights_zero_point", zeros8)], f"{op.name}/weights", **axis)
        bias_scales = (input_scale * scales.astype(np.float64)).astype(np.float32)
        bias_scales = bias_scales if per_channel else bias_scales.reshape(())
        bias = self.node("DequantizeLinear", [
            self.const(f"{op.name}/bias_q", op.bias.astype(np.int32)),
            self.const(f"{op.name}/bias_scale", bias_scales),
            self.const(f"{op.name}/bias_zero_point", np.zeros(bias_scales.shape, np.int32))],
            f"{op.name}/bias", **axis)
        return weights, bias


def onnx_weights(kind: str, weights: np.ndarray) -> np.ndarray:
    """TFLite weight layout to ONNX Conv's [out, in / groups, kh, kw]."""
    if kind == "depthwise_conv_2d":
        return weights.transpose(3, 0, 1, 2)  # [1, kh, kw, out] -> [out, 1, kh, kw]
    if kind == "fully_connected":
        return weights[:, :, None, None]  # [units, in] -> [units, in, 1, 1]
    return weights.transpose(0, 3, 1, 2)  # [out, kh, kw, in] -> [out, in, kh, kw]
