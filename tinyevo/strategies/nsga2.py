"""NSGA-II (K. Deb, A. Pratap, S. Agarwal, T. Meyarivan, IEEE TEVC 2002): multi-objective evolution.

Accuracy against peak SRAM, flash, latency or MACs: the population is ranked into non-dominated
fronts and, inside a front, by crowding distance (both from pymoo). Constraints follow Deb's
constraint domination: every feasible member ranks before every infeasible one, and infeasible
members rank by ``metrics["constraint_violation"]`` (smaller first) when the trial reports it.
In a run with hard constraints the runner's cost-model check (``Strategy.set_feasibility``) makes
infeasible members rare: a candidate that breaks a bound is redrawn before it is asked for.
Breeding reuses the evolution parts: binary crowded tournament, crossover and mutation.
Generational by default (Deb et al.); ``generational=False`` merges each child as soon as it is
scored (steady-state NSGA-II, Durillo et al. 2009), which selects far more often on a budget of a
few populations.
"""
from __future__ import annotations

import numpy as np
from pymoo.operators.survival.rank_and_crowding.metrics import get_crowding_function
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from tinyevo.errors import TinyevoError
from tinyevo.strategies.base import INFEASIBLE, OK, STRATEGIES, Objective, Trial
from tinyevo.strategies.evolution.algorithm import Evolution
from tinyevo.strategies.evolution.individual import Individual
from tinyevo.strategies.pareto import losses

DEFAULT_OBJECTIVES = (Objective("accuracy", "max"), Objective("peak_sram_bytes", "min"))
DEFAULTS = dict(population_size=50, generational=True, crossover="auto", crossover_rate=0.9,
                mutation="auto", mutation_rate=1.0, avoid_duplicates=True)


def constraint_violation(trial: Trial, objectives) -> float | None:
    """0 for a feasible trial, > 0 for an infeasible one, None when it cannot be ranked."""
    reported = float(trial.metrics.get("constraint_violation", 0.0))
    if trial.status == INFEASIBLE:
        return reported if reported > 0 else float("inf")
    if trial.status != OK or any(trial.value(o) is None for o in objectives):
        return None
    return max(reported, 0.0)


class CrowdedTournament:
    """Binary tournament: lower rank wins, then larger crowding distance, then the first drawn."""

    def select(self, population: list[Individual], rng: np.random.Generator) -> Individual:
        if len(population) == 1:
            return population[0]
        a, b = (population[i] for i in rng.choice(len(population), size=2, replace=False))
        return b if (b.rank, -b.crowding) < (a.rank, -a.crowding) else a


class RankAndCrowding:
    """NSGA-II survival: whole fronts in rank order, the last one cut by crowding distance."""

    def __init__(self, objectives):
        self.objectives = objectives
        self.crowding = get_crowding_function("cd")

    def survivors(self, population: list[Individual], size: int) -> list[Individual]:
        kept: list[Individual] = []
        for rank, front in enumerate(self.fronts(_one_per_key(population))):
            self._annotate(front, rank)
            room = size - len(kept)
            if room <= 0:
                break
            kept += sorted(front, key=lambda i: (-i.crowding, i.born))[:room]
        ids = {id(i) for i in kept}
        return [i for i in population if id(i) in ids]

    def fronts(self, population: list[Individual]) -> list[list[Individual]]:
        """Feasible members in non-dominated fronts, then infeasible ones by violation."""
        feasible = [i for i in population if i.violation == 0]
        fronts = []
        if feasible:
            matrix = losses([i.trial for i in feasible], self.objectives)
            fronts = [[feasible[j] for j in sorted(f)] for f in NonDominatedSorting().do(matrix)]
        infeasible = sorted((i for i in population if i.violation > 0), key=lambda i: i.violation)
        for violation in sorted({i.violation for i in infeasible}):
            fronts.append([i for i in infeasible if i.violation == violation])
        return fronts

    def _annotate(self, front: list[Individual], rank: int) -> None:
        crowding = np.zeros(len(front))
        if front[0].violation == 0:
            crowding = self.crowding.do(losses([i.trial for i in front], self.objectives))
        for individual, distance in zip(front, crowding):
            individual.rank, individual.crowding = rank, float(distance)


def _one_per_key(population: list[Individual]) -> list[Individual]:
    """Members of distinct architectures: a duplicate told again does not count twice."""
    seen, unique = set(), []
    for individual in population:
        key = individual.trial.key
        if not key or key not in seen:
            seen.add(key)
            unique.append(individual)
    return unique


@STRATEGIES.register("nsga2")
class NSGA2(Evolution):
    """NSGA-II over ``objectives``; takes the options of ``EvolutionConfig`` except the selections."""

    name = "nsga2"
    multi_objective = True

    def __init__(self, space, seed: int = 0, objectives=DEFAULT_OBJECTIVES, **options):
        fixed = {"parent_selection", "population_update"} & set(options)
        if fixed:
            raise TinyevoError(f"nsga2 selects by rank and crowding; remove the option "
                               f"{sorted(fixed)[0]!r} (or use strategy 'evolution')")
        super().__init__(space, seed, objectives, **{**DEFAULTS, **options})
        self.parent_selection = CrowdedTournament()
        self.population_update = RankAndCrowding(self.objectives)

    def _admit(self, trial: Trial) -> Individual | None:
        if trial.key:
            self._seen.add(trial.key)
        violation = constraint_violation(trial, self.objectives)
        if violation is None:
            return None
        self._born += 1
        return Individual(trial, -violation, self._born, violation=violation)
