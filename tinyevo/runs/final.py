"""The final training of a run: the Pareto-front models trained at full fidelity (``final_epochs``,
all the training data), scored float and int8 on the test split (never seen by the search), their
weights kept in ``RUN/models/`` so that export never retrains. One model at a time is recorded in
the store's ``final`` entry: an interrupted finalization resumes where it stopped."""
from __future__ import annotations

import sys
from pathlib import Path

from tinyevo.config import SearchConfig
from tinyevo.estimate import EstimationFailed, EvalContext, as_trainer
from tinyevo.runs.config import objectives_of, stored_final
from tinyevo.runs.estimators import run_estimator
from tinyevo.runs.int8 import int8_record
from tinyevo.runs.layout import FINAL_KEY
from tinyevo.runs.models import save_model
from tinyevo.strategies.base import Objective, Trial
from tinyevo.strategies.pareto import pareto_front


def final_candidates(trials: list[Trial], objectives: list[Objective], count: int) -> list[Trial]:
    """The Pareto-front trials, most accurate first, at most ``count``."""
    front = pareto_front(trials, objectives)
    return sorted(front, key=lambda t: (-t.metrics.get("accuracy", 0.0), t.id))[:count]


def finalize(config: SearchConfig, space, out_dir: Path, trials: list[Trial], store,
             progress: bool = True) -> dict:
    """Train the front's models at full fidelity, score them (float and int8) on the test split, keep
    their weights."""
    final = dict(stored_final(store))
    chosen = final_candidates(trials, objectives_of(config), config.final_models)
    estimator = as_trainer(run_estimator(config, final=True))
    for number, trial in enumerate(chosen, 1):
        if str(trial.id) in final:
            continue
        if progress:
            print(f"final training {number}/{len(chosen)}: trial {trial.id} "
                  f"({config.final_epochs} epochs)", file=sys.stderr)
        arch = space.decode(trial.genome)
        try:
            trained = estimator.fit(arch, EvalContext(genome=trial.genome, space=space,
                                                      trial_id=trial.id, seed=config.seed))
        except EstimationFailed as error:
            final[str(trial.id)] = {"status": "failed", "error": str(error)}
        else:
            final[str(trial.id)] = final_record(out_dir, trial.id, estimator, trained, config.seed)
        store.set(FINAL_KEY, final)  # one model at a time: an interrupted finalization resumes here
    return final


def final_record(out_dir: Path, trial_id: int, estimator, trained, seed: int) -> dict:
    """The ``final`` record of a model trained for the report (what ``show`` and ``export`` read):
    validation and test accuracy, float and int8, and the path of its kept weights."""
    return {"status": "ok", "val_accuracy": trained.metrics["accuracy"],
            "test_accuracy": estimator.accuracy(trained, "test"),
            "weights": save_model(out_dir, trial_id, trained),
            **int8_record(trained.architecture, trained.module, estimator.data_for(trained.architecture),
                         seed)}
