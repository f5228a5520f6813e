"""Each evolutionary part shows the behaviour that defines it (survey section II-B).

Selection and population update are checked on hand-made populations, crossover and mutation on a
small fixed-length space defined here (every vector valid, decoding free), initialization on the
real spaces with the cost model as the judge of "smallest". Statistical checks use fixed seeds
and scipy's tests against the proportions the method promises.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from scipy import stats

from tinyevo.errors import InvalidArchitecture, TinyevoError
from tinyevo.hardware import estimate_cost
from tinyevo.strategies import Trial, create_strategy
from tinyevo.strategies.evolution import (CROSSOVERS, INITIALIZATIONS, MUTATIONS, PARENT_SELECTIONS,
                                          POPULATION_UPDATES, EvolutionConfig, Individual, Operator,
                                          build_operator)
from tinyevo.strategies.evolution.config import PARTS
from tinyevo.strategies.evolution.crossover import one_point, uniform
from tinyevo.spaces import create_space
from tinyevo.spaces.base import SearchSpace


def member(fitness: float, born: int) -> Individual:
    return Individual(Trial(born, f"genome-{born}", metrics={"accuracy": fitness}), fitness, born)


def population(fitnesses) -> list[Individual]:
    """Members born 1, 2, ... in order: the first is the oldest."""
    return [member(f, born) for born, f in enumerate(fitnesses, start=1)]


def part(registry, name: str, space=None, **options):
    """A part built by name from evolution options, as ``Evolution`` builds it."""
    return build_operator(registry, name, space, options.pop("population_size", 25), options)


def fitnesses(members) -> list[float]:
    return [m.fitness for m in members]


# --- population update -------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["discard_oldest", "aging"])
def test_aging_removes_the_oldest_even_when_it_is_the_best(name):
    members = population([0.99, 0.1, 0.5, 0.2])  # the oldest is by far the best
    kept = part(POPULATION_UPDATES, name).survivors(members, 3)
    assert [m.born for m in kept] == [2, 3, 4]


def test_aging_over_a_run_keeps_exactly_the_youngest():
    update, rng = part(POPULATION_UPDATES, "discard_oldest"), np.random.default_rng(0)
    members: list[Individual] = []
    for born in range(1, 101):
        members = update.survivors(members + [member(float(rng.random()), born)], 10)
    assert [m.born for m in members] == list(range(91, 101))


def test_elitism_never_loses_the_best():
    update, rng = part(POPULATION_UPDATES, "elitism", population_size=10, elite_size=2), \
        np.random.default_rng(1)
    members, best = [], -1.0
    for born in range(1, 301):
        newcomer = member(float(rng.random()), born)
        best = max(best, newcomer.fitness)
        members = update.survivors(members + [newcomer], 10)
        assert len(members) <= 10 and best in fitnesses(members)


def test_elitism_keeps_the_elite_and_otherwise_the_youngest():
    members = population([0.9, 0.8, 0.1, 0.2, 0.3, 0.4])  # the two best are the two oldest
    kept = part(POPULATION_UPDATES, "elitism", population_size=4, elite_size=2).survivors(members, 4)
    assert [m.born for m in kept] == [1, 2, 5, 6]


def test_discard_worst_removes_the_worst():
    members = population([0.5, 0.9, 0.1, 0.7, 0.3])
    kept = part(POPULATION_UPDATES, "discard_worst").survivors(members, 3)
    assert fitnesses(kept) == [0.5, 0.9, 0.7]  # 0.1 and 0.3 go; the order of the rest is kept


def test_discard_worst_breaks_ties_by_age():
    members = population([0.2, 0.5, 0.2])
    kept = part(POPULATION_UPDATES, "discard_worst").survivors(members, 2)
    assert [m.born for m in kept] == [2, 3]  # the older of the two worst goes


def test_worst_and_oldest_discards_each_in_turn():
    update = part(POPULATION_UPDATES, "worst_and_oldest")
    members = population([0.9, 0.5, 0.1, 0.7])
    members = update.survivors(members, 3)  # first the oldest (the best, born 1)
    assert [m.born for m in members] == [2, 3, 4]
    members = update.survivors(members + [member(0.6, 5)], 4)  # full: nothing goes
    members = update.survivors(members + [member(0.8, 6)], 4)  # then the worst (0.1, born 3)
    assert [m.born for m in members] == [2, 4, 5, 6]
    members = update.survivors(members + [member(0.05, 7)], 4)  # then the oldest again (born 2)
    assert [m.born for m in members] == [4, 5, 6, 7]


# --- parent selection --------------------------------------------------------------------------
def test_tournament_as_large_as_the_population_picks_the_best():
    members = population([0.3, 0.8, 0.1, 0.5, 0.6])
    tournament = part(PARENT_SELECTIONS, "tournament", tournament_size=5)
    for seed in range(50):
        assert tournament.select(members, np.random.default_rng(seed)).fitness == 0.8


def test_tournament_never_picks_the_worst_and_size_one_is_uniform():
    members = population([0.3, 0.8, 0.1, 0.5, 0.6])
    rng = np.random.default_rng(2)
    pair = part(PARENT_SELECTIONS, "tournament", tournament_size=2)
    picks = [pair.select(members, rng).fitness for _ in range(2000)]
    assert 0.1 not in picks
    # size 2 of 5, distinct draws: the k-th worst wins with probability (k-1)/10
    counts = [picks.count(f) for f in (0.3, 0.5, 0.6, 0.8)]
    assert stats.chisquare(counts, np.array([1, 2, 3, 4]) / 10 * 2000).pvalue > 0.001
    single = part(PARENT_SELECTIONS, "tournament", tournament_size=1)
    counts = np.bincount([single.select(members, rng).born for _ in range(2500)], minlength=6)[1:]
    assert stats.chisquare(counts).pvalue > 0.001


def test_roulette_picks_in_proportion_to_fitness():
    values = [0.1, 0.2, 0.3, 0.4]
    members, rng = population(values), np.random.default_rng(3)
    roulette = part(PARENT_SELECTIONS, "roulette")
    draws = 20_000
    counts = np.bincount([roulette.select(members, rng).born for _ in range(draws)], minlength=5)[1:]
    expected = np.array(values) / sum(values) * draws
    assert stats.chisquare(counts, expected).pvalue > 0.001
    # the test has power: the same counts are far from a uniform pick
    assert stats.chisquare(counts, np.full(4, draws / 4)).pvalue < 1e-12


def test_roulette_gives_failed_members_nothing():
    members = population([0.5, float("-inf"), 0.5])
    roulette, rng = part(PARENT_SELECTIONS, "roulette"), np.random.default_rng(4)
    assert {roulette.select(members, rng).born for _ in range(500)} == {1, 3}


def test_truncation_picks_only_from_the_top_k():
    values = [0.15, 0.9, 0.3, 0.8, 0.1, 0.7, 0.2, 0.6, 0.4, 0.5]
    members, rng = population(values), np.random.default_rng(5)
    truncation = part(PARENT_SELECTIONS, "truncation", truncation_size=3)
    picks = [truncation.select(members, rng).fitness for _ in range(3000)]
    assert set(picks) == {0.9, 0.8, 0.7}
    assert stats.chisquare([picks.count(f) for f in (0.9, 0.8, 0.7)]).pvalue > 0.001


# --- crossover and mutation on a fixed-length space ---------------------------------------------
class VectorSpace(SearchSpace):
    """``genes`` genes of ``choices`` values each; every vector is a valid genome."""

    name = "vector"

    def __init__(self, genes: int = 40, choices: int = 4):
        super().__init__()
        self.genes, self.choices = genes, choices

    def dimensions(self):
        return [(f"g{i}", list(range(self.choices))) for i in range(self.genes)]

    def to_vector(self, genome):
        return list(genome)

    def from_vector(self, vector):
        return [int(v) for v in vector]

    def decode(self, genome):
        if len(genome) != self.genes or not all(0 <= v < self.choices for v in genome):
            raise InvalidArchitecture("out of range")

    def sample(self, rng):
        return rng.integers(0, self.choices, self.genes).tolist()

    def _mutate(self, genome, rng):
        raise AssertionError("vector operators must not fall back to the space's own")

    _crossover = _mutate

    def describe(self, genome):
        return str(genome)


def test_one_point_crossover_is_a_prefix_of_one_parent_and_a_suffix_of_the_other():
    space, rng = VectorSpace(genes=8), np.random.default_rng(6)
    a, b = [0] * 8, [1] * 8
    crossover, cuts = part(CROSSOVERS, "one_point", space), set()
    for _ in range(400):
        child = crossover.cross(a, b, rng)
        cut = child.index(1)
        assert child == a[:cut] + b[cut:]
        cuts.add(cut)
    assert cuts == set(range(1, 8))  # every cut point; both parents always give a gene


def test_uniform_crossover_takes_each_gene_from_either_parent_with_probability_half():
    space, rng = VectorSpace(genes=40), np.random.default_rng(7)
    crossover = part(CROSSOVERS, "uniform", space)
    a, b = [0] * 40, [1] * 40
    children = np.array([crossover.cross(a, b, rng) for _ in range(500)])
    assert stats.binomtest(int(children.sum()), children.size, 0.5).pvalue > 0.001
    # not a one-point splice: many children switch parents more than once
    switches = np.abs(np.diff(children, axis=1)).sum(axis=1)
    assert (switches > 1).mean() > 0.9
    # genes are drawn independently: neighbours agree half the time
    same = (children[:, 1:] == children[:, :-1]).mean()
    assert abs(same - 0.5) < 0.02


def test_crossover_functions_keep_every_gene_from_a_parent():
    rng = np.random.default_rng(8)
    va, vb = rng.integers(0, 5, 12).tolist(), rng.integers(0, 5, 12).tolist()
    for child in [one_point(va, vb, rng) for _ in range(50)] + [uniform(va, vb, rng) for _ in range(50)]:
        assert all(c in (x, y) for c, x, y in zip(child, va, vb))


def test_per_gene_mutation_changes_about_a_tenth_of_the_genes():
    space, rng = VectorSpace(genes=50, choices=4), np.random.default_rng(9)
    mutation = part(MUTATIONS, "per_gene", space, gene_mutation_rate=0.1)
    parent, changed, children = [0] * 50, 0, 400
    for _ in range(children):
        child = mutation.mutate(parent, rng)
        changed += sum(c != p for c, p in zip(child, parent))
    assert stats.binomtest(changed, children * 50, 0.1).pvalue > 0.001
    assert abs(changed / (children * 50) - 0.1) < 0.01


def test_one_gene_mutation_changes_exactly_one_gene_to_any_other_value():
    space, rng = VectorSpace(genes=6, choices=5), np.random.default_rng(10)
    mutation = part(MUTATIONS, "one_gene", space)
    parent, genes, values = [2] * 6, [], []
    for _ in range(1500):
        child = mutation.mutate(parent, rng)
        diff = [i for i, (c, p) in enumerate(zip(child, parent)) if c != p]
        assert len(diff) == 1
        genes.append(diff[0])
        values.append(child[diff[0]])
    assert stats.chisquare(np.bincount(genes, minlength=6)).pvalue > 0.001
    assert set(values) == {0, 1, 3, 4}


def test_vector_operators_refuse_variable_length_spaces():
    chain = create_space("chain")
    for registry, name in ((CROSSOVERS, "one_point"), (CROSSOVERS, "uniform"),
                           (MUTATIONS, "per_gene"), (MUTATIONS, "one_gene")):
        with pytest.raises(TinyevoError, match="fixed-length"):
            part(registry, name, chain)


# --- initialization ----------------------------------------------------------------------------
SPACES = {"nb201": {}, "chain": {}, "mbv2": {}, "dag": {}, "blocks": {}, "densenet": {},
          "nasnet": dict(input_shape=(12, 12, 3), blocks=2), "kws": {}, "tcn": {}}


@pytest.mark.parametrize("space_name", sorted(SPACES))
def test_trivial_initialization_gives_the_smallest_architectures(space_name):
    space, rng = create_space(space_name, **SPACES[space_name]), np.random.default_rng(11)
    init = part(INITIALIZATIONS, "trivial", space)
    trivial = [init.candidate(i, rng) for i in range(3)]
    assert trivial[0].origin == "trivial" and all(space.is_valid(c.genome) for c in trivial)
    smallest = estimate_cost(space.decode(trivial[0].genome))
    for _ in range(15):
        other = estimate_cost(space.decode(space.sample(rng)))
        assert smallest.macs <= other.macs and smallest.params <= other.params
    if space_name == "nb201":  # the cell adds nothing: the same cost as the skeleton with no ops
        assert smallest.params == min(estimate_cost(space.decode(space.from_vector(v))).params
                                      for v in ([0] * 6, [1] * 6, [0, 0, 0, 1, 0, 0]))
    # the other initial places: mutants of the smallest (copies would be duplicates)
    assert all(c.origin == "trivial+mutation" for c in trivial[1:])
    strategy = create_strategy("evolution", space, seed=0, initialization="trivial", population_size=3)
    asked = strategy.ask(3)
    assert asked[0].genome == trivial[0].genome
    assert [c.origin for c in asked] == ["trivial"] + ["trivial+mutation"] * 2


def test_rich_initialization_starts_from_the_given_genomes():
    space = create_space("nb201")
    seeds = [space.from_vector([3, 3, 3, 1, 2, 3]), space.from_vector([2, 2, 0, 1, 0, 3])]
    strategy = create_strategy("regularized", space, seed=0, initialization="rich", seeds=seeds,
                               population_size=5)
    asked = strategy.ask(5)
    assert [c.genome for c in asked[:2]] == seeds
    assert [c.origin for c in asked] == ["seeded", "seeded", "sample", "sample", "sample"]
    assert all(space.is_valid(c.genome) for c in asked[2:])
    with pytest.raises(TinyevoError, match="seeds"):
        create_strategy("regularized", space, initialization="rich")


def test_random_initialization_samples_the_space():
    space = create_space("nb201")
    strategy = create_strategy("regularized", space, seed=0, population_size=20)
    asked = strategy.ask(20)
    assert all(c.origin == "sample" and space.is_valid(c.genome) for c in asked)
    assert len({c.genome for c in asked}) == 20


# --- restart -----------------------------------------------------------------------------------
def one_gene_neighbours(vector, choices):
    """Every vector that differs from ``vector`` in exactly one gene (listed here, not by tinyevo)."""
    return {tuple(vector[:g]) + (v,) + tuple(vector[g + 1:])
            for g in range(len(vector)) for v in range(choices) if v != vector[g]}


class KeyedVectorSpace(VectorSpace):
    """A vector space whose genomes are their own identity (no network to fingerprint)."""

    def key(self, genome):
        return str(list(genome))


@pytest.mark.parametrize("constrained", [False, True])
def test_local_optimum_restart_fires_exactly_when_the_best_has_no_unasked_neighbour(constrained):
    space, choices = KeyedVectorSpace(genes=3, choices=3), 3
    # under a hard constraint (no 1 in the first gene) such neighbours are never asked for
    feasible = (lambda v: v[0] != 1) if constrained else (lambda v: True)
    # two basins: [0, 0, 0] is a local optimum, [2, 2, 2] the global one
    def accuracy(v):
        return 1.0 if v == (2, 2, 2) else 0.9 - 0.1 * sum(x != 0 for x in v) + 0.01 * v.count(2)
    strategy = create_strategy("evolution", space, seed=3, population_size=4, tournament_size=4,
                               restart="local_optimum", restart_size=2)
    if constrained:
        strategy.set_feasibility(lambda genome: feasible(tuple(genome)))
    asked, best, restarts, origins_after = set(), None, 0, []
    for trial_id in range(16):
        [candidate] = strategy.ask(1)
        vector = tuple(candidate.genome)
        if restarts == 1 and len(origins_after) < 3:
            origins_after.append(candidate.origin)
        asked.add(vector)
        assert feasible(vector)
        strategy.tell([Trial(trial_id, candidate.genome, metrics={"accuracy": accuracy(vector)},
                             key=space.key(candidate.genome))])
        if best is None or accuracy(vector) > accuracy(best):
            best = vector
        stuck = {n for n in one_gene_neighbours(best, choices) if feasible(n)} <= asked
        assert strategy.restarts == restarts + stuck, f"trial {trial_id}: best {best}"
        if stuck:
            restarts, best = restarts + 1, None
            assert strategy.population == []
    assert restarts >= 1
    # restart_size fresh samples, then breeding from them again
    assert origins_after == ["restart", "restart", "mutation"]


def test_restart_auto_is_local_optimum_on_fixed_length_spaces_and_none_on_variable_length():
    from tinyevo.strategies.evolution.restart import LocalOptimumRestart, NoRestart
    assert isinstance(create_strategy("regularized", create_space("nb201")).restart,
                      LocalOptimumRestart)
    assert isinstance(create_strategy("regularized", create_space("chain")).restart, NoRestart)
    with pytest.raises(TinyevoError, match="fixed-length"):
        create_strategy("evolution", create_space("chain"), restart="local_optimum")
    with pytest.raises(TinyevoError, match="steady-state"):
        create_strategy("evolution", create_space("nb201"), restart="local_optimum",
                        generational=True)
    with pytest.raises(TinyevoError, match="restart"):
        create_strategy("evolution", create_space("nb201"), restart="sometimes")


# --- the contract of every registered operator --------------------------------------------------
OPERATORS = [(part_name, name) for part_name, registry in PARTS.items() for name in registry.names()]
#: What a small steady-state search's options are called in a config file (the README's list).
OPTION_NAMES = {"population_size", "generational", "offspring_size", "initial_size", "initialization",
                "seeds", "parent_selection", "tournament_size", "truncation_size", "population_update",
                "elite_size", "crossover", "crossover_rate", "mutation", "mutation_rate",
                "gene_mutation_rate", "avoid_duplicates", "restart", "restart_size"}


def use(part_name: str, operator, space, rng) -> list:
    """What the operator makes from a population of 6 sampled cells (fitness 0.1 ... 0.6), as
    plain data; asserts that each thing it makes is valid for its kind."""
    genomes = [space.sample(np.random.default_rng(i)) for i in range(6)]
    members = [Individual(Trial(i, g, key=space.key(g)), 0.1 * (i + 1), i + 1)
               for i, g in enumerate(genomes)]
    if part_name == "initialization":
        made = [operator.candidate(i, rng).genome for i in range(8)]
    elif part_name == "parent_selection":
        made = [operator.select(members, rng).id for _ in range(8)]
        assert set(made) <= {m.id for m in members}
        return made
    elif part_name == "population_update":
        kept = operator.survivors(members, 4)
        assert len(kept) == 4 and kept == [m for m in members if m in kept]  # members, in order
        return [m.id for m in kept]
    elif part_name == "crossover":
        made = [operator.cross(genomes[0], genomes[1], rng) for _ in range(8)]
    elif part_name == "mutation":
        made = [operator.mutate(genomes[i % 6], rng) for i in range(8)]
    else:  # restart: nothing asked yet, so the best member's neighbourhood is not explored
        operator.observe(members, lambda genome: True)
        assert operator.restart_size >= 0 and operator.stuck(set()) is False
        return [operator.restart_size]
    assert all(space.is_valid(g) for g in made)
    return made


@pytest.mark.parametrize("part_name,name", OPERATORS)
def test_every_registered_operator_builds_from_its_defaults_makes_valid_things_and_is_seeded(part_name, name):
    space = create_space("nb201")
    options = {"seeds": [space.sample(np.random.default_rng(99))]} if name == "rich" else {}
    runs = [use(part_name, build_operator(PARTS[part_name], name, space, 8, options), space,
                np.random.default_rng(7)) for _ in range(2)]
    assert runs[0] == runs[1]


def test_every_operator_parameter_is_an_evolution_option_with_one_default():
    defaults = {}
    for part_name, name in OPERATORS:
        operator = PARTS[part_name].get(name).from_options({}, 25)
        for parameter in operator.parameters():
            assert defaults.setdefault(parameter, getattr(operator, parameter)) == getattr(operator, parameter)
    assert set(EvolutionConfig().to_dict()) == OPTION_NAMES == set(defaults) | set(PARTS) | {
        "population_size", "generational", "offspring_size", "initial_size", "crossover_rate",
        "mutation_rate", "avoid_duplicates"}


def test_the_flat_settings_keep_their_names_and_documented_defaults():
    """Defaults documented in ``EvolutionConfig`` and the operators, for P = 40: offspring and
    initial size P, truncation and elite P // 5 = 8, restart size P // 4 = 10."""
    settings = EvolutionConfig.from_options({"population_size": 40, "tournament_size": 40}).to_dict()
    assert settings == {"population_size": 40, "generational": False, "offspring_size": 40,
                        "initial_size": 40, "initialization": "random", "seeds": [],
                        "parent_selection": "tournament", "tournament_size": 40, "truncation_size": 8,
                        "population_update": "discard_oldest", "elite_size": 8, "crossover": "auto",
                        "crossover_rate": 0.0, "mutation": "auto", "mutation_rate": 1.0,
                        "gene_mutation_rate": 0.1, "avoid_duplicates": True, "restart": "none",
                        "restart_size": 10}
    with pytest.raises(TinyevoError, match="tournament_size must be at least 1"):
        EvolutionConfig.from_options({"parent_selection": "truncation", "tournament_size": 0})


@dataclass
class FirstOfTheBest(Operator):
    """A parent selection written for this test: the oldest of the ``best_k`` fittest."""

    best_k: int = 2

    def select(self, population, rng):
        best = sorted(population, key=lambda i: i.fitness, reverse=True)[:self.best_k]
        return min(best, key=lambda i: i.born)


def test_a_new_operator_is_its_class_and_its_registration(monkeypatch):
    monkeypatch.setitem(PARENT_SELECTIONS._factories, "first_of_the_best", FirstOfTheBest)
    strategy = create_strategy("evolution", create_space("nb201"), parent_selection="first_of_the_best",
                               best_k=3)
    assert strategy.parent_selection == FirstOfTheBest(best_k=3)
    assert strategy.settings()["best_k"] == 3
    members = population([0.5, 0.9, 0.7, 0.8])  # the best three are born 2, 3, 4
    assert strategy.parent_selection.select(members, np.random.default_rng(0)).born == 2
