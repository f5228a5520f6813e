"""``tinyevo search --strategy darts``: DARTS as its own one-shot pipeline inside a run folder.

The search (``DartsSearch``) writes its checkpoint into the run folder after every epoch; its
discretized cell becomes trial 0 of the run's store, costed by the run's cost model and checked
against the run's limits (one line when it does not fit); the search's settings are recorded like
any run's, so ``tinyevo show`` and ``tinyevo export`` read the folder as they read a search, and the
caller hands the trial to the same final training (float and int8 test accuracy, kept weights).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from tinyevo.config import SearchConfig
from tinyevo.darts.relaxed_nb201 import skip_count
from tinyevo.darts.search import DartsSearch, DartsSettings, check_space
from tinyevo.data import Dataset
from tinyevo.hardware.cost_model import cost_model
from tinyevo.hardware.limits import BY_FIELD, LIMITED_METRICS
from tinyevo.run.resume import check_config
from tinyevo.spaces.nb201 import NasBench201Space
from tinyevo.strategies.base import INFEASIBLE, OK, Trial

DARTS = "darts"
DARTS_KEY = "darts"  # the store's entry with the search's summary


def check_darts(config: SearchConfig, space) -> None:
    """The options and the space, checked before anything is written."""
    check_space(space, DartsSettings.from_options(config.strategy_options))


def darts_identity(config: SearchConfig, space, constraints) -> dict:
    """What a resumed DARTS run must match."""
    return {"strategy": DARTS, "space": space.name, "space_options": space.options(),
            "darts": DartsSettings.from_options(config.strategy_options).__dict__,
            "dataset": config.dataset, "data_dir": config.data_dir, "seed": config.seed,
            "constraints": constraints.to_dict(), "execution": config.execution_model().identity()}


def run_darts(config: SearchConfig, space, board, data: Dataset, store, out_dir: Path,
              progress: bool = True) -> list[Trial]:
    """The DARTS search of ``config`` into ``store`` (once; a rerun resumes or reads it back)."""
    constraints = config.constraints.build(board)
    settings = DartsSettings.from_options(config.strategy_options)
    check_config(store, darts_identity(config, space, constraints))
    done = store.trials()
    if done:
        return done
    result = DartsSearch(space, data, settings, config.seed, constraints, out_dir, progress).run()
    cost = cost_model(config.execution_model())(space.decode(result.genome), board).to_dict()
    broken = constraints.excess(cost)
    if broken:
        print(f"darts: the discretized cell does not fit: {misfit(broken, cost, constraints)}; raise "
              f"cost_weight in strategy_options or loosen the limit", file=sys.stderr, flush=True)
    metrics = {"accuracy": result.accuracy, **cost, "search_cpu_seconds": result.seconds,
               "search_epochs": result.epochs}
    if isinstance(space, NasBench201Space):
        metrics["skip_connections"] = skip_count(result.genome)
    trial = Trial(0, result.genome, INFEASIBLE if broken else OK, metrics, origin=DARTS,
                  key=space.key(result.genome))
    now = time.time()
    store.save_trial(trial, describe=space.describe(result.genome), strategy=DARTS, started_at=now,
                     finished_at=now, seconds=result.seconds)
    store.set(DARTS_KEY, {"history": result.history, "selection": result.selection,
                          "cpu_seconds": result.seconds, "epochs": result.epochs})
    return [trial]


def misfit(broken: dict, cost: dict, constraints) -> str:
    """``peak SRAM 3.1 KB > 2.4 KB, ...`` for the broken limits."""
    limits = constraints.limits()
    return ", ".join(f"{LIMITED_METRICS[name]} {BY_FIELD[name].format(cost[LIMITED_METRICS[name]])} > "
                     f"{BY_FIELD[name].format(limits[name])}" for name in broken)
