"""``Evolution``: an evolutionary search assembled from named parts (survey section II-B).

    initialization -> [parent selection -> crossover / mutation -> evaluation -> population update]*

Steady state (default): each ask breeds one child from the current population and each result
updates it at once, so any batch size works (regularized evolution, Real et al. 2019). Generational
(``generational=True``): a whole generation is bred at once, handed out across asks, and merged
into the population when all its results are in (MCUNet, NSGA-II). If asked for more while the
last results of a generation are still out, the next generation is bred from the population as it
stands.

Under hard constraints a candidate (initial or child) that the runner's cost model rejects is
redrawn before it is asked for (``Strategy.meets_constraints``), like a duplicate: the whole initial
population is trained and no child is lost to a bound.
"""
from __future__ import annotations

from collections import deque

from tinyevo.strategies.base import DEFAULT_OBJECTIVES, STRATEGIES, Candidate, Strategy, Trial
from tinyevo.strategies.evolution.config import EvolutionConfig
from tinyevo.strategies.evolution.individual import Individual
from tinyevo.strategies.evolution.restart import NoRestart
from tinyevo.spaces.base import SearchSpace

#: How often a child whose architecture was already asked for (or that breaks a hard constraint)
#: is drawn again.
DUPLICATE_TRIES = 50
#: Generation tag of results the strategy never asked for (told to warm-start it).
UNASKED = -1


@STRATEGIES.register("evolution")
class Evolution(Strategy):
    """Evolutionary search; every option of ``EvolutionConfig`` can be passed as a keyword."""

    name = "evolution"

    def __init__(self, space: SearchSpace, seed: int = 0, objectives=DEFAULT_OBJECTIVES, **options):
        super().__init__(space, seed, objectives)
        self.config = config = EvolutionConfig.from_options(options)
        self.initialization = config.operator("initialization", space)
        self.parent_selection = config.operator("parent_selection", space)
        self.population_update = config.operator("population_update", space)
        self.crossover = config.operator("crossover", space)
        self.mutation = config.operator("mutation", space)
        self.restart = NoRestart() if config.generational else config.operator("restart", space)
        self.restarts = 0  # times the population was discarded (``restart``)
        self._restart_left = 0  # fresh samples still to hand out after the last restart
        self.population: list[Individual] = []
        self._initialized = 0  # initial candidates handed out
        self._born = 0  # individuals admitted so far
        self._generation = 0  # generation being handed out (0: the initial population)
        self._queue: deque[Candidate] = deque()  # bred children not handed out yet
        self._tags: deque[int] = deque()  # generational: generation of each candidate not told
        self._pending: dict[int, int] = {}  # generation -> candidates asked, not told
        self._offspring: dict[int, list[Individual]] = {}  # generation -> told, not merged
        self._seen: set[str] = set()  # keys of every architecture asked for

    def settings(self) -> dict:
        """The settings that rebuild this strategy (stored with a run, checked on resume)."""
        return self.config.to_dict()

    # --- ask -----------------------------------------------------------------------------------
    def ask(self, n: int) -> list[Candidate]:
        return [self._hand_out() for _ in range(n)]

    def _hand_out(self) -> Candidate:
        if not self._queue and self._wants_initial():
            if self._restart_left and self._initialized >= self.config.initial_size:
                candidate = self._fresh(lambda: self._sample("restart"))
                self._restart_left -= 1
            else:
                candidate = self._fresh(self._initial)
                self._initialized += 1
        elif self.config.generational:
            if not self._queue:
                self._generation += 1
                self._queue.extend(self._breed_generation())
            candidate = self._queue.popleft()
        else:
            candidate = self._fresh(lambda: self._child(self._crossover_draw()))
        if self.config.generational:
            self._tags.append(self._generation)
            self._pending[self._generation] = self._pending.get(self._generation, 0) + 1
        return candidate

    def _wants_initial(self) -> bool:
        return (self._initialized < self.config.initial_size or self._restart_left > 0
                or not self.population)

    def _sample(self, origin: str = "sample") -> Candidate:
        """A genome drawn uniformly from the space."""
        return Candidate(self.space.sample(self.rng), origin=origin)

    def _initial(self) -> Candidate:
        """The next member of the initial population (a redraw keeps its place)."""
        return self.initialization.candidate(self._initialized, self.rng)

    def _crossover_draw(self) -> bool:
        return len(self.population) >= 2 and self.rng.random() < self.config.crossover_rate

    def _breed_generation(self) -> list[Candidate]:
        """``offspring_size`` children: exactly ``crossover_rate`` of them by crossover."""
        size = self.config.offspring_size
        crossed = round(self.config.crossover_rate * size) if len(self.population) >= 2 else 0
        mutants = [self._fresh(lambda: self._child(False)) for _ in range(size - crossed)]
        return mutants + [self._fresh(lambda: self._child(True)) for _ in range(crossed)]

    def _child(self, by_crossover: bool) -> Candidate:
        first = self.parent_selection.select(self.population, self.rng)
        if not by_crossover:
            return Candidate(self.mutation.mutate(first.genome, self.rng), (first.id,), "mutation")
        others = [i for i in self.population if i is not first]
        second = self.parent_selection.select(others, self.rng)
        genome = self.crossover.cross(first.genome, second.genome, self.rng)
        if self.rng.random() < self.config.mutation_rate:
            return Candidate(self.mutation.mutate(genome, self.rng), (first.id, second.id),
                             "crossover+mutation")
        return Candidate(genome, (first.id, second.id), "crossover")

    def _fresh(self, make) -> Candidate:
        """A candidate from ``make``, drawn again while its architecture was asked for before
        (``avoid_duplicates``) or breaks a hard constraint of the run (``meets_constraints``:
        the cost model's verdict, no training spent).

        When the neighbourhood of the population is used up, a random genome restarts the search
        there (a population that breeds only duplicates would stall).
        """
        candidate = (self._acceptable(make) or
                     self._acceptable(self._sample))
        if candidate is None:  # the space seems exhausted: a duplicate (or an infeasible one) it is
            candidate = make()
        if self.config.avoid_duplicates:
            self._seen.add(self.space.key(candidate.genome))
        return candidate

    def _acceptable(self, make) -> Candidate | None:
        for _ in range(DUPLICATE_TRIES):
            candidate = make()
            if self.config.avoid_duplicates and self.space.key(candidate.genome) in self._seen:
                continue
            if self.meets_constraints(candidate.genome):
                return candidate
        return None

    # --- tell ----------------------------------------------------------------------------------
    def tell(self, trials: list[Trial]) -> None:
        for trial in trials:
            generation = self._tags.popleft() if self._tags else UNASKED
            individual = self._admit(trial)
            if generation == UNASKED:  # steady state, or a result told to warm-start
                self._merge([individual] if individual else [])
            else:
                self._collect(generation, individual)

    def _admit(self, trial: Trial) -> Individual | None:
        """The trial as a population member; None when it failed, broke a constraint or is
        a duplicate of a member (a result told twice does not count twice)."""
        if trial.key:
            self._seen.add(trial.key)
        fitness = self.fitness(trial)
        if fitness == float("-inf") or trial.metrics.get("constraint_violation", 0) > 0:
            return None
        if trial.key and any(i.trial.key == trial.key for i in self.population):
            return None
        self._born += 1
        return Individual(trial, fitness, self._born)

    def _collect(self, generation: int, individual: Individual | None) -> None:
        if individual is not None:
            self._offspring.setdefault(generation, []).append(individual)
        self._pending[generation] -= 1
        if self._pending[generation] == 0 and self._handed_out(generation):
            self._merge(self._offspring.pop(generation, []))

    def _handed_out(self, generation: int) -> bool:
        if generation < self._generation:
            return True
        return not self._queue and self._initialized >= self.config.initial_size

    def _merge(self, newcomers: list[Individual]) -> None:
        pool = self.population + newcomers
        self.population = self.population_update.survivors(pool, self.config.population_size)
        self.restart.observe(newcomers, self.meets_constraints)
        if self.restart.stuck(self._seen):  # a confirmed local optimum: begin again
            self.population, self._restart_left = [], self.restart.restart_size
            self.restart.reset()
            self.restarts += 1
