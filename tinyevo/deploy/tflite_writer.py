"""Write a ``QuantizedModel`` as a .tflite flatbuffer (TFLite schema v3), with no TensorFlow involved.

One subgraph; an int8 NHWC input and output with their scale and zero point; int8 weights with
per-channel scales; int32 biases; fused activations in the op options. The flatbuffer is built
field by field with the ``flatbuffers`` package from the slot numbers in ``tflite_schema``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import flatbuffers
import numpy as np

from tinyevo.deploy import tflite_schema as schema
from tinyevo.deploy.quantized_model import QuantizedModel, QuantizedOp

BUFFER_ALIGNMENT = 16  # the schema's force_align for Buffer.data


@dataclass
class _Tensor:
    name: str
    shape: list[int]
    dtype: str
    buffer: int = 0
    scale: list[float] | None = None
    zero_point: list[int] | None = None
    quantized_dimension: int = 0


@dataclass
class _Operator:
    kind: str
    inputs: list[int]
    outputs: list[int]
    options: str | None = None
    values: dict = field(default_factory=dict)


def to_tflite(model: QuantizedModel, description: str = "tinyevo int8 model") -> bytes:
    """The .tflite bytes of ``model``."""
    return _Writer(_plan(model)).build(model.name or "main", description)


def save_tflite(model: QuantizedModel, path: str | Path) -> int:
    """Write ``model`` to ``path``; returns the size in bytes (the model's flash footprint)."""
    data = to_tflite(model)
    Path(path).write_bytes(data)
    return len(data)


# --- from the QuantizedModel to flat lists of tensors, buffers and operators ---------------------
class _Plan:
    def __init__(self, model: QuantizedModel):
        self.model = model
        self.tensors: list[_Tensor] = []
        self.index: dict[str, int] = {}
        self.buffers: list[bytes] = [b""]  # buffer 0: the empty buffer of every activation tensor
        self.operators: list[_Operator] = []

    def activation(self, name: str) -> int:
        if name not in self.index:
            spec = self.model.tensors[name]
            self.index[name] = self._add(_Tensor(name, list(spec.shape), "int8", 0, [spec.scale],
                                                 [spec.zero_point]))
        return self.index[name]

    def constant(self, tensor: _Tensor, values: np.ndarray) -> int:
        self.buffers.append(np.ascontiguousarray(values).tobytes())
        tensor.buffer = len(self.buffers) - 1
        return self._add(tensor)

    def _add(self, tensor: _Tensor) -> int:
        self.tensors.append(tensor)
        return len(self.tensors) - 1


def _plan(model: QuantizedModel) -> _Plan:
    plan = _Plan(model)
    plan.activation(model.input)
    for op in model.ops:
        inputs = [plan.activation(s) for s in op.inputs]
        inputs += _constants(plan, op)
        outputs = [plan.activation(op.name)]
        options, values = _options(op)
        plan.operators.append(_Operator(op.kind, inputs, outputs, options, values))
    plan.activation(model.output)
    return plan


def _constants(plan: _Plan, op: QuantizedOp) -> list[int]:
    if op.weights is not None:
        axis = 3 if op.kind == "depthwise_conv_2d" else 0
        scales = [float(s) for s in op.weight_scales]  # one per channel, or one for the tensor
        input_scale = plan.model.tensors[op.inputs[0]].scale
        bias_scales = [float(np.float32(input_scale * s)) for s in scales]
        zeros = [0] * len(scales)
        weights = _Tensor(f"{op.name}/weights", list(op.weights.shape), "int8", 0, scales, zeros, axis)
        bias = _Tensor(f"{op.name}/bias", [len(op.bias)], "int32", 0, bias_scales, zeros, 0)
        return [plan.constant(weights, op.weights.astype(np.int8)),
                plan.constant(bias, op.bias.astype("<i4"))]
    if op.kind == "reshape":
        shape = np.asarray(op.attrs["new_shape"], dtype="<i4")
        return [plan.constant(_Tensor(f"{op.name}/shape", [len(shape)], "int32"), shape)]
    return []


def _options(op: QuantizedOp) -> tuple[str | None, dict]:
    a, activation = op.attrs, schema.ACTIVATION[op.activation]
    if op.kind in ("conv_2d", "depthwise_conv_2d"):
        values = dict(padding=schema.PADDING[a["padding"]], stride_w=a["stride"][1],
                      stride_h=a["stride"][0], fused_activation_function=activation,
                      dilation_w_factor=a["dilation"][1], dilation_h_factor=a["dilation"][0])
        if op.kind == "conv_2d":
            return "Conv2DOptions", values
        return "DepthwiseConv2DOptions", {**values, "depth_multiplier": a["depth_multiplier"]}
    if op.kind in ("max_pool_2d", "average_pool_2d"):
        return "Pool2DOptions", dict(padding=schema.PADDING[a["padding"]], stride_w=a["stride"][1],
                                     stride_h=a["stride"][0], filter_width=a["kernel"][1],
                                     filter_height=a["kernel"][0], fused_activation_function=activation)
    if op.kind == "fully_connected":
        return "FullyConnectedOptions", dict(fused_activation_function=activation, weights_format=0,
                                             keep_num_dims=True)
    if op.kind == "add":
        return "AddOptions", dict(fused_activation_function=activation)
    if op.kind == "concatenation":
        return "ConcatenationOptions", dict(axis=a.get("axis", 3), fused_activation_function=0)
    if op.kind == "reshape":
        return "ReshapeOptions", dict(new_shape=list(a["new_shape"]))
    return None, {}


# --- flatbuffer building ----------------------------------------------------------------------
class _Writer:
    def __init__(self, plan: _Plan):
        self.plan = plan
        self.b = flatbuffers.Builder(1 << 16)
        self.b.ForceDefaults(True)

    def build(self, name: str, description: str) -> bytes:
        b, plan = self.b, self.plan
        buffers = [self._buffer(data) for data in plan.buffers]
        tensors = [self._tensor(t) for t in plan.tensors]
        kinds = list(dict.fromkeys(op.kind for op in plan.operators))
        operators = [self._operator(op, kinds.index(op.kind)) for op in plan.operators]
        graph_io = [plan.index[plan.model.input]], [plan.index[plan.model.output]]
        subgraph = self._table(schema.SUBGRAPH, tensors=self._offsets(tensors),
                               inputs=self._ints(graph_io[0]), outputs=self._ints(graph_io[1]),
                               operators=self._offsets(operators), name=b.CreateString(name))
        codes = [self._operator_code(kind) for kind in kinds]
        model = self._table(schema.MODEL, version=("uint32", schema.SCHEMA_VERSION),
                            operator_codes=self._offsets(codes),
                            subgraphs=self._offsets([subgraph]),
                            description=b.CreateString(description),
                            buffers=self._offsets(buffers))
        b.Finish(model, file_identifier=schema.FILE_IDENTIFIER)
        return bytes(b.Output())

    def _table(self, layout, **fields) -> int:
        """A table from ``field=value`` (an offset) or ``field=(type, value)`` (a scalar)."""
        slots, count = layout
        self.b.StartObject(count)
        for key, value in fields.items():
            kind, value = value if isinstance(value, tuple) else ("offset", value)
            slot = slots[key]
            {"offset": self.b.PrependUOffsetTRelativeSlot, "int32": self.b.PrependInt32Slot,
             "uint32": self.b.PrependUint32Slot, "int8": self.b.PrependInt8Slot,
             "uint8": self.b.PrependUint8Slot, "bool": self.b.PrependBoolSlot}[kind](slot, value, 0)
        return self.b.EndObject()

    def _offsets(self, offsets: list[int]) -> int:
        self.b.StartVector(4, len(offsets), 4)
        for offset in reversed(offsets):
            self.b.PrependUOffsetTRelative(offset)
        return self.b.EndVector()

    def _ints(self, values, dtype="<i4") -> int:
        return self.b.CreateNumpyVector(np.asarray(values, dtype=dtype))

    def _buffer(self, data: bytes) -> int:
        if not data:
            return self._table(schema.BUFFER)
        b = self.b
        b.StartVector(1, len(data), BUFFER_ALIGNMENT)
        b.head = b.head - len(data)
        b.Bytes[b.head:b.head + len(data)] = data
        return self._table(schema.BUFFER, data=b.EndVector())

    def _tensor(self, t: _Tensor) -> int:
        fields = dict(shape=self._ints(t.shape), type=("int8", schema.TENSOR_TYPE[t.dtype]),
                      buffer=("uint32", t.buffer), name=self.b.CreateString(t.name))
        if t.scale is not None:
            scale = self._ints(t.scale, "<f4")
            zero_point = self._ints(t.zero_point, "<i8")
            fields["quantization"] = self._table(schema.QUANTIZATION, scale=scale, zero_point=zero_point,
                                                 quantized_dimension=("int32", t.quantized_dimension))
        return self._table(schema.TENSOR, **fields)

    def _operator(self, op: _Operator, opcode_index: int) -> int:
        fields = dict(opcode_index=("uint32", opcode_index), inputs=self._ints(op.inputs),
                      outputs=self._ints(op.outputs))
        if op.options is not None:
            fields["builtin_options"] = self._options(op.options, op.values)
            fields["builtin_options_type"] = ("uint8", schema.BUILTIN_OPTIONS[op.options])
        return self._table(schema.OPERATOR, **fields)

    def _options(self, name: str, values: dict) -> int:
        typed = {}
        for key, value in values.items():
            if isinstance(value, list):
                typed[key] = self._ints(value)
            elif key in schema.BYTE_FIELDS:
                typed[key] = ("int8", value)
            else:
                typed[key] = ("bool" if key in schema.BOOL_FIELDS else "int32", value)
        return self._table(schema.OPTIONS[name], **typed)

    def _operator_code(self, kind: str) -> int:
        code = schema.BUILTIN_OPERATOR[kind]
        return self._table(schema.OPERATOR_CODE, deprecated_builtin_code=("int8", min(code, 127)),
                           version=("int32", schema.OPERATOR_VERSION[kind]),
                           builtin_code=("int32", code))
