"""Export a searched model: the job behind ``tinyevo export``, from a run folder or a model file, to
``tinyevo.deploy`` (one direction: the source is loaded here, deploy writes it).

From a run folder (``tinyevo search --out RUN``) it takes the best final-trained model under the
run's constraints, or ``trial=ID``, with the weights the run kept (``tinyevo.runs.export``): nothing
is retrained, and the int8 model is calibrated on the run's training data, so it is the one whose
int8 test accuracy the run reports.

From a genome or architecture file it builds the network with seeded random weights (or the
``weights`` .npz given) and calibrates on random inputs: a check that a design deploys, with no
accuracy to report.

Formats are the registered exporters (``tinyevo.deploy.exporters.EXPORTERS``): ``tflite``, ``onnx``,
``onnx-qdq``, ``c``. The target is checked before any work and written atomically.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from tinyevo.audio.features import frontend_of
from tinyevo.deploy.export import ExportResult, ModelToExport, runtime_note, write_model
from tinyevo.deploy.exporters import create_exporter
from tinyevo.errors import TinyevoError
from tinyevo.hardware.execution import DEPLOYED, ExecutionModel
from tinyevo.model_file import load_architecture
from tinyevo.nn import build
from tinyevo.runs.export import load_run_model
from tinyevo.runs.models import load_weights
from tinyevo.runs.results import load_results

RANDOM_CALIBRATION_ROWS = 64  # random inputs for a genome file with no data


def export_model(source: str | Path, format: str, out: str | Path, trial: int | None = None,
                 weights: str | Path | None = None, seed: int = 0,
                 warn: Callable[[str], None] = print,
                 execution: ExecutionModel | str = DEPLOYED) -> ExportResult:
    """Export the model of ``source`` (a run folder or a genome/architecture file) to ``out``;
    ``execution`` is how the C library runs its ops (``ExecutionModel.deployed``, or its name:
    ``streamed`` or ``layer_by_layer``)."""
    if isinstance(execution, str):
        execution = ExecutionModel.deployed(execution)  # one line for a bad name, whatever the format
    exporter = create_exporter(format, execution=execution)
    path = exporter.check_out(out)
    source = Path(source)
    if not source.exists():
        raise TinyevoError(f"{source}: no such run folder or genome file; check the path")
    if source.is_dir():
        if weights is not None:
            raise TinyevoError(f"--weights is for a genome file; the run {source} keeps its own weights")
        model = load_run_model(source, trial)
        note = load_results(source).get("incomplete")
        if note:  # after the model loaded: a refusal stays one line
            warn(f"warning: {source} is an incomplete run ({note}); exporting from what it holds now")
    else:
        if trial is not None:
            raise TinyevoError(f"--trial picks a model of a run folder, and {source} is not a folder")
        model = load_file_model(source, weights, seed, warn)
    result = write_model(model, exporter, path)
    note = runtime_note(result)
    if note:
        warn(note)
    return result


def load_file_model(path: Path, weights: str | Path | None, seed: int,
                    warn: Callable[[str], None]) -> ModelToExport:
    """The network of a genome/architecture file with random (or given) weights and random calibration."""
    architecture = load_architecture(path)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build(architecture).eval()
    if weights is None:
        warn(f"warning: {path} has no trained weights: exporting random weights calibrated on random "
             f"inputs (a deployability check; pass --weights FILE.npz or export a run for a real model)")
    else:
        load_weights(module, weights)
        warn(f"warning: no data for {path}: int8 ranges are calibrated on random inputs, "
             f"so int8 accuracy may suffer; export the run folder to calibrate on its data")
    h, w, c = architecture.input_shape
    rng = np.random.default_rng(seed)
    calibration = rng.uniform(0.0, 1.0, size=(RANDOM_CALIBRATION_ROWS, c, h, w)).astype(np.float32)
    return ModelToExport(architecture, module, calibration, str(path), random_weights=weights is None,
                         frontend=frontend_of(architecture))
