"""The ``kws`` (DS-CNN family) and ``tcn`` (temporal convolutional networks) spaces beyond the
contract of tests/test_spaces.py.

Oracles: MLPerf Tiny's DS-CNN as published (github.com/mlcommons/tiny, ``keyword_spotting/
keras_model.py``: conv 10x4 stride 2x2 to 64 channels, four depthwise-separable blocks of 64
channels with 3x3 depthwise kernels, average pooling, dense; 49x10 MFCC input, 12 classes) and its
IR in examples/ds_cnn.json; parameters, MACs, bytes and receptive fields worked out by hand in the
docstrings; PyTorch (parameter counts, and which input steps reach an output step).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tinyevo.arch import Architecture
from tinyevo.data.base import DATASETS
from tinyevo.errors import TinyevoError
from tinyevo.hardware import estimate_cost
from tinyevo.model_file import load_architecture
from tinyevo.nn import build
from tinyevo.spaces import create_space

torch.set_num_threads(1)
DS_CNN = "c64_k10x4_s2x2-ds64_k3-ds64_k3-ds64_k3-ds64_k3"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def trainable_in_torch(arch) -> int:
    return sum(p.numel() for p in build(arch).parameters())


# --- kws -----------------------------------------------------------------------------------------
def test_mlperf_tiny_ds_cnn_is_a_kws_genome():
    """MLPerf Tiny's DS-CNN on 49x10x1 MFCCs, 12 classes. 'same' padding, stride 2x2: 25x5 maps.
      conv 10x4, 1 -> 64: 40*64 = 2,560 weights (+ BN 2*64 = 128); MACs 25*5*64*40 = 320,000.
      each DS block: depthwise 3x3 on 64: 576 (+ BN 128), pointwise 64*64 = 4,096 (+ BN 128);
        MACs 125*64*9 = 72,000 + 125*64*64 = 512,000 = 584,000; four blocks: 2,336,000.
      dense 64*12 + 12 = 780; MACs 768.
    Trainable (BN gamma and beta, no conv bias): 2,688 + 4*4,928 + 780 = 23,180 (Keras reports
    23,756 for the reference: one bias more per conv, 64 + 4*128 = 576, that BN makes redundant).
    Deployed (BN folded: one bias per conv): 2,624 + 4*(640 + 4,160) + 780 = 22,604.
    MACs: 320,000 + 2,336,000 + 768 = 2,656,768 (Hello Edge's DS-CNN-S: 5.4M ops, two per MAC).
    Peak SRAM layer by layer: a depthwise conv reads and writes 25*5*64 = 8,000 B: 16,000 B."""
    space = create_space("kws")  # defaults: 49x10x1, 12 classes
    genome = space.parse(DS_CNN)
    assert space.describe(genome) == DS_CNN
    arch = space.decode(genome)
    assert arch.trainable_params() == trainable_in_torch(arch) == 23_180
    cost = estimate_cost(arch)
    assert (cost.params, cost.macs, cost.peak_sram_bytes) == (22_604, 2_656_768, 16_000)
    reference = load_architecture(EXAMPLES / "ds_cnn.json")
    assert space.key(genome) == reference.fingerprint()  # the same graph, node for node
    assert estimate_cost(reference).to_dict() == cost.to_dict()


def test_kws_blocks_by_hand():
    """``c16_k5x3_s2x1-ds32_k5-ds8_k3`` on 49x10x1, 12 classes; stride 2x1: 25x10 maps (250 px).
      conv 5x3, 1 -> 16: 240 + BN 32 = 272; MACs 250*16*15 = 60,000.
      block 1: depthwise 5x5 on 16: 400 + BN 32, pointwise 16*32 = 512 + BN 64: 1,008;
        MACs 250*16*25 = 100,000 + 250*32*16 = 128,000.
      block 2: depthwise 3x3 on 32: 288 + BN 64, pointwise 32*8 = 256 + BN 16: 624;
        MACs 250*32*9 = 72,000 + 250*8*32 = 64,000.
      dense 8*12 + 12 = 108; MACs 96.
    Total 2,012 parameters, 424,096 MACs."""
    space = create_space("kws")
    arch = space.decode(space.parse("c16_k5x3_s2x1-ds32_k5-ds8_k3"))
    assert arch.trainable_params() == trainable_in_torch(arch) == 2_012
    assert estimate_cost(arch).macs == 424_096
    assert arch.shapes[arch.nodes[0].name] == (25, 10, 16)


def test_kws_inactive_slots_do_not_change_the_network():
    space = create_space("kws")
    genome = space.parse(DS_CNN)
    other = json.loads(json.dumps(genome))
    other["channels"][4], other["kernel"][4] = 32, 5  # slot 5 of 5 is off (4 blocks)
    assert space.key(other) == space.key(genome) and space.describe(other) == DS_CNN
    other["blocks"] = 5
    assert space.key(other) != space.key(genome) and space.describe(other) == DS_CNN + "-ds32_k5"


def test_kws_options_and_strings_are_checked_in_one_line():
    for options in (dict(stem_kernels=[[10, 4, 1]]), dict(channels=[]), dict(blocks=[-1]),
                    dict(stem_strides="2x2")):
        with pytest.raises(TinyevoError) as error:
            create_space("kws", **options)
        assert "\n" not in str(error.value) and "kws option" in str(error.value)
    space = create_space("kws")
    for bad in ("c64_k10x4-ds64_k3", "c64_k10x4_s2x2-ds64", "c64_k7x7_s2x2", DS_CNN + "-ds64_k3" * 2):
        assert not space.is_valid(bad)
        with pytest.raises(TinyevoError):
            space.parse(bad)


def test_kws_space_takes_the_input_and_classes_it_is_given():
    """FSDD digits, say: 10 classes over 32 frames of 13 MFCCs."""
    space = create_space("kws", input_shape=(32, 13, 1), num_classes=10)
    arch = space.decode(space.parse(DS_CNN))
    assert arch.input_shape == (32, 13, 1) and arch.output_shape == (1, 1, 10)
    assert arch.shapes[arch.nodes[0].name] == (16, 7, 64)  # ceil(32 / 2), ceil(13 / 2)


# --- tcn -----------------------------------------------------------------------------------------
TCN = "k3d1c16r-k3d2c16r-k5d4c32r"


def test_tcn_blocks_by_hand():
    """``k3d1c16r-k3d2c16r-k5d4c32r`` on MNIST-1D's (1, 40, 1), 10 classes, no pooling: 40 steps.
      block 1 (1 -> 16, residual through a 1x1 conv with bias): conv 3*1*16 = 48 + BN 32,
        conv 3*16*16 = 768 + BN 32, shortcut 16 + 16 = 32: 912; MACs 40*16*3 = 1,920 +
        40*16*48 = 30,720 + 40*16 = 640 = 33,280.
      block 2 (16 -> 16, identity shortcut): 2*(768 + 32) = 1,600; MACs 2*30,720 = 61,440.
      block 3 (16 -> 32, 1x1 shortcut): conv 5*16*32 = 2,560 + BN 64, conv 5*32*32 = 5,120 + BN 64,
        shortcut 16*32 + 32 = 544: 8,352; MACs 40*32*80 = 102,400 + 40*32*160 = 204,800 +
        40*32*16 = 20,480 = 327,680.
      dense 32*10 + 10 = 330; MACs 320.
    Trainable: 912 + 1,600 + 8,352 + 330 = 11,194; deployed (each BN folded into a bias of half
    its size): 11,194 - 128 = 11,066. MACs: 422,720. Receptive field: each block adds
    2 (k - 1) d: 1 + 4 + 8 + 32 = 45 steps. Peak SRAM layer by layer (no in-place kernels): block
    3's add holds its two inputs and its output, 3 * 40 * 32 = 3,840 B."""
    space = create_space("tcn")
    genome = space.parse(TCN)
    assert space.describe(genome) == TCN
    arch = space.decode(genome)
    assert arch.trainable_params() == trainable_in_torch(arch) == 11_194
    cost = estimate_cost(arch)
    assert (cost.params, cost.macs, cost.peak_sram_bytes) == (11_066, 422_720, 3_840)
    assert space.receptive_field(genome) == 45


def reaching_steps(arch: Architecture) -> tuple[int, int]:
    """(span, count) of the input steps that change the middle step of the last block's output
    (PyTorch): every conv weight positive, identity batch norms, an all-ones input, so every op is
    increasing and a step reaches the output exactly when some path of taps joins them."""
    features = next(n for n in arch.nodes if n.op == "global_avg_pool").inputs[0]
    module = build(Architecture(arch.input_shape, arch.nodes, output=features)).double().eval()
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if parameter.dim() == 4:
                parameter.fill_(0.1)
        _, length, channels = arch.input_shape
        x = torch.ones(length + 1, channels, 1, length, dtype=torch.float64)
        for step in range(length):
            x[step + 1, :, 0, step] += 1.0  # row t + 1 of the batch: step t raised
        out = module(x)
        middle = out.shape[3] // 2
        changed = (out[1:, :, 0, middle] != out[0, :, 0, middle]).any(dim=1)
    steps = torch.nonzero(changed).flatten()
    return int(steps[-1] - steps[0]) + 1, len(steps)


@pytest.mark.parametrize("genome, field, reached", [
    (TCN, 45, 45),
    # 1 + 2*2*1 = 5, + (2 - 1)*1 for the pooling = 6, jump 2; + 2*(3 - 1)*2*2 = 16: 22. A pooled
    # step sees 6 input steps, block 2's taps are 2 pooled = 4 input steps apart: no holes.
    ("k3d1c8p2-k3d2c8", 22, 22),
    # 1 + 2*4*1 = 9, pool 3: + 2 = 11, jump 3; + 2*2*4*3 = 48: 59. Block 2's five taps are 4 pooled
    # = 12 input steps apart and each sees 11: one step missed between taps, 59 - 4 = 55 reached
    # (the gridding of dilations wider than what a tap sees).
    ("k5d1c8rp3-k3d4c8r", 59, 55),
])
def test_tcn_receptive_field_by_hand_and_in_pytorch(genome, field, reached):
    space = create_space("tcn", input_shape=(1, 192, 2), pools=(1, 2, 3))
    assert space.receptive_field(space.parse(genome)) == field
    assert reaching_steps(space.decode(space.parse(genome))) == (field, reached)


def test_tcn_pooling_a_sequence_shorter_than_its_window_changes_nothing():
    space = create_space("tcn", input_shape=(1, 2, 1), channels=(4,))
    pooled, plain = space.parse("k3d1c4p2-k3d1c4p2"), space.parse("k3d1c4p2-k3d1c4")
    assert space.key(pooled) == space.key(plain)  # the second pooling meets a sequence of 1
    assert [n.op for n in space.decode(pooled).nodes].count("max_pool") == 1
    assert space.receptive_field(pooled) == space.receptive_field(plain) == 1 + 4 + 1 + 4 * 2


def test_tcn_refuses_two_dimensional_inputs_and_bad_options_in_one_line():
    with pytest.raises(TinyevoError, match=r"tcn convolves 1-D sequences.*\(1, length, features\)"):
        create_space("tcn", input_shape=(49, 10, 1))
    for options in (dict(residual=[0, 1]), dict(dilations=[0, 1]), dict(kernels=[3, 3])):
        with pytest.raises(TinyevoError) as error:
            create_space("tcn", **options)
        assert "\n" not in str(error.value)
    space = create_space("tcn")
    for bad in ("k3d1", "k3d16c8", "k3d1c8x", "-".join(["k3d1c8"] * 7)):
        with pytest.raises(TinyevoError):
            space.parse(bad)
    genome = space.parse(TCN)
    genome["residual"][0] = 1  # 1 is not True
    assert not space.is_valid(genome)


def test_tcn_runs_on_mnist1d():
    data = DATASETS.create("mnist1d")
    space = create_space("tcn", input_shape=data.input_shape, num_classes=data.num_classes)
    arch = space.decode(space.sample(np.random.default_rng(0)))
    signals = torch.as_tensor(data.x_train[:8] * data.scale, dtype=torch.float32).permute(0, 3, 1, 2)
    with torch.no_grad():
        assert tuple(build(arch).eval()(signals).shape) == (8, 10)


def test_describe_and_parse_round_trip():
    for name in ("kws", "tcn"):
        space, rng = create_space(name), np.random.default_rng(5)
        for _ in range(100):
            genome = space.sample(rng)
            again = space.parse(space.describe(genome))
            assert space.key(again) == space.key(genome) and space.describe(again) == space.describe(genome)
