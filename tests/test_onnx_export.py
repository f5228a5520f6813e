"""ONNX export, run in onnxruntime.

Oracles: the PyTorch module (the float model, batch norm folded, must match it within 1e-5) and
the int8 reference executor (the QDQ model must stay within a few quantization steps of it:
onnxruntime requantizes in float, rounding half to even, and adds in float, where TFLM uses
fixed-point multipliers with two roundings, so single steps differ and later layers can grow them).
"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from deploy_helpers import HAND_BUILT, float_inputs, int8_inputs, quantized_model, random_model
from test_tflite_export import SMALL_SPACES
from tinyevo.deploy import fold, run_int8
from tinyevo.deploy.onnx_export import export_onnx, to_onnx, to_onnx_qdq
from tinyevo.deploy.runtimes import onnxruntime_session
from tinyevo.spaces import create_space
from tinyevo.zoo import MODELS

torch.set_num_threads(1)
GRAPHS = {**HAND_BUILT, **MODELS}
SPACE_SAMPLES = [(space, seed) for space in sorted(SMALL_SPACES) for seed in range(5)]


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    """onnxruntime as tinyevo documents running its models: exact int8 kernels on every x86 CPU."""
    return onnxruntime_session(model, threads=1)


def space_sample(space_name: str, seed: int):
    space = create_space(space_name, **SMALL_SPACES[space_name])
    return space.decode(space.sample(np.random.default_rng(seed)))


def assert_float_onnx_matches_pytorch(arch, seed: int):
    module = random_model(arch, seed)
    x = float_inputs(arch, 8, np.random.default_rng(seed))
    got = session(to_onnx(fold(arch, module))).run(None, {"input": x})[0]
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_float_onnx_matches_pytorch(name):
    assert_float_onnx_matches_pytorch(GRAPHS[name](), seed=11)


@pytest.mark.parametrize("space_name,seed", SPACE_SAMPLES)
def test_float_onnx_of_space_samples_matches_pytorch(space_name, seed):
    assert_float_onnx_matches_pytorch(space_sample(space_name, seed), seed)


def qdq_steps(arch, seed: int) -> np.ndarray:
    """|QDQ output - int8 reference output| in quantization steps, over 50 inputs."""
    _, qmodel, rng = quantized_model(arch, seed)
    x = int8_inputs(qmodel, arch, 50, rng)
    got = session(to_onnx_qdq(qmodel)).run(None, {"input": x})[0]
    expected = run_int8(qmodel, x)
    assert got.dtype == np.int8 and got.shape == expected.shape  # int8 NHWC, like the .tflite
    return np.abs(got.astype(int) - expected.astype(int))


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_qdq_onnx_runs_close_to_the_int8_reference(name):
    steps = qdq_steps(GRAPHS[name](), seed=0)
    assert steps.max() <= 3 and steps.mean() <= 0.5, (steps.max(), steps.mean())


@pytest.mark.parametrize("space_name", sorted(SMALL_SPACES))
def test_qdq_onnx_of_space_samples_runs(space_name):
    steps = qdq_steps(space_sample(space_name, 0), seed=0)
    assert steps.mean() <= 1.0, steps.mean()


def test_qdq_weights_are_int8_initializers():
    _, qmodel, _ = quantized_model(MODELS["ds_cnn"](), 0)
    model = to_onnx_qdq(qmodel)
    weights = [t for t in model.graph.initializer if t.name.endswith("/weights_q")]
    assert len(weights) == sum(op.weights is not None for op in qmodel.ops)
    assert all(t.data_type == onnx.TensorProto.INT8 for t in weights)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT8


def test_export_onnx_writes_a_checked_model(tmp_path):
    arch = HAND_BUILT["every_op"]()
    path = tmp_path / "model.onnx"
    export_onnx(arch, random_model(arch, 0), path)
    onnx.checker.check_model(onnx.load(str(path)))
