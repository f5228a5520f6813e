"""Evolutionary search from named parts: initialization, parent selection, population update,
crossover and mutation (survey section II-B), the ``Evolution`` strategy that composes them, and
presets with the settings of their papers."""
from tinyevo.strategies.evolution.algorithm import Evolution
from tinyevo.strategies.evolution.config import EvolutionConfig
from tinyevo.strategies.evolution.crossover import CROSSOVERS
from tinyevo.strategies.evolution.individual import Individual
from tinyevo.strategies.evolution.initialization import INITIALIZATIONS
from tinyevo.strategies.evolution.mutation import MUTATIONS
from tinyevo.strategies.evolution.operator import Operator, build_operator
from tinyevo.strategies.evolution.population_update import POPULATION_UPDATES
from tinyevo.strategies.evolution.restart import RESTARTS
from tinyevo.strategies.evolution.selection import PARENT_SELECTIONS
from tinyevo.strategies.evolution import presets  # noqa: F401  (registers the presets)

__all__ = ["CROSSOVERS", "Evolution", "EvolutionConfig", "INITIALIZATIONS", "Individual",
           "MUTATIONS", "Operator", "PARENT_SELECTIONS", "POPULATION_UPDATES", "RESTARTS",
           "build_operator"]
