"""What the report shows, worked out from a ``RunView``: ``report_data(view)``.

Plain numbers and strings only (the figures and the page are made from them in
``tinyevo.report.figures`` and ``tinyevo.report.page``)."""
from __future__ import annotations

from dataclasses import dataclass, field

from tinyevo.errors import TinyevoError
from tinyevo.hardware.board import load_board
from tinyevo.hardware.limits import BY_FIELD, LIMITED_METRICS
from tinyevo.model_file import load_architecture
from tinyevo.report.memory import Timeline, flash_breakdown, measured_code, timelines
from tinyevo.report.reader import RunView
from tinyevo.runs.config import objectives_of
from tinyevo.runs.layout import model_stem
from tinyevo.runs.results import COST_FIELDS, best_row
from tinyevo.spaces import create_space
from tinyevo.strategies.pareto import pareto_front

#: Columns of the trial table: (key, header).
COLUMNS = (("trial", "trial"), ("status", "status"), ("front", "front"), ("accuracy", "search acc"),
           ("final_val_accuracy", "val acc"), ("test_accuracy", "test acc"),
           ("int8_test_accuracy", "int8 acc"), ("params", "params"), ("macs", "MACs"),
           ("flash_bytes", "flash B"), ("peak_sram_bytes", "peak SRAM B"), ("latency_ms", "latency ms"),
           ("seconds", "eval s"), ("origin", "origin"), ("describe", "genome"), ("error", "error"))


@dataclass
class ReportData:
    run_dir: str
    state: str  # "complete", "in progress" or "incomplete"
    settings: list[tuple[str, str]]
    board: dict
    objectives: list[str]
    limits: dict[str, float]  # cost metric -> the run's limit on it
    trials: list[dict]  # one row per trial (COLUMNS keys), id order
    front_ids: list[int]
    best: dict | None
    timelines: list[Timeline] = field(default_factory=list)
    flash: dict[str, int | None] = field(default_factory=dict)
    memory_note: str = ""
    code_how: str = ""  # how the code bytes were measured, or why they were not


def report_data(view: RunView) -> ReportData:
    config = view.config
    board = load_board(config.board)
    objectives = objectives_of(config)
    front = pareto_front([r.trial for r in view.records], objectives)
    front_ids = [t.id for t in front]
    trials = [trial_row(record, view.final.get(str(record.trial.id)), front_ids) for record in view.records]
    best = best_row([_best_key_row(row) for row in trials if row["trial"] in front_ids])
    data = ReportData(str(view.run_dir), run_state(view), settings_rows(view), _board(board),
                      list(config.objectives), limits_of(config, board), trials, front_ids,
                      next(r for r in trials if r["trial"] == best["trial"]) if best else None)
    if best is not None:
        add_memory(data, view, best["trial"])
    return data


def run_state(view: RunView) -> str:
    if view.in_progress:
        return "in progress"
    return "complete" if view.complete else "incomplete"


def trial_row(record, final: dict | None, front_ids: list[int]) -> dict:
    trial = record.trial
    row = {"trial": trial.id, "status": trial.status, "front": "yes" if trial.id in front_ids else "",
           "accuracy": trial.metrics.get("accuracy"), "describe": record.describe,
           "seconds": record.seconds, "origin": trial.origin,
           "error": record.error or (str(trial.metrics["error"]) if trial.metrics.get("error") else ""),
           **{key: trial.metrics.get(key) for key in COST_FIELDS},
           "final_val_accuracy": None, "test_accuracy": None, "int8_test_accuracy": None, "weights": None}
    if final and final.get("status") == "ok":
        row.update(final_val_accuracy=final.get("val_accuracy"), test_accuracy=final.get("test_accuracy"),
                   int8_test_accuracy=final.get("int8_test_accuracy"), weights=final.get("weights"))
    return row


def _best_key_row(row: dict) -> dict:
    """A trial row as ``best_row`` ranks them (search accuracy as ``val_accuracy``)."""
    ranked = {"trial": row["trial"], "val_accuracy": row["accuracy"]}
    if row.get("final_val_accuracy") is not None:
        ranked["final_val_accuracy"] = row["final_val_accuracy"]
    return ranked


def settings_rows(view: RunView) -> list[tuple[str, str]]:
    c = view.config
    limits = ", ".join(f"{key} {value}" for key, value in vars(c.constraints).items() if value is not None)
    rows = [("run folder", str(view.run_dir)), ("space", c.space), ("dataset", c.dataset),
            ("peak SRAM counted", f"{c.execution} (runtime {c.runtime})"),
            ("strategy", c.strategy), ("estimator", c.estimator), ("objectives", ", ".join(c.objectives)),
            ("constraints", limits or "the board's SRAM and flash"),
            ("budget", f"{c.budget} evaluations" + (f", {c.max_seconds:g} s" if c.max_seconds else "")),
            ("fidelity", f"{c.fidelity.epochs} epochs, {c.fidelity.data_fraction:g} of the data"),
            ("final training", f"{c.final_models} models, {c.final_epochs} epochs"), ("seed", str(c.seed)),
            ("trials stored", f"{len(view.records)} ({view.evaluated} evaluated)")]
    if c.space_options:
        rows.insert(2, ("space options", str(c.space_options)))
    return rows


def _board(board) -> dict:
    return {"name": board.name, "core": board.core, "clock_mhz": board.clock_mhz,
            "sram_bytes": board.sram_bytes, "flash_bytes": board.flash_bytes}


def limits_of(config, board) -> dict[str, float]:
    """The run's limits by the cost metric they bound (SRAM and flash: the board's by default)."""
    try:
        constraints = config.constraints.build(board)
    except TinyevoError:
        return {}
    return {LIMITED_METRICS[name]: value for name, value in constraints.limits().items() if name in BY_FIELD}


def best_architecture(view: RunView, trial_id: int):
    """The best trial's architecture: the file its final training kept, else its genome decoded
    by the run's space (the options the runner stored)."""
    stem = model_stem(view.run_dir, trial_id)
    if stem.with_suffix(".json").is_file():
        return load_architecture(stem.with_suffix(".json"))
    space = view.runner_config.get("space") or {}
    if not space.get("name"):
        raise TinyevoError("the run stored no space settings to decode its genome")
    record = next(r for r in view.records if r.trial.id == trial_id)
    return create_space(space["name"], **space.get("options", {})).decode(record.trial.genome)


def add_code(data: ReportData, arch) -> None:
    """The flash parts, with the code bytes measured when the ARM toolchain is installed."""
    try:
        code = measured_code(arch)
    except (TinyevoError, ValueError, RuntimeError) as error:  # a compile error, an odd model
        data.code_how = f"not measured: {(str(error).splitlines() or [type(error).__name__])[0]}"
        return
    if code is not None:
        data.flash, data.code_how = flash_breakdown(arch, code), code.how


def add_memory(data: ReportData, view: RunView, trial_id: int) -> None:
    """The best model's timelines and flash parts, or a note saying why there are none."""
    try:
        arch = best_architecture(view, trial_id)
        data.timelines = timelines(arch)
        data.flash = flash_breakdown(arch)
    except (TinyevoError, ValueError, KeyError, TypeError) as error:
        data.memory_note = f"no memory figures for trial {trial_id}: {error}"
        return
    add_code(data, arch)
    if arch.frontend is not None:
        data.memory_note = ("the network's activations only: the audio front-end's RAM and flash "
                            "are counted apart (see the trial table's figures)")
