"""``EvolutionConfig``: every choice of an evolutionary search, by name, with its rates."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from tinyevo.errors import TinyevoError


@dataclass
class EvolutionConfig:
    """The parts of an evolutionary search and their settings.

    The defaults are the parts of regularized evolution (Real et al. 2019) with a tournament of 5;
    the ``regularized`` preset sets its own sizes (see ``presets``).

    Each part is named; the names are those of the registries in ``initialization``,
    ``selection``, ``population_update``, ``crossover`` and ``mutation``.
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
    #: Genomes (or their JSON) that rich initialization starts from.
    seeds: list = field(default_factory=list)
    parent_selection: str = "tournament"  # tournament | roulette | truncation
    #: Tournament sample size (S in Real et al. 2019).
    tournament_size: int = 5
    #: Truncation selection breeds from this many best; default: population_size // 5.
    truncation_size: int | None = None
    population_update: str = "discard_oldest"  # discard_oldest (= aging) | discard_worst | elitism | worst_and_oldest
    #: Members elitism always keeps; default: population_size // 5.
    elite_size: int | None = None
    crossover: str = "auto"  # one_point | uniform | space | auto (uniform if fixed-length, else space)
    #: Probability that a child is a crossover of two parents (else a mutant of one parent).
    crossover_rate: float = 0.0
    mutation: str = "auto"  # one_gene | per_gene | space | auto (one_gene if fixed-length, else space)
    #: Probability that a crossover child is also mutated (mutants of one parent always are).
    mutation_rate: float = 1.0
    #: Per-gene change probability of ``per_gene`` mutation.
    gene_mutation_rate: float = 0.1
    #: Re-draw a child whose architecture was already asked for (up to 50 times). A candidate
    #: that breaks the run's hard constraints is redrawn whatever this says.
    avoid_duplicates: bool = True
    #: Begin again when stuck (steady state only): none | local_optimum | auto (local_optimum on
    #: fixed-length spaces, none on variable-length ones); see ``restart``.
    restart: str = "none"
    #: Fresh random samples handed out after a restart; default: population_size // 4.
    restart_size: int | None = None

    def __post_init__(self):
        share = max(1, self.population_size // 5)
        self.offspring_size = self.population_size if self.offspring_size is None else self.offspring_size
        self.initial_size = self.population_size if self.initial_size is None else self.initial_size
        self.truncation_size = share if self.truncation_size is None else self.truncation_size
        self.elite_size = share if self.elite_size is None else self.elite_size
        self.restart_size = (max(1, self.population_size // 4) if self.restart_size is None
                             else self.restart_size)
        self._check()

    def _check(self):
        for name in ("population_size", "offspring_size", "initial_size", "tournament_size",
                     "truncation_size", "restart_size"):
            if int(getattr(self, name)) < 1:
                raise TinyevoError(f"evolution option {name} must be at least 1, got {getattr(self, name)}")
        if not 0 <= self.elite_size <= self.population_size:
            raise TinyevoError(f"evolution option elite_size must be in [0, population_size], "
                               f"got {self.elite_size}")
        if self.generational and self.restart == "local_optimum":
            raise TinyevoError("evolution option restart='local_optimum' needs a steady-state "
                               "search (generational=False)")
        for name in ("crossover_rate", "mutation_rate", "gene_mutation_rate"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise TinyevoError(f"evolution option {name} must be in [0, 1], got {getattr(self, name)}")

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> "EvolutionConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TinyevoError(f"unknown evolution option {unknown[0]!r}; choose from: "
                               f"{', '.join(sorted(known))}")
        return cls(**options)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
