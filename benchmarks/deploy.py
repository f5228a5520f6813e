"""Benchmark: tinyevo's generated C against TensorFlow Lite Micro, on the host and emulated Cortex-Ms.

    python benchmarks/deploy.py [--quick] [--run RUN_DIR] [--samples-per-space 4]
                                [--cores cortex-m3 cortex-m4 cortex-m33] > deploy.json

Models: the MLPerf Tiny references ResNet-8 and DS-CNN (``examples/resnet8.json``,
``examples/ds_cnn.json``) and seeded samples of the ``chain``, ``mbv2`` and ``nb201`` spaces (MCU-
sized settings, ``SPACE_OPTIONS``), all with seeded random weights calibrated on random inputs;
with ``--run`` also the final-trained models of a search's front, with their own weights and data.
Each model is quantized once (``tinyevo.deploy.quantize``); its .tflite (``to_tflite``) goes to
TFLM and its C library (``generate_c``, in-place kernels on) to gcc and arm-none-eabi-gcc.

Per model:

- ``arena_bytes`` (the generated library's static arena, ``execution="streamed"``: the first ops
  run row by row through line buffers when that lowers the peak, MCUNetV2-style; ``execution``
  says which ops and where it cuts) vs ``tflm_arena_bytes`` (TFLM's own arena total for the same
  .tflite, ``print_allocations``), ``layer_by_layer_arena_bytes`` (whole tensors, the plan the
  search's default cost model counts) and ``arena_no_in_place_bytes`` (layer by layer without
  in-place kernels);
- ``lower_bound_bytes``: the largest set of simultaneously live tensors in the best execution
  order, computed here from the int8 graph alone (``live_set_lower_bound``: exhaustive search over
  orders; at each op its inputs, its output and every tensor still to be read are live; a reshape
  is a view, a QUANTIZE read only by concats is done inside them). In-place kernels can go below
  it, since an op that writes over its input does not hold both, and streaming far below it,
  since no tensor of the streamed prefix is ever whole;
- ``host_us`` vs ``tflm_host_us``: median over ``--rounds`` of the mean time per inference of a
  block of repeats, the generated C (gcc -O2 -march=native, its own process) and the TFLM Python
  interpreter's ``invoke`` (its C++ reference kernels) alternating, same input;
- ``flash_bytes``: text + data of the generated library compiled for Cortex-M4
  (``arm-none-eabi-size``: code and the weights as const arrays); ``weights_bytes``; ``tflite_bytes``;
- ``instructions_per_mac``: executed instructions of ``tinyevo_model_run`` on QEMU's Cortex-M4
  (``-icount``, SysTick; ``tinyevo.deploy.codegen.mcu``) per MAC; ``layers`` has every op's count
  from a profiled layer-by-layer build (streamed ops run interleaved; the kernels are the same), and ``large_conv_instructions_per_mac`` pools the conv_2d layers with at
  least ``LARGE_CONV_SHARE`` of the model's MACs (``depthwise_instructions_per_mac`` the depthwise
  ones with a window larger than 1x1);
- ``bit_exact``: host C, TFLM and each emulated core's outputs (``cortex_m3``, ``cortex_m4``,
  ``cortex_m33``) equal to the int8 reference executor's;
- ``cores``: per emulated core of ``--cores`` (default all three: the Cortex-M3 on QEMU's mps2-an385,
  no DSP extension, the portable loops; the M4 on mps2-an386; the Armv8-M Cortex-M33 on
  mps2-an505, with SMLAD), its ``bit_exact``, ``flash_bytes``, ``instructions``,
  ``instructions_per_mac``, ``large_conv_instructions_per_mac``, ``depthwise_instructions_per_mac``
  and ``stack_bytes`` (the run's stack high-water mark, measured by painting the stack:
  ``McuRun.stack_bytes``). The top-level Cortex-M figures above are the M4's (``mcu_core``);
  ``mcu_stack_bytes`` is its stack and ``mcu_ram_bytes`` the RAM the model takes there: the
  library's .data + .bss (arena included) plus that stack, which ``arena_bytes`` does not count.

``summary`` gives, per target (arena <= 0.5x TFLM, <= 1.05x lower bound, host time <= 0.5x TFLM,
<= 2 instructions per MAC on the large convolutions), how many models meet it and the geometric
mean and worst ratio; ``summary.cores`` the geometric mean instructions per MAC of each core
and how many models ran bit-exact there. Progress goes to stderr, the JSON document to stdout.
Without the ARM toolchain the Cortex-M figures are null (the summary says so).
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common import log, print_json, repo_path
from tinyevo.arch import Architecture
from tinyevo.deploy.codegen import mcu
from tinyevo.deploy.codegen.emit import generate_c
from tinyevo.deploy.codegen.host import build_host, run_host, time_host
from tinyevo.deploy.codegen.planner import plan_memory
from tinyevo.deploy.int8_reference import run_int8
from tinyevo.deploy.quantize import quantize
from tinyevo.deploy.quantized_model import QuantizedModel
from tinyevo.deploy.runtimes import run_tflm, tflm_arena_bytes
from tinyevo.deploy.tflite_writer import to_tflite
from tinyevo.errors import TinyevoError
from tinyevo.model_file import load_architecture
from tinyevo.nn.build import build, randomize_batch_norms
from tinyevo.spaces import create_space

EXAMPLES = ("examples/resnet8.json", "examples/ds_cnn.json")
#: MCU-sized settings of each space (the samples must fit a Cortex-M's SRAM and flash).
SPACE_OPTIONS = {
    "chain": dict(input_shape=(28, 28, 1), filters=(8, 16, 24, 32, 48), kernels=(1, 3, 5),
                  units=(16, 32, 64)),
    "mbv2": dict(input_shape=(64, 64, 3), resolutions=(48, 64), widths=(0.2, 0.3, 0.4, 0.5),
                 depths=(1, 2, 3), feature_mix_layer=False),
    "nb201": dict(input_shape=(32, 32, 3), channels=8, cells_per_stage=1),
}
QUICK_SPACE_OPTIONS = {
    "chain": dict(input_shape=(16, 16, 1), filters=(4, 8, 16), kernels=(1, 3, 5), units=(8, 16)),
    "mbv2": dict(input_shape=(32, 32, 3), resolutions=(32,), widths=(0.2,), depths=(1,),
                 feature_mix_layer=False),
    "nb201": dict(input_shape=(8, 8, 3), channels=4, cells_per_stage=1),
}
CALIBRATION_ROWS = 32
CHECK_INPUTS = 4  # int8 inputs compared with the reference (host and TFLM); the MCU runs 2
LARGE_CONV_SHARE = 0.05
MAX_ORDER_STATES = 500_000
TARGETS = {"arena_vs_tflm": 0.5, "arena_vs_lower_bound": 1.05, "host_time_vs_tflm": 0.5,
           "large_conv_instructions_per_mac": 2.0}


@dataclass
class Case:
    """A network to deploy: its architecture, weights and float NCHW calibration inputs."""

    name: str
    source: str
    architecture: Architecture
    module: torch.nn.Module
    calibration: np.ndarray


# --- the models ------------------------------------------------------------------------------------
def random_case(name: str, source: str, arch: Architecture, seed: int) -> Case:
    """``arch`` with seeded random weights and batch-norm statistics, calibrated on random inputs."""
    torch.manual_seed(seed)
    module = build(arch).eval()
    rng = np.random.default_rng(seed)
    randomize_batch_norms(module, rng)
    h, w, c = arch.input_shape
    calibration = rng.normal(size=(CALIBRATION_ROWS, c, h, w)).astype(np.float32)
    return Case(name, source, arch, module, calibration)


def example_cases(paths=EXAMPLES) -> list[Case]:
    return [random_case(Path(path).stem, path, load_architecture(repo_path(path)), 0) for path in paths]


def space_cases(options: dict, per_space: int) -> list[Case]:
    cases = []
    for space_name, settings in options.items():
        space = create_space(space_name, **settings)
        for seed in range(per_space):
            arch = space.decode(space.sample(np.random.default_rng(seed)))
            cases.append(random_case(f"{space_name}_seed{seed}", f"{space_name} sample, seed {seed}", arch, seed))
    return cases


def run_cases(run_dir: Path) -> list[Case]:
    """The final-trained models of a search's front, with their weights and calibration data."""
    from tinyevo.runs.export import load_run_model
    from tinyevo.runs.results import load_results

    rows = [row for row in load_results(run_dir)["front"] if row.get("weights")]
    if not rows:
        raise TinyevoError(f"{run_dir}: no front model has trained weights; finish the search first")
    cases = []
    for row in rows:
        model = load_run_model(run_dir, row["trial"])
        cases.append(Case(f"{run_dir.name}_trial{row['trial']}", f"{run_dir} trial {row['trial']}",
                          model.architecture, model.module.eval(), model.calibration))
    return cases


# --- the lower bound -------------------------------------------------------------------------------
def live_set_lower_bound(qmodel: QuantizedModel, max_states: int = MAX_ORDER_STATES) -> int | None:
    """The smallest, over execution orders, largest live set: while an op runs its inputs, its
    output and every tensor produced before and read later (or the graph output) are live.
    Exhaustive over the sets of executed ops (memoized); None past ``max_states`` sets."""
    view = {}  # tensor -> the tensor whose bytes it shares (reshape: a view; fused QUANTIZE)
    readers: dict[str, set[str]] = {}
    for op in qmodel.ops:
        for source in op.inputs:
            readers.setdefault(source, set()).add(op.name)
    kinds = {op.name: op.kind for op in qmodel.ops}
    for op in qmodel.ops:
        only_concats = readers.get(op.name) and all(kinds[r] == "concatenation" for r in readers[op.name])
        if op.kind == "reshape" or (op.kind == "quantize" and only_concats and op.name != qmodel.output):
            view[op.name] = op.inputs[0]

    def storage(tensor: str) -> str:
        while tensor in view:
            tensor = view[tensor]
        return tensor

    ops = [op for op in qmodel.ops if op.name not in view]
    index = {op.name: i for i, op in enumerate(ops)}
    size = {storage(t): int(np.prod(qmodel.tensors[t].shape[1:])) for t in qmodel.tensors}
    reads = [sorted({storage(s) for s in op.inputs}) for op in ops]
    last_readers: dict[str, int] = {}  # buffer -> bitmask of the ops that read it
    for i, sources in enumerate(reads):
        for buffer in sources:
            last_readers[buffer] = last_readers.get(buffer, 0) | (1 << i)
    needs = [sum(1 << index[storage(s)] for s in op.inputs if storage(s) in index) for op in ops]
    output = storage(qmodel.output)
    full = (1 << len(ops)) - 1
    memo: dict[int, int] = {}
    buffers = [storage(qmodel.input), *(op.name for op in ops)]
    produced_by = {storage(qmodel.input): None, **{op.name: i for i, op in enumerate(ops)}}

    def step_bytes(done: int, i: int) -> int:
        after = done | (1 << i)
        live = 0
        for buffer in buffers:
            producer = produced_by[buffer]
            if producer is not None and not (after >> producer) & 1:
                continue  # not written yet
            if buffer in reads[i] or producer == i or buffer == output \
                    or last_readers.get(buffer, 0) & ~after:
                live += size[buffer]
        return live

    def best(done: int) -> int:
        if done == full:
            return 0
        if done in memo:
            return memo[done]
        if len(memo) >= max_states:
            raise OverflowError
        result = math.inf
        for i in range(len(ops)):
            if not (done >> i) & 1 and needs[i] & done == needs[i]:
                here = step_bytes(done, i)
                if here < result:
                    result = min(result, max(here, best(done | (1 << i))))
        memo[done] = result
        return result

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(ops) + 1000))
    try:
        return int(best(0))
    except OverflowError:
        return None
    finally:
        sys.setrecursionlimit(limit)


# --- timing ----------------------------------------------------------------------------------------
def tflm_block_us(model: bytes, sample: np.ndarray, repeats: int) -> callable:
    """A function timing ``repeats`` invokes of TFLM's interpreter on ``sample``: mean microseconds."""
    from tflite_micro.python.tflite_micro import runtime

    interpreter = runtime.Interpreter.from_bytes(bytes(model), arena_size=4 << 20)
    interpreter.set_input(sample[None], 0)
    interpreter.invoke()

    def block() -> float:
        start = time.perf_counter()
        for _ in range(repeats):
            interpreter.invoke()
        return (time.perf_counter() - start) / repeats * 1e6
    return block


def compare_times(binary: Path, model: bytes, sample: np.ndarray, rounds: int,
                  block_seconds: float) -> tuple[float, float]:
    """Median over ``rounds`` of (generated C, TFLM) mean microseconds per inference, alternating."""
    c_once = time_host(binary, sample, repeats=3)
    tflm_once = tflm_block_us(model, sample, 3)()
    c_repeats = max(3, int(block_seconds * 1e6 / max(c_once, 1e-3)))
    tflm = tflm_block_us(model, sample, max(3, int(block_seconds * 1e6 / max(tflm_once, 1e-3))))
    c_times, tflm_times = [], []
    for _ in range(rounds):
        c_times.append(time_host(binary, sample, repeats=c_repeats))
        tflm_times.append(tflm())
    return statistics.median(c_times), statistics.median(tflm_times)


# --- one model -------------------------------------------------------------------------------------
def measure(case: Case, work: Path, rounds: int, block_seconds: float,
            cores: tuple[str, ...] = mcu.EMULATED_CORES) -> dict:
    started = time.time()
    qmodel = quantize(case.architecture, case.module, case.calibration)
    rng = np.random.default_rng(1)
    h, w, c = case.architecture.input_shape
    x = qmodel.input_spec.quantize(rng.normal(size=(CHECK_INPUTS, h, w, c)).astype(np.float32))
    expected = run_int8(qmodel, x)
    tflite = to_tflite(qmodel)
    out = work / case.name
    generated = generate_c(qmodel, out)
    meta = generated.metadata
    macs = int(meta.macs)
    row = {"name": case.name, "source": case.source, "macs": macs, "ops": len(meta.op_order),
           "arena_bytes": int(generated.plan.arena_bytes),
           "tflm_arena_bytes": tflm_arena_bytes(tflite),
           "execution": generated.metadata.execution,
           "layer_by_layer_arena_bytes": int(plan_memory(qmodel, execution="layer_by_layer").arena_bytes),
           "arena_no_in_place_bytes": int(plan_memory(qmodel, in_place_kernels=False,
                                                      execution="layer_by_layer").arena_bytes),
           "planner_peak_bytes": int(generated.plan.peak_bytes),
           "lower_bound_bytes": live_set_lower_bound(qmodel)}
    binary = build_host(out, opt=["-O2", "-march=native"])
    host_ok = np.array_equal(run_host(binary, x).reshape(expected.shape), expected)
    tflm_ok = np.array_equal(run_tflm(tflite, x).reshape(expected.shape), expected)
    row["host_us"], row["tflm_host_us"] = compare_times(binary, tflite, x[0], rounds, block_seconds)
    row.update(mcu_figures(out, x[:2], expected[:2], qmodel, macs, cores))
    row["weights_bytes"] = int(meta.flash_bytes)
    row["tflite_bytes"] = len(tflite)
    row["bit_exact"] = {"host": bool(host_ok), "tflm": bool(tflm_ok),
                        **{core.replace("-", "_"): ok for core, ok in row.pop("mcu_ok").items()}}
    row.update(ratios(row))
    row["seconds"] = round(time.time() - started, 1)
    return row


def mcu_figures(out: Path, x: np.ndarray, expected: np.ndarray, qmodel: QuantizedModel, macs: int,
                cores: tuple[str, ...] = mcu.EMULATED_CORES) -> dict:
    """Flash and instructions of the whole run (the library in ``out``) on each emulated core of
    ``cores``; instructions per op from a layer-by-layer build of the same model. The top-level
    figures are the Cortex-M4's (the first core when it is not measured), ``cores`` has each
    core's."""
    primary = mcu.DEFAULT_CORE if mcu.DEFAULT_CORE in cores else cores[0]
    empty = {"flash_bytes": None, "mcu_sizes": None, "mcu_instructions": None, "instructions_per_mac": None,
             "mcu_stack_bytes": None, "mcu_ram_bytes": None,
             "large_conv_instructions_per_mac": None, "depthwise_instructions_per_mac": None,
             "layers": None, "mcu_core": primary, "cores": None, "mcu_ok": {core: None for core in cores}}
    if not mcu.mcu_available() or not cores:
        return empty
    # per-op counts need the ops one after the other: the same kernels, layer by layer
    layers_out = out.parent / f"{out.name}_layer_by_layer"
    meta = generate_c(qmodel, layers_out, execution="layer_by_layer").metadata
    ops = {op.function: op for op in meta.op_order}
    figures = {}
    for core in cores:
        image = mcu.build_mcu(out, x, build_dir=out / f"mcu_{core}", core=core)
        run = mcu.run_mcu(image)
        profile = mcu.run_mcu(mcu.build_mcu(layers_out, x[:1], profile=True, core=core,
                                            build_dir=layers_out / f"mcu_{core}"))
        layers = [{**layer, "kind": ops[layer["function"]].kind,
                   "macs_per_output": layer["macs"] // max(ops[layer["function"]].output_bytes, 1)}
                  for layer in profile.layers]
        large = [layer for layer in layers
                 if layer["kind"] == "conv_2d" and layer["macs"] >= LARGE_CONV_SHARE * macs]
        # depthwise convolutions with a window (a 1x1 one with multiplier 1 is a per-channel scale)
        depthwise = [layer for layer in layers
                     if layer["kind"] == "depthwise_conv_2d" and layer["macs_per_output"] > 1]
        ok = np.array_equal(run.outputs.reshape(expected.shape), expected) and \
            np.array_equal(profile.outputs.reshape(expected[:1].shape), expected[:1])
        figures[core] = {"machine": mcu.CORES[core].machine, "dsp": mcu.CORES[core].dsp, "bit_exact": bool(ok),
                         "flash_bytes": image.model_sizes.flash, "instructions": run.instructions[0],
                         "instructions_per_mac": run.instructions[0] / macs if macs else None,
                         "large_conv_instructions_per_mac": pooled(large),
                         "depthwise_instructions_per_mac": pooled(depthwise),
                         "stack_bytes": run.stack_bytes, "image": image, "layers": layers}
    main = figures[primary]
    return {"flash_bytes": main["flash_bytes"], "mcu_sizes": main["image"].model_sizes.to_json(),
            "mcu_instructions": main["instructions"], "instructions_per_mac": main["instructions_per_mac"],
            "mcu_stack_bytes": main["stack_bytes"], "mcu_ram_bytes": main["image"].model_sizes.ram + main["stack_bytes"],
            "large_conv_instructions_per_mac": main["large_conv_instructions_per_mac"],
            "depthwise_instructions_per_mac": main["depthwise_instructions_per_mac"],
            "layers": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in layer.items()}
                       for layer in main["layers"]],
            "mcu_core": primary,
            "cores": {core: {k: (_rounded(v, 4) if isinstance(v, float) else v) for k, v in f.items()
                             if k not in ("image", "layers")} for core, f in figures.items()},
            "mcu_ok": {core: f["bit_exact"] for core, f in figures.items()}}


def pooled(layers: list[dict]) -> float | None:
    macs = sum(layer["macs"] for layer in layers)
    return sum(layer["instructions"] for layer in layers) / macs if macs else None


def ratios(row: dict) -> dict:
    def ratio(a, b):
        return round(a / b, 4) if a is not None and b else None
    return {"arena_vs_tflm": ratio(row["arena_bytes"], row["tflm_arena_bytes"]),
            "arena_vs_lower_bound": ratio(row["arena_bytes"], row["lower_bound_bytes"]),
            "arena_no_in_place_vs_lower_bound": ratio(row["arena_no_in_place_bytes"], row["lower_bound_bytes"]),
            "host_time_vs_tflm": ratio(row["host_us"], row["tflm_host_us"])}


def summarize(models: list[dict]) -> dict:
    summary = {"models": len(models), "targets": {}}
    for key, target in TARGETS.items():
        values = [m[key] for m in models if m.get(key) is not None]
        summary["targets"][key] = {
            "target": f"<= {target}", "measured_models": len(values),
            "models_meeting": sum(v <= target for v in values),
            "geometric_mean": _geomean(values),
            "worst": round(max(values), 4) if values else None,
            "models_missing": [m["name"] for m in models if m.get(key) is not None and m[key] > target]}
    summary["all_bit_exact"] = all(v is not False for m in models for v in m["bit_exact"].values())
    summary["instructions_per_mac_geometric_mean"] = _geomean(m["instructions_per_mac"] for m in models)
    summary["depthwise_instructions_per_mac_geometric_mean"] = _geomean(
        m["depthwise_instructions_per_mac"] for m in models)
    stacks = [m["mcu_stack_bytes"] for m in models if m.get("mcu_stack_bytes") is not None]
    summary["mcu_stack_bytes"] = {"largest": max(stacks, default=None), "median": statistics.median(stacks) if stacks else None,
                                  "largest_share_of_ram": _rounded(max(
                                      (m["mcu_stack_bytes"] / m["mcu_ram_bytes"] for m in models
                                       if m.get("mcu_stack_bytes") is not None), default=None), 4)}
    summary["cores"] = {}
    for core in mcu.EMULATED_CORES:
        rows = [m["cores"][core] for m in models if core in (m.get("cores") or {})]
        if rows:
            summary["cores"][core] = {
                "machine": mcu.CORES[core].machine, "models": len(rows),
                "models_bit_exact": sum(bool(row["bit_exact"]) for row in rows),
                "instructions_per_mac_geometric_mean": _geomean(row["instructions_per_mac"] for row in rows),
                "depthwise_instructions_per_mac_geometric_mean": _geomean(
                    row["depthwise_instructions_per_mac"] for row in rows)}
    if not mcu.mcu_available():
        summary["note"] = f"no Cortex-M figures: {', '.join(mcu.mcu_missing())} not installed"
    return summary


def _rounded(value, digits: int = 2):
    return None if value is None else round(value, digits)


def _geomean(values) -> float | None:
    present = [v for v in values if v]
    return round(math.exp(statistics.fmean(math.log(v) for v in present)), 4) if present else None


def environment() -> dict:
    import platform
    import subprocess
    versions = {}
    for tool in ("gcc", "arm-none-eabi-gcc", "qemu-system-arm"):
        try:
            done = subprocess.run([tool, "--version"], capture_output=True, text=True)
            versions[tool] = done.stdout.splitlines()[0]
        except (OSError, IndexError):
            versions[tool] = None
    try:
        from importlib.metadata import version
        versions["tflite-micro"] = version("tflite-micro")
    except Exception:  # noqa: BLE001 -- informational
        versions["tflite-micro"] = None
    return {"machine": platform.machine(), "processor": platform.processor() or None, **versions}


# --- command line ----------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="Prints one JSON document on stdout; progress on stderr. "
               "Example: python benchmarks/deploy.py > benchmarks/results/deploy.json")
    parser.add_argument("--quick", action="store_true",
                        help="reduced run (< 1 min): DS-CNN and one small sample per space, short timing")
    parser.add_argument("--run", type=Path, help="also a search's run folder: its final-trained front models")
    parser.add_argument("--samples-per-space", type=int, default=4,
                        help="seeded samples of each of chain, mbv2, nb201 (default 4)")
    parser.add_argument("--rounds", type=int, help="timing rounds per model (median; default 7, quick 3)")
    parser.add_argument("--block-seconds", type=float,
                        help="seconds per timing block of each runtime (default 0.1, quick 0.02)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="measure only the models with these names")
    parser.add_argument("--cores", nargs="+", choices=mcu.EMULATED_CORES, default=list(mcu.EMULATED_CORES),
                        metavar="CORE", help="emulated cores to run on (default all: "
                        f"{' '.join(mcu.EMULATED_CORES)}); the top-level Cortex-M figures are the "
                        f"{mcu.DEFAULT_CORE}'s when it is one of them")
    args = parser.parse_args(argv)
    if args.samples_per_space < 0 or (args.rounds is not None and args.rounds < 1):
        parser.error("--samples-per-space must be >= 0 and --rounds >= 1")
    if args.run is not None and not args.run.is_dir():
        parser.error(f"--run {args.run}: no such folder")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    cores = tuple(core for core in mcu.EMULATED_CORES if core in args.cores)
    torch.set_num_threads(1)
    rounds = args.rounds or (3 if args.quick else 7)
    block = args.block_seconds or (0.02 if args.quick else 0.1)
    try:
        if args.quick:
            cases = [*example_cases(EXAMPLES[1:]), *space_cases(QUICK_SPACE_OPTIONS, 1)]
        else:
            cases = [*example_cases(), *space_cases(SPACE_OPTIONS, args.samples_per_space)]
        if args.run is not None:
            cases += run_cases(args.run)
    except TinyevoError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.only:
        unknown = set(args.only) - {case.name for case in cases}
        if unknown:
            print(f"error: no model named {', '.join(sorted(unknown))}; the models: "
                  f"{', '.join(case.name for case in cases)}", file=sys.stderr)
            raise SystemExit(2)
        cases = [case for case in cases if case.name in set(args.only)]
    if not mcu.mcu_available():
        log(f"warning: {', '.join(mcu.mcu_missing())} missing; no Cortex-M figures ({mcu.INSTALL_HINT})")
    models = []
    with tempfile.TemporaryDirectory(prefix="tinyevo_deploy_bench_") as tmp:
        for case in cases:
            log(f"{case.name}: {case.source}")
            row = measure(case, Path(tmp), rounds, block, cores)
            per_core = ", ".join(f"{core} {_rounded(f['instructions_per_mac'])}"
                                 for core, f in (row["cores"] or {}).items())
            log(f"  arena {row['arena_bytes']} B (TFLM {row['tflm_arena_bytes']}, "
                f"bound {row['lower_bound_bytes']}), "
                f"host {row['host_us']:.1f} us (TFLM {row['tflm_host_us']:.1f}), "
                f"instructions/MAC: {per_core or '-'}, {row['seconds']} s")
            models.append(row)
    print_json({"benchmark": "deploy", "quick": args.quick, "settings": {
        "rounds": rounds, "block_seconds": block, "large_conv_share": LARGE_CONV_SHARE,
        "space_options": QUICK_SPACE_OPTIONS if args.quick else SPACE_OPTIONS,
        "host_flags": "gcc -O2 -march=native",
        "mcu": {core: f"{mcu.CC} {' '.join(mcu.CORES[core].target)} -O2; {mcu.CORES[core].emulator()}"
                for core in cores},
        "environment": environment()}, "models": models, "summary": summarize(models)})


if __name__ == "__main__":
    main()
