"""Learning-curve extrapolation and early stopping (Domhan, Springenberg & Hutter, IJCAI 2015).

After each epoch a training loop hands the accuracies seen so far to a ``LearningCurvePruner``;
it fits the parametric families of ``curve_models`` to them, predicts the accuracy at the last
epoch with its uncertainty, and says stop when the candidate is unlikely to beat what it competes
with: the incumbent's final accuracy (``should_stop``), or, in a multi-objective search, the accuracy
it would need to be non-dominated by the current Pareto front given its exactly known costs
(``should_stop_pareto``). Optuna cannot prune multi-objective studies (optuna#3450); this can,
because only accuracy is uncertain: peak SRAM, flash and latency come from the cost model.

    pruner = LearningCurvePruner(total_epochs=20, seed=0)
    for epoch in range(20):
        curve.append(train_one_epoch())
        if pruner.should_stop(curve, incumbent=best_final_accuracy):
            break

In a search this is the ``learning_curve`` estimator (``tinyevo search --estimator learning_curve
--epochs 12``): ``TrainingEstimator`` with the pruner in its per-epoch hook. The runner gives it,
in ``context.extra[COMPETITORS_KEY]`` (``tinyevo.estimate.base``), the objectives of the trials
finished before the candidate's batch and the candidate's computed costs; ``competition_target`` turns them into the accuracy to
beat (the ``top_k``-th best, or what the Pareto front needs at those costs).

What replaces Domhan's MCMC (per-family least squares with a Laplace posterior and a parametric
bootstrap), and how the model weights (``MODEL_WEIGHT_ETA``) and guards were tuned on synthetic
curves: ``docs/learning_curve_tuning.md``.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
from scipy.optimize import least_squares

from tinyevo.errors import TinyevoError
from tinyevo.estimate.base import COMPETITORS_KEY, ESTIMATORS, Capabilities, EvalContext
from tinyevo.estimate.curve_models import DEFAULT_FAMILIES, CurveFamily
from tinyevo.estimate.training import TrainedModel, TrainingEstimator, trial_seed

#: Learning rate of the tempered model weights ``exp(-eta BIC / 2)`` (docs/learning_curve_tuning.md).
MODEL_WEIGHT_ETA = 0.25
#: Residual given to the least-squares solver where a formula is not finite (steers it away).
_NOT_FINITE_RESIDUAL = 1e3


@dataclass(frozen=True)
class FamilyFit:
    """One family fitted to a curve: best parameters, their covariance, noise and BIC."""

    family: CurveFamily
    theta: np.ndarray
    covariance: np.ndarray
    noise_std: float
    bic: float
    #: Residual degrees of freedom, n - k: few of them make the draws heavy-tailed (Student t).
    dof: int


@dataclass(frozen=True)
class Prediction:
    """Predicted value at ``epoch`` as a sample of its distribution, with summary statistics."""

    epoch: int
    samples: np.ndarray
    family_weights: dict[str, float] = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return float(np.mean(self.samples))

    @property
    def std(self) -> float:
        return float(np.std(self.samples))

    def quantile(self, q: float) -> float:
        return float(np.quantile(self.samples, q))

    def interval(self, level: float = 0.9) -> tuple[float, float]:
        """Central interval holding ``level`` of the predicted probability."""
        tail = (1.0 - level) / 2.0
        return self.quantile(tail), self.quantile(1.0 - tail)


def check_curve(curve: Sequence[float]) -> np.ndarray:
    """The curve as a float array; raises TinyevoError unless it holds accuracies in [0, 1]."""
    y = np.asarray(curve, dtype=float).ravel()
    if not np.all(np.isfinite(y)):
        raise TinyevoError("learning curve holds nan or inf: pass the validation accuracy of each epoch")
    outside = y[(y < 0.0) | (y > 1.0)]
    if outside.size:
        raise TinyevoError(f"learning curve value {outside[0]:g} is outside [0, 1]: "
                           "pass accuracies as fractions, not percent")
    return y


def _start_inside(start, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """A starting point moved strictly inside the parameter box."""
    margin = 1e-6 * (upper - lower)
    return np.clip(np.asarray(start, dtype=float), lower + margin, upper - margin)


def _least_squares(family: CurveFamily, x: np.ndarray, y: np.ndarray):
    """The best of the multi-start bounded least-squares fits, or None when every start fails."""
    lower, upper = np.array(family.lower, float), np.array(family.upper, float)
    best = None
    for start in family.starts(x, y):
        def residuals(theta):
            with np.errstate(all="ignore"):
                r = family(x, theta) - y
            return np.where(np.isfinite(r), r, _NOT_FINITE_RESIDUAL)

        try:
            result = least_squares(residuals, _start_inside(start, lower, upper), bounds=(lower, upper),
                                   max_nfev=300 * family.n_params)
        except (ValueError, np.linalg.LinAlgError):
            continue
        if np.isfinite(result.cost) and (best is None or result.cost < best.cost):
            best = result
    return best


def fit_family(family: CurveFamily, x: np.ndarray, y: np.ndarray, min_noise_std: float) -> FamilyFit | None:
    """Fit one family; None when it fails or has fewer than two residual degrees of freedom."""
    n, k = len(y), family.n_params
    if n < k + 2:
        return None
    result = _least_squares(family, x, y)
    if result is None or np.any(np.abs(result.fun) >= _NOT_FINITE_RESIDUAL):
        return None
    squared_error = 2.0 * result.cost
    noise_var = max(squared_error / (n - k), min_noise_std**2)
    prior_precision = 12.0 / (np.array(family.upper, float) - np.array(family.lower, float)) ** 2
    precision = result.jac.T @ result.jac / noise_var + np.diag(prior_precision)
    covariance = np.linalg.inv(precision)
    bic = n * math.log(max(squared_error / n, min_noise_std**2)) + k * math.log(n)
    return FamilyFit(family, result.x, (covariance + covariance.T) / 2.0, math.sqrt(noise_var), bic, n - k)


def fit_families(curve: Sequence[float], families: Sequence[CurveFamily] = DEFAULT_FAMILIES,
                 min_noise_std: float = 0.005) -> list[FamilyFit]:
    """Every family that fits the curve (epochs numbered 1, 2, ...) and stays finite."""
    y = check_curve(curve)
    x = np.arange(1, len(y) + 1, dtype=float)
    fits = [fit_family(family, x, y, min_noise_std) for family in families]
    return [fit for fit in fits if fit is not None]


def bic_weights(fits: Sequence[FamilyFit], eta: float = MODEL_WEIGHT_ETA) -> np.ndarray:
    """Tempered posterior model probabilities under BIC: ``exp(-eta BIC / 2)``, normalised.

    ``eta = 1`` is plain Bayesian model averaging; ``eta = 0`` weighs every family alike."""
    bic = np.array([fit.bic for fit in fits])
    weights = np.exp(-eta * (bic - bic.min()) / 2.0)
    return weights / weights.sum()


def _final_values(fit: FamilyFit, epoch: int, thetas: np.ndarray) -> np.ndarray:
    """Values at ``epoch`` of each parameter row; nan where Domhan's prior rules the curve out:
    not finite, outside [0, 1], or lower at ``epoch`` than at the first epoch (learning curves rise)."""
    with np.errstate(all="ignore"):
        first_and_final = fit.family(np.array([1.0, float(epoch)]), thetas)
    first, final = first_and_final[:, 0], first_and_final[:, 1]
    plausible = np.isfinite(first) & np.isfinite(final) & (final >= 0.0) & (final <= 1.0) & (final >= first)
    return np.where(plausible, final, np.nan)


def sample_final(fit: FamilyFit, epoch: int, n_samples: int, rng: np.random.Generator,
                 include_noise: bool = True, max_rounds: int = 8) -> np.ndarray:
    """Up to ``n_samples`` draws of the value at ``epoch`` from the family's Laplace posterior,
    keeping only draws that Domhan's prior allows (see ``_final_values``)."""
    accepted: list[np.ndarray] = []
    count = 0
    for _ in range(max_rounds):
        gaussian = rng.multivariate_normal(np.zeros(len(fit.theta)), fit.covariance, n_samples, method="eigh")
        thetas = fit.theta + gaussian * _student_scale(fit.dof, n_samples, rng)[:, None]
        values = _final_values(fit, epoch, thetas)
        values = values[np.isfinite(values)]
        accepted.append(values)
        count += len(values)
        if count >= n_samples:
            break
    values = np.concatenate(accepted)[:n_samples]
    if include_noise:
        noise = rng.normal(0.0, fit.noise_std, size=len(values)) * _student_scale(fit.dof, len(values), rng)
        values = np.clip(values + noise, 0.0, 1.0)
    return values


def _student_scale(dof: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Factors sqrt(dof / chi2(dof)) that turn Gaussian draws into Student t draws with ``dof``
    degrees of freedom: the noise variance is itself estimated from ``dof`` residuals."""
    return np.sqrt(dof / rng.chisquare(dof, size=size))


def _mix(pools: list[np.ndarray], weights: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """``n_samples`` draws from the mixture of the families' sample pools."""
    counts = rng.multinomial(n_samples, weights)
    parts = [rng.choice(pool, size=count, replace=True) for pool, count in zip(pools, counts) if count]
    return np.concatenate(parts)


def extrapolate(curve: Sequence[float], total_epochs: int, rng: np.random.Generator, *,
                families: Sequence[CurveFamily] = DEFAULT_FAMILIES, n_samples: int = 2000,
                min_noise_std: float = 0.005, include_noise: bool = True,
                weight_eta: float = MODEL_WEIGHT_ETA) -> Prediction | None:
    """Predicted accuracy at epoch ``total_epochs`` from the accuracies of epochs 1..len(curve).

    Returns None until every family has k + 2 epochs to fit its k parameters (6 for the default
    ensemble), or when no family fits. ``include_noise`` adds the epoch-to-epoch noise seen in the
    curve, since the final accuracy will be measured with it.
    """
    if len(check_curve(curve)) < max(family.n_params for family in families) + 2:
        return None
    fits = [fit for fit in fit_families(curve, families, min_noise_std) if _predicts_accuracy(fit, total_epochs)]
    pools = [sample_final(fit, total_epochs, n_samples, rng, include_noise) for fit in fits]
    kept = [i for i, pool in enumerate(pools) if len(pool)]
    if not kept:
        return None
    fits, pools = [fits[i] for i in kept], [pools[i] for i in kept]
    weights = bic_weights(fits, weight_eta)
    samples = _mix(pools, weights, n_samples, rng)
    named = {fit.family.name: float(w) for fit, w in zip(fits, weights)}
    return Prediction(int(total_epochs), samples, named)


def _predicts_accuracy(fit: FamilyFit, epoch: int) -> bool:
    """False for a diverging fit: its best-fit value at ``epoch`` is not finite or not in [0, 1]."""
    with np.errstate(all="ignore"):
        value = float(fit.family(np.array([float(epoch)]), fit.theta)[0])
    return math.isfinite(value) and 0.0 <= value <= 1.0


def probability_better(prediction: Prediction | None, threshold: float) -> float:
    """P(final value > threshold) under the prediction; 1.0 when there is no prediction."""
    if prediction is None:
        return 1.0
    return float(np.mean(prediction.samples > threshold))


def needed_accuracy(costs: Mapping[str, float], front: Sequence[Mapping[str, float]],
                    directions: Mapping[str, str], accuracy_metric: str = "accuracy") -> float:
    """The accuracy a candidate with these exact ``costs`` must exceed to be non-dominated by ``front``.

    A front point can dominate the candidate only if it is at least as good on every cost objective;
    the candidate escapes all of them by beating the best accuracy among those points. Returns -inf
    when no point is as good on every cost (the candidate is non-dominated whatever its accuracy).
    ``front`` may hold every finished trial: dominated points never raise the answer.
    """
    _check_directions(costs, directions, accuracy_metric)
    cost_names = [name for name in directions if name != accuracy_metric]
    needed = -math.inf
    for point in front:
        missing = [name for name in (accuracy_metric, *cost_names) if name not in point]
        if missing:
            raise TinyevoError(f"Pareto front point {dict(point)} lacks {missing}: give every point all objectives")
        if all(_at_least_as_good(point[name], costs[name], directions[name]) for name in cost_names):
            needed = max(needed, float(point[accuracy_metric]))
    return needed


def _at_least_as_good(value: float, reference: float, direction: str) -> bool:
    return value <= reference if direction == "min" else value >= reference


def _check_directions(costs: Mapping[str, float], directions: Mapping[str, str], accuracy_metric: str) -> None:
    """Raise TinyevoError unless ``directions`` is sound and ``costs`` has every cost objective."""
    if directions.get(accuracy_metric) != "max":
        raise TinyevoError(f"directions must include {accuracy_metric!r}: 'max' (the learning curve is an accuracy)")
    bad = {name: d for name, d in directions.items() if d not in ("min", "max")}
    if bad:
        raise TinyevoError(f"directions {bad} must be 'min' or 'max'")
    missing = [name for name in directions if name != accuracy_metric and name not in costs]
    if missing:
        raise TinyevoError(f"candidate costs lack {missing}: pass every cost objective of the search")


@dataclass(frozen=True)
class StopDecision:
    """Why a pruner stopped a candidate or let it go on (for logs and the experiment store)."""

    stop: bool
    #: Accuracy the candidate has to beat (incumbent, or what the Pareto front requires).
    target: float
    #: P(final accuracy > target) under the prediction; 1.0 when there was nothing to decide on.
    probability: float
    prediction: Prediction | None = None


@dataclass
class LearningCurvePruner:
    """Early stopping by learning-curve extrapolation, called by a training loop after each epoch.

    Stops a candidate when P(final accuracy > target) < ``threshold_probability``, where target is the
    incumbent's final accuracy (``should_stop``) or the accuracy needed to reach the Pareto front
    (``should_stop_pareto``). Never stops before ``min_epochs`` epochs, nor before every family can
    be fitted (k + 2 epochs for k parameters: 6 for the default ensemble). Each decision draws from
    ``np.random.default_rng([seed, epochs seen])``: the same curve gets the same answer.
    """

    total_epochs: int
    min_epochs: int = 2
    threshold_probability: float = 0.05
    seed: int = 0
    n_samples: int = 2000
    #: Smallest epoch-to-epoch noise assumed (accuracy units); keeps smooth curves from looking certain.
    min_noise_std: float = 0.005
    weight_eta: float = MODEL_WEIGHT_ETA
    families: tuple[CurveFamily, ...] = DEFAULT_FAMILIES

    def __post_init__(self):
        if self.total_epochs < 1 or self.min_epochs < 1:
            raise TinyevoError(f"total_epochs ({self.total_epochs}) and min_epochs ({self.min_epochs}) must be >= 1")
        if not 0.0 < self.threshold_probability < 1.0:
            raise TinyevoError(f"threshold_probability {self.threshold_probability} must lie in (0, 1), e.g. 0.05")

    def predict(self, curve_so_far: Sequence[float]) -> Prediction | None:
        """Predicted final accuracy, or None when the curve is too short to extrapolate."""
        if len(curve_so_far) < self.min_epochs:
            check_curve(curve_so_far)
            return None
        rng = np.random.default_rng([self.seed, len(curve_so_far)])
        return extrapolate(curve_so_far, self.total_epochs, rng, families=self.families,
                           n_samples=self.n_samples, min_noise_std=self.min_noise_std,
                           weight_eta=self.weight_eta)

    def assess(self, curve_so_far: Sequence[float], target: float) -> StopDecision:
        """Decision against an accuracy ``target`` (-inf or None: nothing to beat, never stop)."""
        if target is None or target == -math.inf or len(curve_so_far) >= self.total_epochs:
            check_curve(curve_so_far)
            return StopDecision(False, -math.inf if target is None else target, 1.0)
        prediction = self.predict(curve_so_far)
        probability = probability_better(prediction, target)
        return StopDecision(probability < self.threshold_probability, target, probability, prediction)

    def should_stop(self, curve_so_far: Sequence[float], incumbent: float | None) -> bool:
        """Single objective: stop when the candidate is unlikely to end above ``incumbent``."""
        return self.assess(curve_so_far, incumbent).stop

    def assess_pareto(self, curve_so_far: Sequence[float], costs: Mapping[str, float],
                      front: Sequence[Mapping[str, float]], directions: Mapping[str, str],
                      accuracy_metric: str = "accuracy") -> StopDecision:
        """Multi-objective decision: the target is ``needed_accuracy(costs, front, directions)``."""
        return self.assess(curve_so_far, needed_accuracy(costs, front, directions, accuracy_metric))

    def should_stop_pareto(self, curve_so_far: Sequence[float], costs: Mapping[str, float],
                           front: Sequence[Mapping[str, float]], directions: Mapping[str, str],
                           accuracy_metric: str = "accuracy") -> bool:
        """Stop when the candidate, at its exact costs, is unlikely to become non-dominated."""
        return self.assess_pareto(curve_so_far, costs, front, directions, accuracy_metric).stop


# --- the estimator: training that stops a candidate early ------------------------------------------


def competition_target(competitors: Mapping | None, top_k: int = 1,
                       accuracy_metric: str = "accuracy") -> float | None:
    """The accuracy a candidate must end above to matter, or None when nothing can stop it.

    Single objective (accuracy only): the ``top_k``-th best accuracy so far (None while fewer than
    ``top_k`` trials are known). Several objectives: ``needed_accuracy`` of the candidate's exact costs
    against the finished trials (their non-dominated ones set it), -inf when no trial is as cheap on
    every cost. None when accuracy is not an objective or a cost objective is not known in advance.
    """
    if not competitors:
        return None
    directions = dict(competitors.get("directions") or {})
    if directions.get(accuracy_metric) != "max":
        return None
    points = [p for p in competitors.get("trials") or () if all(m in p for m in directions)]
    if len(directions) == 1:
        accuracies = sorted((float(p[accuracy_metric]) for p in points), reverse=True)
        return accuracies[top_k - 1] if len(accuracies) >= top_k else None
    costs = competitors.get("costs") or {}
    if any(name not in costs for name in directions if name != accuracy_metric):
        return None  # a cost that is measured, not computed: cannot say the front is out of reach
    return needed_accuracy(costs, points, directions, accuracy_metric)


@ESTIMATORS.register("learning_curve")
@dataclass
class LearningCurveEstimator(TrainingEstimator):
    """Training with learning-curve early stopping (Domhan et al. 2015).

    After each epoch the validation curve so far is extrapolated to the last epoch
    (``LearningCurvePruner``); the candidate is stopped when P(final accuracy > target) <
    ``threshold_probability``, the target being what it competes with (``competition_target``:
    the ``top_k``-th best accuracy so far, or in a multi-objective search the accuracy its exact
    costs need to reach the current Pareto front). The runner passes the competitors; without
    them nothing is stopped. A stopped candidate reports the predicted mean final accuracy as
    ``accuracy`` (``observed_accuracy`` is the last measured one).

    ``observe_epochs`` > 0 turns it into a fixed-cost estimator: always stop after that many
    epochs and report the extrapolated final accuracy (for benchmarks and rankings).

    Extra metrics: ``stop_target`` (the accuracy to beat; -1 when there was nothing to beat) and
    ``stop_probability`` (P(final > target) at the last decision; 1 when none was taken)."""

    epochs: int = 12
    #: No decision before this many epochs (the ensemble needs 6 to fit every family anyway).
    min_epochs: int = 6
    threshold_probability: float = 0.05
    #: Single objective: compete with the top_k-th best accuracy so far (1: the incumbent).
    top_k: int = 1
    observe_epochs: int = 0
    prediction_samples: int = 2000

    name = "learning_curve"
    provides = TrainingEstimator.provides + ("observed_accuracy", "predicted_accuracy", "stop_target",
                                             "stop_probability")
    #: The runner fills ``context.extra[COMPETITORS_KEY]`` for it.
    capabilities = Capabilities(competitors=True, training_data=True, trains=True)

    def __post_init__(self):
        super().__post_init__()
        if self.top_k < 1 or self.observe_epochs < 0 or self.prediction_samples < 10:
            raise TinyevoError(f"learning_curve needs top_k >= 1, observe_epochs >= 0 and "
                               f"prediction_samples >= 10, got top_k={self.top_k}, observe_epochs="
                               f"{self.observe_epochs}, prediction_samples={self.prediction_samples}")
        self.pruner(0)  # checks min_epochs and threshold_probability

    def pruner(self, seed: int, total_epochs: int | None = None) -> LearningCurvePruner:
        return LearningCurvePruner(total_epochs or self.epochs, self.min_epochs, self.threshold_probability,
                                   seed, self.prediction_samples)

    def final_accuracy(self, curve: Sequence[float], seed: int = 0,
                       total_epochs: int | None = None) -> tuple[float, Prediction | None]:
        """Predicted mean accuracy at the last epoch from ``curve`` (the last value when there is
        no prediction: too short a curve, or no family fits), and the prediction."""
        total = total_epochs or self.epochs
        if len(curve) >= total:
            return float(curve[-1]), None
        prediction = self.pruner(seed, total).predict(curve)
        return (float(curve[-1]) if prediction is None else prediction.mean), prediction

    def stop_rule(self, context: EvalContext, seed: int) -> tuple:
        """``(on_epoch, decisions)``: the callable a training loop calls with the validation curve
        after each epoch (True: stop), and the list of ``StopDecision`` it appends to. The target
        is fixed when the rule is made, from ``context.extra[COMPETITORS_KEY]``."""
        extra = context.extra or {}
        target = competition_target(extra.get(COMPETITORS_KEY), self.top_k)
        pruner, decisions, outer = self.pruner(seed), [], extra.get("on_epoch")

        def on_epoch(curve) -> bool:
            if outer is not None and outer(curve):
                return True
            if self.observe_epochs and len(curve) >= self.observe_epochs:
                return True
            if target is None:
                return False
            decisions.append(pruner.assess(curve, target))
            return decisions[-1].stop

        on_epoch.target = target
        return on_epoch, decisions

    def fit(self, architecture, context: EvalContext | None = None) -> TrainedModel:
        context = context or EvalContext()
        settings = self.with_fidelity(context)
        seed = trial_seed(settings.seed, context.seed)
        on_epoch, decisions = settings.stop_rule(context, seed)
        inner = dataclasses.replace(context, extra={**(context.extra or {}), "on_epoch": on_epoch})
        trained = TrainingEstimator.fit(settings, architecture, inner)
        curve = trained.metrics["learning_curve"]
        observed = float(curve[-1])
        predicted, decision = observed, (decisions[-1] if decisions else None)
        if trained.metrics["stopped_early"]:
            stopped_here = decision is not None and decision.stop and decision.prediction is not None
            predicted = decision.prediction.mean if stopped_here else settings.final_accuracy(curve, seed)[0]
        target = on_epoch.target
        trained.metrics.update(
            accuracy=predicted, observed_accuracy=observed, predicted_accuracy=predicted,
            stop_target=-1.0 if target is None or not math.isfinite(target) else float(target),
            stop_probability=1.0 if decision is None else decision.probability)
        return trained
