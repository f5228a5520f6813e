"""Export a searched model: the library behind ``tinyevo export``.

From a run folder (``tinyevo search --out RUN``) it takes the best final-trained model under the
run's constraints, or ``trial=ID``, with the weights the run kept (``RUN/models/``): nothing is
retrained. Calibration is a seeded sample of the run's training split, resized to the model's input
as the trainer does, so the exported int8 model is the one whose int8 test accuracy
(``int8_test_accuracy``, from the int8 reference executor) the run reports.

From a genome or architecture file it builds the network with seeded random weights (or the
``weights`` .npz given) and calibrates on random inputs: a check that a design deploys, with no
accuracy to report.

Formats: ``tflite`` (int8, TFLite schema), ``onnx`` (float, batch norm folded), ``onnx-qdq`` (int8
as QuantizeLinear/DequantizeLinear), ``c`` (a C99 library folder, ``tinyevo.deploy.codegen``).
``arena_bytes`` is the SRAM the written model needs in its runtime (``runtime``): TFLM's tensor
arena for a .tflite, the static arena for C. A run searched peak SRAM for one runtime (``tinyevo
search --runtime``); exporting its model for the other one warns, with both figures. The
file is written atomically: a temporary file in the same folder renamed over the target, so an
error leaves no file behind; a C library is written into a temporary folder renamed into place.
"""
from __future__ import annotations

import contextlib
import copy
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from tinyevo.arch import Architecture
from tinyevo.deploy.int8_reference import run_int8
from tinyevo.deploy.quantize import quantize
from tinyevo.deploy.quantized_model import QuantizedModel
from tinyevo.errors import TinyevoError
from tinyevo.hardware.execution import DEPLOYED, ExecutionModel

FORMATS = ("tflite", "onnx", "onnx-qdq", "c")
CALIBRATION_ROWS = 256  # training rows the int8 ranges are calibrated on
RANDOM_CALIBRATION_ROWS = 64  # random inputs for a genome file with no data
INT8_BATCH_ROWS = 64  # test rows per call of the int8 reference executor (bounds its memory)


@dataclass
class ExportResult:
    """What ``export_model`` wrote, for the one-line summary (accuracies are shares, 0..1)."""

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


# --- the whole job ---------------------------------------------------------------------------------
def export_model(source: str | Path, format: str, out: str | Path, trial: int | None = None,
                 weights: str | Path | None = None, seed: int = 0,
                 warn: Callable[[str], None] = print, execution: ExecutionModel = DEPLOYED) -> ExportResult:
    """Export the model of ``source`` (a run folder or a genome/architecture file) to ``out``;
    ``execution`` is how the C library runs its ops (``ExecutionModel.deployed``: streamed or
    layer by layer, with in-place kernels)."""
    if format not in FORMATS:
        raise TinyevoError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    path = check_output_folder(out) if format == "c" else check_output_path(out)
    source = Path(source)
    if not source.exists():
        raise TinyevoError(f"{source}: no such run folder or genome file; check the path")
    if source.is_dir():
        if weights is not None:
            raise TinyevoError(f"--weights is for a genome file; the run {source} keeps its own weights")
        model = load_run_model(source, trial)
    else:
        if trial is not None:
            raise TinyevoError(f"--trial picks a model of a run folder, and {source} is not a folder")
        model = load_file_model(source, weights, seed, warn)
    result = write_model(model, format, path, execution)
    note = runtime_note(result)
    if note:
        warn(note)
    return result


def write_model(model: ModelToExport, format: str, path: Path,
                execution: ExecutionModel = DEPLOYED) -> ExportResult:
    """Quantize (for the int8 formats), encode and write ``model``; the summary of what was written."""
    qmodel = None
    if format != "onnx":
        qmodel = quantize(model.architecture, model.module, model.calibration)
        if model.int8_test_accuracy is None and model.measure_int8 is not None:
            model.int8_test_accuracy = model.measure_int8(qmodel)
    if format == "c":
        result = write_c_library(model, qmodel, path, execution)
    else:
        data = encode(format, model.architecture, model.module, qmodel)
        write_atomically(path, data)
        tflite = format == "tflite"
        result = ExportResult(str(path), format, len(data), model.source, model.trial,
                              model.test_accuracy, model.int8_test_accuracy,
                              tflm_arena_bytes_or_none(data) if tflite else None, model.random_weights,
                              runtime="tflm" if tflite else None)
    result.searched_runtime = model.searched_runtime
    result.searched_peak_sram_bytes = model.searched_peak_sram_bytes
    return result


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


def write_c_library(model: ModelToExport, qmodel: QuantizedModel, path: Path,
                    execution: ExecutionModel = DEPLOYED) -> ExportResult:
    """Generate the C library of ``qmodel`` and write it as the folder ``path``, atomically."""
    from tinyevo.deploy.codegen.emit import render_c

    generated = render_c(qmodel, **execution.arena_options())
    files = {name: text.encode() for name, text in generated.files.items()}
    write_folder_atomically(path, files)
    meta = generated.metadata
    return ExportResult(str(path), "c", sum(map(len, files.values())), model.source, model.trial,
                        model.test_accuracy, model.int8_test_accuracy, meta.arena_bytes,
                        model.random_weights, meta.flash_bytes, runtime="c")


def encode(format: str, architecture: Architecture, module: torch.nn.Module,
           qmodel: QuantizedModel | None) -> bytes:
    """The bytes of the file in ``format``."""
    if format == "tflite":
        from tinyevo.deploy.tflite_writer import to_tflite
        return to_tflite(qmodel)
    try:
        from tinyevo.deploy import onnx_export
    except ImportError:
        raise TinyevoError("ONNX export needs the onnx package: pip install tinyevo[deploy]") from None
    if format == "onnx":
        from tinyevo.deploy.fold import fold
        module.eval()
        return onnx_export.to_onnx(fold(architecture, module)).SerializeToString()
    return onnx_export.to_onnx_qdq(qmodel).SerializeToString()


def tflm_arena_bytes_or_none(data: bytes) -> int | None:
    """The tensor arena TFLM needs for the model (the smallest it allocates the model in,
    ``tflm_required_arena_bytes``), when the tflite-micro package is installed."""
    if importlib.util.find_spec("tflite_micro") is None:
        return None
    from tinyevo.deploy.runtimes import tflm_required_arena_bytes
    try:
        return tflm_required_arena_bytes(data)
    except Exception:  # noqa: BLE001 -- a figure for the summary; the file is written already
        return None


# --- output file -----------------------------------------------------------------------------------
def check_output_path(out: str | Path) -> Path:
    """``out`` as a Path, after checking (before any work) that a file can be written there."""
    path = Path(out).expanduser()
    folder = path.parent
    if path.is_dir():
        raise TinyevoError(f"cannot write {path}: it is a folder; give a file name inside it")
    if not folder.exists():
        raise TinyevoError(f"cannot write {path}: folder {folder} does not exist; create it first")
    if not folder.is_dir():
        raise TinyevoError(f"cannot write {path}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise TinyevoError(f"cannot write {path}: folder {folder} is not writable")
    return path


def check_output_folder(out: str | Path) -> Path:
    """``out`` as the folder of a C library: new, empty, or a library written before (replaced)."""
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        raise TinyevoError(f"cannot write {path}: it is a file; give --out a folder for the C library")
    if path.is_dir() and any(path.iterdir()) and not (path / "metadata.json").is_file():
        raise TinyevoError(f"cannot write {path}: the folder is not empty and holds no tinyevo C "
                           f"library; give a new folder")
    folder = path.parent
    if not folder.is_dir():
        raise TinyevoError(f"cannot write {path}: folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise TinyevoError(f"cannot write {path}: folder {folder} is not writable")
    return path


def write_folder_atomically(path: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` (name -> bytes) into a temporary folder beside ``path``, then rename it to
    ``path`` (a library already there is replaced only once the new one is complete)."""
    try:
        temporary = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part"))
    except OSError as error:
        raise TinyevoError(f"cannot write {path}: {error.strerror}") from None
    old = None
    try:
        for name, data in files.items():
            (temporary / name).write_bytes(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o777 & ~umask)  # mkdtemp makes it private; give it a normal folder's mode
        if path.exists():
            old = path.parent / f".{path.name}.old.{os.getpid()}"
            os.replace(path, old)
        os.replace(temporary, path)
    except BaseException as error:
        shutil.rmtree(temporary, ignore_errors=True)
        if old is not None and not path.exists():
            with contextlib.suppress(OSError):
                os.replace(old, path)
        if isinstance(error, OSError):
            raise TinyevoError(f"cannot write {path}: {error.strerror or error}") from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``."""
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as error:
        raise TinyevoError(f"cannot write {path}: {error.strerror}") from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp makes it private; give it a normal file's mode
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise TinyevoError(f"cannot write {path}: {error.strerror or error}") from None
        raise


# --- a genome or architecture file -----------------------------------------------------------------
def load_file_model(path: Path, weights: str | Path | None, seed: int,
                    warn: Callable[[str], None]) -> ModelToExport:
    """The network of a genome/architecture file with random (or given) weights and random calibration."""
    from tinyevo.model_file import load_architecture
    from tinyevo.nn import build

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
    return ModelToExport(architecture, module, calibration, str(path), random_weights=weights is None)


def load_weights(module: torch.nn.Module, path: str | Path) -> None:
    """Load a state dict saved as .npz (``tinyevo.pipeline.save_model``) into ``module``."""
    path = Path(path)
    if not path.is_file():
        raise TinyevoError(f"{path}: no such weights file; give the .npz of a trained model")
    try:
        with np.load(path, allow_pickle=False) as archive:
            state = {key: torch.from_numpy(archive[key]) for key in archive.files}
    except (OSError, ValueError) as error:
        raise TinyevoError(f"{path}: not a readable .npz weights file ({error})") from None
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        detail = " ".join(str(error).split())
        raise TinyevoError(f"{path}: weights do not fit the architecture ({detail[:200]})") from None
    module.eval()


# --- a run folder ----------------------------------------------------------------------------------
def load_run_model(run_dir: Path, trial: int | None = None) -> ModelToExport:
    """The best final-trained model of a run (or ``trial``), its weights and its calibration data."""
    from tinyevo.config import SearchConfig
    from tinyevo.model_file import load_architecture
    from tinyevo.nn import build
    from tinyevo.pipeline import STORE_FILE, load_results
    from tinyevo.store import Store

    results = load_results(run_dir)  # one clear line when the folder holds no run
    with Store(run_dir / STORE_FILE) as store:
        config = SearchConfig.from_dict(store.get("search_config") or {})
        final = store.get("final", {}) or {}
        searched = {record.trial.id: record.trial.metrics.get("peak_sram_bytes")
                    for record in store.records()}
    trial_ids = set(searched)
    chosen = trial if trial is not None else best_trained_trial(results, run_dir)
    record = trained_record(run_dir, chosen, final, trial_ids)
    architecture = load_architecture(run_dir / Path(record["weights"]).with_suffix(".json"))
    module = build(architecture)
    load_weights(module, run_dir / record["weights"])
    data = run_dataset(config, run_dir)
    calibration = calibration_inputs(data, architecture, config.seed)

    def measure_int8(qmodel: QuantizedModel) -> float:
        accuracy = int8_accuracy(qmodel, data, architecture, "test")
        remember_int8_accuracy(run_dir, chosen, accuracy)
        return accuracy
    return ModelToExport(architecture, module, calibration, str(run_dir), chosen,
                         record.get("test_accuracy"), record.get("int8_test_accuracy"),
                         measure_int8=measure_int8, searched_runtime=config.runtime,
                         searched_peak_sram_bytes=searched.get(chosen))


def best_trained_trial(results: dict, run_dir: Path) -> int:
    """The best model under the run's constraints among those with kept weights (``best_row``)."""
    from tinyevo.pipeline import best_row

    if not results["front"]:
        raise TinyevoError(f"{run_dir}: no finished trial fits the run's constraints, so there is no "
                           f"model to export; search longer or loosen the constraints")
    trained = [row for row in results["front"] if row.get("weights")]
    if not trained:
        raise TinyevoError(f"{run_dir}: no model has trained weights yet (the final training did not "
                           f"run or failed); rerun the search command to finish it")
    return best_row(trained)["trial"]


def trained_record(run_dir: Path, trial: int, final: dict, trial_ids: set[int]) -> dict:
    """The ``final`` record of ``trial``; one clear line when it has no kept weights."""
    trained = sorted(int(key) for key, value in final.items() if value.get("status") == "ok")
    choices = ", ".join(map(str, trained)) or "none"
    if trial not in trial_ids:
        raise TinyevoError(f"{run_dir}: no trial {trial} in this run; trials with trained models: {choices}")
    record = final.get(str(trial)) or {}
    if record.get("status") != "ok":
        raise TinyevoError(f"{run_dir}: trial {trial} has no trained weights (only the final-trained "
                           f"Pareto-front models keep them); trials with trained models: {choices}")
    return record


def run_dataset(config, run_dir: Path):
    """The dataset of a run, loaded as its final training loaded it."""
    from tinyevo.pipeline import SearchJob

    return SearchJob(config, run_dir, space=None, board=None).estimator(final=True).data()


def remember_int8_accuracy(run_dir: Path, trial: int, accuracy: float) -> None:
    """Store a lazily measured int8 test accuracy in the run's ``final`` record, for ``tinyevo show``."""
    from tinyevo.pipeline import STORE_FILE
    from tinyevo.store import Store

    with Store(run_dir / STORE_FILE) as store:
        final = store.get("final", {}) or {}
        if str(trial) in final:
            final[str(trial)]["int8_test_accuracy"] = accuracy
            store.set("final", final)


# --- data, calibration and int8 accuracy -----------------------------------------------------------
def network_inputs(x: np.ndarray, data, architecture: Architecture) -> np.ndarray:
    """Stored NHWC rows as the float NCHW batch the network reads (scaled, resized like the trainer)."""
    from tinyevo.estimate.training import to_input

    return to_input(torch.from_numpy(np.asarray(x)), data.scale, architecture.input_shape[:2]).numpy()


def calibration_inputs(data, architecture: Architecture, seed: int,
                       rows: int = CALIBRATION_ROWS) -> np.ndarray:
    """A seeded sample of ``rows`` training rows as float NCHW network inputs."""
    total = len(data.y_train)
    chosen = np.sort(np.random.default_rng(seed).permutation(total)[:min(rows, total)])
    return network_inputs(data.x_train[chosen], data, architecture)


def int8_accuracy(qmodel: QuantizedModel, data, architecture: Architecture, part: str = "test") -> float:
    """Accuracy of the int8 model (the reference executor, as TFLM computes) on a split of ``data``."""
    x, y = data.split(part)
    if len(y) == 0:
        raise TinyevoError(f"dataset {data.name!r} has no {part} rows to measure int8 accuracy on")
    correct = 0
    for start in range(0, len(y), INT8_BATCH_ROWS):
        batch = network_inputs(x[start:start + INT8_BATCH_ROWS], data, architecture)
        outputs = run_int8(qmodel, qmodel.input_spec.quantize(batch.transpose(0, 2, 3, 1)))
        predictions = outputs.reshape(len(batch), -1).argmax(axis=1)
        correct += int((predictions == y[start:start + INT8_BATCH_ROWS]).sum())
    return correct / len(y)


def quantize_trained(architecture: Architecture, module: torch.nn.Module, data,
                     seed: int) -> QuantizedModel:
    """The int8 model of a trained network, calibrated as ``tinyevo export`` calibrates it."""
    module = copy.deepcopy(module).cpu().eval()
    return quantize(architecture, module, calibration_inputs(data, architecture, seed))


def int8_record(architecture: Architecture, module: torch.nn.Module, data, seed: int) -> dict:
    """``{"int8_test_accuracy": share}`` for a run's ``final`` record (``{"int8_error": ...}`` if the
    model cannot be quantized)."""
    try:
        qmodel = quantize_trained(architecture, module, data, seed)
        return {"int8_test_accuracy": int8_accuracy(qmodel, data, architecture, "test")}
    except TinyevoError as error:
        return {"int8_error": str(error)}
