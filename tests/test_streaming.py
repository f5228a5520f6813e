"""Streamed execution: a prefix of the graph runs row by row through line buffers (rings).

Oracles: ring sizes and arenas of small graphs worked out by hand from the row schedule (each
docstring walks through it), the int8 reference executor (the generated C must give the same bytes,
under AddressSanitizer and UBSan), and the layer-by-layer schedule (streaming never needs more).
"""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from deploy_helpers import int8_inputs, quantized_model
from tinyevo.arch import INPUT, GraphBuilder
from tinyevo.deploy import run_int8
from tinyevo.hardware.cost_model import search_cost_model
from tinyevo.deploy.codegen.emit import generate_c, render_c
from tinyevo.deploy.codegen.host import build_host, run_host
from tinyevo.deploy.codegen.planner import plan_memory
from tinyevo.errors import TinyevoError
from tinyevo.hardware.arena import peak_sram_bytes
from tinyevo.hardware.arena import plan_arena
from tinyevo.hardware.streaming import candidate_cuts, plan_for_cut
from tinyevo.spaces import create_space
from tinyevo.zoo import MODELS

torch.set_num_threads(1)
needs_cc = pytest.mark.skipif(shutil.which(os.environ.get("CC", "gcc")) is None,
                              reason="no host C compiler (gcc) found")


def residual_block():
    """8x8x2 input -> t0 = 3x3 conv (4 ch) -> m = 3x3 conv -> y = 3x3 conv -> z = t0 + y."""
    g = GraphBuilder((8, 8, 2), name="streamed_residual")
    t0 = g.conv2d(g.input, 4, kernel=3)
    y = g.conv2d(g.conv2d(t0, 4, kernel=3), 4, kernel=3)
    z = g.add(t0, y)
    return g.build(g.dense(g.flatten(g.global_avg_pool(z)), 3)), z


def strided_chain():
    """16x4x1 input -> a = 3x3 conv (2 ch, 16x4) -> p = 2x2 max pool (8x2) -> b = 3x3 conv,
    stride 2 (4x1, SAME: no padding on top)."""
    g = GraphBuilder((16, 4, 1), name="streamed_strided")
    p = g.max_pool(g.conv2d(g.input, 2, kernel=3), kernel=2)
    b = g.conv2d(p, 2, kernel=3, stride=2)
    return g.build(g.dense(g.flatten(b), 3)), b


def flatten_dense():
    """8x8x1 input -> c = 3x3 conv (4 ch) -> flatten (256) -> dense (5 units)."""
    g = GraphBuilder((8, 8, 1), name="streamed_dense")
    return g.build(g.dense(g.flatten(g.conv2d(g.input, 4, kernel=3)), 5))


def test_residual_block_rings_by_hand():
    """For row s of z: t0 must reach row s+2 (m's row s+1 reads it), m row s+1, y row s. The
    sweeps then run t0[s+2], m[s+1], y[s], z[s]. When t0[s+2] is written, t0[s] (z[s] reads it)
    and t0[s+1] are still needed: 3 rows. When m[s+1] is written, y[s] still needs m[s-1]: 3
    rows. y[s] is read by z[s] at once: 1 row. Bytes: input 128 + t0 3x32 + m 3x32 + y 32 + z 256
    (whole: the cut) = 608."""
    arch, z = residual_block()
    t0, m, y = (n.name for n in arch.live_nodes()[:3])
    plan = plan_for_cut(arch, z)
    assert plan.rows == {INPUT: 8, t0: 3, m: 3, y: 1, z: 8}
    assert plan.stream_bytes == 608
    assert plan.peak_bytes == max(608, plan.rest.peak_bytes)


def test_a_producer_runs_only_as_far_ahead_as_its_reader_needs():
    """p[k] reads a[2k], a[2k+1]; b[s] reads p[2s..2s+2]. One row per op per sweep: a[0], a[1],
    p[0], a[2], a[3], p[1], ... so a keeps 2 rows (not the 6 it would need if a ran to a[5]
    before p started); p keeps 3 (p[2s] is read by b[s] after p[2s+2] is written). Bytes:
    input 64 + a 2x8 + p 3x4 + b 4x2 (whole) = 100."""
    arch, b = strided_chain()
    a, p = (n.name for n in arch.live_nodes()[:2])
    plan = plan_for_cut(arch, b)
    assert plan.rows == {INPUT: 16, a: 2, p: 3, b: 4}
    assert plan.stream_bytes == 100


def test_a_dense_layer_takes_its_flattened_input_row_by_row():
    """The dense layer sums each row's share of its dot products: the conv's rows are flattened
    and consumed one at a time (1 row of 32 B), the dense layer holds 5 int32 accumulators and its
    5 outputs. Bytes: input 64 + 32 + 20 + 5 = 121, against 64 + 256 layer by layer."""
    arch = flatten_dense()
    conv, flat, dense = (n.name for n in arch.live_nodes())
    assert dense in candidate_cuts(arch)
    plan = plan_for_cut(arch, dense)
    assert plan.buffer_of[flat] == conv and plan.rows[conv] == 1
    assert plan.stream_bytes == 121
    assert plan_arena(arch, execution="streamed").stream == plan
    assert plan.peak_bytes == 121 == peak_sram_bytes(arch, execution="streamed")
    assert peak_sram_bytes(arch) == 320


def test_streaming_never_needs_more_than_layer_by_layer_and_helps_resnet8():
    arch = MODELS["resnet8"]()
    assert peak_sram_bytes(arch) == 49_152  # three 32x32x16 maps (MLPerf Tiny's ResNet-8)
    streamed = peak_sram_bytes(arch, execution="streamed")
    assert streamed < 49_152 / 2
    for space_name in ("chain", "mbv2", "nb201"):
        space = create_space(space_name)
        for seed in range(5):
            arch = space.decode(space.sample(np.random.default_rng(seed)))
            for in_place in (False, True):
                assert (peak_sram_bytes(arch, in_place_kernels=in_place, execution="streamed")
                        <= peak_sram_bytes(arch, in_place_kernels=in_place))


def test_bad_execution_is_refused():
    arch, _ = residual_block()
    with pytest.raises(TinyevoError, match="execution must be one of"):
        peak_sram_bytes(arch, execution="rowwise")
    _, qmodel, _ = quantized_model(arch, 0, calibration_count=2)
    with pytest.raises(TinyevoError, match="execution must be one of"):
        plan_memory(qmodel, execution="rowwise")


@needs_cc
@pytest.mark.parametrize("case, dense_as", [("residual", None), ("strided", None), ("dense", None),
                                            ("dense", "fully_connected")])
def test_streamed_c_is_bit_exact_under_sanitizers(case, dense_as, tmp_path):
    """The generated C streams (its metadata says which ops), its arena is the planner's and the
    cost model's streamed figure, and its outputs equal the int8 reference executor's."""
    arch = {"residual": lambda: residual_block()[0], "strided": lambda: strided_chain()[0],
            "dense": flatten_dense}[case]()
    options = {"dense_as": dense_as} if dense_as else {}
    _, qmodel, rng = quantized_model(arch, 3, **options)
    x = np.concatenate([int8_inputs(qmodel, arch, 4, rng),
                        np.full((1, *arch.input_shape), -128, np.int8), np.full((1, *arch.input_shape), 127, np.int8)])
    generated = generate_c(qmodel, tmp_path)
    meta = generated.metadata
    assert meta.execution["mode"] == "streamed" and meta.execution["streamed_ops"]
    assert meta.arena_bytes == generated.plan.peak_bytes == peak_sram_bytes(arch, in_place_kernels=True,
                                                                              execution="streamed")
    assert meta.arena_bytes < plan_memory(qmodel, execution="layer_by_layer").arena_bytes
    got = run_host(build_host(tmp_path, sanitize=True), x)
    expected = run_int8(qmodel, x)
    np.testing.assert_array_equal(got.reshape(expected.shape), expected)


def test_deployed_arena_agrees_with_the_searched_streamed_figure():
    """The int8 graph is the searched one with conv + batch norm + activation merged, aliases
    dropped and n-ary adds split, so the arena of its streamed plan is never above the cost
    model's streamed figure for the searched architecture, and equals it on mbv2, dag, blocks, densenet,
    nasnet, kws and tcn networks."""
    settings = {"chain": dict(input_shape=(16, 16, 1), filters=(4, 8, 16), kernels=(1, 3, 5), units=(8, 16)),
                "mbv2": dict(input_shape=(48, 48, 3), resolutions=(32, 48), widths=(0.2, 0.3)),
                "nb201": dict(input_shape=(8, 8, 3), channels=4, cells_per_stage=2),
                "dag": dict(input_shape=(16, 16, 3), nodes=(4, 4), channels=(8, 8)),
                "blocks": dict(input_shape=(16, 16, 3), channels=(4, 8), layers=(2, 3), growth=(4,)),
                "densenet": dict(input_shape=(12, 12, 3), blocks=2, layers=(1, 2, 3), growth=(2, 4),
                             bottleneck=(1, 2), kernels=(3, 5)),
                "nasnet": dict(input_shape=(12, 12, 3), blocks=2, cells_per_stage=1, reductions=1, channels=4),
                "kws": dict(input_shape=(20, 6, 1), stem_kernels=((3, 3), (10, 4)), stem_channels=(4, 8),
                            blocks=(1, 2, 3), channels=(4, 8), kernels=(3, 5)),
                "tcn": dict(input_shape=(1, 40, 1), blocks=(1, 2, 3), kernels=(3, 5), dilations=(1, 2, 4),
                            channels=(4, 8), pools=(1, 2))}
    for space_name, options in settings.items():
        space = create_space(space_name, **options)
        for seed in range(8):
            arch = space.decode(space.sample(np.random.default_rng(seed)))
            _, qmodel, _ = quantized_model(arch, seed, calibration_count=2)
            plan = plan_memory(qmodel)
            searched = peak_sram_bytes(arch, in_place_kernels=True, execution="streamed")
            assert plan.arena_bytes == plan.peak_bytes <= searched, (space_name, seed)
            if space_name in ("mbv2", "dag", "blocks", "densenet", "nasnet", "kws", "tcn"):
                assert plan.arena_bytes == searched, seed


def three_branch_add():
    """16x16x4 input -> three 3x3 convs (4 channels each) -> one add of the three."""
    g = GraphBuilder((16, 16, 4), name="three_branch_add")
    return g.build(g.add(*(g.conv2d(g.input, 4, kernel=3) for _ in range(3))))


def test_streamed_n_ary_add_counts_its_partial_sum_by_hand():
    """The add of issue 13. The int8 graph runs add(a, b, c) as add(add(a, b), c), and streamed
    the partial sum a + b is a tensor of its own with a ring of one row. For each output row the
    sweeps run a, b, c, a + b, then the output, so every ring keeps one 16x4 row (64 B):
    input, whole, 16x16x4 = 1,024 + rings of a, b, c and a + b, 4 x 64 = 256 + the output, whole
    (the cut), 1,024 = 2,304 B -- the arena the C declares and now the search's figure too (it
    counted 2,240, without the partial sum's ring). Layer by layer the search (no in-place kernels)
    counts 4,096 (a, b, a + b and the input, 4 x 1,024) = the plan with its settings; the exported
    layer-by-layer C writes a + b over a and the output over a + b: 3,072."""
    arch = three_branch_add()
    assert search_cost_model("streamed")(arch).peak_sram_bytes == 2304
    assert search_cost_model("layer_by_layer")(arch).peak_sram_bytes == 4096
    _, qmodel, _ = quantized_model(arch, 0, calibration_count=2)
    plan = plan_memory(qmodel)
    ring = {t: plan.rows[t] for t in plan.streamed_ops}
    assert sorted(ring.values()) == [1, 1, 1, 1, 16] and len(plan.streamed_ops) == 5
    assert plan.arena_bytes == plan.peak_bytes == render_c(qmodel).metadata.arena_bytes == 2304
    assert plan_memory(qmodel, in_place_kernels=False, execution="layer_by_layer").arena_bytes == 4096
    assert plan_memory(qmodel, execution="layer_by_layer").arena_bytes == 3072
