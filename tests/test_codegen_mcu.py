"""The generated C on an emulated Cortex-M4 (arm-none-eabi-gcc, QEMU mps2-an386, semihosting), and
on the Cortex-M3 (mps2-an385, no DSP extension) and Cortex-M33 (mps2-an505, Armv8-M).

Oracle: the int8 reference executor (``run_int8``, itself bit-exact with TFLM): the emulated
outputs must be bit-identical, for seeded samples of every space and a graph with every op.
Instruction counts are checked against figures outside the runner: the board's SysTick clock
(25 MHz on the AN385/AN386, so 40 instructions per tick at one instruction per virtual
nanosecond; 20 MHz, 50 per tick, on the AN505), the same count with the 24-bit counter wrapping
every few thousand instructions, and the DSP path (SMLAD in the object code) doing the same work
in fewer instructions than the portable C loops; the Cortex-M3 image has no SMLAD at all
(``arm-none-eabi-objdump``).

Without the toolchain the tests are skipped, naming what is missing, except in CI (CI=true),
where ``.ci/run`` installs it and its absence is a failure.
"""
from __future__ import annotations

import os
import re
import subprocess

import numpy as np
import pytest
import torch

from deploy_helpers import HAND_BUILT, int8_inputs, quantized_model
from tinyevo.arch import GraphBuilder
from tinyevo.deploy import run_int8
from tinyevo.deploy.codegen import mcu
from tinyevo.deploy.codegen.emit import generate_c
from tinyevo.deploy.codegen.metadata import read_metadata
from tinyevo.errors import TinyevoError
from tinyevo.spaces import create_space

torch.set_num_threads(1)
INPUTS_PER_MODEL = 4
#: Small settings of each space (as in test_tflite_export), one seeded sample each (dag, blocks,
#: densenet, nasnet, kws, tcn: three).
SPACES = {
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
    "tcn": dict(input_shape=(1, 40, 1), blocks=(1, 2, 3), kernels=(3, 5), dilations=(1, 2, 4),
                channels=(4, 8), pools=(1, 2)),
}


def _require_toolchain() -> None:
    missing = mcu.mcu_missing()
    if not missing:
        return
    message = f"Cortex-M toolchain missing ({', '.join(missing)}); install: {mcu.INSTALL_HINT}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (.ci/run installs it under CI=true)")
    pytest.skip(message)


@pytest.fixture
def toolchain():
    _require_toolchain()


def _generated(arch, seed, tmp_path, count=INPUTS_PER_MODEL, execution="streamed"):
    _, qmodel, rng = quantized_model(arch, seed)
    x = int8_inputs(qmodel, arch, count, rng)
    generate_c(qmodel, tmp_path, execution=execution)
    return qmodel, x


#: Seed 3 of every space; the spaces of issues 15 and 17 get three samples.
SAMPLES = [(name, 3) for name in sorted(SPACES)] + [(name, seed) for name in ("dag", "blocks", "densenet", "nasnet", "kws", "tcn")
                                                   for seed in (4, 5)]


@pytest.mark.parametrize("space_name, seed", SAMPLES)
def test_space_sample_is_bit_exact_on_cortex_m4(space_name, seed, tmp_path, toolchain):
    space = create_space(space_name, **SPACES[space_name])
    arch = space.decode(space.sample(np.random.default_rng(seed)))
    qmodel, x = _generated(arch, seed, tmp_path)
    image, result = mcu.run_on_mcu(tmp_path, x)
    np.testing.assert_array_equal(result.outputs, run_int8(qmodel, x))
    assert result.instructions_per_tick == 40.0  # 1 ns per instruction, 25 MHz SysTick clock
    assert image.model_sizes.bss >= int(np.prod(qmodel.input_spec.shape))  # the arena is static
    assert image.model_sizes.text > sum(op.weights.size for op in qmodel.ops if op.weights is not None)


def test_every_op_graph_is_bit_exact_on_cortex_m4_with_and_without_dsp(tmp_path, toolchain):
    """All kernels on the core; the SMLAD path and the portable loops give the same integers,
    and SMLAD needs fewer instructions."""
    arch = HAND_BUILT["every_op"]()
    qmodel, x = _generated(arch, 7, tmp_path)
    expected = run_int8(qmodel, x)
    dsp = mcu.build_mcu(tmp_path, x, build_dir=tmp_path / "dsp")
    plain = mcu.build_mcu(tmp_path, x, build_dir=tmp_path / "plain", extra_cflags=["-DTINYEVO_NO_DSP"])
    runs = {name: mcu.run_mcu(image) for name, image in (("dsp", dsp), ("plain", plain))}
    for name, run in runs.items():
        np.testing.assert_array_equal(run.outputs, expected, err_msg=name)
    assert runs["dsp"].instructions[0] < runs["plain"].instructions[0]
    disassembly = subprocess.run(["arm-none-eabi-objdump", "-d", str(dsp.elf.parent / "tinyevo_model.o")],
                                 capture_output=True, text=True, check=True).stdout
    assert "smlad" in disassembly


def _disassembly(path) -> str:
    return subprocess.run(["arm-none-eabi-objdump", "-d", str(path)], capture_output=True, text=True,
                          check=True).stdout


#: The SysTick clock of each emulated core's QEMU board (MHz): AN385/AN386 25 MHz, AN505 20 MHz.
SYSTICK_MHZ = {"cortex-m3": 25, "cortex-m4": 25, "cortex-m33": 20}
_MNEMONIC = re.compile(r"^\s*[0-9a-f]+:\s+(?:[0-9a-f]{4}\s+){1,2}(\S+)", re.M)


@pytest.mark.parametrize("core", ["cortex-m3", "cortex-m33"])
def test_every_op_graph_and_a_space_sample_are_bit_exact_on_other_cores(core, tmp_path, toolchain):
    """Every kernel (layer by layer) and a streamed mbv2 sample on the Cortex-M3 (the portable
    loops: no DSP instruction in the image) and the Cortex-M33 (Armv8-M with the DSP extension:
    SMLAD); the instruction count is in SysTick ticks of the core's board clock."""
    arch = HAND_BUILT["every_op"]()
    qmodel, x = _generated(arch, 7, tmp_path / "every_op", count=3, execution="layer_by_layer")
    image, run = mcu.run_on_mcu(tmp_path / "every_op", x, core=core)
    np.testing.assert_array_equal(run.outputs, run_int8(qmodel, x))
    assert run.instructions_per_tick == 1000 / SYSTICK_MHZ[core]
    assert image.core == core
    mnemonics = set(_MNEMONIC.findall(_disassembly(image.elf)))
    dsp = {"smlad", "smladx", "sxtb16", "sxtab16", "smmlar", "smlabb", "ssat16", "qadd8", "sadd16",
           "ssub8", "sel"}
    if core == "cortex-m3":
        assert not mnemonics & dsp, sorted(mnemonics & dsp)
    else:
        assert "smlad" in mnemonics
    space = create_space("mbv2", **SPACES["mbv2"])
    arch = space.decode(space.sample(np.random.default_rng(3)))
    qmodel, x = _generated(arch, 3, tmp_path / "mbv2", count=2)
    _, run = mcu.run_on_mcu(tmp_path / "mbv2", x, core=core)
    np.testing.assert_array_equal(run.outputs, run_int8(qmodel, x))


def test_the_cores_are_built_for_their_own_instruction_sets(tmp_path, toolchain):
    """The same library's object for each core: the M4 and M33 builds use SMLAD, the M3's has no
    SMLAD (gcc would reject it for Armv7-M); the object records the architecture it was built for
    (``readelf -A``: Tag_CPU_arch v7 for the M3 and M4, v8-M.mainline for the M33)."""
    arch = HAND_BUILT["every_op"]()
    _, x = _generated(arch, 7, tmp_path, count=1)
    arches = {}
    for core in mcu.EMULATED_CORES:
        image = mcu.build_mcu(tmp_path, x, build_dir=tmp_path / core, core=core)
        model = image.elf.parent / "tinyevo_model.o"
        smlad = "smlad" in _MNEMONIC.findall(_disassembly(model))
        assert smlad == (core != "cortex-m3") == mcu.CORES[core].dsp, core
        attributes = subprocess.run(["arm-none-eabi-readelf", "-A", str(model)], capture_output=True,
                                    text=True, check=True).stdout
        arches[core] = re.search(r"Tag_CPU_arch: (\S+)", attributes).group(1)
    assert arches == {"cortex-m3": "v7", "cortex-m4": "v7E-M", "cortex-m33": "v8-M.mainline"}


def test_a_core_without_an_emulator_is_one_clear_error(tmp_path):
    with pytest.raises(TinyevoError, match="no emulated core 'cortex-m0plus'.*cortex-m3, cortex-m4, cortex-m33"):
        mcu.build_mcu(tmp_path, np.zeros((1, 2, 2, 1), np.int8), core="cortex-m0plus")


def test_pools_are_bit_exact_on_cortex_m4_with_and_without_dsp(tmp_path, toolchain):
    """Four channels a word (tinyevo_pool_max4: SSUB8/SEL maxima; tinyevo_pool_sum4: SXTAB16
    sums) and the portable loops; in the profiled build every pool layer with a four-channel word
    (the channel-by-channel max_pool_2d / average_pool_2d on six channels, pool_2d_block4 on four)
    takes fewer instructions with the words: each template's own layers take the DSP path."""
    arch = HAND_BUILT["pools"]()
    qmodel, x = _generated(arch, 3, tmp_path, count=3, execution="layer_by_layer")
    expected = run_int8(qmodel, x)
    runs, layers = {}, {}
    for name, flags in (("dsp", []), ("plain", ["-DTINYEVO_NO_DSP"])):
        runs[name] = mcu.run_mcu(mcu.build_mcu(tmp_path, x, build_dir=tmp_path / name, extra_cflags=flags))
        np.testing.assert_array_equal(runs[name].outputs, expected, err_msg=name)
        profile = mcu.run_mcu(mcu.build_mcu(tmp_path, x[:1], profile=True, build_dir=tmp_path / f"{name}_profile",
                                            extra_cflags=flags))
        np.testing.assert_array_equal(profile.outputs, expected[:1], err_msg=f"{name} profiled")
        layers[name] = [(layer["function"], layer["instructions"]) for layer in profile.layers]
    assert runs["dsp"].instructions[0] < runs["plain"].instructions[0]
    faster = {function.rsplit("_", 1)[0] for (function, dsp), (_, plain) in zip(layers["dsp"], layers["plain"])
              if "pool" in function and dsp < plain}
    assert {"max_pool_2d", "average_pool_2d", "pool_2d_block4"} <= faster, faster
    mnemonics = set(_MNEMONIC.findall(_disassembly(tmp_path / "dsp" / "tinyevo_model.o")))
    assert {"ssub8", "sel", "sxtab16"} <= mnemonics


def im2col_edges_graph():
    """Convolutions that take the two-pixel im2col kernels with each way of building a patch: one
    input channel (kernel rows gathered around the padding), rows of six values (the patch
    gathered whole), dilation, VALID padding with stride, a 1x1 conv in place over an odd number
    of pixels."""
    g = GraphBuilder((9, 7, 1), name="im2col_edges")
    x = g.relu(g.conv2d(g.input, 6, kernel=(3, 4), stride=2))
    x = g.relu(g.conv2d(x, 4, kernel=(2, 3)))
    y = g.conv2d(g.input, 2, kernel=(2, 2))
    y = g.relu(g.conv2d(y, 8, kernel=(2, 3)))
    y = g.relu(g.conv2d(y, 8, kernel=3, dilation=2))
    y = g.batch_norm(g.conv2d(y, 8, kernel=1))
    y = g.relu(g.conv2d(y, 8, kernel=3, stride=2, padding="valid"))
    return g.build(g.add(g.global_avg_pool(x), g.global_avg_pool(g.conv2d(y, 4, kernel=1))))


def test_im2col_convolutions_are_bit_exact_with_and_without_dsp(tmp_path, toolchain):
    """The int16 patches in the order SXTB16 pairs weights (DSP) and in plain order (portable)."""
    arch = im2col_edges_graph()
    qmodel, x = _generated(arch, 5, tmp_path, count=3, execution="layer_by_layer")
    source = (tmp_path / "tinyevo_model.c").read_text()
    convs = re.findall(r"^    (conv_2d\w*)\(arena", source, re.M)
    assert len(convs) == 8 and all("_im2col_" in name for name in convs)
    assert "conv_2d_in_place_im2col_0" in convs
    expected = run_int8(qmodel, x)
    for name, flags in (("dsp", []), ("plain", ["-DTINYEVO_NO_DSP"])):
        run = mcu.run_mcu(mcu.build_mcu(tmp_path, x, build_dir=tmp_path / name, extra_cflags=flags))
        np.testing.assert_array_equal(run.outputs, expected, err_msg=name)


def small_filter_graph():
    """Convolutions with few MACs per output: a strided 3x3 conv on a 3-channel image (27 values,
    rounded up to 28 with a zero weight; kernel rows gathered, padding at the bottom and right),
    1x1 convs on 8 channels (the input pixel is the patch), on 6 channels (rounded up to 8) and
    with stride 2, a dilated 1x3 conv, and a 3x3 conv of 36 values (int8 weights; the others int16)."""
    g = GraphBuilder((11, 9, 3), name="small_filters")
    x = g.relu6(g.batch_norm(g.conv2d(g.input, 8, kernel=3, stride=2)))
    y = g.batch_norm(g.conv2d(x, 6, kernel=1))
    y = g.relu(g.conv2d(y, 10, kernel=1))
    y = g.relu(g.conv2d(y, 4, kernel=1, stride=2))
    z = g.relu(g.conv2d(x, 4, kernel=(1, 3), dilation=2))
    z = g.conv2d(z, 4, kernel=3, stride=2)
    return g.build(g.concat(y, z))


def test_small_filter_convolutions_are_bit_exact_on_host_and_cortex_m4(tmp_path, toolchain):
    """int16 weights, filters rounded up to whole groups of four, the one-step requantization
    (SMMLAR) and its fallbacks (a channel with a left shift, a clamp narrower than int8), streamed
    and layer by layer, under the sanitizers on the host and with and without DSP on the core."""
    from tinyevo.deploy.codegen.host import build_host, run_host
    arch = small_filter_graph()
    _, qmodel, rng = quantized_model(arch, 4)
    convs = [op for op in qmodel.ops if op.kind == "conv_2d"]
    shift = np.array(convs[1].params["shift"], dtype=np.int64)
    shift[0] = 1  # a left shift: the lean requantization
    convs[1].params["shift"] = shift
    convs[2].params["activation_min"], convs[2].params["activation_max"] = -100, 90
    # about the same scale as a right shift of 1: every other output a tie to round away from zero
    right = -np.asarray(convs[5].params["shift"], dtype=np.int64)
    convs[5].params["multiplier"] = np.asarray(convs[5].params["multiplier"], dtype=np.int64) >> (right - 1)
    convs[5].params["shift"] = np.full_like(right, -1)
    x = int8_inputs(qmodel, arch, 8, rng)
    expected = run_int8(qmodel, x)
    for execution in ("layer_by_layer", "streamed"):
        out = tmp_path / execution
        generate_c(qmodel, out, execution=execution)
        source = (out / "tinyevo_model.c").read_text()
        if execution == "layer_by_layer":
            calls = re.findall(r"^    (conv_2d\w*)\(arena", source, re.M)
            assert len(calls) == 6 and all("_im2col_" in name for name in calls)
            fields = re.findall(r"SCALED = (\d), FULL_RANGE = (\d), WIDE = (\d)", source)
            assert [set(column) for column in zip(*fields)] == [{"0", "1"}] * 3
        got = run_host(build_host(out, sanitize=True), x)
        np.testing.assert_array_equal(got.reshape(expected.shape), expected, err_msg=f"{execution} host")
        for name, flags in (("dsp", []), ("plain", ["-DTINYEVO_NO_DSP"])):
            run = mcu.run_mcu(mcu.build_mcu(out, x, build_dir=out / name, extra_cflags=flags))
            np.testing.assert_array_equal(run.outputs, expected, err_msg=f"{execution} {name}")


@pytest.mark.parametrize("core", ["cortex-m4", "cortex-m3", "cortex-m33"])
def test_instruction_count_survives_systick_wraps(core, tmp_path, toolchain):
    """The 24-bit counter reloaded every 256 ticks (10240 instructions at 25 MHz, 12800 at the
    AN505's 20 MHz) counts what the full counter counts, up to the interrupt handler's few
    instructions per wrap."""
    space = create_space("chain", **SPACES["chain"])
    arch = space.decode(space.sample(np.random.default_rng(1)))
    qmodel, x = _generated(arch, 1, tmp_path, count=1)
    full = mcu.run_mcu(mcu.build_mcu(tmp_path, x, build_dir=tmp_path / "full", core=core))
    wrapping = mcu.run_mcu(mcu.build_mcu(tmp_path, x, build_dir=tmp_path / "wrap", core=core,
                                         extra_cflags=["-DTINYEVO_MCU_RELOAD=0xFF"]))
    assert full.instructions[0] > 10 * 256 * 1000 / SYSTICK_MHZ[core]  # at least ten wraps
    assert wrapping.instructions[0] == pytest.approx(full.instructions[0], rel=0.01)
    np.testing.assert_array_equal(wrapping.outputs, run_int8(qmodel, x))


_CALLGRAPH_NODE = re.compile(r'node: \{ title: "([^"]+)" label: "[^"]*?\\n[^"]*?\\n(\d+) bytes \((\w+)\)')
_CALLGRAPH_EDGE = re.compile(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"')


def _static_stack(callgraph_file, root: str = "tinyevo_model_run") -> int:
    """gcc's own stack analysis (``-fcallgraph-info=su``): every function's frame and the calls,
    the deepest chain from ``root`` summed (library functions such as memcpy count 0)."""
    text = callgraph_file.read_text()
    frames = {name: int(size) for name, size, kind in _CALLGRAPH_NODE.findall(text)}
    assert all(kind == "static" for _, _, kind in _CALLGRAPH_NODE.findall(text))  # no alloca, no VLA
    calls: dict[str, set[str]] = {}
    for caller, callee in _CALLGRAPH_EDGE.findall(text):
        calls.setdefault(caller, set()).add(callee)

    def depth(name: str, chain: tuple = ()) -> int:
        return frames.get(name, 0) + max((depth(c, chain + (name,)) for c in calls.get(name, ()) if c not in chain),
                                         default=0)
    assert root in frames
    return depth(root)


@pytest.mark.parametrize("execution", ["streamed", "layer_by_layer"])
@pytest.mark.parametrize("model", ["every_op", "nasnet", "mbv2", "kws"])
def test_measured_stack_matches_the_compilers_call_graph(model, execution, tmp_path, toolchain):
    """The harness's stack high-water mark (painted stack) against gcc's static analysis of the
    same object: the deepest call chain's frames, which a straight-line inference runs once. It may
    read a few bytes under it (the deepest frame's lowest slots can stay unwritten) and up to one
    exception frame plus a libc leaf over it (SysTick's 32-byte stacking and memcpy's pushes)."""
    if model == "every_op":
        arch = HAND_BUILT["every_op"]()
    else:
        space = create_space(model, **SPACES[model])
        arch = space.decode(space.sample(np.random.default_rng(3)))
    qmodel, x = _generated(arch, 3, tmp_path, count=1, execution=execution)
    image = mcu.build_mcu(tmp_path, x, extra_cflags=["-fcallgraph-info=su"])
    run = mcu.run_mcu(image)
    np.testing.assert_array_equal(run.outputs, run_int8(qmodel, x))
    static = _static_stack(image.elf.parent / "tinyevo_model.ci")
    assert static > 0 and run.stack_window_bytes > 16 * static
    assert static - 16 <= run.stack_bytes <= static + 64, (run.stack_bytes, static)


def test_profiled_build_counts_each_op(tmp_path, toolchain):
    space = create_space("chain", **SPACES["chain"])
    arch = space.decode(space.sample(np.random.default_rng(5)))
    qmodel, x = _generated(arch, 5, tmp_path / "streamed", count=2)
    if read_metadata(tmp_path / "streamed" / "metadata.json")["execution"]["streamed_ops"]:
        with pytest.raises(TinyevoError, match="layer-by-layer"):
            mcu.build_mcu(tmp_path / "streamed", x, profile=True)
    qmodel, x = _generated(arch, 5, tmp_path, count=2, execution="layer_by_layer")
    image, result = mcu.run_on_mcu(tmp_path, x, profile=True)
    np.testing.assert_array_equal(result.outputs, run_int8(qmodel, x))
    assert [layer["function"] for layer in result.layers] == image.functions
    spent = sum(layer["instructions"] for layer in result.layers)
    assert 0.8 * result.instructions[0] <= spent <= result.instructions[0]
    convs = [layer for layer in result.layers if layer["macs"] > 0]
    assert convs and all(layer["instructions"] > 0 for layer in convs)


def test_missing_toolchain_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(mcu.shutil, "which", lambda name: None)
    assert not mcu.mcu_available()
    with pytest.raises(TinyevoError, match="apt-get install"):
        mcu.build_mcu(tmp_path, np.zeros((1, 2, 2, 1), np.int8))


def test_profiled_source_marks_every_op():
    source = "\n".join(["static void layer0_conv_2d(const int8_t *a, int8_t *b) {}",
                        "int tinyevo_model_run(const int8_t *input, int8_t *output)", "{",
                        "    int8_t *arena = tinyevo_arena.bytes;", "    memcpy(arena + 0, input, 4);",
                        "    layer0_conv_2d(arena + 0, arena + 4);", "    /* r: reshaped in place */",
                        "    layer2_add(arena + 4, arena + 0, arena + 8);",
                        "    layer0_conv_2d(arena + 8, arena + 0);",
                        "    memcpy(output, arena + 8, 4);", "    return 0;", "}"])
    text = mcu.profiled_source(source, ["layer0_conv_2d", "layer1_reshape", "layer2_add", "layer0_conv_2d"])
    body = text.split("{\n", 2)[-1].splitlines()
    assert body[2:11] == ["    tinyevo_mcu_mark(0);", "    layer0_conv_2d(arena + 0, arena + 4);",
                          "    /* r: reshaped in place */", "    tinyevo_mcu_mark(1);",
                          "    tinyevo_mcu_mark(2);", "    layer2_add(arena + 4, arena + 0, arena + 8);",
                          "    tinyevo_mcu_mark(3);", "    layer0_conv_2d(arena + 8, arena + 0);",
                          "    tinyevo_mcu_mark(4);"]
    with pytest.raises(TinyevoError):
        mcu.profiled_source("int main(void)\n{\n}\n", ["layer0_conv_2d"])


# --- the benchmark's live-set lower bound (benchmarks/deploy.py) ----------------------------------
def _bench():
    import sys
    from pathlib import Path
    folder = str(Path(__file__).resolve().parent.parent / "benchmarks")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    import deploy
    return deploy


def _enumerated_bound(qmodel) -> int:
    """Every topological order tried, the live set of each step recomputed from scratch."""
    kinds = {op.name: op.kind for op in qmodel.ops}
    readers = {}
    for op in qmodel.ops:
        for source in op.inputs:
            readers.setdefault(source, []).append(op.name)
    view = {op.name: op.inputs[0] for op in qmodel.ops
            if op.kind == "reshape" or (op.kind == "quantize" and op.name != qmodel.output and readers.get(op.name)
                                        and all(kinds[r] == "concatenation" for r in readers[op.name]))}

    def root(t):
        return root(view[t]) if t in view else t
    ops = {op.name: [root(s) for s in op.inputs] for op in qmodel.ops if op.name not in view}
    size = {t: int(np.prod(qmodel.tensors[t].shape[1:])) for t in qmodel.tensors}
    best = [None]

    def visit(done, order_peak):
        if best[0] is not None and order_peak >= best[0]:
            return
        if len(done) == len(ops):
            best[0] = order_peak
            return
        for name, sources in ops.items():
            if name in done or any(s in ops and s not in done for s in sources):
                continue
            after = done | {name}
            written = {root(qmodel.input)} | after
            live = {t for t in written if t in sources or t == name or t == root(qmodel.output)
                    or any(r not in after for r in ops if t in ops[r])}
            visit(after, max(order_peak, sum(size[t] for t in live)))
    visit(frozenset(), 0)
    return best[0]


@pytest.mark.parametrize("name", ["multi_reader", "every_op", "input_concat"])
def test_live_set_lower_bound_agrees_with_enumerating_orders(name):
    _, qmodel, _ = quantized_model(HAND_BUILT[name](), 0)
    assert _bench().live_set_lower_bound(qmodel) == _enumerated_bound(qmodel)


def test_live_set_lower_bound_of_resnet8_is_three_feature_maps():
    """In the first stack the block input (kept for the shortcut), the first conv's output and the
    second conv's output coexist: 3 x 32 x 32 x 16 bytes, whatever the order."""
    from tinyevo.zoo import MODELS
    _, qmodel, _ = quantized_model(MODELS["resnet8"](), 0, calibration_count=2)
    assert _bench().live_set_lower_bound(qmodel) == 3 * 32 * 32 * 16


def depthwise_pool_graph():
    """The depthwise, pooling and add kernels of issue 20: depthwise 3x3, 5x5 and 7x7 convs in place
    (stride 1: the SMLAD pixel pairs, and a row's odd last pixel, of eleven; stride 2), four-channel
    ones not in place (their input is read twice; padded input, and SAME with VALID), a 1x1 one (an
    unfolded batch norm), the
    generic kernel (six channels; a depth multiplier of 2), max and average pools of four
    channels (SAME and VALID, padded and not) and of six, and adds."""
    g = GraphBuilder((13, 11, 4), name="depthwise_pool")
    x = g.relu(g.conv2d(g.input, 8, kernel=1))
    a = g.relu(g.conv2d(x, 8, kernel=3, groups=8))
    a = g.relu(g.conv2d(a, 8, kernel=5, groups=8))
    a = g.relu(g.conv2d(a, 8, kernel=7, groups=8))
    a = g.relu(g.conv2d(a, 8, kernel=3, stride=2, groups=8))
    b = g.relu(g.conv2d(x, 8, kernel=5, stride=2, groups=8))
    b = g.add(b, g.conv2d(g.max_pool(x, kernel=3, stride=2, padding="same"), 8, kernel=1))
    c = g.conv2d(b, 8, kernel=3, padding="valid", groups=8)
    c = g.batch_norm(g.add(c, g.avg_pool(b, kernel=3, stride=1, padding="valid")))
    d = g.avg_pool(g.relu(g.conv2d(b, 8, kernel=3, groups=8)), kernel=3, stride=1, padding="same")
    e = g.conv2d(g.relu(g.conv2d(b, 6, kernel=1)), 6, kernel=3, groups=6)
    e = g.conv2d(g.max_pool(g.avg_pool(e, kernel=3, stride=1, padding="same"), kernel=2), 12, kernel=3,
                 groups=6)
    head = g.concat(g.global_avg_pool(a), g.global_avg_pool(c), g.global_avg_pool(d), g.global_avg_pool(e))
    return g.build(head)


def streamed_depthwise_graph():
    """Depthwise convs (stride 1 and 2) in a streamed prefix: run row by row, their input rows in a
    ring buffer."""
    g = GraphBuilder((24, 20, 3), name="streamed_depthwise")
    x = g.relu(g.conv2d(g.input, 8, kernel=3, stride=2))
    x = g.relu(g.conv2d(x, 8, kernel=3, groups=8))
    x = g.relu(g.conv2d(x, 16, kernel=1))
    x = g.relu(g.conv2d(x, 16, kernel=3, stride=2, groups=16))
    x = g.relu(g.conv2d(x, 32, kernel=1))
    return g.build(g.global_avg_pool(x))


def _variants(source: str) -> set[str]:
    """The kernel variants a generated source calls, with their compile-time choices."""
    found = set(re.findall(r"^    ((?:depthwise_conv_2d|pool_2d|average_pool_2d|max_pool_2d|add)\w*?)_\d+\(",
                           source, re.M))
    for name, fields in (("requant", r"REQUANT = (\d)"), ("padded", r"PADDED = (\d)"),
                         ("pairs", r"PAIRS = (\d)"), ("pair_tail", r"PAIR_TAIL = (\d)"), ("max", r"MAX = (\d)"),
                         ("add_scaled", r"SIZE = \d+, SCALED = (\d)")):
        found |= {f"{name}={value}" for value in re.findall(fields, source)}
    # depthwise_conv_2d_block4 without a padded copy: over whole input rows, or a streamed ring's
    found |= {f"unpadded_contiguous={value}" for value in
              re.findall(r"CONTIGUOUS = (\d) };\n(?:.*\n){1,4}?\s*enum { PADDED = 0,", source)}
    return found


def test_depthwise_pool_and_add_kernels_are_bit_exact_on_host_and_cortex_m4(tmp_path, toolchain, monkeypatch):
    """Every path of the depthwise, pooling and add kernels, forced where the seeded model does not
    take it (a channel with a left shift: the lean requantization; a multiplier of INT32_MIN: TFLM's
    steps; an add whose output shift is beyond the one-step rounding; no stack for padded planes),
    layer by layer and streamed, under the sanitizers on the host and with and without DSP on the
    core, against the int8 reference executor."""
    from tinyevo.deploy.codegen.host import build_host, run_host
    from tinyevo.deploy.codegen.kernels import DepthwiseConv2D
    arch = depthwise_pool_graph()
    _, qmodel, rng = quantized_model(arch, 6)
    depthwise = [op for op in qmodel.ops if op.kind == "depthwise_conv_2d" and tuple(op.attrs["kernel"]) == (3, 3)]
    shift = np.array(depthwise[0].params["shift"], dtype=np.int64)
    shift[1] = 1  # a left shift: tinyevo_output_lean
    depthwise[0].params["shift"] = shift
    multiplier = np.array(depthwise[1].params["multiplier"], dtype=np.int64)
    multiplier[2] = np.iinfo(np.int32).min  # tinyevo_output, TFLM's saturating steps
    depthwise[1].params["multiplier"] = multiplier
    adds = [op for op in qmodel.ops if op.kind == "add"]
    adds[0].params["output_shift"] = adds[0].params["output_shift"] - 8  # past the one-step rounding
    x = int8_inputs(qmodel, arch, 6, rng)
    streamed_arch = streamed_depthwise_graph()
    _, streamed, streamed_rng = quantized_model(streamed_arch, 6)
    streamed_x = int8_inputs(streamed, streamed_arch, 3, streamed_rng)
    seen = set()
    # stack limits: whole padded inputs; only the window's rows (200 bytes); neither (the border
    # reads zero points; layer by layer, and over a streamed ring)
    for model, inputs, execution, stack in ((qmodel, x, "layer_by_layer", 4096), (qmodel, x, "streamed", 4096),
                                            (qmodel, x, "layer_by_layer", 200), (qmodel, x, "layer_by_layer", 0),
                                            (streamed, streamed_x, "streamed", 4096),
                                            (streamed, streamed_x, "streamed", 0)):
        monkeypatch.setattr(DepthwiseConv2D, "plane_stack_limit", stack)
        out = tmp_path / f"{model.name}_{execution}_{stack}"
        expected = run_int8(model, inputs)
        meta = generate_c(model, out, execution=execution).metadata
        assert model is qmodel or meta.execution["streamed_ops"], "the depthwise convs are not streamed"
        seen |= _variants((out / "tinyevo_model.c").read_text())
        got = run_host(build_host(out, sanitize=True), inputs)
        np.testing.assert_array_equal(got.reshape(expected.shape), expected, err_msg=f"{out.name} host")
        for name, flags in (("dsp", []), ("plain", ["-DTINYEVO_NO_DSP"])):
            run = mcu.run_mcu(mcu.build_mcu(out, inputs, build_dir=out / name, extra_cflags=flags))
            np.testing.assert_array_equal(run.outputs, expected, err_msg=f"{out.name} {name}")
    wanted = {"depthwise_conv_2d", "depthwise_conv_2d_block4", "depthwise_conv_2d_in_place", "pool_2d_block4",
              "average_pool_2d", "max_pool_2d", "add", "requant=0", "requant=1", "requant=2", "padded=0",
              "padded=1", "padded=2", "pairs=0", "pairs=1", "pair_tail=1", "unpadded_contiguous=0",
              "unpadded_contiguous=1", "max=0", "max=1", "add_scaled=0", "add_scaled=1"}
    assert wanted <= seen, wanted - seen


@pytest.mark.parametrize("model", ["examples/resnet8.json", "examples/ds_cnn.json", "mbv2", "chain"])
def test_deployed_flash_estimate_is_within_5_percent_of_the_compiled_library(model, tmp_path, toolchain):
    """The cost model's ``deployed_flash_bytes`` (``estimate_cost``, from the architecture alone)
    against ``arm-none-eabi-size`` of the generated library compiled for the Cortex-M4 (text +
    data of ``tinyevo_model.o``, the object that is linked), random int8 weights. Refit the
    coefficients with ``python benchmarks/deployed_flash.py --write`` when the kernels change."""
    from pathlib import Path
    from tinyevo.deploy.codegen.code_size import random_quantized_model
    from tinyevo.hardware import estimate_cost
    from tinyevo.model_file import load_architecture
    if model.endswith(".json"):
        arch = load_architecture(Path(__file__).parent.parent / model)
    else:
        options = {"mbv2": dict(input_shape=(64, 64, 3), resolutions=(48, 64), widths=(0.2, 0.3, 0.4, 0.5),
                                depths=(1, 2, 3), feature_mix_layer=False),
                   "chain": dict(input_shape=(28, 28, 1), filters=(8, 16, 24, 32, 48), kernels=(1, 3, 5),
                                 units=(16, 32, 64))}[model]
        space = create_space(model, **options)
        arch = space.decode(space.sample(np.random.default_rng(6)))
    generate_c(random_quantized_model(arch, np.random.default_rng(0)), tmp_path)
    compiled = mcu.section_sizes(mcu.compile_model(tmp_path / "tinyevo_model.c", tmp_path / "model.o",
                                                   mcu.compile_flags(tmp_path))).flash
    assert estimate_cost(arch).deployed_flash_bytes == pytest.approx(compiled, rel=0.05)
