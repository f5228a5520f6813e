"""One search from a ``SearchConfig`` to a folder of results: the job behind ``tinyevo search``.

``OUT/trials.sqlite`` holds every trial as it finishes and the run's settings; running the same
command again resumes. After the search, the Pareto-front models are trained at full fidelity
(``final_epochs``, all the training data), scored on the test split (never seen by the search) and
kept in ``OUT/models/`` (weights as .npz, architecture as JSON) so that export never retrains.
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyevo.config import SearchConfig
from tinyevo.errors import TinyevoError
from tinyevo.hardware.cost_model import cost_model as execution_cost_model
from tinyevo.hardware.limits import BY_FIELD
from tinyevo.search.base import Objective, Trial

STORE_FILE = "trials.sqlite"
MODELS_DIR = "models"


def objectives_of(config: SearchConfig) -> list[Objective]:
    return [Objective(m, "max" if m == "accuracy" else "min") for m in config.objectives]


@dataclass
class SearchJob:
    """Everything a search needs, built from a config (``SearchJob.create``)."""

    config: SearchConfig
    out_dir: Path
    space: object
    board: object
    dataset: object = None
    extras: dict = field(default_factory=dict)

    @classmethod
    def create(cls, config: SearchConfig, out_dir: str | Path) -> "SearchJob":
        from tinyevo.hardware import load_board
        from tinyevo.spaces import create_space

        board = load_board(config.board)
        dataset = None
        space_options = dict(config.space_options)
        if _trains(config):
            from tinyevo.estimate.training import cached_dataset  # the estimator's copy, loaded once
            dataset = cached_dataset(config.dataset, config.data_dir, config.seed, dataset_options(config))
            space_options.setdefault("input_shape", list(dataset.input_shape))
            space_options.setdefault("num_classes", dataset.num_classes)
        try:
            space = create_space(config.space, **space_options)
        except TypeError as error:
            raise TinyevoError(f"bad space_options for {config.space!r}: {error}") from None
        return cls(config, Path(out_dir), space, board, dataset)

    # --- the pieces ----------------------------------------------------------------------------
    def estimator(self, final: bool = False):
        from tinyevo.estimate import create_estimator

        config, options = self.config, dict(self.config.estimator_options)
        name = "training" if final else config.estimator
        if _trains(config) or final:
            f = config.fidelity
            options = {"dataset": config.dataset, "data_dir": config.data_dir, "dataset_seed": config.seed,
                       "dataset_options": dataset_options(config),
                       "epochs": f.epochs, "batch_size": f.batch_size, "lr": f.lr,
                       "data_fraction": f.data_fraction, "resolution": f.resolution,
                       "width_scale": f.width_scale, "seed": config.seed, **options}
            if final:
                options.update(epochs=config.final_epochs, data_fraction=1.0, resolution=None,
                               width_scale=1.0)
                options = {k: v for k, v in options.items() if k in _TRAINING_OPTIONS}
        try:
            return create_estimator(name, **options)
        except TypeError as error:
            raise TinyevoError(f"bad estimator_options for {name!r}: {error}") from None

    def strategy(self):
        from tinyevo.search import create_strategy

        try:
            return create_strategy(self.config.strategy, self.space, seed=self.config.seed,
                                   objectives=objectives_of(self.config), **self.config.strategy_options)
        except TypeError as error:
            raise TinyevoError(f"bad strategy_options for {self.config.strategy!r}: {error}") from None

    def executor(self):
        from tinyevo.run import create_executor

        e = self.config.executor
        options = {"workers": e.workers} if e.kind == "process" else {}
        if e.kind == "ray":
            options = {"address": e.address}
        return create_executor(e.kind, **options)

    def constraints(self):
        return self.config.constraints.build(self.board)

    def check_feasible(self) -> None:
        """Fail at once, with the numbers, when even the smallest architectures break a limit."""
        try:
            smallest = self.space.smallest()
        except NotImplementedError:
            return
        constraints = self.constraints()
        cost_model = execution_cost_model(self.config.execution_model())  # the runner's
        costs = [cost_model(self.space.decode(g), self.board).to_dict() for g in smallest]
        if costs and all(constraints.violation(c) > 0 for c in costs):
            broken = constraints.excess(costs[0])
            limit = BY_FIELD[next(iter(broken))]
            raise TinyevoError(f"no architecture of space {self.space.name!r} fits: even the smallest "
                               f"has {limit.metric} = {costs[0][limit.metric]:g} over the limit "
                               f"{constraints.limits()[limit.field]:g}; loosen {limit.flag}")

    # --- running -------------------------------------------------------------------------------
    def run(self, progress: bool = True) -> list[Trial]:
        from tinyevo.run import Budget, Runner
        from tinyevo.run.resume import check_config
        from tinyevo.store import Store

        self.check_feasible()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        budget = Budget(evaluations=self.config.budget, seconds=self.config.max_seconds)
        with Store(self.out_dir / STORE_FILE) as store, self.executor() as executor:
            runner = Runner(self.space, self.strategy(), self.estimator(), store, budget,
                            self.constraints(), self.board, executor, progress=progress,
                            run_dir=self.out_dir, execution=self.config.execution_model(),
                            eval_timeout=self.config.eval_timeout)
            check_config(store, runner.config())  # refuse a folder of another run before writing
            store.set("search_config", self.config.to_dict())
            trials = runner.run()
            if _trains(self.config):
                finalize(self, trials, store, progress)
        return trials


_TRAINING_OPTIONS = {"dataset", "data_dir", "dataset_seed", "dataset_options", "epochs", "batch_size",
                     "lr", "optimizer", "weight_decay", "schedule", "data_fraction", "resolution",
                     "width_scale", "device", "seed", "augment"}


def dataset_options(config: SearchConfig) -> dict:
    """The loader's options: ``[dataset_options]``, or the older ``[estimator_options]
    dataset_options`` when given there."""
    return dict(config.estimator_options.get("dataset_options", config.dataset_options))


def _trains(config: SearchConfig) -> bool:
    """True when the run's estimator trains (``Capabilities.trains``): it is given the dataset and
    fidelity settings, and the front's models are trained at full fidelity after the search."""
    from tinyevo.estimate import ESTIMATORS

    return ESTIMATORS.get(config.estimator).capabilities.trains


def final_candidates(trials: list[Trial], objectives: list[Objective], count: int) -> list[Trial]:
    """The Pareto-front trials, most accurate first, at most ``count``."""
    from tinyevo.search.pareto import pareto_front

    front = pareto_front(trials, objectives)
    return sorted(front, key=lambda t: (-t.metrics.get("accuracy", 0.0), t.id))[:count]


def finalize(job: SearchJob, trials: list[Trial], store, progress: bool = True) -> dict:
    """Train the front's models at full fidelity, score them (float and int8) on the test split, keep
    their weights."""
    from tinyevo.estimate import EstimationFailed, EvalContext, as_trainer

    final = dict(store.get("final", {}) or {})
    chosen = final_candidates(trials, objectives_of(job.config), job.config.final_models)
    estimator = as_trainer(job.estimator(final=True))
    for number, trial in enumerate(chosen, 1):
        if str(trial.id) in final:
            continue
        if progress:
            print(f"final training {number}/{len(chosen)}: trial {trial.id} "
                  f"({job.config.final_epochs} epochs)", file=sys.stderr)
        arch = job.space.decode(trial.genome)
        try:
            trained = estimator.fit(arch, EvalContext(genome=trial.genome, space=job.space,
                                                      trial_id=trial.id, seed=job.config.seed))
        except EstimationFailed as error:
            final[str(trial.id)] = {"status": "failed", "error": str(error)}
        else:
            final[str(trial.id)] = final_record(job.out_dir, trial.id, estimator, trained, job.config.seed)
        store.set("final", final)  # one model at a time: an interrupted finalization resumes here
    return final


def final_record(out_dir: Path, trial_id: int, estimator, trained, seed: int) -> dict:
    """The ``final`` record of a model trained for the report (what ``show`` and ``export`` read):
    validation and test accuracy, float and int8, and the path of its kept weights."""
    from tinyevo.deploy.export_run import int8_record

    return {"status": "ok", "val_accuracy": trained.metrics["accuracy"],
            "test_accuracy": estimator.accuracy(trained, "test"),
            "weights": save_model(out_dir, trial_id, trained),
            **int8_record(trained.architecture, trained.module, estimator.data(), seed)}


def save_model(out_dir: Path, trial_id: int, trained) -> str:
    """Weights (.npz, no pickle) and architecture (.json) of a trained model; returns the .npz path."""
    folder = out_dir / MODELS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    stem = folder / f"trial_{trial_id}"
    state = {k: v.detach().cpu().numpy() for k, v in trained.module.state_dict().items()}
    _atomic_write(stem.with_suffix(".json"), trained.architecture.dumps().encode())
    partial = stem.with_name(stem.name + ".part.npz")
    np.savez(partial, **state)
    os.replace(partial, stem.with_suffix(".npz"))
    return str(stem.with_suffix(".npz").relative_to(out_dir))


def _atomic_write(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(data)
    os.replace(partial, path)


def load_results(out_dir: str | Path) -> dict:
    """What ``tinyevo show`` prints: settings, the front with its final scores, the best model."""
    from tinyevo.search.pareto import pareto_front
    from tinyevo.store import Store

    out_dir = Path(out_dir)
    path = out_dir / STORE_FILE
    if not path.is_file():
        raise TinyevoError(f"{out_dir}: no search results here (no {STORE_FILE}); "
                           f"run `tinyevo search --out {out_dir}` first")
    with Store(path) as store:
        records = store.records()
        config = SearchConfig.from_dict(store.get("search_config") or {})
        final = store.get("final", {}) or {}
    trials = [r.trial for r in records]
    objectives = objectives_of(config)
    front = sorted(pareto_front(trials, objectives), key=lambda t: (-t.metrics.get("accuracy", 0), t.id))
    rows = [_row(t, final.get(str(t.id)), records) for t in front]
    return {"run": str(out_dir), "space": config.space, "dataset": config.dataset, "board": config.board,
            "execution": config.execution, "runtime": config.runtime, "strategy": config.strategy,
            "objectives": config.objectives,
            "trials": len(trials), "evaluated": sum(1 for r in records if r.evaluated),
            "infeasible": sum(1 for t in trials if t.status == "infeasible"),
            "failed": sum(1 for t in trials if t.status == "failed"),
            "front": rows, "best": best_row(rows)}


COST_FIELDS = ("params", "macs", "flash_bytes", "peak_sram_bytes", "latency_ms")


def _row(trial: Trial, final: dict | None, records) -> dict:
    describe = next((r.describe for r in records if r.trial.id == trial.id), "")
    row = {"trial": trial.id, "describe": describe, "val_accuracy": trial.metrics.get("accuracy"),
           **{k: trial.metrics.get(k) for k in COST_FIELDS}}
    if final and final.get("status") == "ok":
        row.update(final_val_accuracy=final["val_accuracy"], test_accuracy=final["test_accuracy"],
                   int8_test_accuracy=final.get("int8_test_accuracy"), weights=final["weights"])
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
    results = load_results(out_dir)
    _atomic_write(Path(out_dir) / "results.json", json.dumps(results, indent=1).encode())
    return results
