"""``QuantizedModel``: the int8 network every exporter and the reference executor read.

Plain data: per-tensor scale and zero point (int8 activations, NHWC, batch 1), and per op its
TFLite kind, attributes, int8 weights with per-channel scales, int32 biases, and the fixed-point
parameters TFLM derives from them (multipliers, shifts, clamps). Stored as one ``.npz`` file that
holds a JSON description beside the arrays: no pickle.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyevo.errors import TinyevoError

FORMAT = "tinyevo.quantized_model"
FORMAT_VERSION = 1
ARRAYS = ("weights", "weight_scales", "bias")


@dataclass
class TensorSpec:
    """An int8 activation tensor: ``real = scale * (q - zero_point)``; shape NHWC with batch 1."""

    shape: list[int]
    scale: float
    zero_point: int

    def quantize(self, real: np.ndarray) -> np.ndarray:
        q = np.round(np.asarray(real, dtype=np.float64) / self.scale) + self.zero_point
        return np.clip(q, -128, 127).astype(np.int8)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return (np.asarray(q, dtype=np.float64) - self.zero_point) * self.scale


@dataclass
class QuantizedOp:
    """One int8 op. ``params`` holds the integers TFLM computes in Prepare (same names as TFLM)."""

    kind: str
    name: str
    inputs: list[str]
    attrs: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    weights: np.ndarray | None = None  # int8, TFLite layout
    weight_scales: np.ndarray | None = None  # float32, one per output channel
    bias: np.ndarray | None = None  # int32, scale input_scale * weight_scale

    @property
    def activation(self) -> str:
        return self.attrs.get("activation", "none")


@dataclass
class QuantizedModel:
    """The int8 graph: ``ops`` in execution order, reading and writing ``tensors`` by name."""

    name: str
    input: str
    output: str
    tensors: dict[str, TensorSpec]
    ops: list[QuantizedOp]

    @property
    def input_spec(self) -> TensorSpec:
        return self.tensors[self.input]

    @property
    def output_spec(self) -> TensorSpec:
        return self.tensors[self.output]

    def to_json(self) -> dict:
        ops = [{"kind": op.kind, "name": op.name, "inputs": op.inputs, "attrs": op.attrs,
                "params": op.params} for op in self.ops]
        tensors = {name: {"shape": t.shape, "scale": float(t.scale), "zero_point": int(t.zero_point)}
                   for name, t in self.tensors.items()}
        return {"format": FORMAT, "version": FORMAT_VERSION, "name": self.name, "input": self.input,
                "output": self.output, "tensors": tensors, "ops": ops}

    def save(self, path: str | Path) -> None:
        arrays = {f"op{i}.{key}": getattr(op, key) for i, op in enumerate(self.ops)
                  for key in ARRAYS if getattr(op, key) is not None}
        with open(path, "wb") as handle:
            np.savez(handle, model_json=np.array(json.dumps(self.to_json())), **arrays)

    @classmethod
    def load(cls, path: str | Path) -> "QuantizedModel":
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["model_json"]))
            if meta.get("format") != FORMAT:
                raise TinyevoError(f"{path}: not a tinyevo quantized model (.npz from QuantizedModel.save)")
            tensors = {name: TensorSpec(list(t["shape"]), float(np.float32(t["scale"])), int(t["zero_point"]))
                       for name, t in meta["tensors"].items()}
            ops = []
            for i, raw in enumerate(meta["ops"]):
                arrays = {key: data[f"op{i}.{key}"] for key in ARRAYS if f"op{i}.{key}" in data}
                ops.append(QuantizedOp(raw["kind"], raw["name"], list(raw["inputs"]), raw["attrs"],
                                       raw["params"], **arrays))
        return cls(meta["name"], meta["input"], meta["output"], tensors, ops)
