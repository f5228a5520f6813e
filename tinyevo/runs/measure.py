"""``tinyevo search --measure-finalists``: the final models run on the emulated core, their measured
instructions kept beside the cost model's prediction in the run's ``final`` records.

Each final-trained model is quantized as ``tinyevo export`` quantizes it (``load_run_model``: the
kept weights, calibrated on the run's seeded training rows), generated as a layer-by-layer C
library (with in-place kernels when the run's execution model has them: ``--execution streamed``)
and run once on QEMU (``codegen.mcu``, the board's emulated core: its calibration's, else
``deploy.calibrate.emulated_core``) on its first calibration row. Its record gets ``mcu``::

    {"core", "instructions", "cycles", "latency_ms", "cycles_per_instruction",
     "predicted_latency_ms", "predicted_cycles", "stack_bytes", "static_ram_bytes", "ram_bytes"}

cycles = instructions x cycles_per_instruction (the board's calibration, else 1: one instruction
per cycle, zero-wait-state memory); latency_ms = cycles / (clock_mhz x 1000). The predicted figures
are the trial's ``latency_ms`` from the search's cost model and its cycles at the board's clock.
stack_bytes is the run's stack high-water mark (``McuRun.stack_bytes``), which the arena does not
count; static_ram_bytes the library's own .data + .bss (the arena and the kernels' statics);
ram_bytes their sum, the RAM the model takes on the device.
A model already measured is not measured again.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from tinyevo.deploy.closed_loop import emulated_core
from tinyevo.deploy.codegen import mcu
from tinyevo.deploy.codegen.emit import generate_c
from tinyevo.deploy.quantize import quantize
from tinyevo.errors import TinyevoError
from tinyevo.hardware.board import Board, load_board
from tinyevo.runs.config import stored_config, stored_final
from tinyevo.runs.export import load_run_model
from tinyevo.runs.folder import RunLock
from tinyevo.runs.layout import FINAL_KEY, STORE_FILE
from tinyevo.store import Store


def finalist_core(board: Board) -> str:
    """The emulated core the final models of a search on ``board`` run on: its calibration's, else
    the one its ``core`` names (``emulated_core``); one clear error for a core without emulator."""
    core = board.calibration["core"] if board.calibration else emulated_core(board)
    if core not in mcu.EMULATED_CORES:
        raise TinyevoError(f"--measure-finalists: board {board.name!r} ({board.core}) has no emulated core; "
                           f"the emulator runs {', '.join(mcu.EMULATED_CORES)}: give a board with one of "
                           f"them, or a board file calibrated on one (tinyevo calibrate --core)")
    return core


def measure_finalists(run_dir: str | Path, progress=print) -> dict:
    """Measure every final-trained model of the run not measured yet; the ``final`` records."""
    run_dir = Path(run_dir)
    mcu.require_toolchain()
    with RunLock(run_dir):
        with Store(run_dir / STORE_FILE, read_only=True) as store:
            config, final = stored_config(store), stored_final(store)
            predicted = {r.trial.id: r.trial.metrics.get("latency_ms") for r in store.records()}
        board = load_board(config.board)
        core = finalist_core(board)
        waiting = sorted((int(t) for t, r in final.items() if r.get("status") == "ok" and "mcu" not in r))
        for trial in waiting:
            progress(f"measuring trial {trial} on the emulated {core}")
            figures = measured(run_dir, trial, board, core, predicted.get(trial),
                               config.execution_model().in_place_kernels)
            with Store(run_dir / STORE_FILE) as store:  # one model at a time
                final = dict(stored_final(store))
                final[str(trial)] = dict(final[str(trial)], mcu=figures)
                store.set(FINAL_KEY, final)
            progress(f"trial {trial}: {figures['instructions']:,} instructions, "
                     f"{figures['latency_ms']:.3f} ms at {board.clock_mhz:g} MHz "
                     f"(predicted {_ms(figures['predicted_latency_ms'])}), "
                     f"{figures['ram_bytes']:,} B RAM with {figures['stack_bytes']:,} B of stack")
    return final


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} ms"


def measured(run_dir: Path, trial: int, board: Board, core: str, predicted_ms: float | None,
             in_place_kernels: bool = False) -> dict:
    """The ``mcu`` figures of one final model (see the module docstring)."""
    model = load_run_model(run_dir, trial)
    qmodel = quantize(model.architecture, model.module.cpu().eval(), model.calibration)
    x = qmodel.input_spec.quantize(model.calibration[:1].transpose(0, 2, 3, 1))
    with tempfile.TemporaryDirectory(prefix="tinyevo-measure-") as work:
        generate_c(qmodel, work, execution="layer_by_layer", in_place_kernels=in_place_kernels)
        image, run = mcu.run_on_mcu(work, x, core=core)
    cpi = board.calibration["cycles_per_instruction"] if board.calibration else 1.0
    cycles = run.instructions[0] * cpi
    return {"core": core, "instructions": int(run.instructions[0]), "cycles": cycles,
            "cycles_per_instruction": cpi, "latency_ms": cycles / (board.clock_mhz * 1000.0),
            "predicted_latency_ms": predicted_ms,
            "predicted_cycles": None if predicted_ms is None else predicted_ms * board.clock_mhz * 1000.0,
            "stack_bytes": run.stack_bytes, "static_ram_bytes": image.model_sizes.ram,
            "ram_bytes": image.model_sizes.ram + run.stack_bytes}
