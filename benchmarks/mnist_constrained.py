"""Benchmark: architecture search on MNIST under uNAS's bounds, tinyevo against Optuna and random search.

    python benchmarks/mnist_constrained.py [--quick] [--data PATH] [--seeds 0 1] [--budget 30]
                                           [--epochs 1] [--png fronts.png] > result.json

Data: ``../shared/datasets/mnist70k.npz`` (any ``.npz`` with ``x`` and ``y`` via ``--data``), split
with seed ``SPLIT_SEED``: ``--test-size`` rows (10,000) for test, 10 % of the rest for validation,
the rest (54,000) for training. Bounds: uNAS's MNIST bounds (Liberis et al. 2021), peak SRAM
<= 2,500 bytes and flash <= 4,500 bytes, as ``tinyevo.hardware`` counts them (int8).

Every method searches the ``chain`` space built with ``SPACE_OPTIONS`` (small filter and unit
choices, so that small feasible nets are common; the same for every method) and gets:

- the same ``TrainingEstimator`` (``--epochs`` on a ``--data-fraction`` share of the training rows,
  Adam, cosine schedule, batch 128) and the same seeds;
- the same number of TRAINED candidates (``--budget``): a candidate the cost model rejects is
  never trained and does not count, nor does a duplicate of an earlier candidate;
- the same population size (``--population``) for the three evolutionary methods.

Methods: ``tinyevo_nsga2`` and ``tinyevo_regularized`` (tinyevo's strategies), ``optuna_nsga2``
(Optuna's ``NSGAIISampler``, the bounds given as ``Trial.set_constraint``, the genome drawn by
``suggest_chain``) and ``random`` (tinyevo's random search). All four run through
``tinyevo.run.Runner``, so cost checks, duplicate handling and per-trial training seeds are the
same code for each.

Reported per method (means over seeds; ``per_seed`` has the details): ``hypervolume`` of the
feasible (validation accuracy, peak SRAM) trials, reference (0, 2,500 bytes), in accuracy x bytes
(``hypervolume_normalized`` divides by 2,500); ``best_test_accuracy_within_bounds``: the feasible
trial of best validation accuracy retrained with ``--final-epochs`` on all training rows (seed
``FINAL_SEED`` for every method) and scored on the test split; ``trained_candidates``: candidates
trained by the searches, summed over seeds. The PNG (``--png``) shows each seed's fronts.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from collections import deque
from dataclasses import dataclass

import optuna
import torch

from common import log, mean, print_json, pyplot, repo_path
from tinyevo.data import Dataset, load_dataset
from tinyevo.estimate import EstimationFailed, EvalContext
from tinyevo.estimate.training import TrainingEstimator
from tinyevo.run import Budget, Constraints, Runner
from tinyevo.run.constraints import LIMITED_METRICS
from tinyevo.search import FAILED, Candidate, Objective, Strategy, Trial, create_strategy
from tinyevo.search.pareto import feasible, hypervolume, pareto_front
from tinyevo.spaces import create_space
from tinyevo.spaces.chain import FEATURES, HEADS, POOLS

DEFAULT_DATA = "../shared/datasets/mnist70k.npz"
SPLIT_SEED = 0
#: Seed of the final trainings: one architecture, one final model, whichever search found it.
FINAL_SEED = 0
MAX_PEAK_SRAM_BYTES = 2_500
MAX_FLASH_BYTES = 4_500
CONSTRAINTS = Constraints(max_peak_sram_bytes=MAX_PEAK_SRAM_BYTES, max_flash_bytes=MAX_FLASH_BYTES)
OBJECTIVES = (Objective("accuracy", "max"), Objective("peak_sram_bytes", "min"))
HYPERVOLUME_REFERENCE = (0.0, MAX_PEAK_SRAM_BYTES)
SPACE_OPTIONS = dict(filters=[2, 4, 8, 16, 24], kernels=[1, 3, 5], strides=[1, 2], pool_kernels=[2, 3],
                     units=[8, 16, 32], max_initial_layers=4, max_initial_dense=1)
#: Feature-layer slots of the Optuna encoding (tinyevo's chains start at 1-4 layers and may grow).
OPTUNA_MAX_LAYERS = 6
METHODS = ("tinyevo_nsga2", "tinyevo_regularized", "optuna_nsga2", "random")
QUICK_ROWS = {"train": 3000, "val": 500, "test": 1000}
TARGET_TEST_ACCURACY = 0.985


@dataclass
class Settings:
    seeds: tuple = (0, 1)
    budget: int = 30
    population_size: int = 10
    epochs: int = 1
    data_fraction: float = 0.25
    final_epochs: int = 15
    batch_size: int = 128
    lr: float = 0.005


QUICK = Settings(seeds=(0,), budget=4, population_size=2, epochs=2, data_fraction=1.0, final_epochs=2)


# --- Optuna's NSGA-II as a tinyevo strategy ----------------------------------------------------
def suggest_chain(trial: optuna.Trial, space, max_layers: int = OPTUNA_MAX_LAYERS) -> list[dict]:
    """A chain genome drawn through ``trial.suggest_*``: the encoding an Optuna user writes.

    ``layers`` (1..max_layers) feature layers, each with a type and the fields of every type, then
    the head, then ``dense_layers`` hidden dense layers. Every parameter is suggested on every
    trial, the unused ones included: Optuna's NSGA-II crosses over only the parameters that all
    trials share and draws the others at random, so a conditional encoding would hide most of the
    genome from it.
    """
    depth = trial.suggest_int("layers", 1, max_layers)
    features = [_suggest_feature(trial, space, i) for i in range(max_layers)]
    head = {"type": trial.suggest_categorical("head", list(HEADS))}
    dense = trial.suggest_int("dense_layers", 0, space.max_initial_dense)
    units = [trial.suggest_categorical(f"dense{i}_units", space.units) for i in range(space.max_initial_dense)]
    return features[:depth] + [head] + [{"type": "dense", "units": u} for u in units[:dense]]


def _suggest_feature(trial: optuna.Trial, space, i: int) -> dict:
    kind = trial.suggest_categorical(f"layer{i}_type", list(FEATURES))
    filters = trial.suggest_categorical(f"layer{i}_filters", space.filters)
    kernel = trial.suggest_categorical(f"layer{i}_kernel", space.kernels)
    stride = trial.suggest_categorical(f"layer{i}_stride", space.strides)
    pool_kernel = trial.suggest_categorical(f"layer{i}_pool_kernel", space.pool_kernels)
    if kind in POOLS:
        return {"type": kind, "kernel": pool_kernel}
    return {"type": kind, "filters": filters, "kernel": kernel, "stride": stride}


def set_constraints(asked: optuna.Trial, metrics: dict) -> None:
    """Each bound as an Optuna constraint, its relative excess ``(value - limit) / limit`` (<= 0:
    met; the sum of the positive ones is tinyevo's ``constraint_violation``)."""
    for name, limit in CONSTRAINTS.limits().items():
        metric = LIMITED_METRICS[name]
        asked.set_constraint(metric, (float(metrics[metric]) - limit) / limit)


class OptunaNSGA2(Strategy):
    """Optuna's ``NSGAIISampler`` behind ask/tell: each ask is a ``study.ask()`` and one
    ``suggest_chain``; each told trial goes back with ``study.tell`` and its constraint values
    (``Trial.set_constraint``, read by the sampler's constrained domination)."""

    name = "optuna_nsga2"
    multi_objective = True

    def __init__(self, space, seed: int = 0, objectives=OBJECTIVES, population_size: int = 50,
                 max_layers: int = OPTUNA_MAX_LAYERS):
        super().__init__(space, seed, objectives)
        self.population_size, self.max_layers = population_size, max_layers
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        sampler = optuna.samplers.NSGAIISampler(population_size=population_size, seed=seed)
        directions = ["maximize" if o.direction == "max" else "minimize" for o in self.objectives]
        self.study = optuna.create_study(directions=directions, sampler=sampler)
        self._asked: deque = deque()

    def ask(self, n: int) -> list[Candidate]:
        candidates = []
        for _ in range(n):
            self._asked.append(self.study.ask())
            candidates.append(Candidate(suggest_chain(self._asked[-1], self.space, self.max_layers),
                                        origin="optuna"))
        return candidates

    def tell(self, trials: list[Trial]) -> None:
        for trial in trials:
            asked = self._asked.popleft()
            if trial.status == FAILED:
                self.study.tell(asked, state=optuna.trial.TrialState.FAIL)
                continue
            set_constraints(asked, trial.metrics)
            worst = {"max": 0.0, "min": float(MAX_PEAK_SRAM_BYTES)}  # objective not measured (infeasible)
            self.study.tell(asked, [float(trial.metrics.get(o.metric, worst[o.direction]))
                                    for o in self.objectives])


# --- the searches --------------------------------------------------------------------------------
def make_strategy(method: str, space, seed: int, settings: Settings) -> Strategy:
    population = settings.population_size
    if method == "optuna_nsga2":
        return OptunaNSGA2(space, seed, OBJECTIVES, population_size=population)
    if method == "tinyevo_nsga2":
        return create_strategy("nsga2", space, seed=seed, objectives=OBJECTIVES, population_size=population)
    if method == "tinyevo_regularized":  # Real et al.'s tournament of S = P / 5, at least 2
        return create_strategy("regularized", space, seed=seed, objectives=OBJECTIVES,
                               population_size=population, tournament_size=max(2, population // 5))
    return create_strategy("random", space, seed=seed, objectives=OBJECTIVES)


def run_search(method: str, space, estimator, seed: int, settings: Settings) -> dict:
    """One search; its trials, trained count and the summary figures of its feasible front."""
    start = time.perf_counter()
    runner = Runner(space, make_strategy(method, space, seed, settings), estimator,
                    budget=Budget(evaluations=settings.budget), constraints=CONSTRAINTS, progress=False)
    trials = runner.run()
    front = sorted(pareto_front(trials, OBJECTIVES), key=lambda t: t.metrics["peak_sram_bytes"])
    return {"trials": trials, "trained_candidates": runner.evaluated,
            "rejected_by_cost_model": sum(t.status == "infeasible" for t in trials),
            "duplicates": runner.duplicates,
            "hypervolume": hypervolume(trials, OBJECTIVES, HYPERVOLUME_REFERENCE),
            "front": [point(space, t) for t in front], "best": best_trial(trials),
            "search_seconds": round(time.perf_counter() - start, 1)}


def best_trial(trials: list[Trial]) -> Trial | None:
    """The feasible trial of highest validation accuracy (then least SRAM, then first)."""
    return min(feasible(trials, OBJECTIVES), default=None,
               key=lambda t: (-t.metrics["accuracy"], t.metrics["peak_sram_bytes"], t.id))


def point(space, trial: Trial) -> dict:
    m = trial.metrics
    return {"architecture": space.describe(trial.genome), "val_accuracy": m["accuracy"],
            "peak_sram_bytes": int(m["peak_sram_bytes"]), "flash_bytes": int(m["flash_bytes"])}


def final_score(space, trial: Trial, estimator: TrainingEstimator, cache: dict) -> dict:
    """Retrain ``trial``'s architecture at full fidelity and score it on the test split. Cached by
    architecture: the final training has one seed, so the same architecture gives the same model."""
    key = space.key(trial.genome)
    if key not in cache:
        start = time.perf_counter()
        try:
            trained = estimator.fit(space.decode(trial.genome), EvalContext(genome=trial.genome, seed=FINAL_SEED))
        except EstimationFailed as error:
            cache[key] = {"error": str(error)}
        else:
            cache[key] = {"final_val_accuracy": trained.metrics["accuracy"],
                          "test_accuracy": estimator.accuracy(trained, "test"),
                          "final_seconds": round(time.perf_counter() - start, 1)}
    return {**point(space, trial), **cache[key]}


# --- data and settings ---------------------------------------------------------------------------
def load_data(path: str, test_size, quick: bool) -> Dataset:
    data = load_dataset("npz", path=str(repo_path(path)), seed=SPLIT_SEED, test_size=test_size)
    return subset(data, QUICK_ROWS) if quick else data


def subset(data: Dataset, rows: dict) -> Dataset:
    """The first rows of each (already shuffled) split."""
    parts = {}
    for part in ("train", "val", "test"):
        x, y = data.split(part)
        parts[f"x_{part}"], parts[f"y_{part}"] = x[:rows[part]], y[:rows[part]]
    return dataclasses.replace(data, **parts, meta={**data.meta, "subset": rows})


def search_estimator(data: Dataset, settings: Settings, seed: int) -> TrainingEstimator:
    """How every candidate of a search is trained (the same for every method)."""
    return TrainingEstimator(dataset=data, epochs=settings.epochs, batch_size=settings.batch_size,
                             lr=settings.lr, data_fraction=settings.data_fraction, device="cpu", seed=seed)


def final_estimator(data: Dataset, settings: Settings) -> TrainingEstimator:
    """``final_epochs`` on every training row, seed ``FINAL_SEED`` whatever the search's seed."""
    return dataclasses.replace(search_estimator(data, settings, FINAL_SEED),
                               epochs=settings.final_epochs, data_fraction=1.0)


# --- the benchmark -------------------------------------------------------------------------------
def run_benchmark(data: Dataset, settings: Settings, methods=METHODS) -> dict:
    space = create_space("chain", input_shape=data.input_shape, num_classes=data.num_classes, **SPACE_OPTIONS)
    runs, finals, cache = {method: [] for method in methods}, final_estimator(data, settings), {}
    for seed in settings.seeds:
        for method in methods:
            run = run_search(method, space, search_estimator(data, settings, seed), seed, settings)
            best = run.pop("best")
            run["best"] = final_score(space, best, finals, cache) if best else None
            log(f"seed {seed} {method}: {run['trained_candidates']} trained, "
                f"{run['rejected_by_cost_model']} rejected, hypervolume {run['hypervolume']:.1f}, best "
                f"{(run['best'] or {}).get('architecture')} test {(run['best'] or {}).get('test_accuracy')}")
            runs[method].append({"seed": seed, **run})
    return runs


def summary(runs: dict) -> dict:
    methods = {}
    for method, seeds in runs.items():
        tests = [(r["best"] or {}).get("test_accuracy") for r in seeds]
        methods[method] = {
            "hypervolume": mean(r["hypervolume"] for r in seeds),
            "hypervolume_normalized": mean(r["hypervolume"] / MAX_PEAK_SRAM_BYTES for r in seeds),
            "best_test_accuracy_within_bounds": mean(tests),
            "best_test_accuracy_within_bounds_max": max((t for t in tests if t is not None), default=None),
            "trained_candidates": sum(r["trained_candidates"] for r in seeds),
            "per_seed": [{k: v for k, v in r.items() if k != "trials"} for r in seeds]}
    return methods


def verdict(methods: dict) -> dict:
    """The issue's targets, read off the results."""
    out, optuna_results = {}, methods.get("optuna_nsga2")
    for ours in ("tinyevo_nsga2", "tinyevo_regularized"):
        for key in ("hypervolume", "best_test_accuracy_within_bounds"):
            if ours in methods and optuna_results and None not in (methods[ours][key], optuna_results[key]):
                out[f"{ours}_ahead_of_optuna_on_{key}"] = methods[ours][key] > optuna_results[key]
    best = max((m["best_test_accuracy_within_bounds_max"] or 0 for m in methods.values()), default=0)
    out["best_test_accuracy_within_bounds_any_method"] = best
    out[f"model_within_bounds_at_{TARGET_TEST_ACCURACY}"] = best >= TARGET_TEST_ACCURACY
    return out


def plot_fronts(runs: dict, path: str) -> None:
    """One panel per seed: every feasible trial (dots) and the Pareto front (steps) of each method."""
    plt = pyplot()
    seeds = [r["seed"] for r in next(iter(runs.values()))]
    figure, axes = plt.subplots(1, len(seeds), figsize=(6 * len(seeds), 4.5), squeeze=False)
    for panel, seed in zip(axes[0], seeds):
        for color, (method, seed_runs) in enumerate(runs.items()):
            run = next(r for r in seed_runs if r["seed"] == seed)
            _plot_run(panel, run, method, f"C{color}")
        panel.set(title=f"seed {seed}", xlabel="peak SRAM (bytes)", ylabel="validation accuracy",
                  xlim=(0, MAX_PEAK_SRAM_BYTES))
        panel.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _plot_run(panel, run: dict, method: str, color: str) -> None:
    dots = feasible(run["trials"], OBJECTIVES)
    panel.scatter([t.metrics["peak_sram_bytes"] for t in dots], [t.metrics["accuracy"] for t in dots],
                  s=10, alpha=0.35, color=color)
    sram = [p["peak_sram_bytes"] for p in run["front"]]
    accuracy = [p["val_accuracy"] for p in run["front"]]
    panel.step(sram + [MAX_PEAK_SRAM_BYTES] * bool(sram), accuracy + accuracy[-1:], where="post",
               color=color, label=f"{method} (HV {run['hypervolume']:.0f})")
    panel.scatter(sram, accuracy, s=25, color=color)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced run: data subset, 4 candidates, 2 epochs")
    parser.add_argument("--data", default=DEFAULT_DATA, help="an .npz with arrays x and y")
    parser.add_argument("--test-size", type=lambda s: float(s) if "." in s else int(s), default=10_000,
                        help="test rows (an int) or share of all rows (a fraction)")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--budget", type=int, help="trained candidates per search")
    parser.add_argument("--population", type=int, help="population size of the evolutionary methods")
    parser.add_argument("--epochs", type=int, help="epochs per candidate during the search")
    parser.add_argument("--data-fraction", type=float, help="share of the training rows per candidate")
    parser.add_argument("--final-epochs", type=int, help="epochs of the final training of each best model")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--png", default="mnist_constrained.png", help="where to write the plot of the fronts")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return parser.parse_args(argv)


def settings_of(args: argparse.Namespace) -> Settings:
    given = {"seeds": tuple(args.seeds) if args.seeds else None, "budget": args.budget,
             "population_size": args.population, "epochs": args.epochs,
             "data_fraction": args.data_fraction, "final_epochs": args.final_epochs}
    base = QUICK if args.quick else Settings()
    return dataclasses.replace(base, **{k: v for k, v in given.items() if v is not None})


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    settings, start = settings_of(args), time.perf_counter()
    data = load_data(args.data, args.test_size, args.quick)
    log(f"data {data.summary()}; settings {settings}")
    runs = run_benchmark(data, settings, args.methods)
    plot_fronts(runs, args.png)
    methods = summary(runs)
    settings_used = {**dataclasses.asdict(settings), "quick": args.quick, "split_seed": SPLIT_SEED,
                     "final_seed": FINAL_SEED, "space": "chain", "space_options": SPACE_OPTIONS,
                     "optuna_max_layers": OPTUNA_MAX_LAYERS, "threads": args.threads}
    print_json({"benchmark": "mnist_constrained", "methods": methods, "targets": verdict(methods),
                "bounds": {"max_peak_sram_bytes": MAX_PEAK_SRAM_BYTES, "max_flash_bytes": MAX_FLASH_BYTES},
                "hypervolume_reference": {"accuracy": 0.0, "peak_sram_bytes": MAX_PEAK_SRAM_BYTES},
                "settings": settings_used, "data": data.summary(), "png": args.png,
                "seconds": round(time.perf_counter() - start, 1)})


if __name__ == "__main__":
    main()
