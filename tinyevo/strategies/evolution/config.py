"""``EvolutionConfig``: the settings of an evolutionary search, by the names of its options.

The search's own settings (population and generation sizes, rates, which operator fills each part)
are fields; each operator's parameters (``tournament_size``, ``elite_size``...) belong to the
operator that declares them (``tinyevo.strategies.evolution.operator``) and are kept here only as the
options given, by name, so that a config file or the command line reaches them.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from tinyevo.errors import TinyevoError
from tinyevo.registry import Registry
from tinyevo.strategies.evolution.crossover import CROSSOVERS
from tinyevo.strategies.evolution.initialization import INITIALIZATIONS
from tinyevo.strategies.evolution.mutation import MUTATIONS
from tinyevo.strategies.evolution.operator import at_least_one, build_operator, probability
from tinyevo.strategies.evolution.population_update import POPULATION_UPDATES
from tinyevo.strategies.evolution.restart import RESTARTS
from tinyevo.strategies.evolution.selection import PARENT_SELECTIONS
from tinyevo.spaces.base import SearchSpace

#: The parts of an evolutionary search: the option that names each part's operator, and its registry.
PARTS: dict[str, Registry] = {"initialization": INITIALIZATIONS, "parent_selection": PARENT_SELECTIONS,
                              "population_update": POPULATION_UPDATES, "crossover": CROSSOVERS,
                              "mutation": MUTATIONS, "restart": RESTARTS}


@dataclass
class EvolutionConfig:
    """The parts of an evolutionary search and their settings.

    The defaults are the parts of regularized evolution (Real et al. 2019) with a tournament of 5;
    the ``regularized`` preset sets its own sizes (see ``presets``). Each part is named; the names
    are those of the registries in ``PARTS``.
    """

    #: Members kept in the population (P).
    population_size: int = 25
    #: False: steady state, one child per ask, one update per result (regularized evolution).
    #: True: a whole generation of ``offspring_size`` children is bred at once (MCUNet, NSGA-II).
    generational: bool = False
    #: Children per generation (generational only); default: ``population_size``.
    offspring_size: int | None = None
    #: Initial candidates before breeding starts; default: ``population_size``. A smaller value
    #: starts breeding sooner and lets the population grow to ``population_size`` by children.
    initial_size: int | None = None
    initialization: str = "random"  # random | trivial | rich
    parent_selection: str = "tournament"  # tournament | roulette | truncation
    population_update: str = "discard_oldest"  # discard_oldest (= aging) | discard_worst | elitism | worst_and_oldest
    crossover: str = "auto"  # one_point | uniform | space | auto (uniform if fixed-length, else space)
    #: Probability that a child is a crossover of two parents (else a mutant of one parent).
    crossover_rate: float = 0.0
    mutation: str = "auto"  # one_gene | per_gene | space | auto (one_gene if fixed-length, else space)
    #: Probability that a crossover child is also mutated (mutants of one parent always are).
    mutation_rate: float = 1.0
    #: Re-draw a child whose architecture was already asked for (up to 50 times). A candidate
    #: that breaks the run's hard constraints is redrawn whatever this says.
    avoid_duplicates: bool = True
    #: Begin again when stuck (steady state only): none | local_optimum | auto (local_optimum on
    #: fixed-length spaces, none on variable-length ones); see ``restart``.
    restart: str = "none"
    #: The operators' parameters given, by option name (``tournament_size=40``).
    operator_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.offspring_size = self.population_size if self.offspring_size is None else self.offspring_size
        self.initial_size = self.population_size if self.initial_size is None else self.initial_size
        for name in ("population_size", "offspring_size", "initial_size"):
            at_least_one(name, getattr(self, name))
        self.operator_settings()  # checks every operator's parameters, chosen or not
        if self.generational and self.restart == "local_optimum":
            raise TinyevoError("evolution option restart='local_optimum' needs a steady-state "
                               "search (generational=False)")
        for name in ("crossover_rate", "mutation_rate"):
            probability(name, getattr(self, name))

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> "EvolutionConfig":
        """From flat options, the search's own and its operators' (a config file's names)."""
        own = {f.name for f in fields(cls)} - {"operator_options"}
        known = own | set(operator_parameters())
        unknown = sorted(set(options) - known)
        if unknown:
            raise TinyevoError(f"unknown evolution option {unknown[0]!r}; choose from: "
                               f"{', '.join(sorted(known))}")
        return cls(**{k: v for k, v in options.items() if k in own},
                   operator_options={k: v for k, v in options.items() if k not in own})

    def operator(self, part: str, space: SearchSpace):
        """The operator chosen for ``part`` (a key of ``PARTS``), with its parameters, for ``space``."""
        return build_operator(PARTS[part], getattr(self, part), space, self.population_size,
                              self.operator_options)

    def operator_settings(self) -> dict[str, Any]:
        """Every registered operator's parameters, as given or by default (shares of the population
        filled in): part of a run's identity whichever operators are chosen."""
        settings = {}
        for registry in PARTS.values():
            for name in registry.names():
                operator = registry.get(name).from_options(self.operator_options, self.population_size)
                settings.update({p: getattr(operator, p) for p in operator.parameters()})
        return settings

    def to_dict(self) -> dict[str, Any]:
        """The flat settings (a config file's names), the operators' parameters included."""
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "operator_options"}
        return {**own, **self.operator_settings()}


def operator_parameters() -> list[str]:
    """The parameter names of every registered operator."""
    return sorted({p for registry in PARTS.values() for name in registry.names()
                   for p in registry.get(name).parameters()})
