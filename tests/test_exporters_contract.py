"""Every registered exporter (``tinyevo.deploy.exporters.EXPORTERS``) writes a model that its format's
reference runtime runs as the model computes.

Oracles: the int8 formats against the int8 reference executor (``run_int8``, bit-exact with TFLM):
the .tflite in the TFLite Micro interpreter and the C library compiled for this machine, both
bit-exact; the QDQ .onnx in onnxruntime (with ``session.x64quantprecision=1``), within the steps
``test_onnx_export`` allows (onnxruntime requantizes in float, TFLM in fixed point). The float .onnx
against the PyTorch module in onnxruntime, within 1e-5. Registering an exporter without an entry
in ``REFERENCE_RUNTIMES`` fails ``test_every_exporter_has_a_reference_runtime``.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from deploy_helpers import every_op_graph, float_inputs, int8_inputs, quantized_model
from tinyevo.deploy import run_int8
from tinyevo.deploy.codegen.host import build_host, run_host
from tinyevo.deploy.exporters import EXPORTERS, Network, create_exporter
from tinyevo.deploy.runtimes import run_onnxruntime, run_tflm
from tinyevo.spaces import create_space

torch.set_num_threads(1)
ROWS = 8


def chain_sample():
    space = create_space("chain", input_shape=(12, 12, 1), filters=(4, 8), kernels=(1, 3), units=(8,))
    return space.decode(space.sample(np.random.default_rng(5)))


MODELS = {"every_op": every_op_graph, "chain": chain_sample}


def check_tflite(path: Path, case: dict) -> None:
    got = run_tflm(path.read_bytes(), case["x_int8"])
    np.testing.assert_array_equal(got, run_int8(case["qmodel"], case["x_int8"]))


def check_onnx(path: Path, case: dict) -> None:
    got = run_onnxruntime(path, case["x_float"], threads=1)
    with torch.no_grad():
        expected = case["module"](torch.from_numpy(case["x_float"])).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


def check_onnx_qdq(path: Path, case: dict) -> None:
    got = run_onnxruntime(path, case["x_int8"], threads=1)
    expected = run_int8(case["qmodel"], case["x_int8"])
    assert got.dtype == np.int8 and got.shape == expected.shape
    steps = np.abs(got.astype(int) - expected.astype(int))
    assert steps.max() <= 3 and steps.mean() <= 0.5, (steps.max(), steps.mean())


def check_c(path: Path, case: dict) -> None:
    if shutil.which(os.environ.get("CC", "gcc")) is None:
        pytest.skip("no host C compiler (gcc) found")
    got = run_host(build_host(path), case["x_int8"])
    expected = run_int8(case["qmodel"], case["x_int8"])
    np.testing.assert_array_equal(got.reshape(expected.shape), expected)


#: format -> the check that runs a written model in the format's reference runtime.
REFERENCE_RUNTIMES = {"tflite": check_tflite, "onnx": check_onnx, "onnx-qdq": check_onnx_qdq,
                      "c": check_c}


def test_every_exporter_has_a_reference_runtime():
    assert set(EXPORTERS.names()) == set(REFERENCE_RUNTIMES), \
        "give each registered exporter the runtime that checks its files in REFERENCE_RUNTIMES"


@pytest.fixture(scope="module", params=sorted(MODELS))
def case(request) -> dict:
    arch = MODELS[request.param]()
    module, qmodel, rng = quantized_model(arch, seed=3)
    return {"arch": arch, "module": module, "qmodel": qmodel,
            "x_int8": int8_inputs(qmodel, arch, ROWS, rng), "x_float": float_inputs(arch, ROWS, rng)}


def written_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir()) if path.is_dir() else path.stat().st_size


@pytest.mark.parametrize("name", EXPORTERS.names())
def test_written_model_runs_in_its_reference_runtime(name, case, tmp_path):
    exporter = create_exporter(name)
    path = exporter.check_out(tmp_path / "model")
    network = Network(case["arch"], case["module"], case["qmodel"] if exporter.int8 else None)
    written = exporter.export(network, path)
    assert written.size_bytes == written_bytes(path)
    REFERENCE_RUNTIMES[name](path, case)
