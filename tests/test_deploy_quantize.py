"""int8 post-training quantization and the int8 reference executor.

Oracles: the fixed-point definitions worked by hand and exact rational arithmetic; the float
PyTorch model (the int8 network must track it within a few quantization steps when calibrated on
the same inputs). Bit-exactness against TFLM and LiteRT is in test_tflite_export.py.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import torch

from deploy_helpers import HAND_BUILT, float_inputs, random_model
from tinyevo.deploy import QuantizedModel, fold, quantize, run_int8
from tinyevo.deploy.fixed_point import (INT32_MAX, INT32_MIN, activation_range,
                                        multiply_by_quantized_multiplier, quantize_multiplier,
                                        rounding_divide_by_pot, saturating_rounding_doubling_high_mul)
from tinyevo.errors import TinyevoError
from tinyevo.zoo import MODELS

torch.set_num_threads(1)
GRAPHS = {**HAND_BUILT, **MODELS}


# --- fixed-point arithmetic, worked by hand from gemmlowp's and TFLite's definitions ----------------
def test_quantize_multiplier_by_hand():
    assert quantize_multiplier(0.5) == (1 << 30, 0)  # 0.5 = 2**30 / 2**31
    assert quantize_multiplier(1.0) == (1 << 30, 1)  # frexp(1) = 0.5 * 2**1
    assert quantize_multiplier(0.75) == (3 << 29, 0)
    assert quantize_multiplier(0.0) == (0, 0)
    assert quantize_multiplier(2.0 ** -40) == (0, 0)  # below 2**-31 TFLite flushes to zero
    # 1 - 2**-33 rounds up to 2**31, which TFLite folds back to (2**30, shift + 1)
    assert quantize_multiplier(1 - 2.0 ** -33) == (1 << 30, 1)


def test_rounding_divide_by_power_of_two_rounds_half_away_from_zero():
    x = np.array([5, -5, 6, -6, 7, -7, 4, -4])
    assert rounding_divide_by_pot(x, 1).tolist() == [3, -3, 3, -3, 4, -4, 2, -2]
    assert rounding_divide_by_pot(x, 2).tolist() == [1, -1, 2, -2, 2, -2, 1, -1]


def test_saturating_rounding_doubling_high_mul_by_hand():
    half = 1 << 30  # 0.5 in Q31
    assert saturating_rounding_doubling_high_mul(np.array([1 << 30]), half).tolist() == [1 << 29]
    # 2*1*2**30 / 2**32 = 0.5: gemmlowp's nudge rounds it up, and -0.5 towards zero
    assert saturating_rounding_doubling_high_mul(np.array([1, -1]), half).tolist() == [1, 0]
    assert saturating_rounding_doubling_high_mul(np.array([INT32_MIN]), INT32_MIN).tolist() == [INT32_MAX]


def test_multiply_by_quantized_multiplier_against_exact_arithmetic():
    rng = np.random.default_rng(0)
    x = rng.integers(-(1 << 20), 1 << 20, size=2000)
    reals = rng.uniform(1e-4, 0.9, size=2000)
    pairs = [quantize_multiplier(r) for r in reals]
    got = multiply_by_quantized_multiplier(x, [m for m, _ in pairs], [s for _, s in pairs])
    # gemmlowp's two roundings, in exact rationals: the high product rounds half up, then the
    # division by 2**-shift rounds half away from zero
    def two_roundings(v, m, s):
        high = math.floor(Fraction(int(v) * m, 1 << 31) + Fraction(1, 2))
        scaled = Fraction(abs(high), 1 << -s)
        return int(math.copysign(math.floor(scaled + Fraction(1, 2)), high))
    assert got.tolist() == [two_roundings(v, m, s) for v, (m, s) in zip(x, pairs)]
    exact = np.array([round(Fraction(int(v) * m) * Fraction(2) ** (s - 31)) for v, (m, s) in zip(x, pairs)])
    assert np.abs(got - exact).max() <= 1  # two roundings are never off by more than one step


def test_activation_range_by_hand():
    assert activation_range("none", 0.1, -10) == (-128, 127)
    assert activation_range("relu", 0.1, -10) == (-10, 127)
    assert activation_range("relu6", 0.1, -10) == (-10, 50)  # 6 / 0.1 = 60 steps above zero
    assert activation_range("relu6", 0.01, -128) == (-128, 127)  # 6.0 lies beyond the range


# --- the quantized network against the float one --------------------------------------------------
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_int8_reference_tracks_the_float_model(name):
    arch = GRAPHS[name]()
    module = random_model(arch, seed=3)
    x = float_inputs(arch, 24, np.random.default_rng(4))
    qmodel = quantize(arch, module, x)  # calibrated on the very inputs: nothing clips
    out = run_int8(qmodel, qmodel.input_spec.quantize(x.transpose(0, 2, 3, 1)))
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    got = qmodel.output_spec.dequantize(out)
    got = got.reshape(expected.shape) if expected.ndim == 2 else got.transpose(0, 3, 1, 2)
    steps = np.abs(got - expected) / qmodel.output_spec.scale
    assert steps.mean() < 1.0 and steps.max() < 6.0, (steps.mean(), steps.max())


def test_folding_leaves_no_batch_norm_and_fuses_activations():
    graph = fold(MODELS["resnet8"](), random_model(MODELS["resnet8"](), seed=0))
    kinds = [op.kind for op in graph.ops]
    # 9 convs (7 conv-bn + 2 shortcut 1x1), 3 adds (relu fused), global pool, dense: nothing else
    assert kinds.count("conv_2d") == 9 and kinds.count("add") == 3
    assert set(kinds) == {"conv_2d", "add", "average_pool_2d", "fully_connected"}
    assert all(op.activation == "relu" for op in graph.ops if op.kind == "add")


def test_standalone_batch_norm_is_a_pointwise_depthwise_conv():
    graph = fold(HAND_BUILT["every_op"](), random_model(HAND_BUILT["every_op"](), seed=0))
    after_add = graph.producer("relu_3")  # batch_norm(add) then relu: nothing to fold into
    assert after_add.kind == "depthwise_conv_2d" and after_add.attrs["kernel"] == [1, 1]
    assert after_add.activation == "relu"


def test_add_with_more_than_two_inputs_becomes_a_chain_of_adds():
    arch = HAND_BUILT["multi_reader"]()
    _, qmodel = _quantized(arch)
    adds = [op for op in qmodel.ops if op.kind == "add"]
    assert all(len(op.inputs) == 2 for op in adds)
    assert any(op.name == "add_2" and op.inputs[0] == "add_2:partial1" for op in adds)


def test_concat_inputs_share_the_output_quantization():
    arch = HAND_BUILT["multi_reader"]()
    _, qmodel = _quantized(arch)
    concat = next(op for op in qmodel.ops if op.kind == "concatenation")
    out = qmodel.tensors[concat.name]
    for source in concat.inputs:
        spec = qmodel.tensors[source]
        assert (spec.scale, spec.zero_point) == (out.scale, out.zero_point)


@pytest.mark.parametrize("name", sorted(HAND_BUILT))
def test_save_and_load_round_trip(tmp_path, name):
    arch, qmodel = _quantized(HAND_BUILT[name]())
    path = tmp_path / "model.npz"
    qmodel.save(path)
    loaded = QuantizedModel.load(path)  # np.load(allow_pickle=False) inside: no pickle
    x = np.random.default_rng(5).integers(-128, 128, size=(4, *arch.input_shape), dtype=np.int8)
    np.testing.assert_array_equal(run_int8(loaded, x), run_int8(qmodel, x))
    assert loaded.to_json() == qmodel.to_json()


def test_run_int8_rejects_float_inputs_and_wrong_shapes():
    arch, qmodel = _quantized(HAND_BUILT["input_ops"]())
    with pytest.raises(TinyevoError, match="int8"):
        run_int8(qmodel, np.zeros((1, *arch.input_shape), np.float32))
    with pytest.raises(TinyevoError, match="shape"):
        run_int8(qmodel, np.zeros((1, 3, 3, 3), np.int8))


def test_quantize_rejects_unknown_dense_op():
    arch = HAND_BUILT["input_ops"]()
    with pytest.raises(TinyevoError, match="dense_as"):
        quantize(arch, random_model(arch, 0), float_inputs(arch, 2, np.random.default_rng(0)),
                 dense_as="matmul")


def _quantized(arch):
    module = random_model(arch, seed=1)
    return arch, quantize(arch, module, float_inputs(arch, 8, np.random.default_rng(2)))
