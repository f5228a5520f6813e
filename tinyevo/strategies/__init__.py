"""Search strategies (survey section I-B): propose architectures (ask), learn from results (tell).

Registered strategies: ``random``, ``evolution`` (assembled from named parts), its presets
``regularized``, ``mcunet`` and ``unas``, ``nsga2`` (multi-objective), ``reinforce`` (a policy-gradient
controller, Zoph & Le 2017, with MnasNet's hardware-aware reward) and ``surrogate`` (aging evolution
whose children are chosen by a Gaussian-process model of accuracy, NPENAS-like). Build one by name with
``create_strategy("regularized", space, seed=0)``; a run without one uses
``DEFAULT_STRATEGY`` (nsga2).
"""
from tinyevo.strategies.base import (DEFAULT_OBJECTIVES, DEFAULT_STRATEGY, FAILED, INFEASIBLE, OK,
                                     STRATEGIES, Candidate, Objective, Strategy, Trial)
from tinyevo.strategies import random_search  # noqa: F401  (registers "random")
from tinyevo.strategies.evolution import Evolution, EvolutionConfig
from tinyevo.strategies.nsga2 import NSGA2
from tinyevo.strategies.reinforce import Reinforce, VariableLengthSpace
from tinyevo.strategies.surrogate import Surrogate
from tinyevo.strategies.pareto import hypervolume, pareto_front
from tinyevo.spaces.base import SearchSpace


def create_strategy(name: str, space: SearchSpace, seed: int = 0, **options) -> Strategy:
    """The registered strategy ``name`` over ``space``; ``options`` are its keyword settings."""
    return STRATEGIES.create(name, space=space, seed=seed, **options)


__all__ = ["Candidate", "DEFAULT_OBJECTIVES", "DEFAULT_STRATEGY", "Evolution", "EvolutionConfig",
           "FAILED", "INFEASIBLE", "NSGA2", "OK", "Objective", "Reinforce", "STRATEGIES", "Strategy", "Surrogate", "Trial",
           "VariableLengthSpace", "create_strategy", "hypervolume", "pareto_front"]
