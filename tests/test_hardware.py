"""The hardware cost model against independent figures: published model sizes, datasheets, hand sums."""
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest

from tinyevo.arch import Architecture, GraphBuilder
from tinyevo.errors import TinyevoError
from tinyevo.hardware import (Board, estimate_cost, flash_bytes, folded_params, latency_ms,
                              list_boards, load_board, macs, op_kind, peak_sram_bytes, schedule)
from tinyevo.zoo import ds_cnn, resnet8

ROOT = Path(__file__).resolve().parents[1]
KB, MB = 1024, 1024 * 1024


# --- published MLPerf Tiny figures (the oracle) ---------------------------------------------
def test_resnet8_matches_published_figures():
    arch = resnet8()
    assert macs(arch) == pytest.approx(12.50e6, rel=0.01)
    assert folded_params(arch) == 77_706
    # The residual input stays live while the two 32x32x16 convolutions run: 3 x 16384 bytes.
    assert peak_sram_bytes(arch) == 49_152


def test_ds_cnn_matches_published_figures():
    arch = ds_cnn()
    assert macs(arch) == pytest.approx(2.66e6, rel=0.01)
    assert folded_params(arch) == 22_604
    assert peak_sram_bytes(arch) == 16_000  # two 25x5x64 int8 feature maps


# --- flash and params by hand ------------------------------------------------------------------------
def two_layer_net(bias_after_pool: bool = False) -> Architecture:
    g = GraphBuilder((4, 4, 2))
    x = g.relu(g.batch_norm(g.conv2d(g.input, 3, kernel=3, bias=False)))
    x = g.flatten(g.global_avg_pool(x))
    if bias_after_pool:
        x = g.batch_norm(x)  # follows a pooling op: cannot fold
    return g.build(g.dense(x, 5, bias=True))


def test_flash_and_params_of_two_layer_net_by_hand():
    arch = two_layer_net()
    conv_weights, conv_biases = 3 * 3 * 2 * 3, 3  # the batch norm folds into a bias per channel
    dense_weights, dense_biases = 3 * 5, 5
    assert folded_params(arch) == conv_weights + conv_biases + dense_weights + dense_biases
    # int8 weights, int32 biases, int32 multiplier + int32 shift per output channel
    expected = (conv_weights * 1 + conv_biases * 4 + 3 * 8) + (dense_weights * 1 + dense_biases * 4 + 5 * 8)
    assert flash_bytes(arch) == expected == 165


def test_batch_norm_that_cannot_fold_counts_scale_and_offset():
    arch = two_layer_net(bias_after_pool=True)
    channels = 3
    assert folded_params(arch) == folded_params(two_layer_net()) + 2 * channels
    # stored as a 1x1 depthwise conv with bias: int8 weight + int32 bias + 8 quantization bytes
    assert flash_bytes(arch) == flash_bytes(two_layer_net()) + channels * (1 + 4 + 8)


def test_conv_with_its_own_bias_and_a_batch_norm_has_one_bias_per_channel():
    g = GraphBuilder((4, 4, 2))
    arch = g.build(g.batch_norm(g.conv2d(g.input, 3, kernel=1, bias=True)))
    assert folded_params(arch) == 2 * 3 + 3


# --- peak SRAM and the execution order ---------------------------------------------------------------
def two_branch_net() -> Architecture:
    """input 8x8x1 (64 B) -> two branches, each widening to 8x8x16 (1024 B) then back to 8x8x1.

    Listed breadth-first, so the listed order runs both wide convolutions before either narrow one.
    """
    g = GraphBuilder((8, 8, 1))
    a1 = g.conv2d(g.input, 16, name="a1")
    b1 = g.conv2d(g.input, 16, name="b1")
    a2 = g.conv2d(a1, 1, name="a2")
    b2 = g.conv2d(b1, 1, name="b2")
    return g.build(g.add(a2, b2, name="sum"))


def test_two_branch_best_order_found_and_naive_order_is_worse():
    arch = two_branch_net()
    # Depth first (a1, a2, b1, b2, sum): at a2 input+a1+a2 = 64+1024+64; at b1 input+a2+b1 = 1152;
    # at b2 a2+b1+b2 = 1152; at sum 3*64. Peak 1152.
    best = schedule(arch)
    assert best.peak_bytes == 64 + 1024 + 64
    assert best.search == "exhaustive"
    # Breadth first (a1, b1, a2, b2, sum): at b1 input+a1+b1 = 64+1024+1024 = 2112.
    naive = schedule(arch, order=["a1", "b1", "a2", "b2", "sum"])
    assert naive.peak_bytes == 64 + 1024 + 1024
    assert best.order.index("a2") < best.order.index("b1") or best.order.index("b2") < best.order.index("a1")


def test_in_place_ops_share_their_input_buffer_only_when_alone_to_read_it():
    g = GraphBuilder((8, 8, 2))  # 128 B
    x = g.conv2d(g.input, 4, name="wide")  # 256 B
    y = g.relu(x, name="act")
    arch = g.build(g.conv2d(y, 2, name="narrow"))  # 128 B
    # in place: wide 128+256, act 256, narrow 256+128 -> 384; own buffers: act 256+256 -> 512
    assert schedule(arch).peak_bytes == 384
    assert schedule(arch, in_place_ops=False).peak_bytes == 512
    assert schedule(arch).buffer_of["act"] == "wide"

    g = GraphBuilder((4, 4, 1))  # 16 B
    x = g.conv2d(g.input, 8, name="x")  # 128 B, read by the relu and the add
    arch = g.build(g.add(x, g.relu(x, name="r"), name="sum"))
    # the relu must not overwrite x: x, r and sum are all live at the add
    assert schedule(arch).peak_bytes == 3 * 128
    assert schedule(arch).buffer_of["r"] == "r"


def test_schedule_steps_and_lifetimes_follow_the_rules():
    s = schedule(two_branch_net(), order=["a1", "b1", "a2", "b2", "sum"])
    assert [step.node for step in s.steps] == s.order
    assert s.lifetimes()["input"] == (0, 1)  # read last by b1 at step 1
    assert s.lifetimes()["a1"] == (0, 2)  # written at step 0, read last by a2 at step 2
    assert s.lifetimes()["sum"] == (4, 4)
    assert s.steps[1].live_buffers == ("input", "a1", "b1")


def random_dag(rng: np.random.Generator) -> Architecture:
    """2-3 parallel branches of 1x1 convolutions (2 to 32 channels, some followed by a relu), concatenated."""
    g = GraphBuilder((4, 4, 1))
    ends = []
    for _ in range(rng.integers(2, 4)):
        y = g.input
        for _ in range(rng.integers(1, 3)):
            y = g.conv2d(y, int(rng.choice([2, 8, 32])), kernel=1)
            y = g.relu(y) if rng.random() < 0.3 else y
        ends.append(g.conv2d(y, int(rng.choice([1, 4])), kernel=1))
    return g.build(g.concat(*ends))


def topological_orders(arch: Architecture):
    preds = {n.name: {s for s in n.inputs if s != "input"} for n in arch.live_nodes()}

    def extend(done, order):
        if len(order) == len(preds):
            yield list(order)
        for name, needs in preds.items():
            if name not in done and needs <= done:
                yield from extend(done | {name}, order + [name])
    yield from extend(frozenset(), [])


def test_search_finds_the_lowest_peak_of_all_topological_orders():
    rng = np.random.default_rng(0)
    order_mattered = greedy_lost = 0
    for _ in range(25):
        arch = random_dag(rng)
        orders = list(itertools.islice(topological_orders(arch), 2001))
        if len(orders) > 2000:
            continue  # keep the brute force fast
        peaks = [schedule(arch, order=o).peak_bytes for o in orders]
        assert schedule(arch).peak_bytes == min(peaks)
        order_mattered += min(peaks) < max(peaks)
        greedy_lost += schedule(arch, max_states=1).peak_bytes > min(peaks)
    assert order_mattered >= 10 and greedy_lost >= 3  # the check is not vacuous


def test_search_cap_falls_back_to_greedy_with_a_note():
    arch = two_branch_net()
    s = schedule(arch, max_states=1)
    assert s.search == "greedy" and "greedy" in s.note
    assert s.peak_bytes >= schedule(arch).peak_bytes
    assert sorted(s.order) == sorted(n.name for n in arch.nodes)


def test_given_order_must_be_topological():
    with pytest.raises(TinyevoError, match="before one of its inputs"):
        schedule(two_branch_net(), order=["a2", "a1", "b1", "b2", "sum"])


# --- boards ------------------------------------------------------------------------------------------
DATASHEETS = {  # name: (SRAM bytes for the arena, flash bytes, clock MHz), from the datasheets
    "STM32F746": (320 * KB, 1 * MB, 216),
    "STM32H743": (512 * KB, 2 * MB, 480),  # the 512 KB AXI SRAM, as MCUNet counts it
    "STM32L4R5ZI": (640 * KB, 2 * MB, 120),
    "nRF52840": (256 * KB, 1 * MB, 64),
    "STM32F103C8": (20 * KB, 64 * KB, 72),  # Cortex-M3, DS5319
    "nRF5340": (512 * KB, 1 * MB, 128),  # Cortex-M33 application core, nRF5340 Product Specification
}


def test_the_required_boards_ship():
    assert set(DATASHEETS) <= set(list_boards())


@pytest.mark.parametrize("name", list_boards())
def test_board_files_load_with_datasheet_figures_and_sources(name):
    board = load_board(name)
    assert isinstance(board, Board) and board.name == name
    assert (board.sram_bytes, board.flash_bytes, board.clock_mhz) == DATASHEETS[name]
    for figure in ("clock_mhz", "sram_bytes", "flash_bytes", "active_power_mw", "macs_per_cycle"):
        assert board.sources.get(figure), f"{name}: no source for {figure}"


def test_board_names_are_case_insensitive_with_aliases():
    assert load_board("stm32f746") == load_board("STM32F746") == load_board("DISCO-F746NG")
    assert load_board("nucleo_l4r5zi").name == "STM32L4R5ZI"


def test_unknown_board_lists_the_known_ones():
    with pytest.raises(TinyevoError, match="STM32F746"):
        load_board("esp32-s3")


def test_user_board_file_by_path(tmp_path):
    text = (ROOT / "tinyevo/hardware/boards/stm32f746.toml").read_text()
    path = tmp_path / "my_board.toml"
    text = text.replace('name = "STM32F746"', 'name = "MyBoard"').replace("clock_mhz = 216", "clock_mhz = 108")
    path.write_text(text)
    board = load_board(path)
    assert board.name == "MyBoard" and board.clock_mhz == 108
    assert estimate_cost(resnet8(), str(path)).latency_ms == pytest.approx(
        2 * estimate_cost(resnet8(), "STM32F746").latency_ms)


def test_incomplete_board_file_is_a_user_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('name = "Bad"\ncore = "Cortex-M0"\nclock_mhz = 48\n')
    with pytest.raises(TinyevoError, match="missing sram_bytes"):
        load_board(path)
    with pytest.raises(TinyevoError, match="does not exist"):
        load_board(tmp_path / "absent.toml")


# --- latency and energy -------------------------------------------------------------------------------
def single_conv() -> Architecture:
    g = GraphBuilder((8, 8, 1))
    return g.build(g.conv2d(g.input, 8, kernel=3))  # 8*8*8 outputs x 9 MACs = 4608 MACs


def test_latency_of_one_conv_by_hand():
    board = load_board("STM32F746")
    expected_ms = 4608 / board.macs_per_cycle["conv2d"] / (216e6) * 1e3 + board.op_overhead_cycles / 216e3
    assert latency_ms(single_conv(), board) == pytest.approx(expected_ms, rel=1e-12)
    cost = estimate_cost(single_conv(), board)
    assert cost.energy_mj == pytest.approx(expected_ms * board.active_power_mw / 1000, rel=1e-12)


def test_latency_scales_inversely_with_clock_for_the_same_core():
    f7, h7 = load_board("STM32F746"), load_board("STM32H743")
    assert f7.macs_per_cycle == h7.macs_per_cycle and f7.elements_per_cycle == h7.elements_per_cycle
    for arch in (resnet8(), ds_cnn()):
        assert latency_ms(arch, f7) / latency_ms(arch, h7) == pytest.approx(480 / 216, rel=1e-12)


def test_op_kinds_of_ds_cnn():
    arch = ds_cnn()
    kinds = [op_kind(arch, n) for n in arch.live_nodes() if n.op in ("conv2d", "dense")]
    assert kinds == ["conv2d"] + ["depthwise_conv2d", "pointwise_conv2d"] * 4 + ["dense"]


def test_cortex_m4_rates_reproduce_the_measurements_they_were_fitted_to():
    """A calibration check (not a validation): MLPerf Tiny v0.7, X-CUBE-AI, STM32L4R5 at 120 MHz."""
    board = load_board("STM32L4R5ZI")
    assert latency_ms(resnet8(), board) == pytest.approx(1000 / 3.962, rel=0.01)
    assert latency_ms(ds_cnn(), board) == pytest.approx(1000 / 10.241, rel=0.01)


def test_cost_without_board_has_no_latency_and_serializes():
    cost = estimate_cost(ds_cnn())
    assert cost.latency_ms is None and cost.energy_mj is None
    data = json.loads(json.dumps(cost.to_dict()))
    assert {"params", "macs", "flash_bytes", "peak_sram_bytes", "latency_ms", "energy_mj"} <= set(data)
    assert cost.fits(load_board("STM32F746"))


# --- examples ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, build", [("resnet8", resnet8), ("ds_cnn", ds_cnn)])
def test_example_files_are_the_zoo_models(name, build):
    data = json.loads((ROOT / "examples" / f"{name}.json").read_text())
    assert Architecture.from_json(data) == build()


def test_a_board_file_missing_a_key_points_to_a_template_that_loads(tmp_path):
    broken = tmp_path / "board.toml"
    broken.write_text('name = "x"\ncore = "Cortex-M4"\n')
    with pytest.raises(TinyevoError, match="missing") as raised:
        load_board(broken)
    template = re.search(r"examples/boards/\S+\.toml", str(raised.value)).group(0)
    board = load_board(ROOT / template)  # the file the message names exists and is complete
    assert board.sram_bytes == 98_304 and board.core == "Cortex-M4F"


def test_cost_has_both_flash_figures():
    """``flash_bytes`` stays the weights count (MLPerf Tiny's 81,512 B for ResNet-8, an
    independent published figure); ``deployed_flash_bytes`` is the generated library's estimate
    (``deployed_flash_bytes``), which holds those constants and the code besides."""
    from tinyevo.hardware.deployed_flash import deployed_flash_bytes, deployed_flash_parts
    from tinyevo.model_file import load_architecture
    arch = load_architecture(Path(__file__).resolve().parents[1] / "examples" / "resnet8.json")
    cost = estimate_cost(arch, "stm32l4r5zi")
    assert cost.flash_bytes == 81_512
    assert cost.deployed_flash_bytes == deployed_flash_bytes(arch) > cost.flash_bytes
    assert deployed_flash_parts(arch)["code"] > 0 and cost.to_dict()["deployed_flash_bytes"] == cost.deployed_flash_bytes


def test_code_bytes_fit_recovers_known_coefficients():
    """Code sizes made exactly from known non-negative per-feature bytes over sampled
    architectures of three spaces: ``fit_code_bytes`` gives those bytes back (to its 0.1-byte
    rounding) for the features the models have."""
    from tinyevo.hardware import deployed_flash
    from tinyevo.spaces import create_space
    archs = []
    for name in ("chain", "mbv2", "nb201", "densenet", "nasnet", "dag"):
        space = create_space(name)
        archs += [space.decode(space.sample(np.random.default_rng(seed))) for seed in range(6)]
    truth = {"base": 400.0, "calls": 150.0, "conv2d": 1000.0, "conv2d_direct": 2500.0, "depthwise_conv2d": 300.0,
             "depthwise_taps": 20.0, "dense": 260.0, "pool": 600.0, "add": 550.0, "concat": 700.0,
             "batch_norm": 350.0}
    code = [sum(truth.get(k, 0.0) * v for k, v in deployed_flash.code_features(a).items()) for a in archs]
    fitted = deployed_flash.fit_code_bytes(archs, code)
    present = {k for a in archs for k, v in deployed_flash.code_features(a).items() if v}
    for name in present:
        assert fitted[name] == pytest.approx(truth.get(name, 0.0), abs=0.06), name
