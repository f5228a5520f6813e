"""Exporters: one per file format, registered by name in ``EXPORTERS`` (``tinyevo export --format``).

    exporter = create_exporter("c", execution="layer_by_layer")   # options it does not take are ignored
    path = exporter.check_out("model_c/")                         # before any work
    written = exporter.export(Network(arch, module, qmodel), path)

An exporter reads the int8 model (``int8 = True``: ``Network.qmodel``) or the float network (the
architecture and its torch module), writes ``out`` atomically and returns what it wrote (``Written``):
its size and, where the format has one, the arena its runtime (``runtime``) needs.

``tflite`` (int8, TFLite schema; runs in TFLM), ``onnx`` (float, batch norm folded), ``onnx-qdq``
(int8 as QuantizeLinear/DequantizeLinear; runs in onnxruntime), ``c`` (a C99 library folder,
``tinyevo.deploy.codegen``: its static arena and constant bytes). A new format is one class here,
registered with ``@_exporter(NAME)``, and one entry in ``tests/test_exporters_contract.py`` naming
the runtime that checks its files.
"""
from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch

from tinyevo.arch import Architecture
from tinyevo.audio.frontend import FrontEnd
from tinyevo.deploy.codegen.emit import render_c
from tinyevo.deploy.fold import fold
from tinyevo.deploy.output import (check_output_folder, check_output_path, write_atomically,
                                   write_folder_atomically)
from tinyevo.deploy.quantized_model import QuantizedModel
from tinyevo.deploy.runtimes import tflm_required_arena_bytes
from tinyevo.deploy.tflite_writer import to_tflite
from tinyevo.errors import TinyevoError
from tinyevo.hardware.execution import DEPLOYED, ExecutionModel
from tinyevo.registry import Registry

EXPORTERS: Registry["Exporter"] = Registry("export format")


@dataclass
class Network:
    """What an exporter reads: the float network and, for the int8 formats, its int8 model."""

    architecture: Architecture
    module: torch.nn.Module
    qmodel: QuantizedModel | None = None
    #: the audio front-end whose features the network reads (format c emits it too), or None
    frontend: FrontEnd | None = None


@dataclass
class Written:
    """What an exporter wrote: bytes in all, and the arena / constant bytes where the format knows them."""

    size_bytes: int
    arena_bytes: int | None = None
    flash_bytes: int | None = None


class Exporter:
    """Writes a model in one format (``name``)."""

    name: ClassVar[str]
    int8: ClassVar[bool] = True  # reads Network.qmodel; False: the float network
    runtime: ClassVar[str | None] = None  # whose arena Written.arena_bytes is (tflm, c)

    def check_out(self, out: str | Path) -> Path:
        """``out`` as a Path, checked before any work (one clear line when it cannot be written)."""
        return check_output_path(out)

    def export(self, network: Network, out: Path) -> Written:
        raise NotImplementedError


class FileExporter(Exporter):
    """An exporter whose output is one file: ``encode`` gives its bytes."""

    def encode(self, network: Network) -> bytes:
        raise NotImplementedError

    def arena_bytes(self, data: bytes) -> int | None:
        return None

    def export(self, network: Network, out: Path) -> Written:
        data = self.encode(network)
        write_atomically(out, data)
        return Written(len(data), self.arena_bytes(data))


def _exporter(name: str):
    """Register the class as the exporter of format ``name``."""
    def decorate(cls):
        cls.name = name
        return EXPORTERS.register(name)(cls)
    return decorate


def create_exporter(name: str, **options) -> Exporter:
    """The exporter of format ``name`` with those of ``options`` it takes (its dataclass fields)."""
    cls = EXPORTERS.get(name)
    taken = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    return cls(**{key: value for key, value in options.items() if key in taken})


@_exporter("tflite")
class TfliteExporter(FileExporter):
    """Int8 .tflite (TFLite schema), bit-exact with the int8 reference in TFLM and LiteRT."""

    runtime = "tflm"

    def encode(self, network: Network) -> bytes:
        return to_tflite(network.qmodel)

    def arena_bytes(self, data: bytes) -> int | None:
        """The tensor arena TFLM needs for the model (the smallest it allocates the model in,
        ``tflm_required_arena_bytes``), when the tflite-micro package is installed."""
        if importlib.util.find_spec("tflite_micro") is None:
            return None
        try:
            return tflm_required_arena_bytes(data)
        except Exception:  # noqa: BLE001 -- a figure for the summary; the file is written already
            return None


def onnx_export():
    """``tinyevo.deploy.onnx_export``, which needs the optional onnx package."""
    try:
        from tinyevo.deploy import onnx_export as module
    except ImportError:
        raise TinyevoError("ONNX export needs the onnx package: pip install tinyevo[deploy]") from None
    return module


@_exporter("onnx")
class OnnxExporter(FileExporter):
    """Float .onnx, batch norm folded: matches the PyTorch module in onnxruntime."""

    int8 = False

    def encode(self, network: Network) -> bytes:
        network.module.eval()
        return onnx_export().to_onnx(fold(network.architecture, network.module)).SerializeToString()


@_exporter("onnx-qdq")
class OnnxQdqExporter(FileExporter):
    """Int8 .onnx as QuantizeLinear/DequantizeLinear around float ops."""

    def encode(self, network: Network) -> bytes:
        return onnx_export().to_onnx_qdq(network.qmodel).SerializeToString()


@_exporter("c")
@dataclass
class CExporter(Exporter):
    """A C99 library folder: tinyevo_model.{c,h}, tinyevo_runtime.h, metadata.json (and
    tinyevo_frontend.{c,h} for a network of audio features, ``Network.frontend``); ``execution`` is
    how it runs its ops, an ``ExecutionModel`` (``ExecutionModel.deployed``) or its name
    (``streamed``: the first ops row by row through line buffers when that shrinks the arena;
    ``layer_by_layer``: whole tensors; in-place kernels either way)."""

    execution: ExecutionModel | str = DEPLOYED
    runtime = "c"

    def __post_init__(self):
        if isinstance(self.execution, str):
            self.execution = ExecutionModel.deployed(self.execution)

    def check_out(self, out: str | Path) -> Path:
        return check_output_folder(out)

    def export(self, network: Network, out: Path) -> Written:
        generated = render_c(network.qmodel, **self.execution.arena_options(), frontend=network.frontend)
        files = {name: text.encode() for name, text in generated.files.items()}
        write_folder_atomically(out, files)
        meta = generated.metadata
        return Written(sum(map(len, files.values())), meta.arena_bytes, meta.flash_bytes)
