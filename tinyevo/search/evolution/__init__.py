"""Evolutionary search from named parts: initialization, parent selection, population update,
crossover and mutation (survey section II-B), the ``Evolution`` strategy that composes them, and
presets with the settings of their papers."""
from tinyevo.search.evolution.algorithm import Evolution
from tinyevo.search.evolution.config import EvolutionConfig
from tinyevo.search.evolution.crossover import CROSSOVERS
from tinyevo.search.evolution.individual import Individual
from tinyevo.search.evolution.initialization import INITIALIZATIONS
from tinyevo.search.evolution.mutation import MUTATIONS
from tinyevo.search.evolution.operator import Operator, build_operator
from tinyevo.search.evolution.population_update import POPULATION_UPDATES
from tinyevo.search.evolution.restart import RESTARTS
from tinyevo.search.evolution.selection import PARENT_SELECTIONS
from tinyevo.search.evolution import presets  # noqa: F401  (registers the presets)

__all__ = ["CROSSOVERS", "Evolution", "EvolutionConfig", "INITIALIZATIONS", "Individual",
           "MUTATIONS", "Operator", "PARENT_SELECTIONS", "POPULATION_UPDATES", "RESTARTS",
           "build_operator"]
