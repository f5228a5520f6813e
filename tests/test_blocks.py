"""The ``blocks`` space (CNN-GA's block sequences) beyond the contract of tests/test_spaces.py.

Oracles: parameter counts and MACs worked out by hand (docstrings), PyTorch's parameter count and
output shape, and the paper's operators stated in the tests (which units a child may hold).
"""
from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch

from tinyevo.cli import main
from tinyevo.errors import TinyevoError
from tinyevo.hardware import estimate_cost
from tinyevo.nn import build
from tinyevo.spaces import create_space

torch.set_num_threads(1)


def ops_of(arch) -> list[str]:
    return [node.op for node in arch.nodes]


# --- figures by hand ---------------------------------------------------------------------------
def test_res_and_dense_blocks_by_hand():
    """Input 8x8x3, ``res_c8-pool_max-dense_k2_g4``, global average pool, dense to 10 classes.
    Convs are 'same', no bias, each followed by batch norm (2 parameters per channel).

    ResBlock, 3 -> 8 channels, stride 1 (64 output pixels); the channels change, so the shortcut is
    a 1x1 projection conv + BN:
      conv 3x3 3->8: 3*3*3*8 = 216 + 16 = 232 params; MACs 64*8*27 = 13,824;
      conv 3x3 8->8: 3*3*8*8 = 576 + 16 = 592 params; MACs 64*8*72 = 36,864;
      projection 1x1 3->8: 3*8 = 24 + 16 = 40 params; MACs 64*8*3 = 1,536.
    Max pool 2x2 stride 2: 8x8 -> 4x4 (16 pixels), no parameters.
    DenseBlock, 2 layers of growth 4 on 8 channels:
      layer 1, conv 3x3 8->4: 288 + 8 = 296 params; MACs 16*4*72 = 4,608; concat: 8 + 4 = 12;
      layer 2, conv 3x3 12->4: 432 + 8 = 440 params; MACs 16*4*108 = 6,912; concat: 12 + 4 = 16.
    Dense 16 -> 10: 160 + 10 = 170 params, 160 MACs.
    Total: params 232 + 592 + 40 + 296 + 440 + 170 = 1,770;
    MACs 13,824 + 36,864 + 1,536 + 4,608 + 6,912 + 160 = 63,904.
    """
    space = create_space("blocks", input_shape=(8, 8, 3))
    arch = space.decode(space.parse("res_c8-pool_max-dense_k2_g4"))
    assert arch.trainable_params() == 1_770
    assert estimate_cost(arch).macs == 63_904
    ops = ops_of(arch)
    assert ops.count("conv2d") == 5 and ops.count("add") == 1 and ops.count("concat") == 2
    assert arch.shapes[arch.nodes[-2].name] == (1, 1, 16)  # 8 + 2 * 4 channels reach the pooling
    module = build(arch).eval()
    assert sum(p.numel() for p in module.parameters()) == 1_770
    with torch.no_grad():
        assert tuple(module(torch.randn(2, 3, 8, 8)).shape) == (2, 10)


def test_identity_and_strided_shortcuts_by_hand():
    """Input 8x8x3, ``conv_c8_k3-res_c8-res_c16_s2``, global average pool, dense to 10 classes.
      ConvBlock 3x3 3->8: 216 + 16 = 232 params; MACs 64*8*27 = 13,824.
      ResBlock 8->8, stride 1: identity shortcut, two convs 8->8: 2 * 592 = 1,184 params;
        MACs 2 * 64*8*72 = 73,728.
      ResBlock 8->16, stride 2 (8x8 -> 4x4, 16 pixels): the stride changes, so a projection:
        conv 3x3 8->16: 1,152 + 32 = 1,184 params; MACs 16*16*72 = 18,432;
        conv 3x3 16->16: 2,304 + 32 = 2,336 params; MACs 16*16*144 = 36,864;
        projection 1x1 8->16, stride 2: 128 + 32 = 160 params; MACs 16*16*8 = 2,048.
      Dense 16 -> 10: 170 params, 160 MACs.
    Total: params 232 + 1,184 + 1,184 + 2,336 + 160 + 170 = 5,266;
    MACs 13,824 + 73,728 + 18,432 + 36,864 + 2,048 + 160 = 145,056; convs 1 + 2 + 3 = 6.
    """
    space = create_space("blocks", input_shape=(8, 8, 3))
    arch = space.decode(space.parse("conv_c8_k3-res_c8-res_c16_s2"))
    assert arch.trainable_params() == 5_266
    assert estimate_cost(arch).macs == 145_056
    assert ops_of(arch).count("conv2d") == 6 and ops_of(arch).count("add") == 2
    assert sum(p.numel() for p in build(arch).parameters()) == 5_266


def test_empty_genome_is_the_classifier_alone():
    """No unit: global average pool of the 3 input channels, dense 3*10 + 10 = 40 parameters."""
    space = create_space("blocks")
    assert space.smallest() == [[]] and space.describe([]) == "empty" and space.parse("empty") == []
    arch = space.decode([])
    assert ops_of(arch) == ["global_avg_pool", "dense"] and arch.trainable_params() == 40


# --- pooling limits ----------------------------------------------------------------------------
def test_reductions_stop_at_one_by_one():
    """12x12 -> 6 -> 3 -> 2 -> 1: four halvings ('same', rounding up); a fifth is refused."""
    space = create_space("blocks", input_shape=(12, 12, 3))
    four = space.parse("pool_max-res_c4_s2-pool_avg-pool_max")
    arch = space.decode(four)
    assert min(min(shape[:2]) for shape in arch.shapes.values()) == 1
    assert arch.shapes[arch.nodes[-3].name][:2] == (1, 1)
    for fifth in ("pool_avg", "res_c4_s2"):
        with pytest.raises(TinyevoError, match="1x1 feature map; a 12x12 input takes at most 4"):
            space.parse(f"{space.describe(four)}-{fifth}")
    assert space.is_valid(four + [{"type": "res", "channels": 4, "stride": 1}])  # stride 1 is fine
    rng = np.random.default_rng(0)
    tiny = create_space("blocks", input_shape=(2, 2, 1), max_initial_units=8)
    for _ in range(200):  # samples, mutants and children never pool a 1x1 map
        genome = tiny.sample(rng)
        assert sum(u["type"] == "pool" or u.get("stride") == 2 for u in genome) <= 1
        assert tiny.is_valid(tiny.mutate(genome, rng))


# --- readable strings, options, bad input -----------------------------------------------------
def test_describe_and_parse_round_trip():
    space = create_space("blocks")
    rng = np.random.default_rng(5)
    for _ in range(100):
        genome = space.sample(rng)
        assert space.parse(space.describe(genome)) == genome
    text = "res_c16-pool_max-dense_k3_g8-conv_c32_k3"
    assert space.describe(space.parse(text)) == text
    assert space.parse(text) == [{"type": "res", "channels": 16, "stride": 1},
                                 {"type": "pool", "pool": "max"},
                                 {"type": "dense", "layers": 3, "growth": 8},
                                 {"type": "conv", "channels": 32, "kernel": 3}]


def test_one_network_one_key():
    """The same units written otherwise (key order, ``_s1`` spelt out) share a key; another
    unit, or the same units in another order, does not."""
    space = create_space("blocks", input_shape=(12, 12, 3))
    genome = space.parse("res_c8-dense_k2_g4-pool_avg")
    reordered = json.loads(json.dumps([dict(reversed(list(u.items()))) for u in genome]))
    spelt_out = space.parse("res_c8_s1-dense_k2_g4-pool_avg")
    assert space.key(reordered) == space.key(spelt_out) == space.key(genome)
    assert space.key(space.parse("res_c8-dense_k2_g4-pool_max")) != space.key(genome)
    assert space.key(space.parse("dense_k2_g4-res_c8-pool_avg")) != space.key(genome)


@pytest.mark.parametrize("bad", ["res_c16-pool_sum", "conv_c16", "res_c16_s3", "dense_k0_g8",
                                 "res_c16--pool_max", "", "conv_c8_k3-" * 9 + "pool_max"])
def test_bad_genome_strings_are_one_line(bad):
    space = create_space("blocks")
    with pytest.raises(TinyevoError) as error:
        space.parse(bad)
    assert "\n" not in str(error.value) and "blocks" in str(error.value)


@pytest.mark.parametrize("genome", [
    [{"type": "res", "channels": 16}], [{"type": "conv", "channels": 8.0, "kernel": 3}],
    [{"type": "pool", "pool": "min"}], [{"type": "dense", "layers": True, "growth": 4}],
    {"type": "pool", "pool": "max"}, ["pool_max"], [{"type": "ds", "channels": 8, "kernel": 3}]])
def test_bad_genomes_are_invalid(genome):
    assert not create_space("blocks").is_valid(genome)


@pytest.mark.parametrize("options, message", [
    (dict(channels=()), "channels must be a non-empty list"), (dict(growth=[4, 0]), "growth"),
    (dict(strides=[3]), r"strides must .* from \[1, 2\]"), (dict(max_units=0), "max_units"),
    (dict(max_units=3, max_initial_units=4), "max_initial_units"), (dict(layers=3), "layers"),
])
def test_bad_options_are_one_line(options, message):
    with pytest.raises(TinyevoError, match=message) as error:
        create_space("blocks", **options)
    assert "\n" not in str(error.value)


# --- variation ---------------------------------------------------------------------------------
def test_mutation_adds_removes_or_modifies_one_unit():
    space = create_space("blocks", max_units=6)
    rng = np.random.default_rng(3)
    steps = {-1: 0, 0: 0, 1: 0}
    for _ in range(300):
        parent = space.sample(rng)
        child = space.mutate(parent, rng)
        step = len(child) - len(parent)
        steps[step] += 1
        if step == 0:  # one unit's parameters changed, its type kept
            changed = [(p, c) for p, c in zip(parent, child) if p != c]
            assert len(changed) <= 1 and all(p["type"] == c["type"] for p, c in changed)
        else:  # the child is the parent with one unit inserted or deleted
            longer, shorter = (child, parent) if step == 1 else (parent, child)
            assert any(longer[:i] + longer[i + 1:] == shorter for i in range(len(longer)))
        assert len(child) <= 6
    assert min(steps.values()) > 50  # each of the three moves is common


def test_crossover_joins_a_head_of_one_parent_to_a_tail_of_the_other():
    space = create_space("blocks", max_units=8, max_initial_units=6)
    rng = np.random.default_rng(2)
    new_lengths = 0
    for _ in range(200):
        a, b = space.sample(rng), space.sample(rng)
        child = space.crossover(a, b, rng)
        assert any(child == a[:i] + b[j:] for i in range(len(a) + 1) for j in range(len(b) + 1))
        new_lengths += len(child) not in (len(a), len(b))
    assert new_lengths > 20  # the two cuts differ: variable length


def test_mutations_grow_from_nothing_up_to_max_units():
    space = create_space("blocks", input_shape=(12, 12, 3), max_units=5)
    rng = np.random.default_rng(1)
    genome, lengths = space.smallest()[0], []
    for _ in range(300):
        genome = space.mutate(genome, rng)
        lengths.append(len(genome))
    assert max(lengths) == 5 and min(lengths[50:]) < 5 and space.is_valid(genome)


def test_space_operators_run_in_an_evolution():
    from tinyevo.strategies import create_strategy

    space = create_space("blocks", input_shape=(8, 8, 1))
    strategy = create_strategy("evolution", space, seed=0, population_size=4, crossover_rate=0.5,
                               mutation="space", crossover="space")
    asked = strategy.ask(4)
    assert all(space.is_valid(c.genome) for c in asked)
    with pytest.raises(TinyevoError, match="fixed-length"):
        create_strategy("evolution", space, seed=0, mutation="one_gene")


# --- the command line --------------------------------------------------------------------------
def cli(*args) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue()


def test_bad_genome_file_is_one_line(tmp_path, capsys):
    (tmp_path / "g.json").write_text(json.dumps({"space": "blocks", "genome": [
        {"type": "res", "channels": 8, "stride": 1}, {"type": "pool", "pool": "sum"}]}))
    assert main(["cost", str(tmp_path / "g.json")]) != 0
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1 and "blocks unit #1" in error


SEARCH_CONFIG = """
space = "blocks"
dataset = "digits"
board = "stm32f746"
strategy = "evolution"
objectives = ["accuracy"]
budget = 4
seed = 1
final_epochs = 1
final_models = 1

[space_options]
channels = [4, 8]
layers = [2]
growth = [4]
max_units = 4

[strategy_options]
population_size = 2
crossover_rate = 0.5
mutation = "space"
crossover = "space"

[fidelity]
epochs = 1
data_fraction = 0.2
"""


@pytest.mark.slow
def test_search_with_the_space_operators_on_the_command_line(tmp_path):
    """Four candidates trained for an epoch on a fifth of digits (about 5 CPU-seconds)."""
    (tmp_path / "c.toml").write_text(SEARCH_CONFIG)
    code, _ = cli("search", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "run"),
                  "--no-progress")
    assert code == 0
    code, shown = cli("show", str(tmp_path / "run"), "--json")
    results = json.loads(shown)
    assert code == 0 and results["space"] == "blocks" and results["evaluated"] == 4
    space = create_space("blocks", channels=[4, 8], layers=[2], growth=[4], max_units=4)
    best = results["best"]["describe"]
    assert space.describe(space.parse(best)) == best  # the best network's string reads back
