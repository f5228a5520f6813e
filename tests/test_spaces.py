"""Contract test of every registered search space, then what each space promises on its own.

Oracles: PyTorch (output shape, parameter count), NAS-Bench-201's published parameter counts and
its table of cell strings, torchvision's published MobileNetV2 parameter count, and counts done
by hand in the comments.
"""
from __future__ import annotations

import csv
import gzip
import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from tinyevo.arch import Architecture
from tinyevo.errors import TinyevoError
from tinyevo.nn import build
from tinyevo.spaces import SPACES, create_space
from tinyevo.spaces.nb201 import EDGES, format_cell, parse_cell

SAMPLES, TORCH_SAMPLES, BATCH = 200, 10, 2
NB201_TABLE = Path(os.environ.get("TINYEVO_NB201_TABLE",
                                  Path(__file__).resolve().parents[1] / "../shared/datasets/nb201_12epoch.csv.gz"))


@pytest.fixture(scope="module", params=SPACES.names())
def space_and_samples(request):
    space = create_space(request.param)
    rng = np.random.default_rng(2024)
    return space, [space.sample(rng) for _ in range(SAMPLES)]


# --- the contract: every registered space ----------------------------------------------------
def test_samples_decode_to_valid_architectures(space_and_samples):
    space, samples = space_and_samples
    for genome in samples:
        arch = space.decode(genome)
        assert isinstance(arch, Architecture)
        assert arch.output_shape == (1, 1, space.num_classes)
        assert isinstance(space.describe(genome), str) and space.describe(genome)


def test_architecture_json_round_trip(space_and_samples):
    space, samples = space_and_samples
    for genome in samples[:20]:
        arch = space.decode(genome)
        assert Architecture.from_json(json.loads(arch.dumps())).fingerprint() == space.key(genome)


def test_same_seed_same_samples(space_and_samples):
    space, samples = space_and_samples
    rng = np.random.default_rng(2024)
    assert [space.sample(rng) for _ in range(SAMPLES)] == samples


def test_mutate_and_crossover_give_valid_json_genomes(space_and_samples):
    space, samples = space_and_samples
    rng = np.random.default_rng(7)
    changed = 0
    for n, (parent, other) in enumerate(zip(samples, samples[1:] + samples[:1])):
        child = space.mutate(parent, rng)
        json.dumps(child)
        assert space.is_valid(child)
        changed += n < 50 and space.key(child) != space.key(parent)
        mixed = space.crossover(parent, other, rng)
        json.dumps(mixed)
        assert space.is_valid(mixed)
    assert changed >= 35, "mutation should usually change the network"


def test_variation_leaves_parents_untouched(space_and_samples):
    space, samples = space_and_samples
    before = json.dumps(samples[:20])
    rng = np.random.default_rng(3)
    for a, b in zip(samples[:20], samples[1:21]):
        space.mutate(a, rng)
        space.crossover(a, b, rng)
    assert json.dumps(samples[:20]) == before


def test_key_is_stable_across_a_json_round_trip(space_and_samples):
    space, samples = space_and_samples
    for genome in samples:
        text = space.to_json(genome)
        again = space.from_json(text)
        assert again == genome
        assert space.key(json.loads(text)) == space.key(genome)


def test_from_json_rejects_garbage_with_one_line(space_and_samples):
    space, _ = space_and_samples
    for bad in ['{"nope": 1}', "[1, 2, 3]", '"|nor_conv_9x9~0|"', "42"]:
        with pytest.raises(TinyevoError) as error:
            space.from_json(bad)
        assert "\n" not in str(error.value)


def test_torch_module_matches_the_ir(space_and_samples):
    space, samples = space_and_samples
    torch.manual_seed(0)
    torch.set_num_threads(1)
    for genome in samples[:TORCH_SAMPLES]:
        arch = space.decode(genome)
        module = build(arch).eval()
        h, w, c = arch.input_shape
        with torch.no_grad():
            out = module(torch.randn(BATCH, c, h, w))
        assert tuple(out.shape) == (BATCH, arch.output_shape[2])
        assert sum(p.numel() for p in module.parameters()) == arch.trainable_params()


def test_smallest_is_valid_and_no_larger_than_any_sample(space_and_samples):
    space, samples = space_and_samples
    smallest = space.smallest()
    assert smallest and all(space.is_valid(g) for g in smallest)
    least = min(space.decode(g).trainable_params() for g in smallest)
    assert least <= min(space.decode(g).trainable_params() for g in samples)


def test_options_rebuild_the_same_space(space_and_samples):
    space, samples = space_and_samples
    rebuilt = create_space(space.name, **json.loads(json.dumps(space.options())))
    assert [rebuilt.key(g) for g in samples[:20]] == [space.key(g) for g in samples[:20]]


def test_fixed_length_vectors_round_trip(space_and_samples):
    space, samples = space_and_samples
    if space.encoding != "fixed":
        assert space.dimensions() == []
        return
    dims = space.dimensions()
    for genome in samples:
        vector = space.to_vector(genome)
        assert len(vector) == len(dims)
        assert all(0 <= i < len(choices) for i, (_, choices) in zip(vector, dims))
        assert space.from_vector(vector) == genome


def test_fixed_length_crossover_takes_each_gene_from_a_parent(space_and_samples):
    space, samples = space_and_samples
    if space.encoding != "fixed":
        return
    rng = np.random.default_rng(11)
    for a, b in zip(samples[:50], samples[1:51]):
        va, vb = space.to_vector(a), space.to_vector(b)
        child = space.to_vector(space.crossover(a, b, rng))
        assert all(c in (x, y) for c, x, y in zip(child, va, vb))


# --- chain ---------------------------------------------------------------------------------------
def test_chain_hand_counted_parameters():
    space = create_space("chain")  # 28x28x1 input, 10 classes
    # conv 3*3*1*8 + BN 2*8 = 88; ds: depthwise 3*3*8 + BN 16, pointwise 8*16 + BN 32 = 248;
    # dense 16*32 + 32 = 544; classifier 32*10 + 10 = 330.
    assert space.decode(space.parse("c8k3s1-mp2-ds16k3s2-gap-f32")).trainable_params() == 1210
    # 28x28 -> 14x14 by the stride-2 conv; flatten 14*14*8 = 1568 features, 1568*10 + 10 = 15690.
    arch = space.decode(space.parse("c8k3s2-flat"))
    assert arch.trainable_params() == 88 + 15690
    assert arch.shapes[arch.nodes[-2].name] == (1, 1, 1568)


def test_chain_describe_and_parse_round_trip():
    space = create_space("chain")
    rng = np.random.default_rng(5)
    for _ in range(100):
        genome = space.sample(rng)
        assert space.parse(space.describe(genome)) == genome
    with pytest.raises(TinyevoError):
        space.parse("c16k3-gap")


def test_chain_mutations_grow_and_shrink_without_a_maximum_depth():
    space = create_space("chain", max_initial_layers=3)
    rng = np.random.default_rng(1)
    genome, lengths, steps = space.smallest()[0], [], []
    for _ in range(400):
        child = space.mutate(genome, rng)
        steps.append(len(child) - len(genome))
        genome = child
        lengths.append(len(genome))
    assert min(steps) < 0 < max(steps)
    deepest = max(lengths)
    assert deepest > space.max_initial_layers + space.max_initial_dense + 1
    assert space.is_valid(genome)


def test_chain_crossover_is_variable_length():
    space = create_space("chain", max_initial_layers=6)
    rng = np.random.default_rng(2)
    new_lengths = 0
    for _ in range(200):
        a, b = space.sample(rng), space.sample(rng)
        child = space.crossover(a, b, rng)
        new_lengths += len(child) not in (len(a), len(b))
        assert all(layer in a + b for layer in child)
    assert new_lengths > 20


def test_chain_spatial_size_never_drops_below_one():
    space = create_space("chain", input_shape=(8, 8, 1))
    deep = space.parse("-".join(["c8k3s2"] * 12 + ["mp3"] * 3 + ["flat"]))
    arch = space.decode(deep)
    assert min(min(shape[:2]) for shape in arch.shapes.values()) == 1


# --- nb201 ---------------------------------------------------------------------------------------
def nb201_rows() -> list[dict]:
    if not NB201_TABLE.exists():
        pytest.skip(f"NAS-Bench-201 table not found at {NB201_TABLE}")
    with gzip.open(NB201_TABLE, "rt") as handle:
        return list(csv.DictReader(handle))


def test_nb201_table_cell_strings_decode_and_read_back():
    space = create_space("nb201")
    rows = nb201_rows()
    cells = [row["arch"] for row in rows]
    assert len(set(cells)) == 15625
    assert all(format_cell(parse_cell(cell)) == cell for cell in cells)
    rng = np.random.default_rng(0)
    for i in rng.choice(len(cells), size=300, replace=False):
        cell = cells[int(i)]
        assert space.decode(cell).output_shape == (1, 1, 10)
        assert space.describe(cell) == cell
        assert space.from_vector(space.to_vector(cell)) == cell


@pytest.mark.parametrize("classes, all_conv, no_conv", [(10, 1_531_546, 73_306),
                                                        (100, 1_537_396, 79_156)])
def test_nb201_published_parameter_counts(classes, all_conv, no_conv):
    """NAS-Bench-201's parameter range on CIFAR-10 / CIFAR-100 (0.073306 - 1.531546 M, ...)."""
    space = create_space("nb201", num_classes=classes)
    assert space.decode(format_cell(["nor_conv_3x3"] * 6)).trainable_params() == all_conv
    for ops in (["none"] * 6, ["skip_connect"] * 6, ["avg_pool_3x3"] * 6):
        assert space.decode(format_cell(ops)).trainable_params() == no_conv


def test_nb201_same_computation_same_key():
    space = create_space("nb201")
    key = space.key
    # Node 1 feeds nothing (edges 1->2 and 1->3 are none), so the op on edge 0->1 is dead.
    assert (key("|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|")
            == key("|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"))
    # Nodes 1 and 2 both equal the input (skips), so node 3 sums three ops of the same tensor:
    # permuting those ops over its edges is the same sum.
    assert (key("|skip_connect~0|+|skip_connect~0|none~1|+|nor_conv_3x3~0|nor_conv_1x1~1|avg_pool_3x3~2|")
            == key("|skip_connect~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_3x3~1|nor_conv_1x1~2|"))
    # But a 1x1 and a 3x3 conv on different tensors are not interchangeable.
    assert (key("|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|none~0|none~1|skip_connect~2|")
            != key("|nor_conv_1x1~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|skip_connect~2|"))


def reference_form(cell: str) -> str:
    """The cell's computation as a string, written from NAS-Bench-201's ``to_unique_str``, with
    the fingerprint's rules: skip is identity, a none edge (or a skip / average pool of zeros)
    adds nothing, sums are unordered, and a conv of zeros is not zero (batch norm adds beta)."""
    nodes = ["x"]
    for j in (1, 2, 3):
        terms = []
        for (to, i), op in zip(EDGES, parse_cell(cell)):
            source = nodes[i] if to == j else None
            if to != j or op == "none" or (source == "0" and op in ("skip_connect", "avg_pool_3x3")):
                continue
            terms.append(source if op == "skip_connect" else f"{op}({source})")
        nodes.append("0" if not terms else terms[0] if len(terms) == 1
                     else "sum(" + ",".join(sorted(terms)) + ")")
    return nodes[3]


@pytest.mark.parametrize("ops", [("none", "skip_connect", "nor_conv_3x3"),
                                 ("none", "skip_connect", "avg_pool_3x3")])
def test_nb201_key_partition_matches_the_reference(ops):
    # One cell per stage keeps this fast; the cell decides the network's identity either way.
    space = create_space("nb201", channels=4, cells_per_stage=1)
    cells = [format_cell(c) for c in itertools.product(ops, repeat=len(EDGES))]
    by_key, by_form = {}, {}
    for cell in cells:
        by_key.setdefault(space.key(cell), set()).add(cell)
        by_form.setdefault(reference_form(cell), set()).add(cell)
    assert len(by_key) < len(cells) / 2  # many real equivalences in these sub-spaces
    assert sorted(map(sorted, by_key.values())) == sorted(map(sorted, by_form.values()))


def test_nb201_rejects_malformed_cells():
    space = create_space("nb201")
    good = format_cell(["nor_conv_3x3"] * 6)
    for bad in [good[:-1], good.replace("~1", "~2"), good.replace("3x3", "5x5"), "+".join([good] * 2)]:
        assert not space.is_valid(bad)


# --- mbv2 ----------------------------------------------------------------------------------------
def mobilenet_v2_genome(space) -> dict:
    """MobileNetV2 1.0 (Sandler et al. 2018): stage depths 2, 3, 4, 3, 3, 1, every block k3 e6."""
    dims = space.dimensions()
    genome = space.smallest()[0]
    genome.update(width=1.0, depth=[2, 3, 4, 3, 3], kernel=[3] * 21, expand=[6] * 21)
    assert len(dims) == 2 + 5 + 21 + 21
    return genome


def test_mbv2_is_mobilenet_v2_at_width_one():
    # torchvision's mobilenet_v2 (ImageNet, 1000 classes) publishes num_params = 3,504,872.
    space = create_space("mbv2", num_classes=1000, resolutions=[224])
    arch = space.decode(mobilenet_v2_genome(space))
    assert arch.trainable_params() == 3_504_872
    assert arch.shapes[arch.nodes[-3].name][:2] == (7, 7)  # 224 / 32 before the pooling


def test_mbv2_one_block_by_hand():
    space = create_space("mbv2")
    small = space.smallest()[0]  # width 0.2: every channel count rounds to 8 here
    big = json.loads(json.dumps(small))
    big["kernel"][0], big["expand"][0] = 7, 6  # first block of stage 1: 8 -> 8 channels, stride 2
    # k3 e3: hidden 24: 8*24 + 2*24 (expand+BN) + 9*24 + 2*24 (dw+BN) + 24*8 + 2*8 = 712
    # k7 e6: hidden 48: 8*48 + 2*48 + 49*48 + 2*48 + 48*8 + 2*8 = 3328
    difference = space.decode(big).trainable_params() - space.decode(small).trainable_params()
    assert difference == 3328 - 712


def test_mbv2_inactive_slots_do_not_change_the_key():
    space = create_space("mbv2")
    genome = space.smallest()[0]  # depth 2 everywhere: slots 2 and 3 of stage 1 are inactive
    inactive = json.loads(json.dumps(genome))
    inactive["kernel"][3], inactive["expand"][2] = 7, 6
    active = json.loads(json.dumps(genome))
    active["kernel"][1] = 7
    assert space.key(inactive) == space.key(genome) != space.key(active)
    assert space.describe(inactive) == space.describe(genome) != space.describe(active)


def test_mbv2_resolution_and_width_reach_the_architecture():
    space = create_space("mbv2")
    genome = space.smallest()[0]
    genome.update(resolution=96, width=0.5)
    arch = space.decode(genome)
    assert arch.input_shape == (96, 96, 3)
    assert arch.shapes[arch.nodes[0].name] == (48, 48, 16)  # make_divisible(32 * 0.5, 8) = 16
    assert space.describe(genome).startswith("r96-w0.5-s1:k3e3,k3e3|")
