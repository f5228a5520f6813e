"""The ``reinforce`` strategy: its policy gradient, MnasNet's reward, the run's limits, resume.

The contract every strategy keeps (same seed, same run; valid candidates) is
``tests/test_strategies.py``; here, what is particular to a REINFORCE controller.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)

from tinyevo.errors import TinyevoError
from tinyevo.estimate.tabular import TabularEstimator
from tinyevo.run import Budget, Constraints, Runner
from tinyevo.strategies import FAILED, INFEASIBLE, OK, Trial, create_strategy
from tinyevo.spaces import create_space
from tinyevo.spaces.base import SearchSpace
from tinyevo.store import Store

TABLE = Path(__file__).resolve().parents[1] / "../shared/datasets/nb201_12epoch.csv.gz"
BEST = 2  # the choice the toy reward wants at every decision


class ToySpace(SearchSpace):
    """Six decisions of five choices; a genome is its vector (nothing to decode, so it is quick)."""

    name = "toy"

    def dimensions(self):
        return [(f"d{i}", list(range(5))) for i in range(6)]

    def to_vector(self, genome):
        return list(genome)

    def from_vector(self, vector):
        return [int(v) for v in vector]

    def is_valid(self, genome):
        return len(genome) == 6 and all(0 <= v < 5 for v in genome)

    def key(self, genome):
        return str(genome)

    def sample(self, rng):
        return rng.integers(0, 5, size=6).tolist()

    def _mutate(self, genome, rng):
        return self.sample(rng)

    def _crossover(self, a, b, rng):
        return a

    def decode(self, genome):
        raise NotImplementedError("the toy space has no networks")

    def describe(self, genome):
        return str(genome)


@pytest.fixture(scope="module")
def space():
    return create_space("nb201")


def toy_reward(genome) -> float:
    """The share of the decisions at choice ``BEST``: 1 for the all-BEST vector, 0 for none."""
    return float(np.mean([v == BEST for v in genome]))


@pytest.mark.parametrize("controller", ["lstm", "factorized"])
def test_the_policy_gradient_moves_probability_to_the_best_choice(controller):
    """Oracle: before any tell a choice has probability 1/k = 0.2 (each decision has k = 5
    choices; the factorized policy starts exactly uniform, the LSTM from weights in [-0.08, 0.08],
    so close to it). After 30 batches of 4 (one controller step each) the best choice of every
    decision is well above that."""
    torch.manual_seed(0)  # nothing of the strategy may depend on it
    strategy = create_strategy("reinforce", ToySpace(), seed=3, controller=controller, batch_size=4)
    before = strategy.probabilities([BEST] * 6)
    assert all(abs(p[BEST] - 0.2) < 0.05 for p in before)
    for batch in range(30):
        asked = strategy.ask(4)
        strategy.tell([Trial(4 * batch + i, c.genome, OK, {"accuracy": toy_reward(c.genome)})
                       for i, c in enumerate(asked)])
    after = strategy.probabilities([BEST] * 6)
    assert min(p[BEST] for p in after) > 0.5, [round(float(p[BEST]), 3) for p in after]


def test_one_controller_step_per_batch_of_told_results():
    """Asked and told one at a time, as the nb201 benchmark does, the controller keeps its weights
    until ``batch_size`` results are told, then takes one step on all of them; the architectures
    it drew before that step and were not asked yet are not handed out after it."""
    strategy = create_strategy("reinforce", ToySpace(), seed=1, batch_size=3)
    weights = lambda: torch.cat([p.detach().flatten() for p in strategy.policy.parameters()])
    start = weights()
    for told in range(1, 7):
        (candidate,) = strategy.ask(1)
        strategy.tell([Trial(told, candidate.genome, OK, {"accuracy": toy_reward(candidate.genome)})])
        assert strategy.updates == told // 3
        assert torch.equal(weights(), start) == (told < 3)
    strategy.ask(2)  # draws a batch of 3 and hands out 2
    assert len(strategy._drawn) == 1
    strategy.tell([Trial(7 + i, [BEST] * 6, OK, {"accuracy": 1.0}) for i in range(3)])
    assert strategy.updates == 3 and strategy._drawn == []


def test_mnasnet_reward_by_hand(space):
    """MnasNet's reward ACC x (cost / target) ** w, w = -0.07 over the target:
    0.8 x 2 ** -0.07 = 0.8 x exp(-0.07 ln 2) = 0.8 x 0.952638 = 0.762110. At or under the target
    the default weight is 0 (plain accuracy); with MnasNet's soft -0.07 on both sides,
    0.8 x 0.5 ** -0.07 = 0.8 x 1.049717 = 0.839773. Two targets multiply: 2 ** -0.07 squared."""
    cell = space.sample(np.random.default_rng(0))

    def reward(strategy, status=OK, **metrics):
        return strategy.reward(Trial(0, cell, status, {"accuracy": 0.8, **metrics}))

    hard = create_strategy("reinforce", space, targets={"max_sram": "1000B"})
    assert reward(hard, peak_sram_bytes=2000) == pytest.approx(0.762110, abs=1e-6)
    assert reward(hard, peak_sram_bytes=500) == pytest.approx(0.8)
    soft = create_strategy("reinforce", space, targets={"max_sram": 1000}, under_target_weight=-0.07)
    assert reward(soft, peak_sram_bytes=500) == pytest.approx(0.839773, abs=1e-6)
    both = create_strategy("reinforce", space, targets={"max_sram": 1000, "flash_bytes": 10})
    assert reward(both, peak_sram_bytes=2000, flash_bytes=20) == pytest.approx(0.8 * 0.952638 ** 2, abs=1e-6)
    penalised = create_strategy("reinforce", space, penalty=-1.0)
    assert reward(penalised, INFEASIBLE, peak_sram_bytes=2000) == -1.0
    assert penalised.reward(Trial(0, cell, FAILED, {})) == -1.0


@pytest.mark.parametrize("options, message", [
    (dict(learning_rate=0), "learning_rate must be > 0"),
    (dict(controller="gru"), "controller must be one of lstm, factorized"),
    (dict(baseline_decay=1.0), "baseline_decay must be >= 0 and < 1"),
    (dict(targets={"max_ram": 10}), "unknown reinforce target 'max_ram'"),
    (dict(hidden=8), "unknown reinforce option 'hidden'"),
])
def test_bad_options_are_refused_in_one_line(space, options, message):
    with pytest.raises(TinyevoError, match=message) as refusal:
        create_strategy("reinforce", space, **options)
    assert "\n" not in str(refusal.value)


@pytest.mark.skipif(not TABLE.exists(), reason="NAS-Bench-201 table not available")
def test_the_runs_limits_are_the_targets_and_infeasible_trials_are_told(space):
    """The runner hands the strategy its hard limits; over them a candidate is never trained and
    comes back infeasible, and the controller is told it (at the penalty reward)."""
    strategy = create_strategy("reinforce", space, seed=2, targets={"max_sram": 1})
    told = []
    strategy.tell = lambda trials, tell=strategy.tell: (told.extend(trials), tell(trials))
    limit = 50_000_000  # MACs: about the median nb201 cell (7.8M to 122M in 30 samples)
    runner = Runner(space, strategy, TabularEstimator(path=str(TABLE)), budget=Budget(evaluations=8),
                    constraints=Constraints(max_macs=limit), progress=False)
    trials = runner.run()
    assert strategy.targets() == {"macs": limit, "peak_sram_bytes": 1}  # hard limit + soft target
    assert {t.status for t in told} == {OK, INFEASIBLE}
    assert all(t.metrics["macs"] > limit for t in told if t.status == INFEASIBLE)
    assert sum(t.status == OK for t in trials) == 8


@pytest.mark.skipif(not TABLE.exists(), reason="NAS-Bench-201 table not available")
def test_a_resumed_run_replays_and_extends_as_one_run(space, tmp_path):
    def run(path, evaluations):
        with Store(path) as store:
            return Runner(space, create_strategy("reinforce", space, seed=5),
                          TabularEstimator(path=str(TABLE)), store, Budget(evaluations=evaluations),
                          batch_size=3, progress=False).run()

    assert len(run(tmp_path / "a.sqlite", 9)) == 9
    extended = run(tmp_path / "a.sqlite", 18)
    assert extended == run(tmp_path / "b.sqlite", 18)  # as if it had been run for 18 at once
    assert len({t.key for t in extended}) == 18
