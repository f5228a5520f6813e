"""The ``nasnet`` space (NASNet's cells in a searched macro skeleton) beyond the contract of
tests/test_spaces.py.

Oracles: the parameter count and MACs of a small NASNet-A-like network worked out by hand in the
docstring, PyTorch's parameter count and outputs, and the definition of a cell (which terms a sum
has, which blocks a concat takes).
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
from tinyevo.hardware.cost import macs
from tinyevo.nn import build
from tinyevo.spaces import create_space
from tinyevo.spaces.nasnet import OPS

torch.set_num_threads(1)
SMALL = dict(input_shape=(8, 8, 3), blocks=2, cells_per_stage=1, reductions=1, channels=4)
NASNET_A_LIKE = "N1-R1-C4/sep3~1+id~1,sep3~0+sep5~1/sep5~0+sep3~1,max3~1+dil3~0"


def ops_of(arch) -> list[str]:
    return [node.op for node in arch.nodes]


def nodes_json(arch) -> list[dict]:
    """The graph without its meta (which names the genome it came from)."""
    return [node.to_json() for node in arch.nodes]


# --- the figure by hand ----------------------------------------------------------------------------
def test_nasnet_a_like_network_by_hand():
    """Input 8x8x3, C = 4, N = 1, one reduction, B = 2. Normal cell (NASNet-A's first two blocks):
    sep3(h_{i-1}) + id(h_{i-1}) and sep3(h_{i-2}) + sep5(h_{i-1}); reduction cell: sep5(h_{i-2}) +
    sep3(h_{i-1}) and max3(h_{i-1}) + dil3(h_{i-2}). No block reads another, so each cell
    concatenates both. Every conv has no bias and a batch norm (2 parameters per channel); a sep
    op with C channels is a depthwise kxk (k*k*C + 2C) and a pointwise 1x1 (C*C + 2C); dil3
    counts as sep3.

    Stem conv 3x3 3->4: 108 + 8 = 116 params; 64 pixels * 4 * 27 = 6,912 MACs.
    Normal cell 1 (8x8, C=4; both inputs are the stem): two 1x1 projections 4->4: 2 * (16 + 8) =
      48 params, 2 * 64 * 16 = 2,048 MACs; sep3: 36 + 8 + 16 + 8 = 68 params, 64 * (36 + 16) =
      3,328 MACs, twice; sep5: 100 + 8 + 16 + 8 = 132 params, 64 * (100 + 16) = 7,424 MACs.
      316 params, 16,128 MACs; output 8x8x8.
    Reduction cell (C=8; ops on its inputs have stride 2, 16 output pixels): projections of the
      stem 4->8 (32 + 16 = 48 params, 64 * 32 = 2,048 MACs) and of cell 1 8->8 (64 + 16 = 80,
      4,096 MACs); sep5: 200 + 16 + 64 + 16 = 296 params, 16 * (200 + 64) = 4,224 MACs; sep3 and
      dil3: 72 + 16 + 64 + 16 = 168 params, 16 * (72 + 64) = 2,176 MACs each; max3: none.
      760 params, 14,720 MACs; output 4x4x16.
    Normal cell 2 (4x4, C=8): h_{i-2} is cell 1's 8x8x8, reduced by a stride-2 1x1 conv 8->8
      (80 params, 16 * 64 = 1,024 MACs); h_{i-1} projected 16->8 (128 + 16 = 144, 2,048 MACs);
      sep3 (168, 2,176) twice; sep5 (296, 16 * (200 + 64) = 4,224). 856 params, 11,648 MACs.
    Global average pool, dense 16->10: 170 params, 160 MACs.
    Total: 116 + 316 + 760 + 856 + 170 = 2,218 params; 6,912 + 16,128 + 14,720 + 11,648 + 160 =
    49,568 MACs.
    """
    space = create_space("nasnet", **SMALL)
    arch = space.decode(space.parse(NASNET_A_LIKE))
    assert arch.trainable_params() == 2_218
    assert estimate_cost(arch).macs == 49_568
    ops = ops_of(arch)
    assert ops.count("concat") == 3 and ops.count("add") == 6 and ops.count("max_pool") == 1
    dilated = [n for n in arch.nodes if n.op == "conv2d" and n.attrs["dilation"] == (2, 2)]
    assert len(dilated) == 1 and dilated[0].attrs["stride"] == (2, 2) and dilated[0].attrs["groups"] == 8
    assert arch.output_shape == (1, 1, 10) and arch.shapes[arch.nodes[-2].name] == (1, 1, 16)
    module = build(arch)
    assert sum(p.numel() for p in module.parameters()) == 2_218


def test_the_cell_output_concatenates_only_blocks_no_block_reads():
    """Block 2 reads block 1 (state 2): the cell's output is block 2 alone, no concat; the
    smallest network of the space is that chain of identities everywhere."""
    space = create_space("nasnet", **SMALL)
    arch = space.decode(space.parse("N1-R1-C4/sep3~1+id~1,id~2+max3~0/max3~1+max3~0,id~2+id~2"))
    assert "concat" not in ops_of(arch)
    # the smallest network: identity chains; the normal cell reads h_{i-2} alone, so normal cell 2
    # reads cell 1 (stride-2 projection) and the reduction cell is dead: stem and two projections
    smallest = space.decode(space.smallest()[0])
    convs = [n for n in smallest.nodes if n.op == "conv2d"]
    assert [c.attrs["stride"] for c in convs] == [(1, 1), (1, 1), (2, 2)]
    assert ops_of(smallest).count("add") == 4 and "max_pool" not in ops_of(smallest)


def test_a_cell_reading_only_h_i_minus_2_drops_the_cell_before_it():
    """Every block of the normal cell reads h_{i-2} or a block: with N = 1, normal cell 2 reads
    normal cell 1 (stride-2 projection) and not the reduction cell, which is dead and left out."""
    space = create_space("nasnet", **SMALL)
    arch = space.decode(space.parse("N1-R1-C4/id~0+id~0,sep3~2+id~2/sep3~1+sep3~1,id~2+id~2"))
    assert arch.nodes == arch.live_nodes()
    strided = [n for n in arch.nodes if n.op == "conv2d" and n.attrs["stride"] == (2, 2)]
    assert len(strided) == 1 and strided[0].attrs["kernel"] == (1, 1)  # the reduction of h_{i-2}
    assert arch.shapes[arch.nodes[-2].name] == (1, 1, 8)


# --- one network, one architecture -----------------------------------------------------------------
def test_swapped_terms_of_a_block_are_the_same_network():
    space = create_space("nasnet", **SMALL)
    swapped = "N1-R1-C4/id~1+sep3~1,sep5~1+sep3~0/sep3~1+sep5~0,dil3~0+max3~1"
    a, b = space.parse(NASNET_A_LIKE), space.parse(swapped)
    assert a != b and space.canonical(a) == space.canonical(b)
    assert nodes_json(space.decode(a)) == nodes_json(space.decode(b))
    assert space.key(a) == space.key(b)
    for other in ("N1-R1-C4/sep5~1+id~1,sep3~0+sep5~1/sep5~0+sep3~1,max3~1+dil3~0",  # op
                  "N1-R1-C4/sep3~0+id~1,sep3~0+sep5~1/sep5~0+sep3~1,max3~1+dil3~0",  # state
                  "N1-R1-C4/sep3~1+id~1,sep3~0+sep5~1/sep5~0+sep3~1,avg3~1+dil3~0"):  # reduction op
        assert space.key(space.parse(other)) != space.key(a)


def test_random_swaps_keep_the_architecture():
    space = create_space("nasnet", input_shape=(8, 8, 3), blocks=3)
    rng = np.random.default_rng(4)
    for _ in range(30):
        genome = space.sample(rng)
        other = json.loads(json.dumps(genome))
        for cell in ("normal", "reduce"):
            other[cell] = ["+".join(b.split("+")[::-1]) if rng.random() < 0.5 else b for b in other[cell]]
        assert nodes_json(space.decode(other)) == nodes_json(space.decode(genome))
        assert space.key(other) == space.key(genome)


# --- macro: searched or fixed ----------------------------------------------------------------------
def test_macro_genes_reach_the_network():
    space = create_space("nasnet", input_shape=(16, 16, 3), blocks=2)
    genome = space.parse("N2-R2-C12/sep3~1+id~1,sep3~0+sep5~1/sep5~0+sep3~1,max3~1+dil3~0")
    arch = space.decode(genome)
    assert ops_of(arch).count("concat") == 2 * 3 + 2  # N = 2 normal cells in 3 stages, 2 reductions
    assert arch.shapes[arch.nodes[0].name] == (16, 16, 12)  # stem: C channels
    assert arch.shapes[arch.nodes[-2].name] == (1, 1, 2 * 48)  # 4x4 stage: 4C, two blocks
    assert [g for g, _ in space.dimensions()[:3]] == ["cells_per_stage", "reductions", "channels"]
    assert space.to_vector(genome)[:3] == [1, 1, 1]


def test_macro_fixed_leaves_only_the_cells_to_search():
    fixed = create_space("nasnet", macro="fixed", blocks=2, cells_per_stage=[2, 3], channels=16)
    assert len(fixed.dimensions()) == 2 * 2 * 4  # two cells, two blocks of four genes
    genome = fixed.sample(np.random.default_rng(0))
    assert set(genome) == {"normal", "reduce"}
    text = fixed.describe(genome)
    assert text.startswith("N2-R1-C16/") and fixed.parse(text) == genome
    with pytest.raises(TinyevoError, match="fixed at 2"):
        fixed.parse(text.replace("N2", "N3", 1))
    assert fixed.options()["cells_per_stage"] == 2 and fixed.options()["channels"] == 16
    searched = create_space("nasnet", blocks=2)
    assert len(searched.dimensions()) == 3 + 16


# --- readable strings, options, bad input ----------------------------------------------------------
def test_describe_and_parse_round_trip():
    space = create_space("nasnet")
    rng = np.random.default_rng(5)
    for _ in range(100):
        genome = space.sample(rng)
        assert space.parse(space.describe(genome)) == genome
    small = create_space("nasnet", blocks=2)
    text = NASNET_A_LIKE.replace("C4", "C8")
    assert small.describe(small.parse(text)) == text


@pytest.mark.parametrize("bad", [
    "N1-R1-C4/sep3~1+id~1/sep5~0+sep3~1,max3~1+dil3~0",           # one normal block
    "N1-R1-C4/sep3~1+id~2,sep3~0+sep5~1/sep5~0+sep3~1,max3~1+dil3~0",  # block 1 reads block 1
    "N1-R1-C4/sep7~1+id~1,sep3~0+sep5~1/sep5~0+sep3~1,max3~1+dil3~0",  # no sep7
    "N1-R1-C4/sep3~1,sep3~0+sep5~1/sep5~0+sep3~1,max3~1+dil3~0",   # one term
    "N1-R1-C4/sep3~01+id~1,sep3~0+sep5~1/sep5~0+sep3~1,max3~1+dil3~0",
    "N1-C4/sep3~1+id~1,sep3~0+sep5~1/sep5~0+sep3~1,max3~1+dil3~0", "", "N1-R1-C4"])
def test_bad_genome_strings_are_one_line(bad):
    space = create_space("nasnet", input_shape=(8, 8, 3), blocks=2, cells_per_stage=1,
                         reductions=1, channels=4)
    with pytest.raises(TinyevoError) as error:
        space.parse(bad)
    assert "\n" not in str(error.value) and "nasnet" in str(error.value)


def test_bad_genomes_are_invalid():
    space = create_space("nasnet", blocks=2)
    good = space.sample(np.random.default_rng(0))
    for change in ({"channels": 5}, {"reductions": "1"}, {"normal": ["id~1+id~1"]}, {"extra": 1}):
        assert not space.is_valid({**good, **change})
    assert not space.is_valid({k: v for k, v in good.items() if k != "channels"})


@pytest.mark.parametrize("options, message", [
    (dict(blocks=0), "blocks must be an int from 1"), (dict(ops=["sep3", "sep7"]), "'sep7' is not a block op"),
    (dict(ops=[]), "list of distinct ops"), (dict(cells_per_stage=0), "cells_per_stage must be an int >= 1"),
    (dict(channels=[8, 8]), "list of distinct"), (dict(reductions=-1), "reductions must be an int >= 0"),
    (dict(macro="frozen"), "'search' or 'fixed'"), (dict(channels=True), "channels must be"),
])
def test_bad_options_are_one_line(options, message):
    with pytest.raises(TinyevoError, match=message) as error:
        create_space("nasnet", **options)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("op", sorted(OPS))
def test_every_op_builds_the_ir_in_torch(op):
    """Each op alone in both cells (also with stride 2 in the reduction cell), odd input sizes."""
    space = create_space("nasnet", input_shape=(9, 7, 2), blocks=2, ops=sorted({op, "id"}), reductions=2)
    rng = np.random.default_rng(1)
    torch.manual_seed(0)
    for _ in range(3):
        arch = space.decode(space.sample(rng))
        module = build(arch).eval()
        with torch.no_grad():
            out = module(torch.randn(2, 2, 9, 7))
        assert tuple(out.shape) == (2, 10)
        assert sum(p.numel() for p in module.parameters()) == arch.trainable_params()


# --- variation -------------------------------------------------------------------------------------
def test_mutation_changes_one_gene_and_crossover_takes_whole_blocks():
    space = create_space("nasnet", blocks=3)
    rng = np.random.default_rng(3)
    for _ in range(200):
        a, b = space.sample(rng), space.sample(rng)
        va, child = space.to_vector(a), space.to_vector(space.mutate(a, rng))
        assert sum(x != y for x, y in zip(va, child)) == 1
        mixed = space.crossover(a, b, rng)
        for cell in ("normal", "reduce"):
            assert all(m in (x, y) for m, x, y in zip(mixed[cell], a[cell], b[cell]))
        assert all(mixed[k] in (a[k], b[k]) for k in ("cells_per_stage", "reductions", "channels"))


def test_smallest_is_the_cheapest_of_many_samples():
    space = create_space("nasnet", input_shape=(12, 12, 3), blocks=2)
    smallest = space.decode(space.smallest()[0])
    rng = np.random.default_rng(8)
    for _ in range(300):
        arch = space.decode(space.sample(rng))
        assert smallest.trainable_params() <= arch.trainable_params() and macs(smallest) <= macs(arch)


# --- the command line ------------------------------------------------------------------------------
def cli(*args) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue()


def test_list_sample_and_cost_on_the_command_line(tmp_path):
    code, listed = cli("list", "spaces")
    assert code == 0 and ["nasnet", "fixed"] in [line.split()[:2] for line in listed.splitlines()]
    code, text = cli("sample", "--space", "nasnet", "--seed", "2", "--json")
    assert code == 0
    document = json.loads(text)
    space = create_space("nasnet")
    assert document["space"] == "nasnet" and document["describe"] == space.describe(document["genome"])
    small = create_space("nasnet", **SMALL)  # the cost of a small network (peak SRAM is searched)
    genome = small.parse(NASNET_A_LIKE)
    (tmp_path / "g.json").write_text(json.dumps({"space": "nasnet", "options": small.options(), "genome": genome}))
    code, cost = cli("cost", str(tmp_path / "g.json"), "--json")
    assert code == 0 and json.loads(cost)["macs"] == 49_568  # test_nasnet_a_like_network_by_hand


def test_bad_genome_file_is_one_line(tmp_path, capsys):
    genome = {"normal": ["id~1+id~1"] * 4 + ["id~9+id~1"], "reduce": ["id~1+id~1"] * 5,
              "cells_per_stage": 1, "reductions": 1, "channels": 8}
    (tmp_path / "g.json").write_text(json.dumps({"space": "nasnet", "genome": genome}))
    assert main(["cost", str(tmp_path / "g.json")]) != 0
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1 and "nasnet normal cell block 5" in error
