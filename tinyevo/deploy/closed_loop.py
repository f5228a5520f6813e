"""Closed-loop calibration: measure ops on the emulated core, fit the latency model, write a board.

    probes = probe_architectures(count, rng) + network_probes(count // 6)   # layers, networks
    rows = [measure(arch, work, seed) for arch in probes]      # QEMU -icount, per op
    table = fit_calibration(rows, core, probes=len(probes))    # tinyevo.hardware.calibration
    write_board_file(board_text, table, "calibrated.toml")

A probe is a small network (one op of the kind under test, with the convolutions an add or concat
needs in front of it), built with seeded random weights, quantized on random inputs, generated as a
layer-by-layer C library and run profiled on the emulator (``codegen.mcu``, one mark per op). The
instructions of each generated op go to the architecture node whose cost they are: the op's output
node, walked back through what the latency model calls free (fused relu/relu6, folded batch norm,
identity, flatten), so that a conv + batch norm + relu is one row of kind ``conv2d``. What the run
spends outside the ops (copying the input in and the output out) is the row of kind ``network``.
"""
from __future__ import annotations

import datetime
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tinyevo.arch import INPUT, Architecture, GraphBuilder
from tinyevo.deploy.codegen import mcu
from tinyevo.deploy.codegen.emit import generate_c
from tinyevo.deploy.codegen.metadata import read_metadata
from tinyevo.deploy.quantize import quantize
from tinyevo.errors import TinyevoError
from tinyevo.hardware.board import Board, board_file_text, load_board
from tinyevo.hardware.calibration import (FEATURES, KIND_FEATURES, NETWORK, calibration_kind, costed_ops, fit_kind,
                                          lowering, network_features, op_features, predict)
from tinyevo.nn.build import build, randomize_batch_norms
from tinyevo.spaces import create_space

EMULATOR = mcu.CORES[mcu.DEFAULT_CORE].emulator()  # the Cortex-M4's; each core's: mcu.CORES
MARKER = "# --- [calibration]: written by tinyevo calibrate; rerun it rather than editing by hand ---"
BOARD_CORES = mcu.BOARD_CORES  # a board's core -> the emulated core that stands for it
REQUANTIZED = ":requantized_for:"  # tinyevo.deploy.quantize names the QUANTIZE ops it inserts so
PROBE_KINDS = ("conv2d", "pointwise_conv2d", "depthwise_conv2d", "grouped_conv2d", "dense",
               "max_pool", "avg_pool", "global_avg_pool", "add", "concat", "batch_norm", "block", "relu")
#: channel counts: powers of two and multiples of four (the kernels' blocks of four channels) and
#: the odd and 2 mod 4 counts that take the kernels' generic paths (densenet's concats of a few
#: channels of growth)
SIZES = (1, 2, 4, 6, 8, 12, 16, 20)
CHANNELS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 14, 16, 18, 22, 24, 32, 48, 64, 96)
KERNELS = (3, 5, 7)
#: Small settings of each image space (those of tests/test_codegen_mcu.py: seconds on the
#: emulator): the network probes are seeded samples of them.
NETWORK_SPACES = {
    "blocks": dict(input_shape=(12, 12, 3), channels=(4, 8), kernels=(1, 3), layers=(2, 3), growth=(4,)),
    "chain": dict(input_shape=(16, 16, 1), filters=(4, 8, 16), kernels=(1, 3, 5), units=(8, 16)),
    "dag": dict(input_shape=(12, 12, 3), nodes=(4, 4, 3), channels=(4, 8, 8),
                op=("conv3x3", "ds3x3", "conv1x1")),
    "densenet": dict(input_shape=(12, 12, 3), blocks=2, layers=(1, 2, 3), growth=(2, 4),
                     bottleneck=(1, 2), kernels=(3, 5)),
    "mbv2": dict(input_shape=(32, 32, 3), resolutions=(32,), widths=(0.2,), feature_mix_layer=False),
    "nasnet": dict(input_shape=(12, 12, 3), blocks=2, cells_per_stage=1, reductions=1, channels=4),
    "nb201": dict(input_shape=(8, 8, 3), channels=4, cells_per_stage=1),
}
NETWORK_SEED = 100  # the network probes' seeds: NETWORK_SEED + i
NETWORK_SHARE = 3  # one network probe per this many single-layer probes
ELEMENTS = 12_288  # the most elements a probe's input or output map has (rows x columns x channels)


def emulated_core(board: Board) -> str:
    """The emulated core that runs ``board``'s code (``BOARD_CORES``), or one clear error."""
    core = mcu.board_core(board.core)
    if core is None:
        raise TinyevoError(f"board {board.name!r}: no emulated core for {board.core!r}; give one with "
                           f"--core ({', '.join(mcu.EMULATED_CORES)})")
    return core


# --- probes ----------------------------------------------------------------------------------------
def probe_architectures(count: int, rng: np.random.Generator) -> list[Architecture]:
    """``count`` probes, the kinds of ``PROBE_KINDS`` in turn, each over a random grid point."""
    return [probe(PROBE_KINDS[i % len(PROBE_KINDS)], rng, f"probe{i}") for i in range(count)]


def network_probes(count: int) -> list[Architecture]:
    """``count`` networks: samples of the ``NETWORK_SPACES`` in turn, seeds ``NETWORK_SEED`` + i
    (the ops as networks run them: several kernels of a kind in one image, which gcc inlines
    differently from one alone)."""
    chosen = []
    for i in range(count):
        name = sorted(NETWORK_SPACES)[i % len(NETWORK_SPACES)]
        space = create_space(name, **NETWORK_SPACES[name])
        arch = space.decode(space.sample(np.random.default_rng(NETWORK_SEED + i)))
        arch.name = f"{name}-seed{NETWORK_SEED + i}"
        chosen.append(arch)
    return chosen


def probe(kind: str, rng: np.random.Generator, name: str) -> Architecture:
    """One network whose last op is of calibration kind ``kind``, its shape drawn from ``rng``
    (maps of at most ``ELEMENTS`` elements; pools on maps of 4 x 4 or more)."""
    sizes = [n for n in SIZES if n >= 4] if kind in ("max_pool", "avg_pool", "add", "concat", "block") else SIZES
    size = int(rng.choice(sizes))
    fits = [c for c in CHANNELS if size * size * c <= ELEMENTS]
    cin, cout = int(rng.choice(fits)), int(rng.choice(fits))
    g = GraphBuilder((size, size, cin), name=name)
    kernel, stride = int(rng.choice(KERNELS)), int(rng.choice((1, 1, 2)))
    if kind in ("conv2d", "pointwise_conv2d"):
        k = 1 if kind == "pointwise_conv2d" else kernel
        return g.build(_activated(g, g.conv2d(g.input, cout, kernel=k, stride=stride), rng))
    if kind == "depthwise_conv2d":
        g = GraphBuilder((size, size, max(cin, 2)), name=name)
        channels = max(cin, 2) * int(rng.choice((1, 1, 2)))
        x = g.conv2d(g.input, channels, kernel=kernel, stride=stride, groups=max(cin, 2))
        return g.build(_activated(g, x, rng))
    if kind == "grouped_conv2d":
        groups = int(rng.choice((2, 4)))
        g = GraphBuilder((size, size, groups * max(1, cin // groups)), name=name)
        x = g.conv2d(g.input, groups * max(1, cout // groups), kernel=kernel, stride=stride, groups=groups)
        return g.build(_activated(g, x, rng))
    if kind == "dense":
        return g.build(_activated(g, g.dense(g.flatten(g.input), cout), rng))
    if kind in ("max_pool", "avg_pool"):
        window = int(rng.choice((2, 3)))
        padding = str(rng.choice(("valid", "same")))
        pool = g.max_pool if kind == "max_pool" else g.avg_pool
        return g.build(pool(g.input, kernel=window, stride=int(rng.choice((1, window))), padding=padding))
    if kind == "global_avg_pool":
        return g.build(g.global_avg_pool(g.input))
    if kind == "block":
        return _block(g, rng, cout, kernel, stride)
    if kind == "batch_norm":  # unfolded: after a relu, or after a concat (densenet), maybe relu'd
        if rng.random() < 0.5:
            x = g.relu(g.conv2d(g.input, cout, kernel=1))
        else:
            x = g.concat(g.input, g.conv2d(g.input, int(rng.choice((2, 4, 6))), kernel=1))
        x = g.batch_norm(x)
        return g.build(g.relu(x) if rng.random() < 0.5 else x)
    if kind == "relu":  # standalone: of a tensor two ops read, or of the input (nothing to fuse into)
        activation = g.relu if rng.random() < 0.5 else g.relu6
        if rng.random() < 0.5:
            return g.build(activation(g.input))
        x = g.conv2d(g.input, cout, kernel=1)
        return g.build(g.add(activation(x), x))
    branches = [_activated(g, g.conv2d(g.input, cout if kind == "add" else int(rng.choice(fits)),
                                       kernel=int(rng.choice((1, 3)))), rng)
                for _ in range(int(rng.choice((2, 2, 3))))]
    if kind == "concat" and rng.random() < 0.5:
        # inputs the concat's quantization cannot be adopted by (requantized on the way): the
        # network input, a tensor something else also reads (densenet: the block's input)
        shared = branches[0] if rng.random() < 0.5 else g.input
        x = g.concat(shared, *branches[1:])
        return g.build(g.concat(x, g.conv2d(x, int(rng.choice((2, 4))), kernel=1)) if rng.random() < 0.5 else x)
    return g.build(g.add(*branches) if kind == "add" else g.concat(*branches))


def _block(g: GraphBuilder, rng: np.random.Generator, width: int, kernel: int, stride: int) -> Architecture:
    """A small network: stem conv, an inverted-residual block (expand, depthwise, project, add),
    pooling, a classifier."""
    x = g.relu(g.batch_norm(g.conv2d(g.input, max(width, 2), kernel=3, stride=stride)))
    hidden = max(width, 2) * int(rng.choice((2, 3)))
    y = g.relu6(g.batch_norm(g.conv2d(x, hidden, kernel=1)))
    y = g.relu6(g.batch_norm(g.conv2d(y, hidden, kernel=kernel, groups=hidden)))
    x = g.add(x, g.batch_norm(g.conv2d(y, max(width, 2), kernel=1)))
    x = g.max_pool(x, kernel=2) if x and g.shapes[x][0] >= 4 else x
    return g.build(g.dense(g.flatten(g.global_avg_pool(x)), int(rng.choice((2, 10)))))


def _activated(g: GraphBuilder, x: str, rng: np.random.Generator) -> str:
    """``x``, then maybe a batch norm (folded), then maybe relu or relu6 (fused)."""
    if rng.random() < 0.5:
        x = g.batch_norm(x)
    activation = rng.choice(("none", "relu", "relu6"))
    return x if activation == "none" else (g.relu(x) if activation == "relu" else g.relu6(x))


# --- measuring -------------------------------------------------------------------------------------
@dataclass
class Measurement:
    """What one profiled run of a network on the emulator counted."""

    name: str
    instructions: int  # one inference, inside tinyevo_model_run
    ops: dict[str, int] = field(default_factory=dict)  # costed node -> its instructions
    network: int = 0  # the rest: input and output copies, code of ops the model calls free


def quantized(arch: Architecture, seed: int):
    """The network with seeded random weights and batch norms, quantized on random inputs; one
    int8 input sample."""
    torch.manual_seed(seed)
    module = build(arch).eval()
    rng = np.random.default_rng(seed)
    randomize_batch_norms(module, rng)
    h, w, c = arch.input_shape
    calibration = rng.normal(size=(8, c, h, w)).astype(np.float32)
    qmodel = quantize(arch, module, calibration)
    return qmodel, qmodel.input_spec.quantize(calibration[:1].transpose(0, 2, 3, 1))


def measure(arch: Architecture, work: Path, seed: int, core: str = "cortex-m4",
            profile: bool = True, in_place_kernels: bool = False) -> Measurement:
    """Instructions of one inference of ``arch``'s generated C (layer by layer; by default without
    in-place kernels, as the search's default execution model counts memory) on ``core``, per
    costed node when ``profile``."""
    qmodel, x = quantized(arch, seed)
    if work.exists():
        shutil.rmtree(work)
    generate_c(qmodel, work, execution="layer_by_layer", in_place_kernels=in_place_kernels)
    _, run = mcu.run_on_mcu(work, x, profile=profile, core=core)
    total = int(run.instructions[0])
    if not profile:
        return Measurement(arch.name, total)
    names = [op["name"] for op in read_metadata(work / mcu.METADATA)["op_order"]]
    ops = attribute(arch, names, [layer["instructions"] for layer in run.layers])
    return Measurement(arch.name, total, ops, total - sum(ops.values()))


def attribute(arch: Architecture, op_outputs: list[str], instructions: list[int]) -> dict[str, int]:
    """Each generated op's instructions, summed per costed node: its output node walked back
    through free nodes with one input. A tensor the quantizer added counts for the node it serves:
    ``x:requantized_for:concat_1`` for ``concat_1``, ``add_1:partial1`` for ``add_1``. Ops that end
    at the input or at no node are left out."""
    lowered = lowering(arch)
    spent: dict[str, int] = {}
    for name, count in zip(op_outputs, instructions):
        node = arch.by_name.get(name.split(REQUANTIZED)[-1].split(":")[0])
        while node is not None and calibration_kind(arch, node, lowered) == "free":
            source = node.inputs[0] if len(node.inputs) == 1 else INPUT
            node = arch.by_name.get(source) if source != INPUT else None
        if node is not None:
            spent[node.name] = spent.get(node.name, 0) + int(count)
    return spent


# --- fitting ---------------------------------------------------------------------------------------
def training_rows(measured: list[tuple[Architecture, Measurement]]) -> dict[str, tuple[list, list]]:
    """kind -> (feature rows, instructions) over every measured network's costed ops and overhead."""
    rows: dict[str, tuple[list, list]] = {}
    for arch, measurement in measured:
        lowered = lowering(arch)
        for node, kind in costed_ops(arch, lowered):
            if measurement.ops.get(node.name, 0) > 0:
                rows.setdefault(kind, ([], []))[0].append(op_features(arch, node, lowered))
                rows[kind][1].append(measurement.ops[node.name])
        rows.setdefault(NETWORK, ([], []))[0].append(network_features(arch))
        rows[NETWORK][1].append(max(measurement.network, 1))
    return rows


def fit_calibration(measured: list[tuple[Architecture, Measurement]], core: str, seed: int) -> dict:
    """The ``[calibration]`` table: coefficients and fit residuals per kind."""
    coefficients, residuals = {}, {}
    for kind, (features, counts) in sorted(training_rows(measured).items()):
        coefficients[kind], residuals[kind] = fit_kind(np.array(features), np.array(counts),
                                                       KIND_FEATURES.get(kind, FEATURES))
    emulator = mcu.CORES[mcu.check_core(core)].emulator()
    return {"core": core, "emulator": emulator, "cycles_per_instruction": 1.0,
            "date": datetime.date.today().isoformat(), "probes": len(measured), "seed": seed,
            "execution": "layer_by_layer", "in_place_kernels": False, "features": list(FEATURES),
            "cycles": "1 instruction = 1 cycle: zero-wait-state memory, no cache misses or stalls",
            "instructions": coefficients, "residuals": residuals}


def predicted_instructions(arch: Architecture, table: dict) -> float:
    """Instructions of one inference the ``[calibration]`` table predicts (kinds it lacks: 0)."""
    fitted = table["instructions"]
    total = predict(fitted[NETWORK], network_features(arch)) if NETWORK in fitted else 0.0
    lowered = lowering(arch)
    for node, kind in costed_ops(arch, lowered):
        total += predict(fitted[kind], op_features(arch, node, lowered)) if kind in fitted else 0.0
    return total


# --- the command ---------------------------------------------------------------------------------
def calibrate_board(board_arg: str, out: Path, probes: int, seed: int, core: str | None = None,
                    progress=print) -> dict:
    """``tinyevo calibrate``: measure ``probes`` probes (drawn with ``seed``) on the emulated core
    of the board, fit, write the board file with its ``[calibration]`` to ``out``; the table."""
    board, text = load_board(board_arg), board_file_text(board_arg)
    core = mcu.check_core(core or emulated_core(board))
    mcu.require_toolchain()
    if probes < len(PROBE_KINDS):
        raise TinyevoError(f"--probes {probes}: give at least {len(PROBE_KINDS)}, one per kind "
                           f"({', '.join(PROBE_KINDS)})")
    archs = probe_architectures(probes, np.random.default_rng(seed)) + network_probes(probes // NETWORK_SHARE)
    measured = []
    with tempfile.TemporaryDirectory(prefix="tinyevo-calibrate-") as work:
        for number, arch in enumerate(archs, 1):
            measurement = measure(arch, Path(work) / "probe", seed + number, core)
            measured.append((arch, measurement))
            kind = PROBE_KINDS[(number - 1) % len(PROBE_KINDS)] if number <= probes else "network"
            progress(f"probe {number}/{len(archs)} {arch.name}: {kind} on "
                     f"{'x'.join(map(str, arch.input_shape))}, {measurement.instructions:,} instructions")
    table = fit_calibration(measured, core, seed)
    for kind, fit in table["residuals"].items():
        progress(f"fit {kind}: {fit['probes']} ops, relative error median "
                 f"{100 * fit['median_relative_error']:.1f} %, worst {100 * fit['worst_relative_error']:.1f} %")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(board_text_with(text, table), encoding="utf-8")
    load_board(out)  # what was written reads back
    progress(f"wrote {out}: use it with --board {out}")
    return table


# --- the board file --------------------------------------------------------------------------------
def board_text_with(original: str, table: dict) -> str:
    """A board file's text with its ``[calibration]`` (a previous one replaced) at the end."""
    kept = original.split(MARKER)[0].rstrip() + "\n"
    lines = ["", MARKER, "[calibration]"]
    lines += [f"{key} = {_toml(value)}" for key, value in table.items() if not isinstance(value, dict)]
    for section in ("instructions", "residuals"):
        for kind, values in table[section].items():
            lines.append(f"\n[calibration.{section}.{kind}]")
            lines += [f"{name} = {_toml(value)}" for name, value in values.items()]
    return kept + "\n".join(lines) + "\n"


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
