"""Post-training int8 quantization, the TFLite way.

* weights: symmetric int8, zero point 0, one scale per output channel for conv and depthwise conv,
  one per tensor for dense (as the TFLite converter does);
* biases: int32 with scale ``input_scale * weight_scale``;
* activations: asymmetric int8 per tensor, from the min/max the float model reaches on
  calibration data (the range always contains 0, so zero is exact);
* fused relu / relu6 are clamps; max/average pooling, reshape and standalone relu keep their input's
  quantization; inputs of a concat share its quantization (the producing conv adopts it, or a
  requantizing QUANTIZE op is inserted), since TFLM concatenates raw int8 values;
* the fixed-point multipliers, shifts and clamps are computed here exactly as TFLM's ``Prepare``
  computes them, and stored with each op, so the reference executor and generated C use the very
  integers the interpreter will use.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import torch

from tinyevo.arch import INPUT, Architecture
from tinyevo.deploy.fixed_point import activation_range, quantize_multiplier, quantize_value
from tinyevo.deploy.fold import FloatGraph, FloatOp, fold
from tinyevo.deploy.quantized_model import QuantizedModel, QuantizedOp, TensorSpec
from tinyevo.errors import TinyevoError
from tinyevo.hardware.memory import partial_sum_name

ADD_LEFT_SHIFT = 20  # TFLite's int8 ADD works on inputs shifted left by 20 bits
MIN_RANGE = 1e-6  # width of the range given to a tensor that calibration saw constant
BIAS_LIMIT = 1 << 30  # int32 biases are kept below this so the accumulator cannot overflow
SAME_QUANTIZATION = {"max_pool_2d", "average_pool_2d", "reshape", "relu", "relu6"}
ADOPTS_QUANTIZATION = {"conv_2d", "depthwise_conv_2d", "fully_connected"}
DENSE_OPS = ("conv_2d", "fully_connected")


def quantize(architecture: Architecture, module: torch.nn.Module, calibration,
             batch_size: int = 64, dense_as: str = "conv_2d") -> QuantizedModel:
    """Fold batch norm, calibrate on ``calibration`` (float NCHW inputs) and quantize to int8.

    ``module`` is ``tinyevo.nn.build(architecture)`` with trained weights; it is put in eval mode.
    ``dense_as`` picks the TFLite op of dense layers: ``"conv_2d"`` (a 1x1 convolution, per-channel
    weights; TFLM and LiteRT compute it identically) or ``"fully_connected"`` (per-tensor weights,
    as the TFLite converter writes; LiteRT's reference kernel requantizes it in float since 2025,
    google-ai-edge/LiteRT#8567, so only TFLM matches the int8 reference bit for bit).
    """
    if dense_as not in DENSE_OPS:
        raise TinyevoError(f"dense_as must be one of {DENSE_OPS}, got {dense_as!r}")
    module.eval()
    graph = fold(architecture, module)
    ranges = calibrate(graph, module, calibration, batch_size)
    return quantize_graph(graph, ranges, dense_as)


# --- calibration -----------------------------------------------------------------------------------
def calibrate(graph: FloatGraph, module: torch.nn.Module, calibration,
              batch_size: int = 64) -> dict[str, tuple[float, float]]:
    """(min, max) of every tensor of ``graph`` over the calibration inputs, from forward hooks."""
    ranges: dict[str, tuple[float, float]] = {}
    values: dict[str, torch.Tensor] = {}
    hooks = [layer.register_forward_hook(partial(_store, values, name))
             for name, layer in module.layers.items()]
    adds = [op for op in graph.ops if op.kind == "add" and len(op.inputs) > 2]
    try:
        with torch.no_grad():
            for batch in _batches(calibration, batch_size):
                values.clear()
                values[INPUT] = batch
                module(batch)
                for name, value in values.items():
                    _merge(ranges, name, value)
                for op in adds:
                    _merge_partial_sums(ranges, op, values)
    finally:
        for hook in hooks:
            hook.remove()
    if not ranges:
        raise TinyevoError("calibration data is empty: give at least one input sample")
    return ranges


def _store(values: dict, name: str, _module, _inputs, output) -> None:
    values[name] = output


def _batches(calibration, batch_size: int):
    data = torch.as_tensor(np.asarray(calibration, dtype=np.float32))
    for start in range(0, len(data), batch_size):
        yield data[start:start + batch_size]


def _merge(ranges: dict, name: str, value: torch.Tensor) -> None:
    low, high = float(value.min()), float(value.max())
    if name in ranges:
        low, high = min(low, ranges[name][0]), max(high, ranges[name][1])
    ranges[name] = (low, high)


def _merge_partial_sums(ranges: dict, op: FloatOp, values: dict) -> None:
    total = values[op.inputs[0]]
    for k, source in enumerate(op.inputs[1:-1], start=1):
        total = total + values[source]
        _merge(ranges, partial_sum_name(op.name, k), total)


# --- quantization parameters -----------------------------------------------------------------------
def activation_spec(low: float, high: float, shape, min_scale: float = 0.0) -> TensorSpec:
    """Asymmetric int8 quantization of the range [low, high] widened to contain zero."""
    low, high = min(float(low), 0.0), max(float(high), 0.0)
    scale = float(np.float32(max((high - low) / 255.0, MIN_RANGE / 255.0, min_scale)))
    zero_point = int(np.clip(np.round(-128 - low / scale), -128, 127))
    return TensorSpec([int(v) for v in shape], scale, zero_point)


def weight_scales(weights: np.ndarray, axis: int | None, zero_scale: float) -> np.ndarray:
    """float32 symmetric scales, one per slice along ``axis`` (one for the whole tensor if None);
    an all-zero slice gets ``zero_scale``."""
    others = tuple(i for i in range(weights.ndim) if i != axis)
    max_abs = np.atleast_1d(np.abs(weights).max(axis=others))
    return np.where(max_abs > 0, max_abs / 127.0, zero_scale).astype(np.float32)


def quantize_weights_and_bias(op: FloatOp, input_scale: float, output_scale: float,
                              axis: int | None):
    """int8 weights, float32 scales (per channel along ``axis``, or one) and int32 bias.

    A bias that would not fit the int32 budget coarsens its weight scale, as the TFLite converter
    does.
    """
    scales = weight_scales(op.weights, axis, output_scale / input_scale)
    needed = np.abs(op.bias) / (input_scale * BIAS_LIMIT)
    needed = needed if axis is not None else needed.max(keepdims=True)
    scales = np.where(needed > scales, np.nextafter(needed.astype(np.float32), np.float32(np.inf)),
                      scales).astype(np.float32)
    wide = scales.astype(np.float64)
    per_weight = _channel_view(wide, op.weights.ndim, axis) if axis is not None else wide[0]
    weights = np.clip(np.round(op.weights / per_weight), -127, 127).astype(np.int8)
    bias = np.round(op.bias / (input_scale * wide))
    return weights, scales, np.clip(bias, -BIAS_LIMIT, BIAS_LIMIT).astype(np.int32)


def _channel_view(values: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = -1
    return values.reshape(shape)


def conv_params(input_spec: TensorSpec, scales: np.ndarray, output_spec: TensorSpec,
                activation: str, float32_product: bool = False) -> dict:
    """Multiplier and shift per channel, and the clamp (``PopulateConvolutionQuantizationParams``).

    For FULLY_CONNECTED with one weight scale, TFLM's ``GetQuantizedConvolutionMultipler``
    multiplies the input and weight scales in float32 before dividing in double
    (``float32_product``); convolutions multiply in double.
    """
    if float32_product:
        product = float(np.float32(input_spec.scale) * np.float32(scales[0]))
        reals = [product / output_spec.scale]
    else:
        reals = [input_spec.scale * float(s) / output_spec.scale for s in scales]
    pairs = [quantize_multiplier(real) for real in reals]
    low, high = activation_range(activation, output_spec.scale, output_spec.zero_point)
    return {"multiplier": [m for m, _ in pairs], "shift": [s for _, s in pairs],
            "activation_min": low, "activation_max": high}


def add_params(first: TensorSpec, second: TensorSpec, output: TensorSpec, activation: str) -> dict:
    """TFLM's int8 ADD parameters (``CalculateOpDataAdd``): inputs rescaled to twice the larger
    input scale after a left shift of 20 bits, then to the output scale."""
    twice_max = 2.0 * max(first.scale, second.scale)
    params = {"left_shift": ADD_LEFT_SHIFT}
    for key, real in [("input1", first.scale / twice_max), ("input2", second.scale / twice_max),
                      ("output", twice_max / ((1 << ADD_LEFT_SHIFT) * output.scale))]:
        multiplier, shift = quantize_multiplier(real)
        if shift > 0:
            raise TinyevoError("an add's output range is far narrower than its inputs' ranges; "
                               "calibrate on more varied data")
        params[f"{key}_multiplier"], params[f"{key}_shift"] = multiplier, shift
    params["activation_min"], params["activation_max"] = activation_range(
        activation, output.scale, output.zero_point)
    return params


def requantize_params(input_spec: TensorSpec, output_spec: TensorSpec) -> dict:
    multiplier, shift = quantize_multiplier(input_spec.scale / output_spec.scale)
    return {"multiplier": multiplier, "shift": shift}


def quantize_graph(graph: FloatGraph, ranges: dict[str, tuple[float, float]],
                   dense_as: str = "conv_2d") -> QuantizedModel:
    """Turn a folded float graph and its calibration ranges into a ``QuantizedModel``."""
    return _Quantizer(graph, ranges, dense_as).run()


def dense_as_conv(op: FloatOp) -> FloatOp:
    """A dense op on a 1x1xC tensor as the equivalent 1x1 convolution."""
    units, features = op.weights.shape
    attrs = dict(kernel=[1, 1], stride=[1, 1], padding="valid", dilation=[1, 1], groups=1,
                 activation=op.activation)
    return FloatOp("conv_2d", op.name, list(op.inputs), attrs,
                   op.weights.reshape(units, 1, 1, features), op.bias)


class _Quantizer:
    def __init__(self, graph: FloatGraph, ranges: dict, dense_as: str = "conv_2d"):
        self.graph, self.ranges, self.dense_as = graph, ranges, dense_as
        self.tensors: dict[str, TensorSpec] = {}
        self.ops: list[QuantizedOp] = []
        self.adopted: dict[str, TensorSpec] = {}  # tensor -> quantization a concat imposes on it
        self.readers: dict[str, int] = {graph.output: 1}
        for op in graph.ops:
            for source in op.inputs:
                self.readers[source] = self.readers.get(source, 0) + 1

    def run(self) -> QuantizedModel:
        self.tensors[INPUT] = self._from_range(INPUT)
        self._plan_concats()
        for op in self.graph.ops:
            getattr(self, f"_{op.kind}")(op)
        return QuantizedModel(self.graph.name, INPUT, self.graph.output, self.tensors, self.ops)

    def _shape(self, tensor: str) -> list[int]:
        return [1, *self.graph.shapes[tensor]]

    def _from_range(self, tensor: str, min_scale: float = 0.0, shape_of: str | None = None) -> TensorSpec:
        if tensor not in self.ranges:
            raise TinyevoError(f"no calibration range for tensor {tensor!r}: was the module built "
                               f"from this architecture (tinyevo.nn.build)?")
        return activation_spec(*self.ranges[tensor], self._shape(shape_of or tensor), min_scale)

    def _output_spec(self, op: FloatOp) -> TensorSpec:
        spec = self.adopted.get(op.name) or self._from_range(op.name)
        self.tensors[op.name] = spec
        return spec

    def _plan_concats(self) -> None:
        for op in self.graph.ops:
            if op.kind != "concatenation":
                continue
            spec = self._from_range(op.name)
            for source in op.inputs:
                producer = self.graph.producer(source)
                if producer and producer.kind in ADOPTS_QUANTIZATION and self.readers[source] == 1:
                    self.adopted[source] = TensorSpec(self._shape(source), spec.scale, spec.zero_point)

    # --- one method per op kind ------------------------------------------------------------------
    def _weighted(self, op: FloatOp, axis: int | None) -> None:
        input_spec = self.tensors[op.inputs[0]]
        output_spec = self._output_spec(op)
        weights, scales, bias = quantize_weights_and_bias(op, input_spec.scale, output_spec.scale, axis)
        self.ops.append(QuantizedOp(op.kind, op.name, list(op.inputs), dict(op.attrs),
                                    conv_params(input_spec, scales, output_spec, op.activation,
                                                float32_product=op.kind == "fully_connected"),
                                    weights, scales, bias))

    def _conv_2d(self, op: FloatOp) -> None:
        self._weighted(op, axis=0)

    def _depthwise_conv_2d(self, op: FloatOp) -> None:
        self._weighted(op, axis=3)

    def _fully_connected(self, op: FloatOp) -> None:
        if self.dense_as == "conv_2d":
            self._weighted(dense_as_conv(op), axis=0)
        else:  # one weight scale, as the TFLite converter writes FULLY_CONNECTED
            self._weighted(op, axis=None)

    def _same_as_input(self, op: FloatOp, params: dict) -> None:
        source = self.tensors[op.inputs[0]]
        spec = TensorSpec(self._shape(op.name), source.scale, source.zero_point)
        self.tensors[op.name] = spec
        attrs = dict(op.attrs)
        if op.kind == "reshape":
            attrs["new_shape"] = spec.shape
        self.ops.append(QuantizedOp(op.kind, op.name, list(op.inputs), attrs, params))

    def _pool(self, op: FloatOp) -> None:
        source = self.tensors[op.inputs[0]]
        low, high = activation_range(op.activation, source.scale, source.zero_point)
        self._same_as_input(op, {"activation_min": low, "activation_max": high})

    _max_pool_2d = _average_pool_2d = _pool

    def _reshape(self, op: FloatOp) -> None:
        self._same_as_input(op, {})

    def _relu(self, op: FloatOp) -> None:
        source = self.tensors[op.inputs[0]]
        params = requantize_params(source, source)  # TFLM's ReluOpData: a multiplier of one
        params["activation_min"], params["activation_max"] = activation_range(
            "relu", source.scale, source.zero_point)
        self._same_as_input(op, params)

    def _relu6(self, op: FloatOp) -> None:
        source = self.tensors[op.inputs[0]]
        six = min(127, max(-128, quantize_value(6.0, source.scale, source.zero_point)))
        self._same_as_input(op, {"zero": source.zero_point, "six": six})

    def _add(self, op: FloatOp) -> None:
        accumulated = op.inputs[0]
        for k, source in enumerate(op.inputs[1:], start=1):
            last = k == len(op.inputs) - 1
            name = op.name if last else partial_sum_name(op.name, k)
            first, second = self.tensors[accumulated], self.tensors[source]
            min_scale = 2.0 * max(first.scale, second.scale) / (1 << (ADD_LEFT_SHIFT - 1))
            spec = self._from_range(name, min_scale, shape_of=op.name)
            self.tensors[name] = spec
            activation = op.activation if last else "none"
            self.ops.append(QuantizedOp("add", name, [accumulated, source], {"activation": activation},
                                        add_params(first, second, spec, activation)))
            accumulated = name

    def _concatenation(self, op: FloatOp) -> None:
        spec = self._output_spec(op)
        inputs = [self._requantized(source, spec, op.name) for source in op.inputs]
        self.ops.append(QuantizedOp(op.kind, op.name, inputs, dict(op.attrs)))

    def _requantized(self, source: str, target: TensorSpec, reader: str) -> str:
        """``source`` itself if it already has ``target``'s quantization, else a QUANTIZE of it."""
        spec = self.tensors[source]
        if (spec.scale, spec.zero_point) == (target.scale, target.zero_point):
            return source
        name = f"{source}:requantized_for:{reader}"
        self.tensors[name] = TensorSpec(list(spec.shape), target.scale, target.zero_point)
        self.ops.append(QuantizedOp("quantize", name, [source], {},
                                    requantize_params(spec, self.tensors[name])))
        return name
