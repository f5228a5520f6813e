"""The ``densenet`` space (DenseNet-BC with searched dense blocks) beyond the contract of
tests/test_spaces.py.

Oracles: DenseNet-BC's published parameter count (Huang et al. 2017, Table 2), counts of
parameters and MACs worked out by hand layer by layer (docstrings), and PyTorch's parameter count.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deploy_helpers import quantized_model, random_model
from tinyevo.cli import main
from tinyevo.deploy.codegen.planner import plan_memory
from tinyevo.deploy.fold import fold
from tinyevo.errors import TinyevoError
from tinyevo.hardware import estimate_cost
from tinyevo.hardware.arena import peak_sram_bytes
from tinyevo.nn import build
from tinyevo.strategies import create_strategy
from tinyevo.spaces import create_space

torch.set_num_threads(1)
SMALL = dict(input_shape=(8, 8, 3), blocks=2, layers=(1, 2), growth=(2, 4), bottleneck=(1, 2),
             kernels=(3, 5))


def ops_of(arch) -> list[str]:
    return [node.op for node in arch.nodes]


# --- figures by hand and published ---------------------------------------------------------------
def test_densenet_bc_100_k12_is_the_published_network():
    """DenseNet-BC (L=100, k=12) on CIFAR-10, 32x32x3: Huang et al. 2017, Table 2, 0.8M parameters.
    L = 100 is 3 blocks of (100 - 4) / 6 = 16 layers; bottleneck 4k = 48; 3x3 convs; stem 2k = 24.
    Convs have no bias; a batch norm has 2 parameters per channel (gamma, beta).

    A layer with c input channels: BN 2c, 1x1 conv c*48, BN 96, 3x3 conv 9*48*12 = 5,184:
    50c + 5,280 params; MACs per pixel 48c + 5,184.
      stem 3*3*3*24 = 648 params; 1,024 px * 24 * 27 = 663,552 MACs.
      block 1 (32x32), c = 24 + 12i, i = 0..15, sum c = 384 + 12*120 = 1,824:
        50*1,824 + 16*5,280 = 175,680 params; 1,024 * (48*1,824 + 16*5,184) = 174,587,904 MACs.
      channels 24 + 16*12 = 216; transition: BN 432 + conv 216*108 = 23,328: 23,760 params;
        1,024 * 23,328 = 23,887,872 MACs; pool to 16x16.
      block 2, c = 108 + 12i, sum c = 3,168: 158,400 + 84,480 = 242,880 params;
        256 * (152,064 + 82,944) = 60,162,048 MACs.
      channels 300; transition: BN 600 + conv 300*150 = 45,000: 45,600 params;
        256 * 45,000 = 11,520,000 MACs; pool to 8x8.
      block 3, c = 150 + 12i, sum c = 3,840: 192,000 + 84,480 = 276,480 params;
        64 * (184,320 + 82,944) = 17,104,896 MACs.
      channels 342; final BN 684; dense 342*10 + 10 = 3,430 params, 3,420 MACs.
    Total: 769,162 params (the paper's 0.8M, to its one decimal: |769,162 - 800,000| < 50,000);
    287,929,692 MACs."""
    space = create_space("densenet", layers=(16,), growth=(12,), bottleneck=(4,), kernels=(3,))
    arch = space.decode(space.parse("L16_g12_b4_k3-L16_g12_b4_k3-L16_g12_b4_k3"))
    params = arch.trainable_params()
    assert params == 769_162 and abs(params - 0.8e6) < 0.05e6
    assert estimate_cost(arch).macs == 287_929_692
    assert ops_of(arch).count("conv2d") == 1 + 3 * 16 * 2 + 2 and ops_of(arch).count("concat") == 48
    assert sum(p.numel() for p in build(arch).parameters()) == 769_162


def test_two_blocks_by_hand():
    """Input 8x8x3, ``L2_g4_b2_k3-L1_g2_b1_k5``, 10 classes; convs without bias, BN 2 per channel.
      stem 3x3 conv 3 -> 2*4 = 8: 216 params; 64 px * 8 * 27 = 13,824 MACs.
      block 1 (8x8, growth 4, bottleneck 2*4 = 8, 3x3):
        layer 1, c = 8: BN 16 + 1x1 8*8 = 64 + BN 16 + 3x3 9*8*4 = 288: 384 params;
          MACs 64 * 8 * 8 = 4,096 + 64 * 4 * 72 = 18,432: 22,528. Concat: 12 channels.
        layer 2, c = 12: BN 24 + 1x1 12*8 = 96 + BN 16 + 288: 424 params;
          MACs 64 * 8 * 12 = 6,144 + 18,432: 24,576. Concat: 16 channels.
      transition: BN 32 + 1x1 16 -> 8 = 128: 160 params; 64 * 8 * 16 = 8,192 MACs; pool to 4x4.
      block 2 (4x4, growth 2, bottleneck 1*2 = 2, 5x5):
        layer 1, c = 8: BN 16 + 1x1 8*2 = 16 + BN 4 + 5x5 25*2*2 = 100: 136 params;
          MACs 16 * 2 * 8 = 256 + 16 * 2 * 50 = 1,600: 1,856. Concat: 10 channels.
      final BN 20; dense 10*10 + 10 = 110 params, 100 MACs.
    Total: 216 + 384 + 424 + 160 + 136 + 20 + 110 = 1,450 params;
    13,824 + 22,528 + 24,576 + 8,192 + 1,856 + 100 = 71,076 MACs."""
    space = create_space("densenet", **SMALL)
    arch = space.decode(space.parse("L2_g4_b2_k3-L1_g2_b1_k5"))
    assert arch.trainable_params() == 1_450
    assert estimate_cost(arch).macs == 71_076
    assert sum(p.numel() for p in build(arch).parameters()) == 1_450
    ops = ops_of(arch)
    assert (ops.count("conv2d"), ops.count("batch_norm"), ops.count("concat"), ops.count("avg_pool")) == (8, 8, 3, 1)
    assert arch.shapes[arch.nodes[-3].name] == (4, 4, 10)  # the last block's map, before the pooling


def test_pre_activation_batch_norms_deploy_as_depthwise_convs_with_the_relu_fused():
    """``L2_g4_b2_k3-L1_g2_b1_k5``: the BN after each bottleneck conv folds into it; the BN of each
    layer and of the transition and the final BN read a concat (or the stem, which the first
    concat reads too), so they cannot: 3 + 1 + 1 = 5 become 1x1 depthwise convs with relu fused,
    and the folded graph keeps every conv (8) and concat (3)."""
    space = create_space("densenet", **SMALL)
    arch = space.decode(space.parse("L2_g4_b2_k3-L1_g2_b1_k5"))
    graph = fold(arch, random_model(arch, seed=0))
    kinds = [op.kind for op in graph.ops]
    scales = [op for op in graph.ops if op.kind == "depthwise_conv_2d"]
    assert len(scales) == 5 and all(op.attrs["kernel"] == [1, 1] and op.activation == "relu" for op in scales)
    assert kinds.count("conv_2d") == 8 and kinds.count("concatenation") == 3
    # the 3 bottleneck convs absorb their BN and relu; the stem, the 3 growth convs (read by a
    # concat) and the transition conv (read by the pooling) keep a linear output
    convs = [op for op in graph.ops if op.kind == "conv_2d"]
    assert sorted(op.activation for op in convs) == ["none"] * 5 + ["relu"] * 3
    assert all(graph.shapes[op.name][2] in (8, 2) for op in convs if op.activation == "relu")


def test_concat_inputs_stay_live_until_the_concat_by_hand():
    """``L2_g4_b2_k3-L1_g2_b1_k5`` on 8x8x3 (64 pixels, int8: 64 B per channel), layer by layer.
    Block 1's running map x is read by each layer's BN and by the layer's concat, so it stays live
    through the whole layer. Layer 2 (x: 12 channels, 768 B): BN-relu of x, 768 B (x is still
    needed, so not over x), then the 1x1 bottleneck to 8 channels (512 B): x + BN + bottleneck =
    2,048 B; the 3x3 conv to 4 channels: x + bottleneck + y = 1,536 B; the concat to 16 channels:
    x + y + out = 768 + 256 + 1,024 = 2,048 B. Layer 1 (x: the stem's 8 channels) peaks at
    1,536 B, the transition (16 -> 8 channels) at 1,024 + 512, block 2 (4x4) lower. Peak: 2,048 B,
    with and without in-place kernels (no kernel may write over x, which the concat reads later),
    for the search and for the C generator's plan of the int8 graph."""
    space = create_space("densenet", **SMALL)
    arch = space.decode(space.parse("L2_g4_b2_k3-L1_g2_b1_k5"))
    _, qmodel, _ = quantized_model(arch, 0, calibration_count=2)
    for in_place in (True, False):
        assert peak_sram_bytes(arch, in_place_kernels=in_place, execution="layer_by_layer") == 2_048
        assert plan_memory(qmodel, in_place_kernels=in_place, execution="layer_by_layer").arena_bytes == 2_048


# --- readable strings, options, bad input --------------------------------------------------------
def test_describe_and_parse_round_trip():
    space = create_space("densenet")
    rng = np.random.default_rng(5)
    for _ in range(100):
        genome = space.sample(rng)
        text = space.describe(genome)
        assert space.parse(text) == genome and text == "-".join(genome)
    assert space.describe(["L6_g12_b4_k3", "L1_g4_b1_k5", "L2_g8_b2_k3"]) == "L6_g12_b4_k3-L1_g4_b1_k5-L2_g8_b2_k3"
    assert space.smallest() == [["L1_g4_b1_k3"] * 3]


@pytest.mark.parametrize("bad, message", [
    ("L6_g12_b4_k3-L1_g4_b1_k5", "list of 3 block strings"),
    ("L6_g12_b4_k3-L1_g4_b1_k5-L2_g8_b2", "block 3"), ("L6_g12_b4_k3-L1_g4_b1_k5-L2_g8_b2_k7", "kernel 7"),
    ("L5_g12_b4_k3-L1_g4_b1_k5-L2_g8_b2_k3", "layers 5"), ("l6_g12_b4_k3-L1_g4_b1_k5-L2_g8_b2_k3", "block 1"),
    ("", "list of 3"),
])
def test_bad_genome_strings_are_one_line(bad, message):
    space = create_space("densenet")
    with pytest.raises(TinyevoError, match=message) as error:
        space.parse(bad)
    assert "\n" not in str(error.value) and "densenet" in str(error.value)
    assert not space.is_valid(bad.split("-"))


@pytest.mark.parametrize("options, message", [
    (dict(blocks=0), "blocks must be a positive int"), (dict(blocks=True), "blocks must be"),
    (dict(layers=(0, 2)), "layers must be a list of distinct positive ints"),
    (dict(growth=(4, 4)), "growth must be"), (dict(kernels="3"), "kernels must be"),
    (dict(input_shape=(6, 6, 3), blocks=4), "at least 8 pixels"),
])
def test_bad_options_are_one_line(options, message):
    with pytest.raises(TinyevoError, match=message) as error:
        create_space("densenet", **options)
    assert "\n" not in str(error.value)


def test_only_the_four_genes_per_block_are_searched():
    space = create_space("densenet", blocks=2, layers=(1, 3), growth=(4,), bottleneck=(2, 4), kernels=3)
    assert [name for name, _ in space.dimensions()] == [
        "block1_layers", "block1_growth", "block1_bottleneck", "block1_kernel",
        "block2_layers", "block2_growth", "block2_bottleneck", "block2_kernel"]
    assert space.options()["kernels"] == [3] and space.from_vector([1, 0, 1, 0, 0, 0, 0, 0]) == [
        "L3_g4_b4_k3", "L1_g4_b2_k3"]


# --- variation -----------------------------------------------------------------------------------
def test_mutation_changes_one_gene_and_crossover_takes_genes_from_the_parents():
    space = create_space("densenet")
    rng = np.random.default_rng(3)
    for _ in range(80):
        a, b = space.sample(rng), space.sample(rng)
        child = space.mutate(a, rng)
        assert sum(x != y for x, y in zip(space.to_vector(a), space.to_vector(child))) == 1
        assert space.key(child) != space.key(a)
        mixed = space.to_vector(space.crossover(a, b, rng))
        assert all(m in (x, y) for m, x, y in zip(mixed, space.to_vector(a), space.to_vector(b)))


def test_space_operators_run_in_an_evolution():
    space = create_space("densenet", input_shape=(8, 8, 1), blocks=2)
    strategy = create_strategy("evolution", space, seed=0, population_size=4, crossover_rate=0.5,
                               mutation="space", crossover="space")
    assert all(space.is_valid(c.genome) for c in strategy.ask(4))


# --- the command line ----------------------------------------------------------------------------
def test_a_bad_genome_file_on_the_command_line_is_one_line(tmp_path, capsys):
    (tmp_path / "bad.json").write_text(json.dumps({"space": "densenet",
                                                   "genome": ["L1_g4_b1_k3", "L1_g4_b1_k9", "L1_g4_b1_k3"]}))
    assert main(["cost", str(tmp_path / "bad.json")]) != 0
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1 and "densenet block 2: kernel 9" in error
