"""The ``surrogate`` strategy: its model ranks unseen NB201 cells, its features work on every space,
and in a run it takes the costs of untrained candidates from the cost model, exactly.

The oracle of the ranking is the NAS-Bench-201 table itself (read here with gzip + csv): after 50
random cells are told, the model's predicted mean on 500 other cells is compared with their table
validation accuracy by Kendall's tau (scipy). Chance is tau = 0.
"""
from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import kendalltau

from tinyevo.errors import TinyevoError
from tinyevo.run import Budget, Constraints, Runner
from tinyevo.estimate.tabular import TabularEstimator
from tinyevo.strategies import OK, Objective, Trial, create_strategy
from tinyevo.strategies.surrogate_features import GenomeEncoder
from tinyevo.spaces import create_space

TABLE = Path(__file__).resolve().parents[1] / "../shared/datasets/nb201_12epoch.csv.gz"
needs_table = pytest.mark.skipif(not TABLE.exists(), reason="NAS-Bench-201 table not available")
OBSERVED, HELD_OUT = 50, 500
#: Well above chance: under no association tau on 500 cells has a standard deviation of
#: sqrt(2 (2n + 5) / (9 n (n - 1))) = 0.030, so 0.2 is more than six of them.
TAU_MARGIN = 0.2


@pytest.fixture(scope="module")
def validation():
    with gzip.open(TABLE, "rt") as file:
        return {row["arch"]: float(row["cifar10-val"]) / 100 for row in csv.DictReader(file)}


def told_and_held_out(space, validation, seed):
    """``OBSERVED`` random distinct cells as trials, and ``HELD_OUT`` other distinct cells."""
    rng = np.random.default_rng(seed)
    cells = list(validation)
    order = rng.permutation(len(cells))
    picked, keys = [], set()
    for index in order:
        key = space.key(cells[index])
        if key not in keys:
            keys.add(key)
            picked.append(cells[index])
        if len(picked) == OBSERVED + HELD_OUT:
            break
    trials = [Trial(i, g, OK, {"accuracy": validation[g]}, key=space.key(g))
              for i, g in enumerate(picked[:OBSERVED])]
    return trials, picked[OBSERVED:]


@needs_table
@pytest.mark.parametrize("model", ["gp", "forest"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_model_ranks_held_out_cells_better_than_chance(validation, model, seed):
    space = create_space("nb201")
    strategy = create_strategy("surrogate", space, seed=seed, model=model)
    trials, held_out = told_and_held_out(space, validation, seed)
    strategy.tell(trials)
    mean, std = strategy.predict("accuracy", held_out)
    tau = kendalltau(mean, [validation[g] for g in held_out]).statistic
    print(f"{model} seed {seed}: Kendall tau {tau:.3f} on {HELD_OUT} held-out cells after "
          f"{OBSERVED} observations")
    assert tau > TAU_MARGIN
    assert np.all(std > 0)


def test_one_hot_features_of_a_fixed_length_space():
    space = create_space("nb201")
    encoder = GenomeEncoder(space)
    genome = space.sample(np.random.default_rng(0))
    row = encoder.encode([genome])[0]
    vector = space.to_vector(genome)
    assert encoder.width == 30 and row.sum() == 6  # six edges, five ops each: one 1 per edge
    assert [int(np.flatnonzero(row[5 * e:5 * e + 5])[0]) for e in range(6)] == vector


@pytest.mark.parametrize("name", ["chain", "blocks"])
def test_bag_features_of_a_variable_length_space(name):
    """Same genome, same features (in any process: a fixed hash); a mutant differs; the width does
    not depend on the length."""
    space = create_space(name)
    rng = np.random.default_rng(3)
    encoder = GenomeEncoder(space)
    genomes = [space.sample(rng) for _ in range(5)]
    mutants = [space.mutate(g, rng) for g in genomes]
    rows = encoder.encode(genomes + mutants)
    assert rows.shape == (10, encoder.width)
    assert np.array_equal(rows, GenomeEncoder(space).encode(genomes + mutants))
    for i in range(5):
        if space.key(genomes[i]) != space.key(mutants[i]):
            assert not np.array_equal(rows[i], rows[5 + i])


def op_count_cost(architecture, board):
    """A cost model a person can check: 100 MACs per conv in the cell."""
    return {"macs": 100 * architecture.meta["genome"].count("conv")}


@needs_table
def test_costs_come_from_the_cost_model_and_constraints_hold():
    """Two objectives (accuracy up, MACs down) under a MACs bound: accuracy is modelled, the
    MACs of every candidate are the cost model's own (counted here by hand in the cell string),
    nothing over the bound is asked, and the children are the model's choices."""
    space = create_space("nb201")
    objectives = (Objective("accuracy", "max"), Objective("macs", "min"))
    strategy = create_strategy("surrogate", space, seed=4, objectives=objectives, initial_size=6)
    runner = Runner(space, strategy, TabularEstimator(path=str(TABLE)), budget=Budget(evaluations=20),
                    constraints=Constraints(max_macs=400), cost_model=op_count_cost, progress=False)
    trials = runner.run()
    assert runner.evaluated == 20 and {t.status for t in trials} == {"ok"}
    for trial in trials:
        assert trial.genome.count("conv") <= 4
        assert strategy.cost_of(trial.genome)["macs"] == 100 * trial.genome.count("conv") \
            == trial.metrics["macs"]
    assert sum(t.origin == "mutation+surrogate" for t in trials) >= 10
    assert strategy.proposals >= 10


def test_bad_options_are_one_line_errors():
    space = create_space("nb201")
    for options in (dict(model="mlp"), dict(pool_size=0), dict(explore_rate=2.0),
                    dict(generational=True), dict(restart_pi=1.5), dict(model_budget=0)):
        with pytest.raises(TinyevoError) as error:
            create_strategy("surrogate", space, **options)
        assert "\n" not in str(error.value)


def told_around(space, target, seed):
    """Random nb201 cells and ``target``, with accuracy = the share of the six edges whose op
    equals the target's (a hand-made oracle: ``target`` is the one optimum, its neighbours 5/6)."""
    rng = np.random.default_rng(seed)
    cells, keys = [], set()
    while len(cells) < 60:
        genome = space.sample(rng)
        key = space.key(genome)
        if key not in keys and genome != target:
            keys.add(key)
            cells.append(genome)
    cells.append(target)  # told last: the best living member
    share = lambda g: float(np.mean(np.array(space.to_vector(g)) == np.array(space.to_vector(target))))
    return [Trial(i, g, OK, {"accuracy": share(g)}, key=space.key(g)) for i, g in enumerate(cells)]


@pytest.mark.parametrize("seed", [0, 2])
def test_the_model_confirms_a_local_optimum_and_restarts(seed):
    """The best told cell is the optimum of a function the GP fits well: no neighbour can beat it,
    so with ``restart_pi`` the search begins again (a fresh sample) instead of trying them; without
    it, the next child is a neighbour of the best."""
    space = create_space("nb201")
    target = space.from_vector([1, 2, 3, 4, 1, 2])
    for restart_pi, origin, restarts in ((0.01, "restart", 1), (None, "mutation+surrogate", 0)):
        strategy = create_strategy("surrogate", space, seed=seed, restart_pi=restart_pi,
                                   initial_size=1)
        first = strategy.ask(1)[0]  # the one initial sample, then the told cells
        strategy.tell([Trial(100, first.genome, OK, {"accuracy": 0.0}, key=space.key(first.genome))])
        strategy.tell(told_around(space, target, seed))
        candidate = strategy.ask(1)[0]
        assert (candidate.origin, strategy.restarts) == (origin, restarts)
        if origin != "restart":
            vector = space.to_vector(candidate.genome)
            assert sum(a != b for a, b in zip(vector, space.to_vector(target))) == 1


@pytest.mark.parametrize("name", ["chain", "nb201"])
def test_the_remembering_view_draws_and_keys_as_the_space_does(name):
    """The surrogate's view of the space keeps validity and keys by genome; the oracle is the
    space itself: the same seeded mutations and samples, the same verdicts and keys."""
    from tinyevo.strategies.remembered_space import remembering
    space = create_space(name)
    view = remembering(space)
    assert remembering(view) is view
    plain_rng, view_rng = np.random.default_rng(7), np.random.default_rng(7)
    genome = space.sample(plain_rng)
    assert view.sample(view_rng) == genome
    for _ in range(60):  # the same parent again and again, as the surrogate's pool draws
        child = space.mutate(genome, plain_rng)
        assert view.mutate(genome, view_rng) == child
        assert view.is_valid(child) and view.key(child) == space.key(child)
        assert view.key(child) == space.key(child)  # kept
    broken = "|nonsense~0|" if name == "nb201" else {"layers": [{"type": "nonsense"}]}
    assert not space.is_valid(broken)
    for _ in range(2):
        assert not view.is_valid(broken)
        with pytest.raises(Exception):
            view.key(broken)


def test_the_runner_costs_the_pool_through_the_views_decodes():
    """A pool member is decoded once for its validity, its key and its cost together: the runner
    costs a genome through the surrogate's remembering view (``decoder_of``), and the decoded
    architecture is the space's own (the same JSON as a fresh decode)."""
    from tinyevo.estimate.base import Estimator
    from tinyevo.strategies.remembered_space import decoder_of, genome_text

    class Constant(Estimator):
        name = "constant"

        def evaluate(self, architecture, context=None):
            return {"accuracy": 0.5}

    space = create_space("chain", input_shape=(28, 28, 1), filters=[2, 4, 8], units=[8, 16])
    decodes: dict[str, int] = {}
    plain = space.decode

    def counting(genome):
        text = genome_text(genome)
        decodes[text] = decodes.get(text, 0) + 1
        return plain(genome)

    space.decode = counting
    strategy = create_strategy("surrogate", space, seed=1, initial_size=4, population_size=6)
    assert decoder_of(space, strategy.space) == strategy.space.decode
    assert decoder_of(space, space) == space.decode  # a plain space: its own decode
    runner = Runner(space, strategy, Constant(), budget=Budget(evaluations=12),
                    constraints=Constraints(max_flash_bytes=6000), progress=False)
    trials = runner.run()
    assert runner.evaluated == 12
    asked = {genome_text(t.genome) for t in trials}
    pool_only = {text: n for text, n in decodes.items() if text not in asked}
    assert len(pool_only) > 50, "the pool drew many genomes it did not ask for"
    assert max(pool_only.values()) == 1, "a pool member decoded more than once"
    for text in list(pool_only)[:20]:
        genome = json.loads(text)
        assert strategy.space.decode(genome).to_json() == plain(genome).to_json()
