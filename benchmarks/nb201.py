"""Benchmark: NAS-Bench-201 (12 epochs), tinyevo's strategies against Optuna and random search.

    python benchmarks/nb201.py [--quick] [--seeds 50] [--first-seed 0] [--budgets 25 50 100 200 300]
                               [--dataset cifar10 | --all-datasets] [--table PATH]
                               [--plot benchmarks/results/nb201.png] [--jobs 1] > result.json

Every method searches the same space, tinyevo's ``nb201`` (6 edges x 5 ops = 15,625 cells), and
is answered by the same table (``tinyevo.estimate.tabular``, default
``../shared/datasets/nb201_12epoch.csv.gz`` from the repository root; any file of that format
with ``--table``):

- The search sees the validation column of one dataset only (``--dataset``: ``cifar10``,
  ``cifar100`` or ``imagenet``, the table's ImageNet16-120 columns; ``--all-datasets`` runs the
  three in turn, each with every method and seed). After each query a method is scored by the
  test accuracy of the architecture with the best validation accuracy it has seen so far;
  regret = oracle (the best test accuracy in the table: 89.16 on cifar10 for the default table)
  - that test accuracy. A search that found the best-validation cell ends at ``floor_regret``
  (cifar10: 0.13). Networks of EQUAL validation accuracy are alike to a search (it sees nothing
  else), so the test accuracy it is scored by at a validation accuracy v is the mean test
  accuracy of the table's cells at v (``Table.test_at``), not that of whichever one
  it met first: on cifar100 the two best cells tie at 61.32 validation (test regrets 0.14 and
  0.54), and scoring by the first one met, as this benchmark did before, decided a search's
  final regret by which of the two it happened to query first. So a score depends only on the
  best validation accuracy a search reached, and ``floor_regret`` is the regret at the table's
  best (cifar100: 0.34); ``found_best_validation`` counts the seeds that reached it.
- Seeds are ``--first-seed``, ``--first-seed + 1``, ...: the benchmark's are 0-49; strategies are
  tuned on others (1000 and up, cifar10 only: docs/surrogate_tuning.md).
- Budgets count DISTINCT architectures (two genomes are the same architecture when the space
  gives them the same key, as in ``tinyevo.run.Runner``). A repeated suggestion from any method
  costs nothing and counts for nothing: it is told its earlier result again. A run stops after
  ``SUGGESTION_CAP`` x budget suggestions (``capped_runs`` counts the runs that did).
- One run per method and seed, as long as the largest budget; a smaller budget is read off the
  same run (no method knows the budget).

Methods: tinyevo's registered strategies by name, through ``ask``/``tell`` one candidate at a
time -- ``regularized`` (the default strategy), ``unas``, ``mcunet``, ``random``, ``nsga2`` with
the validation accuracy as its only objective (a (mu + lambda) GA ranked by fitness and crowding),
``evolution`` with its defaults, ``evolution_ga``, the same parts assembled as a steady-state
GA (tournament, uniform crossover at rate 0.5, discard worst; see ``TINYEVO``), ``reinforce``
(Zoph & Le's LSTM controller trained by REINFORCE, its defaults) and ``reinforce_factorized`` (one
independent softmax per edge, as in the NAS-Bench-201 paper's REINFORCE) -- against
``optuna_tpe`` (Optuna's ``TPESampler``), ``optuna_nsga2`` (``NSGAIISampler``) and
``optuna_random`` (``RandomSampler``), each with default settings and the run's seed, one
categorical parameter per edge. ``surrogate`` is aging evolution choosing its children by a
Gaussian-process model's expected improvement (``tinyevo.strategies.surrogate``).

Output: one JSON document on stdout (per method and budget: mean, sample std and median of the
regret over seeds, and how many seeds found the best-validation cell; per method the CPU time
the method itself spent per suggestion, ``overhead_ms_per_suggestion``: its ask and tell, the
table lookups left out), progress on stderr, and a PNG of mean regret against distinct queries,
one panel per dataset (``--plot``). With ``--all-datasets`` the document holds one entry per
dataset under ``datasets``. The 15,625 cells of the space are
6,470 distinct networks (``space.key``), so many suggestions of a cell string are repeats.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import log, print_json, pyplot, quick_path, repo_path  # noqa: E402
from tinyevo.errors import TinyevoError  # noqa: E402
from tinyevo.estimate.tabular import TabularEstimator  # noqa: E402
from tinyevo.strategies import DEFAULT_STRATEGY, OK, Objective, Trial, create_strategy  # noqa: E402
from tinyevo.spaces import create_space  # noqa: E402

DATASET = "cifar10"
#: The table's datasets (its column prefixes, ``tinyevo.estimate.tabular.DATASETS``); ``imagenet``
#: is ImageNet16-120.
DATASETS = ("cifar10", "cifar100", "imagenet")
DEFAULT_TABLE = "../shared/datasets/nb201_12epoch.csv.gz"  # from the repository root (benchmarks/common.repo_path)
#: tinyevo methods: name -> (registered strategy, options). ``evolution`` runs with its defaults
#: (aging, tournament of 5 in a population of 25); ``evolution_ga`` assembles the same parts as a
#: steady-state GA (uniform crossover at rate 0.5, the worst discarded).
TINYEVO = {
    "regularized": ("regularized", {}),
    "unas": ("unas", {}),
    "mcunet": ("mcunet", {}),
    "evolution": ("evolution", {}),
    "evolution_ga": ("evolution", dict(population_size=25, parent_selection="tournament",
                                       tournament_size=5, crossover="uniform", crossover_rate=0.5,
                                       population_update="discard_worst")),
    "nsga2": ("nsga2", dict(objectives=(Objective("accuracy", "max"),))),
    "random": ("random", {}),
    "reinforce": ("reinforce", {}),
    "reinforce_factorized": ("reinforce", dict(controller="factorized")),
    "surrogate": ("surrogate", {}),
}
OPTUNA = ("optuna_tpe", "optuna_nsga2", "optuna_random")
METHODS = (*TINYEVO, *OPTUNA)
#: A run ends after this many suggestions per budgeted architecture, even short of the budget.
SUGGESTION_CAP = 50
DEFAULT_PLOT = "benchmarks/results/nb201.png"
QUICK_PLOT = "nb201_quick.png"  # in quick_path()


@dataclass
class Settings:
    seeds: int = 50
    budgets: tuple = (25, 50, 100, 200, 300)
    methods: tuple = METHODS
    first_seed: int = 0


QUICK = Settings(seeds=3, budgets=(20, 60))


# --- the oracle ------------------------------------------------------------------------------
class Table:
    """The benchmark's answers: validation accuracy to search on, test accuracy to score with."""

    def __init__(self, path: str, space, dataset: str = DATASET):
        rows = TabularEstimator(path=path, dataset=dataset).table()
        columns = (f"{dataset}-val", f"{dataset}-test")
        first = next(iter(rows.values()))
        missing = [c for c in columns if c not in first]
        if missing:
            raise TinyevoError(f"table {path} has no column {missing[0]!r}")
        cells = [space.from_vector(list(v)) for v in np.ndindex(*(len(c) for _, c in space.dimensions()))]
        absent = [c for c in cells if c not in rows]
        if absent:
            raise TinyevoError(f"table {path} lacks {len(absent)} of the {len(cells)} cells of the "
                               f"nb201 space, e.g. {absent[0]}; it must list every cell")
        self.val = {c: rows[c][columns[0]] for c in cells}
        self.test = {c: rows[c][columns[1]] for c in cells}
        self.oracle = max(self.test.values())
        self.best_val = max(self.val.values())
        # The test accuracy a search is scored by at each validation accuracy: the mean over the
        # table's cells of that validation accuracy (a search cannot tell them apart).
        tests: dict[float, list[float]] = {}
        for cell in cells:
            tests.setdefault(self.val[cell], []).append(self.test[cell])
        self.test_at = {val: float(np.mean(found)) for val, found in tests.items()}
        self.floor_regret = self.oracle - self.test_at[self.best_val]


# --- one run ---------------------------------------------------------------------------------
@dataclass
class Run:
    """One method and seed: the regret after each distinct query."""

    method: str
    seed: int
    regret: list = field(default_factory=list)
    reached: int | None = None  # distinct queries when the best validation accuracy was first seen
    suggestions: int = 0
    capped: bool = False
    seconds: float = 0.0
    overhead: float = 0.0  # seconds in the method's own ask and tell


class Scorer:
    """Counts distinct architectures and tracks the test accuracy of the best validation seen."""

    def __init__(self, table: Table, space, budget: int):
        self.table, self.space, self.budget = table, space, budget
        self.known: dict[str, Trial] = {}
        self.best_val = -math.inf
        self.best_test = math.nan
        self.regret: list[float] = []
        self.reached: int | None = None  # distinct queries when best_val first was the table's best

    def done(self) -> bool:
        return len(self.known) >= self.budget

    def query(self, genome, parents=(), origin="sample") -> Trial:
        """The trial for ``genome``: a new lookup, or the earlier trial of its architecture."""
        key = self.space.key(genome)
        known = self.known.get(key)
        if known is not None:  # a repeat: told again, not counted
            return Trial(known.id, genome, known.status, dict(known.metrics), tuple(parents), origin, key)
        val = self.table.val[genome]
        trial = Trial(len(self.known), genome, OK, {"accuracy": val / 100.0}, tuple(parents), origin, key)
        self.known[key] = trial
        if val > self.best_val:
            self.best_val, self.best_test = val, self.table.test_at[val]
        self.regret.append(self.table.oracle - self.best_test)
        if self.reached is None and self.best_val == self.table.best_val:
            self.reached = len(self.known)
        return trial


def run_tinyevo(method: str, seed: int, table: Table, space, budget: int) -> Run:
    name, options = TINYEVO[method]
    strategy = create_strategy(name, space, seed=seed, **options)
    scorer, run = Scorer(table, space, budget), Run(method, seed)
    while not scorer.done() and run.suggestions < SUGGESTION_CAP * budget:
        start = time.process_time()
        candidates = strategy.ask(1)
        run.overhead += time.process_time() - start
        run.suggestions += len(candidates)
        told = [scorer.query(c.genome, c.parents, c.origin) for c in candidates]
        start = time.process_time()
        strategy.tell(told)
        run.overhead += time.process_time() - start
    run.regret, run.reached, run.capped = scorer.regret, scorer.reached, not scorer.done()
    return run


def run_optuna(method: str, seed: int, table: Table, space, budget: int) -> Run:
    import optuna
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = {"optuna_tpe": optuna.samplers.TPESampler,
               "optuna_nsga2": optuna.samplers.NSGAIISampler,
               "optuna_random": optuna.samplers.RandomSampler}[method](seed=seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    dimensions = space.dimensions()
    scorer, run = Scorer(table, space, budget), Run(method, seed)
    while not scorer.done() and run.suggestions < SUGGESTION_CAP * budget:
        start = time.process_time()
        asked = study.ask()
        vector = [choices.index(asked.suggest_categorical(name, choices)) for name, choices in dimensions]
        run.overhead += time.process_time() - start
        run.suggestions += 1
        trial = scorer.query(space.from_vector(vector), origin="optuna")
        start = time.process_time()
        study.tell(asked, 100.0 * trial.metrics["accuracy"])
        run.overhead += time.process_time() - start
    run.regret, run.reached, run.capped = scorer.regret, scorer.reached, not scorer.done()
    return run


def run_one(job) -> Run:
    method, seed, budget = job
    table, space = _WORLD["table"], _WORLD["space"]
    start = time.perf_counter()
    run = (run_optuna if method in OPTUNA else run_tinyevo)(method, seed, table, space, budget)
    run.seconds = time.perf_counter() - start
    return run


_WORLD: dict = {}  # the table and space of this process (inherited by forked workers)


def run_all(settings: Settings, jobs: int) -> list[Run]:
    budget = max(settings.budgets)
    seeds = range(settings.first_seed, settings.first_seed + settings.seeds)
    work = [(m, s, budget) for m in settings.methods for s in seeds]
    runs: list[Run] = []
    if jobs <= 1:
        return _collect(map(run_one, work), len(work), runs)
    space = _WORLD["space"]
    log("keys of every cell, once for all workers")
    for cell in _WORLD["table"].val:
        space.key(cell)
    with get_context("fork").Pool(jobs) as pool:
        return _collect(pool.imap(run_one, work, chunksize=max(1, settings.seeds // 4)),
                        len(work), runs)


def _collect(results, total: int, runs: list[Run]) -> list[Run]:
    for run in results:
        runs.append(run)
        if len(runs) % max(1, total // 20) == 0 or len(runs) == total:
            log(f"{len(runs)}/{total} runs; {run.method} seed {run.seed}: regret "
                f"{run.regret[-1]:.2f} after {len(run.regret)} architectures, {run.suggestions} "
                f"suggestions, {run.seconds:.1f} s")
    return runs


# --- report ----------------------------------------------------------------------------------
def regret_at(run: Run, budget: int) -> float:
    """Regret after ``budget`` distinct queries (after the last one, for a capped run)."""
    return run.regret[min(budget, len(run.regret)) - 1]


def summary(runs: list[Run], settings: Settings) -> dict:
    methods = {}
    for method in settings.methods:
        mine = [r for r in runs if r.method == method]
        entry = {"library": "optuna" if method in OPTUNA else "tinyevo"}
        if method in TINYEVO:
            name, options = TINYEVO[method]
            entry["strategy"] = name
            entry["options"] = {k: v for k, v in options.items() if k != "objectives"}
            if "objectives" in options:
                entry["options"]["objectives"] = [f"{o.metric} ({o.direction})"
                                                  for o in options["objectives"]]
        for budget in settings.budgets:
            values = np.array([regret_at(r, budget) for r in mine])
            entry[str(budget)] = {
                "mean_regret": round(float(values.mean()), 4),
                "std": round(float(values.std(ddof=1)) if len(values) > 1 else 0.0, 4),
                "median_regret": round(float(np.median(values)), 4),
                "found_best_validation": int(sum(r.reached is not None and r.reached <= budget
                                                 for r in mine))}
        distinct = sum(len(r.regret) for r in mine)
        entry["suggestions_per_architecture"] = round(sum(r.suggestions for r in mine) / distinct, 3)
        entry["capped_runs"] = sum(r.capped for r in mine)
        entry["seconds"] = round(sum(r.seconds for r in mine), 1)
        entry["overhead_ms_per_suggestion"] = round(
            1000 * sum(r.overhead for r in mine) / sum(r.suggestions for r in mine), 3)
        methods[method] = entry
    return methods


def verdict(methods: dict, settings: Settings, default: str, target: float) -> dict:
    """Whether the default strategy has the lowest mean regret at every budget."""
    if default not in methods:
        return {}
    best = {str(b): min(methods, key=lambda m: methods[m][str(b)]["mean_regret"])
            for b in settings.budgets}
    largest = str(max(settings.budgets))
    return {"best_method": best,
            "default_lowest_at_every_budget": all(
                methods[default][b]["mean_regret"] <= min(methods[m][b]["mean_regret"] for m in methods)
                for b in best),
            f"default_below_{target}_at_{largest}": methods[default][largest]["mean_regret"] < target}


def plot(panels: list[tuple[str, list[Run], float]], settings: Settings, path: Path) -> None:
    """One panel per (dataset, runs, floor regret): mean regret against distinct queries."""
    plt = pyplot()
    budget = max(settings.budgets)
    figure, all_axes = plt.subplots(1, len(panels), figsize=(8 * len(panels), 5), squeeze=False)
    for axes, (dataset, runs, floor) in zip(all_axes[0], panels):
        for method in settings.methods:
            curves = np.array([[regret_at(r, q) for q in range(1, budget + 1)]
                               for r in runs if r.method == method])
            style = "-" if method in TINYEVO else "--"
            width = 2.5 if method == DEFAULT_STRATEGY else 1.2
            axes.plot(np.arange(1, budget + 1), curves.mean(axis=0), style, lw=width, label=method)
        axes.axhline(max(floor, 1e-3), color="grey", lw=0.8, ls=":", label="best-validation cell")
        axes.set(xlabel="distinct architectures queried", ylabel="mean regret (test accuracy, %)",
                 yscale="log", title=f"NAS-Bench-201 {dataset}, {settings.seeds} seeds")
        axes.legend(fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)


# --- command line ----------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Regret = oracle test accuracy - test accuracy of the best-validation architecture "
               "seen; budgets count distinct architectures.")
    parser.add_argument("--quick", action="store_true",
                        help=f"reduced run: {QUICK.seeds} seeds, budgets {list(QUICK.budgets)} (< 1 min)")
    parser.add_argument("--seeds", type=int, help="seeds per method (first, first + 1, ...); default 50")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="the first seed (default 0; tuning uses 1000 and up)")
    parser.add_argument("--budgets", type=int, nargs="+",
                        help="distinct architectures; default 25 50 100 200 300")
    parser.add_argument("--dataset", choices=DATASETS, default=DATASET,
                        help="the table's columns to search and score (imagenet: ImageNet16-120)")
    parser.add_argument("--all-datasets", action="store_true", help="every dataset, in turn")
    parser.add_argument("--methods", nargs="+", choices=METHODS, help="default: all")
    parser.add_argument("--table", default=DEFAULT_TABLE,
                        help="NAS-Bench-201 table (.csv.gz with arch, cifar10-val, cifar10-test, ...)")
    parser.add_argument("--plot", help=f"PNG of mean regret against queries (default {DEFAULT_PLOT}, "
                                       f"or a temporary {QUICK_PLOT} with --quick)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes")
    args = parser.parse_args(argv)
    if args.first_seed < 0:
        parser.error("--first-seed must be at least 0")
    for name in ("seeds", "jobs"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.budgets and min(args.budgets) < 1:
        parser.error("--budgets must be at least 1")
    return args


def settings_of(args: argparse.Namespace) -> Settings:
    base = QUICK if args.quick else Settings()
    return Settings(seeds=args.seeds or base.seeds,
                    budgets=tuple(sorted(set(args.budgets))) if args.budgets else base.budgets,
                    methods=tuple(args.methods) if args.methods else base.methods,
                    first_seed=args.first_seed)


def run_dataset(dataset: str, settings: Settings, args, space) -> tuple[dict, list[Run], float]:
    """Every method and seed on one dataset's columns: its report, runs and floor regret."""
    start = time.perf_counter()
    table = Table(str(repo_path(args.table)), space, dataset)
    _WORLD.update(table=table, space=space)
    log(f"table {args.table}, {dataset}: oracle {table.oracle:.2f}, floor regret "
        f"{table.floor_regret:.2f}; {settings}")
    runs = run_all(settings, args.jobs)
    methods = summary(runs, settings)
    report = {"dataset": dataset, "oracle": round(table.oracle, 4),
              "floor_regret": round(table.floor_regret, 4), "methods": methods,
              "targets": verdict(methods, settings, DEFAULT_STRATEGY, 0.25),
              "seconds": round(time.perf_counter() - start, 1)}
    return report, runs, table.floor_regret


def main(argv=None) -> None:
    args = parse_args(argv)
    settings, start = settings_of(args), time.perf_counter()
    space = create_space("nb201")
    datasets = DATASETS if args.all_datasets else (args.dataset,)
    reports, panels = {}, []
    for dataset in datasets:
        report, runs, floor = run_dataset(dataset, settings, args, space)
        reports[dataset] = report
        panels.append((dataset, runs, floor))
    plot_path = repo_path(args.plot) if args.plot else (quick_path(QUICK_PLOT) if args.quick
                                                         else repo_path(DEFAULT_PLOT))
    plot(panels, settings, plot_path)
    common = {"benchmark": "nb201", "table": str(args.table), "budgets": list(settings.budgets),
              "default_strategy": DEFAULT_STRATEGY, "seeds": settings.seeds,
              "first_seed": settings.first_seed, "quick": args.quick,
              "suggestion_cap": SUGGESTION_CAP}
    if args.all_datasets:
        document = {**common, "datasets": reports}
    else:
        document = {**common, **reports[args.dataset]}
    print_json({**document, "plot": str(plot_path), "seconds": round(time.perf_counter() - start, 1)})


if __name__ == "__main__":
    try:
        main()
    except TinyevoError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
