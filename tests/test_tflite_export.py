"""The .tflite writer against the interpreters it targets: TFLite Micro and LiteRT.

Oracle: both interpreters must give outputs bit-identical to tinyevo's int8 reference executor
(LiteRT with its reference kernels: its optimized ones round some negative ties differently, see
tinyevo.deploy.runtimes). The flatbuffer is also read back with TFLM's own generated schema code.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from deploy_helpers import HAND_BUILT, int8_inputs, quantized_model
from tinyevo.deploy import run_int8, to_tflite
from tinyevo.deploy.runtimes import run_litert, run_tflm, tflm_arena_bytes
from tinyevo.spaces import SPACES, create_space
from tinyevo.zoo import MODELS

torch.set_num_threads(1)
INPUTS_PER_MODEL = 50
SAMPLES_PER_SPACE = 20
#: Small settings of each space, so that 20 networks x 50 inputs x 2 interpreters stay quick.
SMALL_SPACES = {
    "blocks": dict(input_shape=(12, 12, 3), channels=(4, 8), kernels=(1, 3), layers=(2, 3), growth=(4,)),
    "chain": dict(input_shape=(16, 16, 1), filters=(4, 8, 16), kernels=(1, 3, 5), units=(8, 16)),
    "dag": dict(input_shape=(12, 12, 3), nodes=(4, 4, 3), channels=(4, 8, 8),
                op=("conv3x3", "ds3x3", "conv1x1")),
    "densenet": dict(input_shape=(12, 12, 3), blocks=2, layers=(1, 2, 3), growth=(2, 4),
                     bottleneck=(1, 2), kernels=(3, 5)),
    "kws": dict(input_shape=(20, 6, 1), stem_kernels=((3, 3), (10, 4)), stem_channels=(4, 8),
                blocks=(1, 2, 3), channels=(4, 8), kernels=(3, 5)),
    "mbv2": dict(input_shape=(32, 32, 3), resolutions=(32,), widths=(0.2,), feature_mix_layer=False),
    "nasnet": dict(input_shape=(12, 12, 3), blocks=2, cells_per_stage=1, reductions=1, channels=4),
    "nb201": dict(input_shape=(8, 8, 3), channels=4, cells_per_stage=1),
    "tcn": dict(input_shape=(1, 32, 3), blocks=(1, 2, 3), kernels=(3, 5), dilations=(1, 2, 4),
                channels=(4, 8), pools=(1, 2)),
}


def assert_interpreters_match_reference(arch, seed: int, **quantize_options) -> bytes:
    _, qmodel, rng = quantized_model(arch, seed, **quantize_options)
    x = int8_inputs(qmodel, arch, INPUTS_PER_MODEL, rng)
    expected = run_int8(qmodel, x)
    model = to_tflite(qmodel)
    for run in (run_tflm, run_litert):
        got = run(model, x)
        assert got.dtype == np.int8
        np.testing.assert_array_equal(got.reshape(expected.shape), expected, err_msg=run.__name__)
    return model


@pytest.mark.parametrize("name", sorted(HAND_BUILT))
def test_hand_built_graphs_are_bit_exact(name):
    assert_interpreters_match_reference(HAND_BUILT[name](), seed=7)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_mlperf_tiny_models_are_bit_exact(name):
    assert_interpreters_match_reference(MODELS[name](), seed=0)


def test_fully_connected_option_is_bit_exact_in_tflm():
    """dense as FULLY_CONNECTED: TFLM rounds like the reference; LiteRT's reference kernel
    requantizes in float (google-ai-edge/LiteRT#8567), so it may differ by a step per layer."""
    arch = HAND_BUILT["input_ops"]()
    _, qmodel, rng = quantized_model(arch, 2, dense_as="fully_connected")
    assert sum(op.kind == "fully_connected" for op in qmodel.ops) == 2
    x = int8_inputs(qmodel, arch, INPUTS_PER_MODEL, rng)
    expected = run_int8(qmodel, x)
    model = to_tflite(qmodel)
    np.testing.assert_array_equal(run_tflm(model, x).reshape(expected.shape), expected)
    litert = run_litert(model, x).reshape(expected.shape).astype(int)
    assert np.mean(litert == expected) > 0.9 and np.abs(litert - expected).max() <= 3


def test_registered_spaces_have_small_settings_here():
    assert set(SPACES.names()) <= set(SMALL_SPACES), "add the new space to SMALL_SPACES"


@pytest.mark.parametrize("space_name", sorted(SMALL_SPACES))
def test_space_samples_are_bit_exact(space_name):
    space = create_space(space_name, **SMALL_SPACES[space_name])
    for seed in range(SAMPLES_PER_SPACE):
        arch = space.decode(space.sample(np.random.default_rng(seed)))
        assert_interpreters_match_reference(arch, seed)


def test_flatbuffer_reads_back_with_the_tflite_schema():
    """Google's generated reader (shipped with TFLM) sees the tensors and ops we wrote."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    _, qmodel, _ = quantized_model(HAND_BUILT["every_op"](), 0)
    model = schema.Model.GetRootAsModel(to_tflite(qmodel), 0)
    graph = model.Subgraphs(0)
    assert model.Version() == 3 and graph.OperatorsLength() == len(qmodel.ops)
    codes = [max(model.OperatorCodes(i).BuiltinCode(), model.OperatorCodes(i).DeprecatedBuiltinCode())
             for i in range(model.OperatorCodesLength())]
    ops = [codes[graph.Operators(i).OpcodeIndex()] for i in range(graph.OperatorsLength())]
    builtin = schema.BuiltinOperator
    expected = {"conv_2d": builtin.CONV_2D, "depthwise_conv_2d": builtin.DEPTHWISE_CONV_2D,
                "max_pool_2d": builtin.MAX_POOL_2D, "average_pool_2d": builtin.AVERAGE_POOL_2D,
                "add": builtin.ADD, "concatenation": builtin.CONCATENATION,
                "reshape": builtin.RESHAPE, "quantize": builtin.QUANTIZE}
    assert ops == [expected[op.kind] for op in qmodel.ops]
    source = graph.Tensors(graph.Inputs(0))
    assert source.Type() == schema.TensorType.INT8
    assert source.ShapeAsNumpy().tolist() == [1, 12, 12, 3]
    assert source.Quantization().Scale(0) == np.float32(qmodel.input_spec.scale)
    assert source.Quantization().ZeroPoint(0) == qmodel.input_spec.zero_point
    depthwise = graph.Operators(ops.index(builtin.DEPTHWISE_CONV_2D))
    filters = graph.Tensors(depthwise.Inputs(1))
    assert filters.Quantization().QuantizedDimension() == 3 and filters.Quantization().ScaleLength() == 8


@pytest.mark.parametrize("name", sorted(MODELS))
def test_tflm_arena_holds_every_op_working_set(name):
    """The arena TFLM reports covers the largest int8 input + output set of any op (a lower
    bound any memory plan must meet) and is no more than twice it for these plain chains."""
    _, qmodel, _ = quantized_model(MODELS[name](), 0)
    arena = tflm_arena_bytes(to_tflite(qmodel))
    working_sets = [sum(int(np.prod(qmodel.tensors[t].shape)) for t in {*op.inputs, op.name})
                    for op in qmodel.ops]
    assert max(working_sets) <= arena <= 2 * max(working_sets)
    print(f"{name}: TFLM arena {arena} bytes")
