"""A run's settings as its store keeps them, and what follows from them: objectives, dataset options.
(The estimators they make are in ``tinyevo.runs.estimators``.)"""
from __future__ import annotations

from tinyevo.config import SearchConfig
from tinyevo.runs.layout import CONFIG_KEY, FINAL_KEY
from tinyevo.strategies.base import Objective


def stored_config(store) -> SearchConfig:
    """The SearchConfig a run stored (the defaults where it stored none)."""
    return SearchConfig.from_dict(store.get(CONFIG_KEY) or {})


def stored_final(store) -> dict:
    """The run's final records, ``{str(trial id): record}``."""
    return store.get(FINAL_KEY, {}) or {}


def objectives_of(config: SearchConfig) -> list[Objective]:
    return [Objective(m, "max" if m == "accuracy" else "min") for m in config.objectives]


def dataset_options(config: SearchConfig) -> dict:
    """The loader's options: ``[dataset_options]``, or the older ``[estimator_options]
    dataset_options`` when given there."""
    return dict(config.estimator_options.get("dataset_options", config.dataset_options))

