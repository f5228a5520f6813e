"""Learning-curve extrapolation (Domhan et al. 2015) on synthetic curves whose final value is known.

The oracle is the generating formula: each curve is a known function of the epoch plus seeded
Gaussian noise (std 0.01, about the epoch-to-epoch jitter of a validation accuracy), so the true
final value is the formula at the last epoch, free of noise. Dominance is checked against pymoo.
"""
import math

import numpy as np
import pytest
import torch
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from tinyevo.errors import TinyevoError
from tinyevo.estimate.curve_models import DEFAULT_FAMILIES, FAMILIES, FAMILIES_BY_NAME
from tinyevo.estimate.learning_curve import (LearningCurvePruner, Prediction, extrapolate, fit_families,
                                             needed_accuracy, probability_better)

NOISE_STD = 0.01
TOTAL_EPOCHS = 30
OBSERVED_EPOCHS = 12  # 40 % of the curve

GENERATORS = {  # name: formula of the epoch x = 1, 2, ...
    "pow3_to_0.9": lambda x: 0.9 - 0.6 * x**-0.8,
    "exp_to_0.8": lambda x: 0.8 - 0.7 * np.exp(-0.12 * x),
    "weibull_to_0.92": lambda x: 0.92 - 0.82 * np.exp(-((0.1 * x) ** 1.5)),
}
SEEDS = range(10)


def noisy_curve(formula, total_epochs: int, seed: int) -> np.ndarray:
    x = np.arange(1, total_epochs + 1, dtype=float)
    noise = np.random.default_rng(seed).normal(0.0, NOISE_STD, total_epochs)
    return np.clip(formula(x) + noise, 0.0, 1.0)


@pytest.fixture(scope="module")
def trials():
    """One prediction per (generator, seed) from the first 40 % of the curve, with the truth."""
    rows = []
    for name, formula in GENERATORS.items():
        true_final = float(formula(TOTAL_EPOCHS))
        for seed in SEEDS:
            curve = noisy_curve(formula, TOTAL_EPOCHS, seed)[:OBSERVED_EPOCHS]
            prediction = extrapolate(curve, TOTAL_EPOCHS, np.random.default_rng(seed))
            rows.append(dict(name=name, true=true_final, last=float(curve[-1]), prediction=prediction))
    return rows


# Parameters inside each family's box; the fit of a noise-free curve must reproduce it.
TRUE_PARAMETERS = {
    "pow3": (0.9, 0.6, 0.8), "pow4": (0.9, 0.5, 1.0, 0.7), "log_log_linear": (0.3, 1.2),
    "log_power": (0.9, 1.5, -1.2), "vapor_pressure": (-0.1, -1.5, 0.02), "mmf": (0.9, 0.1, 0.2, 1.5),
    "exp3": (0.85, 0.15, -0.3), "exp4": (0.9, 0.3, -0.2, 0.8), "janoschek": (0.9, 0.1, 0.2, 0.9),
    "weibull": (0.9, 0.1, 0.15, 1.2), "ilog2": (0.95, 0.4),
}


def test_there_are_at_least_six_families_and_each_has_true_parameters_here():
    assert len(DEFAULT_FAMILIES) >= 6
    assert set(TRUE_PARAMETERS) == set(FAMILIES_BY_NAME)


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.name)
def test_each_family_fits_a_noise_free_curve_it_generated(family):
    x = np.arange(1, 21, dtype=float)
    y = family(x, TRUE_PARAMETERS[family.name])
    assert np.all((y >= 0) & (y <= 1)) and y[-1] > y[0]  # a rising accuracy curve
    (fit,) = fit_families(y, families=[family])
    np.testing.assert_allclose(family(x, fit.theta), y, atol=2e-3)


@pytest.mark.parametrize("name", GENERATORS)
def test_mean_prediction_is_close_to_the_true_final_value(trials, name):
    # Tolerance: 3 noise std (0.03), or a quarter of the gain still to come where that is larger: a
    # slow-starting curve seen for 40 % of its epochs has not shown its plateau yet, and the data
    # allow a range of plateaus. The baseline "final = last value seen" must be beaten by half.
    rows = [row for row in trials if row["name"] == name]
    errors = [abs(row["prediction"].mean - row["true"]) for row in rows]
    naive_errors = [abs(row["last"] - row["true"]) for row in rows]
    assert np.mean(errors) < max(0.03, 0.25 * np.mean(naive_errors))
    assert max(errors) < 0.1
    assert np.mean(errors) < 0.5 * np.mean(naive_errors)


def test_true_final_value_lies_in_the_90_percent_interval_in_most_trials(trials):
    # 30 trials: if the intervals held 90 %, 24 or more hits would have probability 0.93. The width
    # bound keeps an uninformative interval such as [0, 1] from passing.
    intervals = [row["prediction"].interval(0.9) for row in trials]
    hits = sum(low <= row["true"] <= high for row, (low, high) in zip(trials, intervals))
    assert hits >= 24
    assert np.mean([high - low for low, high in intervals]) < 0.25


def test_a_noise_free_curve_is_predicted_but_not_with_certainty():
    # The noise floor (min_noise_std=0.005) treats a smooth curve as if it had that much noise, so
    # families whose fits differ by less stay in the ensemble: same tolerance as for noisy curves.
    formula = GENERATORS["pow3_to_0.9"]
    curve = formula(np.arange(1, OBSERVED_EPOCHS + 1, dtype=float))
    prediction = extrapolate(curve, TOTAL_EPOCHS, np.random.default_rng(0))
    assert abs(prediction.mean - formula(TOTAL_EPOCHS)) < 0.03
    assert 0.005 < prediction.std < 0.05


def test_predictions_stay_in_the_unit_interval_for_a_curve_rising_fast_at_the_top():
    curve = noisy_curve(lambda x: 0.999 - 0.9 * np.exp(-0.5 * x), 10, seed=3)
    prediction = extrapolate(curve, 200, np.random.default_rng(0))
    assert 0.0 <= prediction.samples.min() and prediction.samples.max() <= 1.0


def test_too_short_a_curve_gives_no_prediction_and_is_never_stopped():
    assert extrapolate([0.1, 0.2, 0.3, 0.35, 0.38], 30, np.random.default_rng(0)) is None
    pruner = LearningCurvePruner(total_epochs=30)
    assert not pruner.should_stop([0.1, 0.11, 0.11], incumbent=0.99)


def test_probability_better_counts_the_samples_above_the_threshold():
    prediction = Prediction(epoch=10, samples=np.array([0.1, 0.5, 0.6, 0.9]))
    assert probability_better(prediction, 0.55) == 0.5
    assert probability_better(prediction, 0.95) == 0.0
    assert probability_better(None, 0.5) == 1.0
    assert prediction.quantile(0.0) == 0.1 and prediction.interval(1.0) == (0.1, 0.9)


def run_training_loop(pruner: LearningCurvePruner, curve: np.ndarray, **target) -> int | None:
    """Hand the pruner the curve one epoch at a time, as a training loop would: the stop epoch."""
    for epochs in range(1, len(curve) + 1):
        if "incumbent" in target and pruner.should_stop(curve[:epochs], incumbent=target["incumbent"]):
            return epochs
        if "front" in target and pruner.should_stop_pareto(curve[:epochs], **target):
            return epochs
    return None


BAD = lambda x: 0.5 - 0.4 * np.exp(-0.3 * x)  # saturates at 0.5  # noqa: E731
GOOD = lambda x: 0.96 - 0.5 * np.exp(-0.2 * x)  # 0.95 at epoch 20  # noqa: E731


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_curve_saturating_at_half_is_stopped_early_against_an_incumbent_of_0_9(seed):
    pruner = LearningCurvePruner(total_epochs=20, seed=seed)
    stop_epoch = run_training_loop(pruner, noisy_curve(BAD, 20, seed), incumbent=0.9)
    assert stop_epoch is not None and stop_epoch <= 8  # within 40 % of the training


@pytest.mark.parametrize("seed", [0, 1])
def test_a_curve_heading_to_0_95_runs_to_the_end_against_an_incumbent_of_0_9(seed):
    assert GOOD(20) > 0.95
    pruner = LearningCurvePruner(total_epochs=20, seed=seed)
    assert run_training_loop(pruner, noisy_curve(GOOD, 20, seed), incumbent=0.9) is None


def test_nothing_to_beat_means_no_stop():
    pruner = LearningCurvePruner(total_epochs=20)
    curve = noisy_curve(BAD, 10, seed=0)
    assert not pruner.should_stop(curve, incumbent=None)
    assert not pruner.should_stop(noisy_curve(BAD, 20, seed=0), incumbent=0.9)  # training is over


def test_same_seed_same_prediction_and_decision():
    curve = noisy_curve(GENERATORS["exp_to_0.8"], OBSERVED_EPOCHS, seed=5)
    first = extrapolate(curve, TOTAL_EPOCHS, np.random.default_rng(7))
    again = extrapolate(curve, TOTAL_EPOCHS, np.random.default_rng(7))
    other = extrapolate(curve, TOTAL_EPOCHS, np.random.default_rng(8))
    np.testing.assert_array_equal(first.samples, again.samples)
    assert not np.array_equal(first.samples, other.samples)
    pruner = LearningCurvePruner(total_epochs=TOTAL_EPOCHS, seed=3)
    assert pruner.assess(curve, 0.8).probability == pruner.assess(curve, 0.8).probability


# --- multi-objective -------------------------------------------------------------------------------
DIRECTIONS = {"accuracy": "max", "peak_sram_bytes": "min", "flash_bytes": "min"}
FRONT = [
    {"accuracy": 0.90, "peak_sram_bytes": 2000, "flash_bytes": 500_000},
    {"accuracy": 0.80, "peak_sram_bytes": 1000, "flash_bytes": 400_000},
    {"accuracy": 0.95, "peak_sram_bytes": 4000, "flash_bytes": 900_000},
]


def test_needed_accuracy_by_hand():
    # Only the 0.8 point is as small on both costs as (1500 B, 600 kB).
    assert needed_accuracy({"peak_sram_bytes": 1500, "flash_bytes": 600_000}, FRONT, DIRECTIONS) == 0.80
    # The 0.9 and 0.8 points are both at least as small as (2500 B, 1 MB): beat the better one.
    assert needed_accuracy({"peak_sram_bytes": 2500, "flash_bytes": 1_000_000}, FRONT, DIRECTIONS) == 0.90
    # Smaller SRAM than every point: no point can dominate it.
    assert needed_accuracy({"peak_sram_bytes": 500, "flash_bytes": 950_000}, FRONT, DIRECTIONS) == -math.inf


def is_non_dominated(candidate: np.ndarray, points: np.ndarray) -> bool:
    """pymoo's verdict: is the last row in the first non-dominated front (minimisation)?"""
    rows = np.vstack([points, candidate])
    return len(rows) - 1 in NonDominatedSorting().do(rows, only_non_dominated_front=True)


def test_needed_accuracy_agrees_with_pymoo_dominance_on_random_fronts():
    rng = np.random.default_rng(0)
    directions = {"accuracy": "max", "peak_sram_bytes": "min", "macs_per_second": "max"}
    sign = np.array([-1.0, 1.0, -1.0])  # to minimisation, in the order of `directions`
    checked = 0
    for _ in range(200):
        points = np.column_stack([rng.uniform(0.5, 1.0, 8), rng.integers(1, 10, 8), rng.integers(1, 10, 8)])
        costs = {"peak_sram_bytes": rng.integers(1, 10), "macs_per_second": rng.integers(1, 10)}
        front = [dict(zip(directions, row)) for row in points]
        needed = needed_accuracy(costs, front, directions)
        for accuracy, expected in ((needed + 1e-9, True), (needed - 1e-9, False)):
            if math.isfinite(accuracy):
                candidate = np.array([accuracy, costs["peak_sram_bytes"], costs["macs_per_second"]])
                assert is_non_dominated(sign * candidate, sign * points) == expected
                checked += 1
    assert checked > 200


def test_a_candidate_cheaper_than_every_front_point_is_never_stopped_even_when_poor():
    pruner = LearningCurvePruner(total_epochs=20)
    curve = noisy_curve(lambda x: 0.3 - 0.2 * np.exp(-0.3 * x), 20, seed=0)
    costs = {"peak_sram_bytes": 900, "flash_bytes": 300_000}
    assert run_training_loop(pruner, curve, costs=costs, front=FRONT, directions=DIRECTIONS) is None


def test_a_candidate_dominated_on_costs_by_a_better_point_it_cannot_reach_is_stopped():
    pruner = LearningCurvePruner(total_epochs=20)
    curve = noisy_curve(BAD, 20, seed=0)
    costs = {"peak_sram_bytes": 2500, "flash_bytes": 1_000_000}  # needs > 0.9, heads to 0.5
    decision = pruner.assess_pareto(curve[:8], costs, FRONT, DIRECTIONS)
    assert decision.stop and decision.target == 0.9
    # Costs where only the 0.8 point dominates: still out of reach. Costs nothing dominates: kept.
    assert pruner.should_stop_pareto(curve[:8], {"peak_sram_bytes": 1500, "flash_bytes": 600_000}, FRONT, DIRECTIONS)
    assert not pruner.should_stop_pareto(curve[:8], {"peak_sram_bytes": 100, "flash_bytes": 600_000},
                                         FRONT, DIRECTIONS)


# --- errors a user can make --------------------------------------------------------------------------
def test_percent_values_are_refused_with_a_hint():
    with pytest.raises(TinyevoError, match="fractions, not percent"):
        LearningCurvePruner(total_epochs=30).should_stop([40.0, 55.0, 61.0, 64.0, 66.0, 67.0], incumbent=90.0)


@pytest.mark.parametrize("options", [dict(total_epochs=0), dict(total_epochs=10, threshold_probability=1.5)])
def test_bad_pruner_settings_are_refused(options):
    with pytest.raises(TinyevoError):
        LearningCurvePruner(**options)


def test_pareto_inputs_are_checked():
    costs = {"peak_sram_bytes": 1, "flash_bytes": 1}
    with pytest.raises(TinyevoError, match="'max'"):
        needed_accuracy(costs, FRONT, {**DIRECTIONS, "accuracy": "min"})
    with pytest.raises(TinyevoError, match="lack"):
        needed_accuracy({"peak_sram_bytes": 1}, FRONT, DIRECTIONS)
    with pytest.raises(TinyevoError, match="lacks"):
        needed_accuracy(costs, [{"accuracy": 0.9, "peak_sram_bytes": 1}], DIRECTIONS)


# --- the learning_curve estimator: what it competes with, and stopping inside a search --------------
from tinyevo.estimate import ESTIMATORS, EvalContext  # noqa: E402
from tinyevo.estimate.learning_curve import LearningCurveEstimator, competition_target  # noqa: E402

SRAM = {"accuracy": "max", "peak_sram_bytes": "min"}
FINISHED = [{"accuracy": 0.90, "peak_sram_bytes": 2000}, {"accuracy": 0.60, "peak_sram_bytes": 800},
            {"accuracy": 0.95, "peak_sram_bytes": 5000}, {"accuracy": 0.45, "peak_sram_bytes": 3000}]
RISING_TO_0_7 = lambda x: 0.72 - 0.5 * np.exp(-0.3 * x)  # noqa: E731


def competitors(sram=None, directions=SRAM, trials=FINISHED):
    costs = {} if sram is None else {"peak_sram_bytes": sram}
    return {"directions": directions, "costs": costs, "trials": trials}


def test_competition_target_by_hand():
    single = {"accuracy": "max"}
    assert competition_target(competitors(directions=single)) == 0.95  # the incumbent
    assert competition_target(competitors(directions=single), top_k=3) == 0.60
    assert competition_target(competitors(directions=single), top_k=5) is None  # fewer than 5 known
    assert competition_target(competitors(sram=1000)) == 0.60  # only (0.60, 800 B) is as small
    assert competition_target(competitors(sram=2500)) == 0.90  # (0.90, 2000 B) and (0.60, 800 B)
    assert competition_target(competitors(sram=500)) == -math.inf  # smaller than every trial
    assert competition_target(competitors()) is None  # its SRAM is not known: cannot decide
    assert competition_target(competitors(directions={"peak_sram_bytes": "min"}, sram=1)) is None
    assert competition_target(None) is None


def epochs_run(rule, curve) -> int:
    """Feed ``curve`` epoch by epoch as TrainingEstimator does (no call after the last epoch)."""
    for epoch in range(1, len(curve)):
        if rule(list(curve[:epoch])):
            return epoch
    return len(curve)


@pytest.mark.parametrize("sram,formula,stopped", [
    (1000, BAD, True),            # needs 0.60 to reach the front, heads to 0.50: stopped
    (2500, BAD, True),            # needs 0.90
    (500, BAD, False),            # cheaper than every finished trial: on the front whatever it scores
    (1000, RISING_TO_0_7, False),  # needs 0.60, heads to 0.70: trained to the end
])
def test_multi_objective_stopping_only_when_the_front_is_out_of_reach(sram, formula, stopped):
    total = 16
    estimator = LearningCurveEstimator(epochs=total)
    rule, decisions = estimator.stop_rule(EvalContext(extra={"competitors": competitors(sram)}), seed=1)
    epochs = epochs_run(rule, noisy_curve(formula, total, seed=1))
    assert (epochs < total) == stopped
    if stopped:
        assert epochs <= 10 and decisions[-1].stop and decisions[-1].probability < 0.05


@pytest.mark.parametrize("top_k,stopped", [(1, True), (4, False)])
def test_single_objective_stopping_against_the_top_k(top_k, stopped):
    total = 16
    single = competitors(directions={"accuracy": "max"})
    estimator = LearningCurveEstimator(epochs=total, top_k=top_k)  # top 1: 0.95; top 4: 0.45
    rule, _ = estimator.stop_rule(EvalContext(extra={"competitors": single}), seed=2)
    assert (epochs_run(rule, noisy_curve(BAD, total, seed=2)) < total) == stopped


def test_observe_epochs_always_stops_there_and_extrapolates():
    estimator = LearningCurveEstimator(epochs=30, observe_epochs=12)
    rule, _ = estimator.stop_rule(EvalContext(), seed=0)
    curve = noisy_curve(GENERATORS["exp_to_0.8"], 30, seed=3)
    assert epochs_run(rule, curve) == 12
    estimate, prediction = estimator.final_accuracy(curve[:12], seed=0)
    assert prediction is not None and estimate == prediction.mean
    assert abs(estimate - GENERATORS["exp_to_0.8"](30)) < abs(curve[11] - GENERATORS["exp_to_0.8"](30))


@pytest.mark.parametrize("objectives", [("accuracy",), ("accuracy", "peak_sram_bytes")])
def test_learning_curve_search_on_digits_competes_with_the_trials_before(objectives):
    """A real search: a candidate competes with the trials finished before it; with peak SRAM as a
    second objective, only with those at most as large (the rule worked out by hand)."""
    from tinyevo.run import Budget, Runner
    from tinyevo.strategies import Objective, create_strategy
    from tinyevo.spaces.chain import ChainSpace

    torch.set_num_threads(1)
    space = ChainSpace(input_shape=(8, 8, 1), filters=(2, 8), kernels=(1, 3), units=(16,), max_initial_layers=2)
    estimator = ESTIMATORS.create("learning_curve", dataset="digits", epochs=8, lr=1e-2, batch_size=64,
                                  data_fraction=0.3, prediction_samples=500)
    strategy = create_strategy("random", space, seed=4,
                               objectives=[Objective(m, "max" if m == "accuracy" else "min") for m in objectives])
    trials = Runner(space, strategy, estimator, budget=Budget(evaluations=4), progress=False, batch_size=1).run()
    assert len({t.id for t in trials}) == 4
    for number, trial in enumerate(trials):
        metrics, before = trial.metrics, [t.metrics for t in trials[:number]]
        rivals = [m["accuracy"] for m in before
                  if len(objectives) == 1 or m["peak_sram_bytes"] <= metrics["peak_sram_bytes"]]
        assert metrics["stop_target"] == (max(rivals) if rivals else -1.0)  # -1: nothing to beat
        if metrics["stopped_early"]:
            assert metrics["epochs"] < 8 and metrics["stop_probability"] < 0.05
            assert metrics["accuracy"] == metrics["predicted_accuracy"]
        else:
            assert metrics["epochs"] == 8 and metrics["accuracy"] == metrics["observed_accuracy"]
            assert metrics["accuracy"] == metrics["learning_curve"][-1]
    print([(t.metrics["epochs"], round(t.metrics["stop_target"], 3)) for t in trials])


def test_selectable_from_the_cli_and_the_config():
    from tinyevo.cli import build_parser
    from tinyevo.commands.search import config_from_args
    from tinyevo.pipeline import SearchJob

    args = build_parser().parse_args(["search", "--out", "unused", "--estimator", "learning_curve",
                                      "--epochs", "10", "--dataset", "digits", "--space", "chain"])
    config = config_from_args(args)
    config.estimator_options = {"top_k": 2, "threshold_probability": 0.1}
    estimator = SearchJob.create(config, "unused").estimator()
    assert isinstance(estimator, LearningCurveEstimator)
    assert (estimator.epochs, estimator.top_k, estimator.threshold_probability) == (10, 2, 0.1)
    with pytest.raises(TinyevoError, match="top_k"):
        LearningCurveEstimator(top_k=0)
