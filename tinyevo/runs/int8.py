"""The int8 model of a run's trained network and its accuracy on the run's data.

Calibration is a seeded sample of the training split, resized to the model's input as the trainer
does, so the int8 model ``tinyevo export`` writes is the one whose ``int8_test_accuracy`` (from the
int8 reference executor, as TFLM computes) the run's final record holds.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from tinyevo.arch import Architecture
from tinyevo.deploy.int8_reference import run_int8
from tinyevo.deploy.quantize import quantize
from tinyevo.deploy.quantized_model import QuantizedModel
from tinyevo.errors import TinyevoError
from tinyevo.estimate.training import to_input

CALIBRATION_ROWS = 256  # training rows the int8 ranges are calibrated on
INT8_BATCH_ROWS = 64  # test rows per call of the int8 reference executor (bounds its memory)


def network_inputs(x: np.ndarray, data, architecture: Architecture) -> np.ndarray:
    """Stored NHWC rows as the float NCHW batch the network reads (scaled, resized like the trainer)."""
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
