"""The runner on NAS-Bench-201: budget, duplicates, constraints, failures, resume, executors.

Accuracies are checked against the benchmark table read with gzip + csv; constraint violations
against figures worked out by hand from a cost model that counts ops in the cell string.
"""
import csv
import gzip
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from resume_helpers import FixedList, regularized
from tinyevo.errors import TinyevoError
from tinyevo.estimate.base import EstimationFailed
from tinyevo.estimate.tabular import TabularEstimator
from tinyevo.run import Budget, Constraints, ProcessExecutor, RayExecutor, Runner
from tinyevo.run.progress import Progress
from tinyevo.strategies import Objective, Trial, create_strategy
from tinyevo.spaces import create_space
from tinyevo.store import Store

TABLE = Path(__file__).resolve().parents[1] / "../shared/datasets/nb201_12epoch.csv.gz"
pytestmark = pytest.mark.skipif(not TABLE.exists(), reason="NAS-Bench-201 table not available")
A = "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"
A_TWIN = "|avg_pool_3x3~0|+|skip_connect~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"
B = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
C = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
D = "|nor_conv_1x1~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_1x1~1|nor_conv_1x1~2|"
E = "|avg_pool_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
F = "|nor_conv_1x1~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|"


@pytest.fixture(scope="module")
def validation():
    with gzip.open(TABLE, "rt") as file:
        return {row["arch"]: float(row["cifar10-val"]) / 100 for row in csv.DictReader(file)}


@pytest.fixture
def space():
    return create_space("nb201")


@dataclass
class Recording(TabularEstimator):
    """The tabular estimator, keeping every genome and context it was asked about."""

    path: str = str(TABLE)

    def __post_init__(self):
        super().__post_init__()
        self._contexts = []

    def evaluate(self, architecture, context):
        self._contexts.append(context)
        return super().evaluate(architecture, context)

    @property
    def genomes(self):
        return [c.genome for c in self._contexts]


@dataclass
class Flaky(TabularEstimator):
    """Breaks on purpose, by the first edge of the cell."""

    path: str = str(TABLE)

    def evaluate(self, architecture, context):
        first_edge = context.genome.split("|")[1]
        if first_edge == "avg_pool_3x3~0":
            raise RuntimeError("out of memory")
        if first_edge == "none~0":
            raise EstimationFailed("loss diverged")
        if first_edge == "skip_connect~0":
            return {"accuracy": float("nan")}
        return super().evaluate(architecture, context)


def op_count_cost(architecture, board):
    """A cost model a person can check: 100 MACs per conv, 50 SRAM bytes per pool in the cell."""
    cell = architecture.meta["genome"]
    return {"macs": 100 * cell.count("conv"), "peak_sram_bytes": 50 * cell.count("pool")}


def test_budget_counts_distinct_evaluations(space, validation, tmp_path):
    estimator = Recording()
    with Store(tmp_path / "run.sqlite") as store:
        runner = Runner(space, regularized(space, 0), estimator, store, Budget(evaluations=25),
                        progress=False)
        trials = runner.run()
        assert trials == store.trials()
    assert len(trials) == 25 and [t.id for t in trials] == list(range(25))
    assert len(estimator.genomes) == 25 and len({space.key(g) for g in estimator.genomes}) == 25
    for trial in trials:
        assert trial.status == "ok"
        assert trial.metrics["accuracy"] == pytest.approx(validation[trial.genome])
        assert {"macs", "params", "flash_bytes", "peak_sram_bytes"} <= set(trial.metrics)
        assert "cifar10-test" not in trial.metrics and "test_accuracy" not in trial.metrics


def test_duplicates_are_answered_from_the_first_trial(space, validation):
    assert space.key(A) == space.key(A_TWIN) and A != A_TWIN  # same network: node 1 is dead
    estimator = Recording()
    strategy = FixedList(space, [A, A, B, C, B, A_TWIN, D, A])
    runner = Runner(space, strategy, estimator, budget=Budget(evaluations=4), batch_size=2,
                    progress=False)
    trials = runner.run()
    assert estimator.genomes == [A, B, C, D]  # each network evaluated once
    assert [t.genome for t in trials] == [A, B, C, D] and runner.duplicates == 3
    told = strategy.told  # everything asked is told, in ask order, until the budget ran out
    assert [t.genome for t in told] == [A, A, B, C, B, A_TWIN, D]
    assert [t.id for t in told] == [0, 0, 1, 2, 1, 0, 3]
    assert told[5].metrics == told[0].metrics
    assert told[0].metrics["accuracy"] == pytest.approx(validation[A])


def test_constraints_are_checked_before_evaluation(space):
    estimator = Recording()
    strategy = FixedList(space, [B, A, E, D, C, F])  # (convs, pools): B 5,0 A 2,0 E 5,1 D 6,0 C 2,1
    runner = Runner(space, strategy, estimator, budget=Budget(evaluations=2), progress=False,
                    constraints=Constraints(max_macs=400, max_peak_sram_bytes=40),
                    cost_model=op_count_cost)
    trials = runner.run()
    assert estimator.genomes == [A, F] and runner.evaluated == 2  # infeasible ones are free
    assert [t.status for t in trials] == ["infeasible", "ok", "infeasible", "infeasible",
                                          "infeasible", "ok"]
    violations = [t.metrics["constraint_violation"] for t in trials]
    assert violations == pytest.approx([100 / 400, 0, 100 / 400 + 10 / 40, 200 / 400, 10 / 40, 0])
    assert "accuracy" not in trials[0].metrics and trials[0].metrics["macs"] == 500


def test_constraints_with_the_cost_model(space):
    limit = 20_000_000
    runner = Runner(space, create_strategy("random", space, seed=2), Recording(),
                    budget=Budget(evaluations=15), constraints=Constraints(max_macs=limit),
                    progress=False)
    trials = runner.run()
    assert runner.evaluated == 15 and len(trials) > 15  # some broke the limit, and were free
    for trial in trials:
        assert (trial.status == "infeasible") == (trial.metrics["macs"] > limit)
        assert trial.metrics["constraint_violation"] == pytest.approx(
            max(0.0, (trial.metrics["macs"] - limit) / limit))


@pytest.mark.parametrize("name", ["regularized", "nsga2"])
def test_evolution_asks_only_what_the_constraints_allow(space, name):
    """Told the cost model's verdict, evolution redraws a candidate that breaks a bound before
    asking for it (nothing infeasible is stored), and its initial population is full: P samples,
    each within the bounds, before the first child. Checked by counting ops in the cell strings."""
    estimator = Recording()
    strategy = create_strategy(name, space, seed=3, population_size=6)
    runner = Runner(space, strategy, estimator, budget=Budget(evaluations=14), progress=False,
                    constraints=Constraints(max_macs=300, max_peak_sram_bytes=50),
                    cost_model=op_count_cost)
    trials = runner.run()
    assert len(trials) == runner.evaluated == 14 and {t.status for t in trials} == {"ok"}
    assert all(g.count("conv") <= 3 and g.count("pool") <= 1 for g in estimator.genomes)
    assert [t.origin for t in trials[:6]] == ["sample"] * 6
    assert all(t.origin != "sample" for t in trials[6:8])  # then children of the population
    unconstrained = [c.genome for c in create_strategy(name, space, seed=3, population_size=6).ask(6)]
    assert any(g.count("conv") > 3 or g.count("pool") > 1 for g in unconstrained)  # the check mattered


def test_latency_limit_on_a_board(space, tmp_path):
    limit_ms = 400.0
    with Store(tmp_path / "run.sqlite") as store:
        runner = Runner(space, create_strategy("random", space, seed=2), Recording(), store,
                        Budget(evaluations=8),
                        constraints=Constraints(max_latency_ms=limit_ms), board="STM32F746",
                        progress=False)
        trials = runner.run()
        assert store.config()["board"] == "STM32F746"
    assert runner.evaluated == 8 and any(t.status == "infeasible" for t in trials)
    for trial in trials:
        assert (trial.status == "infeasible") == (trial.metrics["latency_ms"] > limit_ms)
    no_board = Runner(space, regularized(space, 2), Recording(), budget=Budget(evaluations=8),
                      constraints=Constraints(max_latency_ms=limit_ms), progress=False)
    with pytest.raises(TinyevoError, match="give a board"):
        no_board.run()


def test_a_broken_candidate_fails_and_the_search_goes_on(space, validation):
    genomes = ["|avg_pool_3x3~0|" + B[16:], "|none~0|" + B[16:], "|skip_connect~0|" + B[16:], B]
    runner = Runner(space, FixedList(space, genomes), Flaky(), budget=Budget(evaluations=4),
                    progress=False)
    trials = runner.run()
    assert [t.status for t in trials] == ["failed", "failed", "failed", "ok"]
    errors = [r.error for r in runner.store.records()]
    assert "out of memory" in errors[0] and "loss diverged" in errors[1] and "nan" in errors[2]
    assert "accuracy" not in trials[0].metrics and "macs" in trials[0].metrics
    assert trials[3].metrics["accuracy"] == pytest.approx(validation[B])


def test_a_user_error_stops_the_run(space, tmp_path):
    missing = TabularEstimator(path=str(tmp_path / "no.csv.gz"))
    runner = Runner(space, create_strategy("random", space), missing,
                    budget=Budget(evaluations=3), progress=False)
    with pytest.raises(TinyevoError, match="not found"):
        runner.run()


def test_a_strategy_stuck_on_skips_is_stopped(space):
    impossible = Runner(space, create_strategy("random", space), Recording(),
                        budget=Budget(evaluations=3), constraints=Constraints(max_macs=1),
                        max_consecutive_skips=30, progress=False)
    with pytest.raises(TinyevoError, match="nothing was evaluated"):
        impossible.run()
    stuck = Runner(space, FixedList(space, [A]), Recording(), budget=Budget(evaluations=3),
                   max_consecutive_skips=30, progress=False)
    with pytest.warns(RuntimeWarning, match="30 duplicate or infeasible"):
        assert [t.genome for t in stuck.run()] == [A]


def test_run_again_resumes_extends_and_refuses_another_config(space, tmp_path):
    def run(path, evaluations, seed=5, estimator=None):
        with Store(path) as store:
            return Runner(space, regularized(space, seed), estimator or Recording(), store,
                          Budget(evaluations=evaluations), progress=False).run()

    first, again = Recording(), Recording()
    assert len(run(tmp_path / "a.sqlite", 10, estimator=first)) == 10
    extended = run(tmp_path / "a.sqlite", 20, estimator=again)
    assert extended == run(tmp_path / "b.sqlite", 20)  # as if it had been run for 20 at once
    assert len(first.genomes) == 10 and len(again.genomes) == 10  # nothing evaluated twice
    assert run(tmp_path / "a.sqlite", 20, estimator=first) == extended
    with pytest.raises(TinyevoError, match="strategy.seed=5"):
        run(tmp_path / "a.sqlite", 20, seed=6)


class Forgetful(FixedList):
    """Its list is not in the run's config, like a strategy with state its seed does not fix."""

    def settings(self):
        return {}


def test_a_resume_that_does_not_replay_is_refused(space, tmp_path):
    def run(genomes):
        with Store(tmp_path / "run.sqlite") as store:
            return Runner(space, Forgetful(space, genomes), Recording(), store,
                          Budget(evaluations=3), progress=False).run()

    run([A, B, C])
    with pytest.raises(TinyevoError, match="does not replay at trial 1"):
        run([A, C, B])


def test_process_pool_gives_the_serial_result(space, tmp_path):
    def run(executor):
        runner = Runner(space, regularized(space, 3), TabularEstimator(path=str(TABLE)), executor=executor,
                        budget=Budget(evaluations=12), batch_size=2, progress=False)
        return runner.run(), runner.store.records()

    with ProcessExecutor(2) as pool:
        parallel, records = run(pool)
    serial, _ = run(None)
    assert parallel == serial
    assert all(r.seconds >= 0 and r.finished_at >= r.started_at for r in records)


def test_estimator_context(space, tmp_path):
    estimator = Recording()
    with Store(tmp_path / "run.sqlite") as store:
        trials = Runner(space, regularized(space, 1), estimator, store,
                        Budget(evaluations=12), progress=False).run()
    contexts = estimator._contexts
    assert [c.trial_id for c in contexts] == [t.id for t in trials]
    assert [c.parents for c in contexts] == [t.parents for t in trials]
    assert len({c.seed for c in contexts}) == 12 and contexts[0].run_dir == tmp_path.resolve()


def test_budgets():
    assert Budget(seconds=0).exhausted(evaluated=0, elapsed_seconds=0.0)
    assert Budget(evaluations=3).evaluations_left(1) == 2
    assert Budget(evaluations=3, seconds=10).exhausted(3, 0.0)
    assert not Budget(evaluations=3, seconds=10).exhausted(2, 9.0)
    with pytest.raises(TinyevoError, match="no budget"):
        Budget()


def test_zero_seconds_evaluates_nothing(space):
    runner = Runner(space, create_strategy("random", space), Recording(), budget=Budget(seconds=0),
                    progress=False)
    assert runner.run() == [] and runner.stop_reason == "budget"


def test_progress_keeps_the_best_value():
    def trial(i, value, status="ok"):
        return Trial(id=i, genome="", status=status, metrics={"accuracy": value})

    with Progress(5, Objective("accuracy", "max")) as progress:
        for i, value in enumerate([0.3, 0.7, 0.5]):
            progress.update(trial(i, value), evaluated=True)
        progress.update(trial(3, 0.9, "infeasible"), evaluated=False)
        assert progress.best == 0.7 and progress.bar.disable  # not a terminal under pytest
    with Progress(5, Objective("accuracy", "min")) as progress:
        for i, value in enumerate([0.3, 0.7, 0.2]):
            progress.update(trial(i, value), evaluated=True)
        assert progress.best == 0.2


def test_ray_missing_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now raises ImportError
    with pytest.raises(TinyevoError, match="pip install 'tinyevo\\[ray\\]'"):
        RayExecutor()
