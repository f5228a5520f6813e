"""``metadata.json``: what a generated C library needs and provides, versioned (after microTVM's
model library format), so that firmware and tools can check what they link.

    {"format": "tinyevo.c_model", "version": 1, "model": ..., "arena_bytes": ..., "peak_bytes": ...,
     "flash_bytes": ..., "macs": ..., "input": {shape, dtype, scale, zero_point, bytes}, "output": {...},
     "op_order": [{name, kind, function, inputs, output, output_offset, output_bytes, scratch, macs}],
     "files": [...], "in_place_kernels": ..., "schedule_search": ...,
     "execution": {"mode", "streamed_ops", "cut", "ring_rows", "stream_bytes"},
     "frontend": {...}}   # only for a model of audio features (``codegen.frontend_c.frontend_metadata``)
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tinyevo.deploy.quantized_model import TensorSpec
from tinyevo.errors import TinyevoError

FORMAT = "tinyevo.c_model"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: list[int]  # NHWC, batch 1
    scale: float
    zero_point: int
    bytes: int
    dtype: str = "int8"

    @classmethod
    def of(cls, name: str, spec: TensorSpec) -> "TensorInfo":
        size = 1
        for n in spec.shape:
            size *= int(n)
        return cls(name, [int(n) for n in spec.shape], float(spec.scale), int(spec.zero_point), size)


@dataclass(frozen=True)
class OpInfo:
    name: str
    kind: str
    function: str
    inputs: list[str]
    output: str
    output_offset: int
    output_bytes: int
    in_place: bool
    scratch: list[int] | None  # [offset, bytes] of the op's scratch buffer in the arena
    macs: int
    flash_bytes: int


@dataclass
class ModelMetadata:
    model: str
    arena_bytes: int
    peak_bytes: int  # the plan's peak, the most bytes live at one step: no arena can be smaller
    flash_bytes: int  # constant data: weights, biases, requantization parameters
    macs: int
    input: TensorInfo
    output: TensorInfo
    op_order: list[OpInfo]
    files: list[str]
    in_place_kernels: bool
    schedule_search: str
    format: str = FORMAT
    version: int = FORMAT_VERSION
    notes: list[str] = field(default_factory=list)
    #: how the ops run: {"mode": "streamed" | "layer_by_layer", "streamed_ops", "cut", "ring_rows"}
    execution: dict = field(default_factory=dict)
    #: the audio front-end emitted with the model (settings, arithmetic, tolerance, RAM, flash), or None
    frontend: dict | None = None

    def to_json(self) -> dict:
        data = asdict(self)
        if data["frontend"] is None:  # models without one: the metadata of before
            del data["frontend"]
        return data

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=1) + "\n"


def read_metadata(path: str | Path) -> dict:
    """The metadata of a generated library, checked for its format and version."""
    data = json.loads(Path(path).read_text())
    if data.get("format") != FORMAT:
        raise TinyevoError(f"{path}: not the metadata of a tinyevo C library")
    if data.get("version") != FORMAT_VERSION:
        raise TinyevoError(f"{path}: C format version {data.get('version')}, this tinyevo reads "
                           f"{FORMAT_VERSION}; regenerate the library")
    return data
