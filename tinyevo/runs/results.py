"""What ``tinyevo show`` prints and ``RUN/results.json`` holds: the run's settings, its Pareto front with
the final scores, and the best model under the constraints."""
from __future__ import annotations

import json
from pathlib import Path

from tinyevo.audio.features import FRONTEND_COLUMNS
from tinyevo.errors import TinyevoError
from tinyevo.runs.config import objectives_of, stored_config, stored_final
from tinyevo.runs.estimators import trains
from tinyevo.runs.folder import lock_owner
from tinyevo.runs.layout import FINISHED_KEY, RESULTS_FILE, STORE_FILE, atomic_write
from tinyevo.strategies.base import Trial
from tinyevo.strategies.pareto import pareto_front
from tinyevo.store import Store

COST_FIELDS = ("params", "macs", "flash_bytes", "deployed_flash_bytes", "peak_sram_bytes", "latency_ms")
#: A run whose inputs come from an audio front-end: its share of the totals above (rows of other
#: runs have no such columns).
FRONTEND_FIELDS = FRONTEND_COLUMNS


def load_results(out_dir: str | Path, every_trial: bool = False) -> dict:
    """What ``tinyevo show`` prints: settings, the front with its final scores, the best model;
    ``every_trial`` adds ``all``, a row for each trial in id order with its status (and error)."""
    out_dir = Path(out_dir)
    path = out_dir / STORE_FILE
    if not path.is_file():
        raise TinyevoError(f"{out_dir}: no search results here (no {STORE_FILE}); "
                           f"run `tinyevo search --out {out_dir}` first")
    with Store(path, read_only=True) as store:  # reading a run never writes to it
        records = store.records()
        config = stored_config(store)
        final = stored_final(store)
        finished = bool(store.get(FINISHED_KEY))
        running = [r.trial.id for r in store.running()]
    trials = [r.trial for r in records]
    objectives = objectives_of(config)
    front = sorted(pareto_front(trials, objectives), key=lambda t: (-t.metrics.get("accuracy", 0), t.id))
    rows = [_row(t, final.get(str(t.id)), records) for t in front]
    extra = {"all": [_status_row(t, final.get(str(t.id)), records) for t in trials]} if every_trial else {}
    return {"run": str(out_dir), "space": config.space, "dataset": config.dataset, "board": config.board,
            "execution": config.execution, "runtime": config.runtime, "strategy": config.strategy,
            "objectives": config.objectives,
            "trials": len(trials), "evaluated": sum(1 for r in records if r.evaluated),
            "infeasible": sum(1 for t in trials if t.status == "infeasible"),
            "failed": sum(1 for t in trials if t.status == "failed"),
            "front": rows, "best": best_row(rows), "failures": failures(records),
            "incomplete": incomplete(out_dir, config, records, final, rows, finished, running), **extra}


def failures(records) -> list[dict]:
    """Each failed trial and why it failed (its error as the store keeps it)."""
    return [{"trial": r.trial.id, "describe": r.describe,
             "error": str(r.trial.metrics.get("error") or r.error or "no error recorded")}
            for r in records if r.trial.status == "failed"]


def incomplete(out_dir: Path, config, records, final: dict, rows: list[dict], finished: bool,
               running: list[int]) -> str | None:
    """Why the run is not finished (a line for ``show`` and ``export``), or None when it is."""
    owner = lock_owner(out_dir)
    if owner is not None:
        return f"a search is writing it now (pid {owner}): these are its results so far"
    if finished:
        return None
    again = "rerun its command to resume"
    if running:
        return (f"it was interrupted while evaluating trial(s) {', '.join(map(str, running))}; "
                f"{again}")
    evaluated = sum(1 for r in records if r.evaluated)
    if config.max_seconds is None and evaluated < config.budget:
        return f"it stopped after {evaluated} of its {config.budget} evaluations; {again}"
    if trains(config) and config.final_models and rows and not any(str(r["trial"]) in final for r in rows):
        return f"its final training has not run; {again}"
    return None


def _row(trial: Trial, final: dict | None, records) -> dict:
    describe = next((r.describe for r in records if r.trial.id == trial.id), "")
    row = {"trial": trial.id, "describe": describe, "val_accuracy": trial.metrics.get("accuracy"),
           **{k: trial.metrics.get(k) for k in COST_FIELDS},
           **{k: trial.metrics[k] for k in FRONTEND_FIELDS if k in trial.metrics}}
    if final and final.get("status") == "ok":
        row.update(final_val_accuracy=final["val_accuracy"], test_accuracy=final["test_accuracy"],
                   int8_test_accuracy=final.get("int8_test_accuracy"), weights=final["weights"])
        if "mcu" in final:  # tinyevo search --measure-finalists (tinyevo.runs.measure)
            row["measured"] = final["mcu"]
    return row


def _status_row(trial: Trial, final: dict | None, records) -> dict:
    row = {"status": trial.status, **_row(trial, final, records)}
    if trial.metrics.get("error"):
        row["error"] = str(trial.metrics["error"])
    return row


def best_row(rows: list[dict]) -> dict | None:
    """The best model under the constraints: among the finally trained models (if any), the one of
    highest final validation accuracy; else the highest search accuracy. A search accuracy (lower
    fidelity, or a supernet's) is not compared with a final one."""
    trained = [r for r in rows if "final_val_accuracy" in r]
    if not (trained or rows):
        return None
    return max(trained or rows,
               key=lambda r: (r.get("final_val_accuracy", r["val_accuracy"]) or 0, -r["trial"]))


def write_results(out_dir: Path) -> dict:
    """``load_results``, also written to ``RUN/results.json``."""
    results = load_results(out_dir)
    atomic_write(Path(out_dir) / RESULTS_FILE, json.dumps(results, indent=1).encode())
    return results
