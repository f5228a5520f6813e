"""Export a network: quantize it (for the int8 formats) and hand it to the format's exporter
(``tinyevo.deploy.exporters``); the summary ``tinyevo export`` prints.

``ModelToExport`` is what a caller brings: an ``Architecture``, its torch module (trained, or random
weights), the float NCHW inputs to calibrate the int8 ranges on, and what it knows of the model
(its test accuracies, where it comes from). Deploy knows nothing of run folders: ``tinyevo.runs``
loads a run's model and data into a ``ModelToExport``.

``arena_bytes`` is the SRAM the written model needs in its runtime (``runtime``): TFLM's tensor
arena for a .tflite, the static arena for C. A model whose peak SRAM was searched for one runtime
(``searched_runtime``) and written for the other gets a warning with both figures (``runtime_note``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from tinyevo.arch import Architecture
from tinyevo.audio.frontend import FrontEnd
from tinyevo.deploy.exporters import Exporter, Network
from tinyevo.deploy.quantize import quantize
from tinyevo.deploy.quantized_model import QuantizedModel


@dataclass
class ExportResult:
    """What ``write_model`` wrote, for the one-line summary (accuracies are shares, 0..1)."""

    path: str
    format: str
    size_bytes: int
    source: str
    trial: int | None = None
    test_accuracy: float | None = None
    int8_test_accuracy: float | None = None
    arena_bytes: int | None = None
    random_weights: bool = False
    flash_bytes: int | None = None  # format c: constant data of the library
    runtime: str | None = None  # whose arena arena_bytes is: tflm (.tflite) or c (C library)
    searched_runtime: str | None = None  # a run's model: the runtime its peak SRAM was searched for
    searched_peak_sram_bytes: int | None = None  # ... and that figure


@dataclass
class ModelToExport:
    """A network with its weights, the float NCHW inputs to calibrate on, and what is known of it."""

    architecture: Architecture
    module: torch.nn.Module
    calibration: np.ndarray
    source: str
    trial: int | None = None
    test_accuracy: float | None = None
    int8_test_accuracy: float | None = None
    random_weights: bool = False
    #: Called with the QuantizedModel when the int8 accuracy is unknown; returns it (or None).
    measure_int8: Callable[[QuantizedModel], float | None] | None = None
    searched_runtime: str | None = None  # a run's model: the runtime its peak SRAM was searched for
    searched_peak_sram_bytes: int | None = None
    #: the audio front-end whose features the network reads (``tinyevo export --format c`` emits it)
    frontend: FrontEnd | None = None


def write_model(model: ModelToExport, exporter: Exporter, path: Path) -> ExportResult:
    """Quantize (for the int8 formats), encode and write ``model``; the summary of what was written."""
    qmodel = None
    if exporter.int8:
        qmodel = quantize(model.architecture, model.module, model.calibration)
        if model.int8_test_accuracy is None and model.measure_int8 is not None:
            model.int8_test_accuracy = model.measure_int8(qmodel)
    written = exporter.export(Network(model.architecture, model.module, qmodel, model.frontend), path)
    return ExportResult(str(path), exporter.name, written.size_bytes, model.source, model.trial,
                        model.test_accuracy, model.int8_test_accuracy, written.arena_bytes,
                        model.random_weights, written.flash_bytes, exporter.runtime,
                        model.searched_runtime, model.searched_peak_sram_bytes)


RUNTIME_NAMES = {"c": "the generated C's arena", "tflm": "the TFLite Micro arena"}


def runtime_note(result: ExportResult) -> str | None:
    """A warning when a run's model is written for another runtime than the one its peak SRAM was
    searched for (its limit then bounds the other runtime's arena), with both figures."""
    searched, runtime = result.searched_runtime, result.runtime
    if searched is None or runtime is None or searched == runtime:
        return None
    return (f"warning: the run searched peak SRAM as {RUNTIME_NAMES[searched]} (runtime {searched}: "
            f"{_size(result.searched_peak_sram_bytes)} for this model), but this file runs in "
            f"{runtime}, whose arena is {_size(result.arena_bytes)}; search with --runtime {runtime} "
            f"to bound that one")


def _size(value: int | None) -> str:
    return "unknown" if value is None else f"{value:,} bytes"
