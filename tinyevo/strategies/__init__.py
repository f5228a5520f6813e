"""Search strategies (survey section I-B): propose architectures (ask), learn from results (tell).

Registered strategies: ``random``, ``evolution`` (assembled from named parts), its presets
``regularized``, ``mcunet`` and ``unas``, and ``nsga2`` (multi-objective). Build one by name with
``create_strategy("regularized", space, seed=0)``; a run without one uses
``DEFAULT_STRATEGY`` (nsga2).
"""
from tinyevo.strategies.base import (DEFAULT_OBJECTIVES, DEFAULT_STRATEGY, FAILED, INFEASIBLE, OK,
                                     STRATEGIES, Candidate, Objective, Strategy, Trial)
from tinyevo.strategies import random_search  # noqa: F401  (registers "random")
from tinyevo.strategies.evolution import Evolution, EvolutionConfig
from tinyevo.strategies.nsga2 import NSGA2
from tinyevo.strategies.pareto import hypervolume, pareto_front
from tinyevo.spaces.base import SearchSpace


def create_strategy(name: str, space: SearchSpace, seed: int = 0, **options) -> Strategy:
    """The registered strategy ``name`` over ``space``; ``options`` are its keyword settings."""
    return STRATEGIES.create(name, space=space, seed=seed, **options)


__all__ = ["Candidate", "DEFAULT_OBJECTIVES", "DEFAULT_STRATEGY", "Evolution", "EvolutionConfig",
           "FAILED", "INFEASIBLE", "NSGA2", "OK", "Objective", "STRATEGIES", "Strategy", "Trial",
           "create_strategy", "hypervolume", "pareto_front"]
