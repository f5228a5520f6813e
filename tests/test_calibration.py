"""Closed-loop calibration (``tinyevo calibrate``): the fit, the calibrated latency, the emulator.

Oracles: synthetic measurements made with numpy from known coefficients (the fit must recover
them), latencies worked out by hand in the docstrings, and instruction counts of ops measured
alone on the emulator (an op inside a network must count the same as on its own).
"""
from __future__ import annotations

import json
import os
import tomllib

import numpy as np
import pytest
import torch

from tinyevo.arch import GraphBuilder
from tinyevo.cli import main
from tinyevo.commands.search import print_measured
from tinyevo.deploy import closed_loop as calibrate
from tinyevo.deploy.codegen import mcu
from tinyevo.errors import TinyevoError
from tinyevo.hardware import energy_mj, latency_ms, load_board
from tinyevo.hardware.calibration import FEATURES, KIND_FEATURES, calibration_kind, fit_kind, lowering, op_features

torch.set_num_threads(1)

BOARD = """\
name = "Hand"
core = "Cortex-M4"
clock_mhz = 10
sram_bytes = 65536
flash_bytes = 262144
active_power_mw = 20.0
[macs_per_cycle]
conv2d = 0.5
pointwise_conv2d = 0.5
depthwise_conv2d = 0.5
dense = 0.5
[elements_per_cycle]
pool = 1.0
add = 1.0
concat = 1.0
elementwise = 1.0
"""
CALIBRATION = """
[calibration]
core = "cortex-m4"
cycles_per_instruction = 1.5
[calibration.instructions.conv2d]
calls = 100.0
filter_macs = 2.0
outputs = 10.0
[calibration.instructions.network]
calls = 50.0
inputs = 1.0
"""


# --- the fit ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["conv2d", "depthwise_conv2d", "add", "max_pool", "concat", "batch_norm",
                                  "global_avg_pool", "relu"])
def test_fit_recovers_known_coefficients(kind):
    """Counts made exactly from known non-negative coefficients (some zero) of the kind's
    features: the fit gives those coefficients back, and 0 for the features the kind does not use."""
    rng = np.random.default_rng(7)
    used = KIND_FEATURES[kind]
    truth = {name: (0.0 if i % 3 == 2 else float(rng.uniform(0.5, 40.0))) for i, name in enumerate(used)}
    truth["calls"] = 300.0
    features = rng.uniform(1, 5000, size=(60, len(FEATURES)))
    features[:, FEATURES.index("calls")] = 1.0
    counts = features @ np.array([truth.get(name, 0.0) for name in FEATURES])
    coefficients, fit = fit_kind(features, counts, used)
    for name in FEATURES:
        assert coefficients[name] == pytest.approx(truth.get(name, 0.0), rel=1e-6, abs=1e-6), name
    assert fit["probes"] == 60 and fit["worst_relative_error"] < 1e-9


def test_fit_keeps_coefficients_non_negative():
    """Counts that fall with a feature (an impossible kernel) get coefficient 0 there, not < 0."""
    x = np.zeros((20, len(FEATURES)))
    x[:, 0] = 1.0
    x[:, 1] = np.arange(1, 21) * 100.0
    coefficients, _ = fit_kind(x, 5000.0 - x[:, 1], ("calls", "macs"))
    assert coefficients["macs"] == 0.0 and coefficients["calls"] > 0


# --- the calibrated latency ------------------------------------------------------------------------
def test_calibrated_board_latency_by_hand(tmp_path):
    """8x8x3 input, conv2d 3x3 to 4 channels (SAME), relu (fused: free).
    Filter 3*3*3 = 27 values, rounded up to 28; filter_macs = 64 pixels * 4 channels * 28 = 7168;
    outputs = 256. conv: 100 + 2 * 7168 + 10 * 256 = 16996 instructions; network: 50 + 192 input
    elements = 242. Cycles (1.5 per instruction): 1.5 * 17238 = 25857; at 10 MHz: 2.5857 ms;
    energy 2.5857 ms * 20 mW = 0.051714 mJ. Without the calibration: 6912 MACs / 0.5 = 13824
    cycles = 1.3824 ms."""
    path = tmp_path / "hand.toml"
    path.write_text(BOARD + CALIBRATION)
    g = GraphBuilder((8, 8, 3))
    arch = g.build(g.relu(g.conv2d(g.input, 4, kernel=3)))
    board = load_board(path)
    assert latency_ms(arch, board) == pytest.approx(2.5857)
    assert energy_mj(arch, board) == pytest.approx(0.051714)
    (tmp_path / "plain.toml").write_text(BOARD)
    assert load_board(tmp_path / "plain.toml").calibration is None
    assert latency_ms(arch, load_board(tmp_path / "plain.toml")) == pytest.approx(1.3824)


def test_kind_without_coefficients_keeps_the_board_rate(tmp_path):
    """1x1x16 input, flatten, dense to 4 units: 64 MACs; the calibration has no dense, so its rate
    gives 64 / 0.5 = 128 cycles; the network overhead 50 + 16 instructions * 1.5 = 99 cycles;
    227 cycles at 10 MHz = 0.0227 ms."""
    path = tmp_path / "hand.toml"
    path.write_text(BOARD + CALIBRATION)
    g = GraphBuilder((1, 1, 16))
    arch = g.build(g.dense(g.flatten(g.input), 4))
    assert latency_ms(arch, load_board(path)) == pytest.approx(0.0227)


def test_bad_calibration_is_one_clear_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(BOARD + CALIBRATION.replace("outputs = 10.0", "outputs = -1.0"))
    with pytest.raises(TinyevoError, match="outputs must be a non-negative number"):
        load_board(path)
    path.write_text(BOARD + CALIBRATION.replace("outputs = 10.0", "colour = 1.0"))
    with pytest.raises(TinyevoError, match="must be a table of the features"):
        load_board(path)


def test_written_board_file_reads_back_and_replaces_an_old_calibration(tmp_path):
    table = {"core": "cortex-m4", "cycles_per_instruction": 1.0, "probes": 3, "features": list(FEATURES),
             "instructions": {"conv2d": {"calls": 12.5, "macs": 1.25}, "network": {"calls": 7.0}},
             "residuals": {"conv2d": {"probes": 3, "median_relative_error": 0.5}}}
    once = calibrate.board_text_with(BOARD, table)
    twice = calibrate.board_text_with(once, dict(table, probes=4))
    assert twice.splitlines().count("[calibration]") == 1
    data = tomllib.loads(twice)
    assert data["calibration"]["probes"] == 4 and data["name"] == "Hand"
    path = tmp_path / "cal.toml"
    path.write_text(twice)
    assert load_board(path).calibration["instructions"]["conv2d"] == {"calls": 12.5, "macs": 1.25}


def test_instructions_go_to_the_node_whose_cost_they_are():
    """conv -> batch norm (folded) -> relu (fused) is the conv's; the quantizer's partial sum of a
    three-input add is the add's; a requantization for a concat is the concat's."""
    g = GraphBuilder((4, 4, 2))
    a = g.relu(g.batch_norm(g.conv2d(g.input, 4, kernel=1)))
    s = g.add(a, g.conv2d(g.input, 4, kernel=1), g.conv2d(g.input, 4, kernel=3))
    arch = g.build(g.concat(s, a))
    spent = calibrate.attribute(arch, ["relu_1", "conv2d_2", "conv2d_3", "add_1:partial1", "add_1",
                                       "relu_1:requantized_for:concat_1", "concat_1"],
                                [100, 20, 30, 5, 6, 7, 8])
    assert spent == {"conv2d_1": 100, "conv2d_2": 20, "conv2d_3": 30, "add_1": 11, "concat_1": 15}


def test_features_count_the_padding_by_hand():
    """4x4 input, depthwise 3x3 SAME stride 1: along each axis the outputs 0 and 3 see 2 of 3 taps
    inside, 1 and 2 see 3: 10 taps per axis, 100 per channel pair of positions; 2 channels:
    valid_macs 200 of macs 4*4*2*9 = 288."""
    g = GraphBuilder((4, 4, 2))
    arch = g.build(g.conv2d(g.input, 2, kernel=3, groups=2))
    features = dict(zip(FEATURES, op_features(arch, arch.nodes[0])))
    assert features["macs"] == 288 and features["valid_macs"] == 200 and features["valid_taps"] == 100


def _features(arch, name):
    return dict(zip(FEATURES, op_features(arch, arch.by_name[name])))


def test_features_follow_the_kernel_paths_by_hand():
    """6x6 maps. An unfolded batch norm runs as a 1x1 depthwise conv: 8 channels take the blocks of
    four (generic_outputs 0), 6 do not (generic_outputs 6*6*6 = 216). A concat of the input (a
    range of its own, the only one: taken as the concat's), a max pool of it (the input's scale:
    requantized, 6*6*3 = 108 elements) and a conv only the concat reads (adopting the concat's
    scale: copied). A concat of two adds (ranges of their own): the smaller, 6*6*2 = 72 elements,
    is rescaled. A global pool of 6 channels: the two channels past the last four one at a time,
    36 * 2 = 72 generic_inputs; of 8 channels: the blocks, 0."""
    g = GraphBuilder((6, 6, 3))
    eight = g.batch_norm(g.relu(g.conv2d(g.input, 8, kernel=1)))
    six = g.batch_norm(g.relu(g.conv2d(g.input, 6, kernel=1)))
    joined = g.concat(g.input, g.max_pool(g.input, kernel=3, stride=1, padding="same"),
                      g.conv2d(g.input, 4, kernel=1))
    sums = g.concat(*(g.add(g.conv2d(g.input, c, kernel=1), g.conv2d(g.input, c, kernel=1)) for c in (4, 2)))
    pooled = [g.global_avg_pool(eight), g.global_avg_pool(six)]
    arch = g.build(g.concat(g.flatten(g.global_avg_pool(joined)), g.flatten(g.global_avg_pool(sums)),
                            *map(g.flatten, pooled)))
    assert _features(arch, eight)["generic_outputs"] == 0
    assert _features(arch, six)["generic_outputs"] == 216
    assert lowering(arch).requantized[joined] == (1, 2, 0)
    assert _features(arch, joined)["requantized_inputs"] == 108 and _features(arch, joined)["rescaled_inputs"] == 0
    assert _features(arch, joined)["inputs"] == 360 and _features(arch, sums)["rescaled_inputs"] == 72
    assert _features(arch, pooled[0])["generic_inputs"] == 0 and _features(arch, pooled[1])["generic_inputs"] == 72


def test_lowering_by_hand():
    """relu after a conv nothing else reads: fused (free); relu of the input, and relu of a conv
    the add also reads: standalone kernels (kind relu). Two layers of one shape share one C
    function (shared_outputs = outputs), a layer of its own does not; a global pool of a 1x1 map
    is an alias (free)."""
    g = GraphBuilder((4, 4, 2))
    fused = g.relu(g.conv2d(g.input, 4, kernel=1))
    alone = g.relu(g.input)
    read_twice = g.conv2d(g.input, 4, kernel=1)
    shared = g.relu(read_twice)
    x = g.add(fused, shared, read_twice)
    one = g.conv2d(g.concat(x, alone), 8, kernel=4, padding="valid")
    arch = g.build(g.flatten(g.global_avg_pool(one)))
    kinds = {node.name: calibration_kind(arch, node) for node in arch.live_nodes()}
    assert kinds[fused] == "free" and kinds[alone] == "relu" and kinds[shared] == "relu"
    assert kinds[[n.name for n in arch.live_nodes() if n.op == "global_avg_pool"][0]] == "free"
    conv1, conv2 = fused.replace("relu", "conv2d"), read_twice
    assert _features(arch, conv2)["shared_outputs"] == 64 and _features(arch, conv1)["shared_outputs"] == 64
    assert _features(arch, one)["shared_outputs"] == 0


@pytest.mark.parametrize("space", sorted(calibrate.NETWORK_SPACES))
def test_lowering_matches_the_int8_graph(space):
    """The replayed fold and quantizer rules (``lowering``) against the int8 graph of seeded samples
    of each space: exactly the standalone relu / relu6 ops the graph has are costed, and a concat
    input the quantizer requantizes (a QUANTIZE for it) is one ``lowering`` marks."""
    from tinyevo.spaces import create_space
    built = create_space(space, **calibrate.NETWORK_SPACES[space])
    for seed in (1, 2, 3, 4):
        arch = built.decode(built.sample(np.random.default_rng(seed)))
        qmodel, _ = calibrate.quantized(arch, seed)
        lowered = lowering(arch)
        standalone = {n.name for n in arch.live_nodes() if n.op in ("relu", "relu6") and n.name not in lowered.free}
        assert standalone == {op.name for op in qmodel.ops if op.kind in ("relu", "relu6")}, seed
        for op in qmodel.ops:
            if op.kind == "quantize" and calibrate.REQUANTIZED in op.name:
                source, concat = op.name.split(calibrate.REQUANTIZED)
                flags = dict(zip(arch.by_name[concat].inputs, lowered.requantized[concat]))
                assert flags.get(source, True), (seed, op.name)


# --- the command -----------------------------------------------------------------------------------
def test_calibrate_bad_inputs_are_one_line(capsys, monkeypatch):
    assert main(["calibrate", "--board", "no-such-board"]) == 2
    assert "unknown board 'no-such-board'" in capsys.readouterr().err
    monkeypatch.setattr(mcu.shutil, "which", lambda name: "/usr/bin/" + name)
    assert main(["calibrate", "--board", "stm32f746"]) == 2  # a Cortex-M7: no emulated core yet
    assert "no emulated core 'cortex-m7'" in capsys.readouterr().err
    monkeypatch.setattr(mcu.shutil, "which", lambda name: None)
    assert main(["calibrate", "--board", "nrf52840"]) == 2
    assert "apt-get install" in capsys.readouterr().err


def test_each_shipped_board_names_the_core_it_is_measured_on(tmp_path):
    """The Cortex-M3 and M33 boards run on their own emulated cores (QEMU mps2-an385, mps2-an505),
    the M4F boards on the M4; a core without an emulator is one clear error."""
    cores = {name: calibrate.emulated_core(load_board(name)) for name in
             ("STM32F103C8", "nRF5340", "nRF52840", "STM32L4R5ZI")}
    assert cores == {"STM32F103C8": "cortex-m3", "nRF5340": "cortex-m33", "nRF52840": "cortex-m4",
                     "STM32L4R5ZI": "cortex-m4"}
    assert {mcu.CORES[core].machine for core in cores.values()} == {"mps2-an385", "mps2-an505", "mps2-an386"}
    with pytest.raises(TinyevoError, match="no emulated core 'cortex-m7'"):
        mcu.build_mcu(tmp_path, np.zeros((1, 2, 2, 1), np.int8), core="cortex-m7")


def test_measure_finalists_on_a_board_without_emulator_fails_before_the_search(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["search", "--space", "chain", "--board", "stm32h743", "--budget", "2",
                 "--measure-finalists", "--no-progress", "--out", str(out)]) == 2
    assert "board 'STM32H743' (Cortex-M7) has no emulated core" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())  # nothing trained, nothing written


def test_list_boards_names_each_boards_emulator(capsys):
    assert main(["list", "boards", "--json"]) == 0
    rows = {row["name"]: row["emulated"] for row in json.loads(capsys.readouterr().out)}
    assert rows["STM32F103C8"] == "cortex-m3 (mps2-an385)" and rows["nRF5340"] == "cortex-m33 (mps2-an505)"
    assert rows["nRF52840"] == "cortex-m4 (mps2-an386)" and rows["STM32F746"] == "-"


# --- the emulator ----------------------------------------------------------------------------------
def _require_toolchain() -> None:
    missing = mcu.mcu_missing()
    if missing and os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"Cortex-M toolchain missing ({', '.join(missing)}) under CI=true")
    if missing:
        pytest.skip(f"Cortex-M toolchain missing ({', '.join(missing)}); install: {mcu.INSTALL_HINT}")


def test_an_op_counts_the_same_in_a_network_as_alone(tmp_path):
    """A 3x3 conv and a depthwise 3x3 conv measured alone, then one after the other. The conv is
    first in both (same seed: same weights, inputs and quantization), so it counts the same to
    one tick; the depthwise conv reads another tensor, whose quantization picks the requantization
    path, so within 15 %."""
    _require_toolchain()
    first = GraphBuilder((8, 8, 4), name="first")
    first = first.build(first.relu(first.conv2d(first.input, 8, kernel=3)))
    second = GraphBuilder((8, 8, 8), name="second")
    second = second.build(second.conv2d(second.input, 8, kernel=3, groups=8))
    both = GraphBuilder((8, 8, 4), name="both")
    both = both.build(both.conv2d(both.relu(both.conv2d(both.input, 8, kernel=3)), 8, kernel=3, groups=8))
    alone = [calibrate.measure(a, tmp_path / a.name, 3).ops for a in (first, second)]
    together = calibrate.measure(both, tmp_path / "both", 3)
    # the counts are exact to one SysTick tick (40 instructions; tinyevo.deploy.codegen.mcu)
    assert abs(together.ops["conv2d_1"] - alone[0]["conv2d_1"]) <= 40
    assert together.ops["conv2d_2"] == pytest.approx(alone[1]["conv2d_1"], rel=0.15)
    assert together.instructions == sum(together.ops.values()) + together.network
    unprofiled = calibrate.measure(both, tmp_path / "plain", 3, profile=False).instructions
    assert unprofiled <= together.instructions  # the marks cost a little


@pytest.mark.parametrize("board, core, machine", [("stm32f103c8", "cortex-m3", "mps2-an385"),
                                                  ("nrf5340", "cortex-m33", "mps2-an505")])
def test_calibrate_measures_on_the_boards_own_core(board, core, machine, tmp_path, monkeypatch):
    """The probes of a Cortex-M3 or M33 board go to that emulated core, and the board file written
    says which core and emulator (the measurements are stand-ins: 100 instructions an op)."""
    monkeypatch.setattr(mcu.shutil, "which", lambda name: "/usr/bin/" + name)
    cores = []

    def measure(arch, work, seed, core="cortex-m4", **_):
        cores.append(core)
        ops = {node.name: 100 for node, _ in calibrate.costed_ops(arch)}
        return calibrate.Measurement(arch.name, 100 * len(ops) + 10, ops, 10)
    monkeypatch.setattr(calibrate, "measure", measure)
    calibrate.calibrate_board(board, tmp_path / "out.toml", 13, 0, progress=lambda line: None)
    assert cores == [core] * 17  # 13 probes, 13 // 3 networks
    written = load_board(tmp_path / "out.toml")
    assert written.calibration["core"] == core
    assert written.calibration["emulator"] == f"qemu-system-arm -M {machine} -icount shift=0"


@pytest.mark.slow
def test_calibrate_command_writes_a_board_the_search_reads(tmp_path, capsys):
    """13 probes (one per kind) and 13 // 3 = 4 network probes on the emulator: the board file
    written is the shipped one plus a [calibration] of 17 probes on the Cortex-M4, and a dense layer's latency comes from it: its
    predicted instructions over the clock (64 MHz), not the MACs-per-cycle rate."""
    _require_toolchain()
    out = tmp_path / "nrf.toml"
    assert main(["calibrate", "--board", "nrf52840", "--probes", "13", "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    board = load_board(out)
    assert board.name == "nRF52840" and board.clock_mhz == 64
    assert board.calibration["probes"] == 17 and board.calibration["core"] == "cortex-m4"
    assert {"dense", "network"} <= set(board.calibration["instructions"])
    g = GraphBuilder((1, 1, 64))
    arch = g.build(g.dense(g.flatten(g.input), 8))
    expected = calibrate.predicted_instructions(arch, board.calibration) / 64_000
    assert latency_ms(arch, board) == pytest.approx(expected)
    assert latency_ms(arch, board) != pytest.approx(latency_ms(arch, load_board("nrf52840")))


def test_show_prints_measured_beside_predicted(capsys):
    """A finalist measured at 1,600,000 instructions, 1.5 cycles each = 2,400,000 cycles: at
    64 MHz 37.5 ms, beside the predicted 40 ms (2,560,000 cycles), with 1,024 B of stack on
    12,000 B of static RAM; a record from before the stack was measured shows dashes there."""
    measured = {"core": "cortex-m4", "instructions": 1_600_000, "cycles": 2_400_000.0,
                "cycles_per_instruction": 1.5, "latency_ms": 2_400_000 / 64_000,
                "predicted_latency_ms": 40.0, "predicted_cycles": 40.0 * 64_000}
    print_measured([{"trial": 7, "measured": {**measured, "stack_bytes": 1024, "static_ram_bytes": 12_000,
                                              "ram_bytes": 13_024}},
                    {"trial": 9, "measured": measured}, {"trial": 8}])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and lines[2].split() == ["7", "cortex-m4", "1,600,000", "2,400,000",
                                                    "37.500ms", "40.000ms", "2,560,000", "1,024", "13,024"]
    assert lines[3].split()[-2:] == ["-", "-"]
