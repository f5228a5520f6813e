"""Benchmark: how well each performance estimator ranks mbv2 architectures, and what it costs.

    python benchmarks/estimators.py [--quick] [--data PATH] [--device cpu|cuda] [--workers N]
                                    [--cache DIR] [--png PATH] > benchmarks/results/estimators.json

A fixed, seeded sample of ``--candidates`` (30) architectures of a small ``mbv2`` space for 28x28
MNIST (``SPACE_OPTIONS``: resolution 24 or 32, width 0.2-0.4, 1-3 blocks per stage, no feature-mix
layer) is trained "fully" as the ground truth; every estimator then estimates the same
architectures, and its estimates are rank-correlated (Kendall tau, Spearman; scipy.stats) with
the ground truth.

The sample mimics an evolutionary search, so that weight inheritance has parents: the first
``--roots`` (10) are drawn uniformly from the space, each later one is an earlier one (a seeded
random choice) mutated twice (``space.mutate``), with no architecture twice.

Full training, the ground truth, defined honestly: ``--epochs`` (12) epochs of Adam (lr 3e-3, cosine
schedule, batch 32) on a fixed subset of ``--train-rows`` (1,200) MNIST training rows, validation
accuracy on a fixed ``--val-rows`` (2,000) validation rows. Data: ``--data`` (the shared
``mnist70k.npz``) split with seed 0: 10,000 rows for test (never read here), 10 % of the rest for
validation, the subsets are the first rows of each split. Every training of candidate i uses trial
seed i, so "same seed, same result".

Estimators (all through tinyevo's own estimator classes, same data subset):

- ``epochs_1``: lower fidelity, 1 epoch (its own cosine schedule).
- ``data_fraction_0.25``: all epochs on a seeded quarter of the training rows.
- ``resolution_0.5``: all epochs on inputs downsampled to half the genome's resolution.
- ``width_0.5``: all epochs with every layer's channels halved (not the classifier's).
- ``combined``: the knobs composed: 2 epochs, half the rows, half the resolution.
- ``learning_curve``: Domhan-style extrapolation (``tinyevo.estimate.learning_curve``) of the
  validation curve of the first ``--lc-epochs`` (6) epochs to the last epoch. The training run of
  a candidate is deterministic for its seed and its schedule is that of the full run, so the first
  epochs are those of the ground-truth run: they are read from it (not trained twice), and the cost
  charged is the measured time to the end of epoch ``--lc-epochs`` plus the time of the prediction.
- ``truncated``: the baseline of ``learning_curve``: the accuracy measured at epoch ``--lc-epochs``
  of the same run, not extrapolated; same cost without the prediction.
- ``inheritance``: weight inheritance (``InheritanceEstimator``): a root trains from scratch for 2
  epochs, every later candidate starts from its parent's weights (kept on disk by trial id) and
  trains 1 epoch. Candidates are estimated parents first.
- ``supernet``: one OFA-style supernet of the whole space (elastic kernel, expand ratio, depth and
  width) trained once with the sandwich rule for ``--supernet-epochs`` (6) on the same rows; each
  candidate is its subnet after batch-norm recalibration on 4 batches. Its training time is charged
  in ``total_seconds`` and spread over the candidates in ``seconds_per_candidate`` (amortized);
  ``marginal_seconds_per_candidate`` is the evaluation alone.

Cost: ``time.process_time()`` of the process doing the work (torch threads = 1, so CPU seconds;
other processes on the machine do not inflate it), or wall time on CUDA (``"clock"`` says which).
``seconds_per_candidate`` = ``total_seconds`` / candidates; ``total_seconds`` includes one-off costs.

Results are cached per setting under ``--cache`` (``runs/estimators_cache/<hash>``, git-ignored)
one candidate at a time: an interrupted run started again resumes. ``--quick``: 5 candidates,
tiny subsets, for a smoke run under a minute.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common import log, print_json, pyplot, repo_path

DEFAULT_DATA = "../shared/datasets/mnist70k.npz"
SPLIT_SEED, SAMPLE_SEED = 0, 0
SPACE_OPTIONS = dict(input_shape=[28, 28, 1], num_classes=10, resolutions=[24, 32], widths=[0.2, 0.3, 0.4],
                     depths=[1, 2, 3], kernels=[3, 5, 7], expands=[3, 4, 6], feature_mix_layer=False)
LOW_FIDELITY = {  # name -> TrainingEstimator knobs over the full-training settings
    "epochs_1": {"epochs": 1},
    "data_fraction_0.25": {"data_fraction": 0.25},
    "resolution_0.5": {"resolution": 0.5},
    "width_0.5": {"width_scale": 0.5},
    "combined": {"epochs": 2, "data_fraction": 0.5, "resolution": 0.5},
}
ESTIMATOR_NAMES = (*LOW_FIDELITY, "learning_curve", "inheritance", "supernet")
#: Reported beside ``learning_curve``: the same first epochs, the last measured accuracy as the estimate.
TRUNCATED = "truncated"
TARGET_TAU, TARGET_COST_SHARE = 0.7, 0.1


@dataclass(frozen=True)
class Settings:
    candidates: int = 30
    roots: int = 10
    train_rows: int = 1200
    val_rows: int = 2000
    epochs: int = 12
    batch_size: int = 32
    lr: float = 3e-3
    lc_epochs: int = 6
    inherit_epochs: int = 1
    inherit_scratch_epochs: int = 2
    supernet_epochs: int = 6
    calibration_batches: int = 4
    data: str = DEFAULT_DATA
    device: str = "cpu"

    def key(self) -> str:
        """Names the cache folder: every setting, the data file by name and size (not by path)."""
        values = dataclasses.asdict(self)
        data = Path(repo_path(self.data))
        values["data"] = [data.name, data.stat().st_size if data.is_file() else None]
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]


QUICK = dict(candidates=5, roots=2, train_rows=128, val_rows=256, epochs=7, batch_size=32, lc_epochs=6,
             supernet_epochs=1, calibration_batches=2)


# --- what every worker builds once -------------------------------------------------------------------
_BENCH: dict = {}


def bench(settings: Settings):
    """(space, data subset) of these settings, built once per process."""
    if settings not in _BENCH:
        import torch

        from tinyevo.data import Dataset, load_dataset
        from tinyevo.spaces import create_space

        torch.set_num_threads(1)
        full = load_dataset("npz", path=str(repo_path(settings.data)), seed=SPLIT_SEED, test_size=10_000)
        for what, rows, available in (("train", settings.train_rows, len(full.y_train)),
                                      ("val", settings.val_rows, len(full.y_val))):
            if rows > available:
                raise SystemExit(f"--{what}-rows {rows} is more than the {available} {what} rows of "
                                 f"{settings.data}")
        subset = Dataset("mnist-subset", full.x_train[:settings.train_rows], full.y_train[:settings.train_rows],
                         full.x_val[:settings.val_rows], full.y_val[:settings.val_rows],
                         full.x_test[:0], full.y_test[:0], full.num_classes, full.scale,
                         {"source": settings.data, "split_seed": SPLIT_SEED})
        _BENCH[settings] = (create_space("mbv2", **SPACE_OPTIONS), subset)
    return _BENCH[settings]


def sample(settings: Settings) -> tuple[list[dict], list[int | None]]:
    """The fixed sample: ``roots`` random genomes, then mutants (two mutations) of earlier ones."""
    from tinyevo.spaces import create_space

    space = create_space("mbv2", **SPACE_OPTIONS)
    rng = np.random.default_rng(SAMPLE_SEED)
    genomes, parents, keys = [], [], set()
    while len(genomes) < settings.candidates:
        if len(genomes) < settings.roots:
            genome, parent = space.sample(rng), None
        else:
            parent = int(rng.integers(len(genomes)))
            genome = space.mutate(space.mutate(genomes[parent], rng), rng)
        if space.key(genome) not in keys:
            keys.add(space.key(genome))
            genomes.append(genome)
            parents.append(parent)
    return genomes, parents


def clock(settings: Settings) -> float:
    return time.perf_counter() if settings.device.startswith("cuda") else time.process_time()


def training(settings: Settings, **knobs):
    from tinyevo.estimate.training import TrainingEstimator

    _, data = bench(settings)
    options = dict(dataset=data, epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr,
                   device=settings.device, seed=0, eval_batch_size=1000)
    return TrainingEstimator(**{**options, **knobs})


# --- one candidate, in a worker ----------------------------------------------------------------------
def ground_truth(settings: Settings, index: int, genome: dict) -> dict:
    """Full training of one candidate: final validation accuracy, curve, time to the end of each epoch."""
    from tinyevo.estimate import EvalContext

    space, _ = bench(settings)
    marks: list[float] = []
    start = clock(settings)

    def mark(curve):
        marks.append(clock(settings) - start)
        return False

    metrics = training(settings).evaluate(space.decode(genome), EvalContext(seed=index,
                                                                            extra={"on_epoch": mark}))
    seconds = clock(settings) - start
    return {"accuracy": metrics["accuracy"], "curve": metrics["learning_curve"], "seconds": seconds,
            "epoch_marks": marks + [seconds]}


def low_fidelity(settings: Settings, name: str, index: int, genome: dict) -> dict:
    from tinyevo.estimate import EvalContext

    space, _ = bench(settings)
    start = clock(settings)
    metrics = training(settings, **LOW_FIDELITY[name]).evaluate(space.decode(genome), EvalContext(seed=index))
    return {"estimate": metrics["accuracy"], "seconds": clock(settings) - start}


def learning_curve(settings: Settings, truth: dict) -> dict:
    """Extrapolation of the first ``lc_epochs`` of the ground-truth curve (see the module docstring)."""
    from tinyevo.estimate.learning_curve import LearningCurveEstimator

    estimator = LearningCurveEstimator(epochs=settings.epochs, observe_epochs=settings.lc_epochs)
    start = time.process_time()
    estimate, _ = estimator.final_accuracy(truth["curve"][:settings.lc_epochs], seed=0)
    seconds = truth["epoch_marks"][settings.lc_epochs - 1] + time.process_time() - start
    return {"estimate": estimate, "seconds": seconds}


def truncated(settings: Settings, truth: dict) -> dict:
    """The baseline of ``learning_curve``: the accuracy measured at epoch ``lc_epochs`` of the full
    run, not extrapolated (what early stopping without a curve model would report)."""
    return {"estimate": truth["curve"][settings.lc_epochs - 1],
            "seconds": truth["epoch_marks"][settings.lc_epochs - 1]}


def inheritance(settings: Settings, index: int, genome: dict, parent: int | None, run_dir: str) -> dict:
    from tinyevo.estimate import EvalContext
    from tinyevo.estimate.inheritance import InheritanceEstimator

    space, data = bench(settings)
    estimator = InheritanceEstimator(dataset=data, epochs=settings.inherit_epochs,
                                     scratch_epochs=settings.inherit_scratch_epochs,
                                     batch_size=settings.batch_size, lr=settings.lr, device=settings.device,
                                     seed=0, eval_batch_size=1000)
    context = EvalContext(genome=genome, space=space, trial_id=index, seed=index,
                          parents=() if parent is None else (parent,), run_dir=Path(run_dir))
    start = clock(settings)
    metrics = estimator.evaluate(space.decode(genome), context)
    return {"estimate": metrics["accuracy"], "seconds": clock(settings) - start,
            "inherited_fraction": metrics["inherited_fraction"]}


def train_supernet_once(settings: Settings, path: str) -> dict:
    from tinyevo.estimate.supernet import Supernet, train_supernet

    space, data = bench(settings)
    net = Supernet(space, width=None, seed=0)
    start = clock(settings)
    history = train_supernet(net, data, epochs=settings.supernet_epochs, batch_size=settings.batch_size,
                             lr=settings.lr, seed=0, device=settings.device, progress=False)
    seconds = clock(settings) - start
    net.save(path)
    return {"seconds": seconds, "loss_largest": history["loss_largest"], "loss_smallest": history["loss_smallest"]}


def supernet(settings: Settings, index: int, genome: dict, path: str) -> dict:
    from tinyevo.estimate import EvalContext
    from tinyevo.estimate.supernet import SupernetEstimator, cached_supernet

    space, data = bench(settings)
    device = settings.device
    estimator = SupernetEstimator(supernet_path=path, dataset=data, calibration_batches=settings.calibration_batches,
                                  batch_size=64, eval_batch_size=1000, device=device)
    cached_supernet(path, device)  # loading the file is a one-off, not a per-candidate cost
    start = clock(settings)
    metrics = estimator.evaluate(space.decode(genome), EvalContext(genome=genome, space=space, seed=index))
    return {"estimate": metrics["accuracy"], "seconds": clock(settings) - start}


# --- the cache and the pool --------------------------------------------------------------------------
class Cache:
    """``results.json`` in the settings' folder: {phase: {candidate index: record}}, rewritten atomically."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / "results.json"
        self.data = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def get(self, phase: str, key) -> dict | None:
        return self.data.get(phase, {}).get(str(key))

    def put(self, phase: str, key, record: dict) -> None:
        self.data.setdefault(phase, {})[str(key)] = record
        partial = self.path.with_name(self.path.name + ".part")
        partial.write_text(json.dumps(self.data))
        os.replace(partial, self.path)


def run_phase(cache: Cache, phase: str, jobs: dict, pool) -> None:
    """Run ``jobs`` ({key: (function, args)}) not yet cached, in the pool or here; cache each result."""
    todo = {k: job for k, job in jobs.items() if cache.get(phase, k) is None}
    if not todo:
        return
    log(f"{phase}: {len(todo)} to do")
    if pool is None:
        for key, (function, args) in todo.items():
            cache.put(phase, key, function(*args))
        return
    futures = {key: pool.submit(function, *args) for key, (function, args) in todo.items()}
    for key, future in futures.items():
        cache.put(phase, key, future.result())


def depth_levels(parents: list[int | None]) -> list[list[int]]:
    """Candidate indices grouped so that every parent is in an earlier group than its children."""
    depth = []
    for parent in parents:
        depth.append(0 if parent is None else depth[parent] + 1)
    return [[i for i, d in enumerate(depth) if d == level] for level in range(max(depth) + 1)]


# --- correlations and the report ---------------------------------------------------------------------
def correlations(truth: list[float], estimates: list[float]) -> dict:
    from scipy.stats import kendalltau, spearmanr

    tau = kendalltau(truth, estimates).statistic
    rho = spearmanr(truth, estimates).statistic
    return {"kendall_tau": None if np.isnan(tau) else float(tau), "spearman": None if np.isnan(rho) else float(rho)}


def report(settings: Settings, cache: Cache, genomes: list[dict], parents: list, names) -> dict:
    space, _ = bench(settings)
    n = len(genomes)
    truth = [cache.get("ground_truth", i)["accuracy"] for i in range(n)]
    full_total = sum(cache.get("ground_truth", i)["seconds"] for i in range(n))
    full = full_total / n
    rows = {}
    cache.data[TRUNCATED] = {str(i): truncated(settings, cache.get("ground_truth", i)) for i in range(n)}
    for name in names:
        records = [cache.get(name, i) for i in range(n)]
        total = sum(r["seconds"] for r in records)
        row = {**correlations(truth, [r["estimate"] for r in records])}
        once = cache.get("supernet_training", 0)["seconds"] if name == "supernet" else 0.0
        row.update(seconds_per_candidate=(total + once) / n, total_seconds=total + once)
        if name == "supernet":
            row.update(marginal_seconds_per_candidate=total / n, training_seconds=once)
        if name == "inheritance":
            row["mean_inherited_fraction"] = float(np.mean([r["inherited_fraction"] for r in records]))
        row["cost_share_of_full_training"] = row["seconds_per_candidate"] / full
        rows[name] = row
    reached = sorted(name for name, r in rows.items() if (r["kendall_tau"] or -1) >= TARGET_TAU
                     and r["cost_share_of_full_training"] <= TARGET_COST_SHARE)
    return {
        "full_training_seconds_per_candidate": full,
        "full_training_total_seconds": full_total,
        "estimators": rows,
        "target": {"kendall_tau_at_least": TARGET_TAU, "cost_share_at_most": TARGET_COST_SHARE,
                   "reached_by": reached},
        "ground_truth": {"candidates": n, "accuracy_min": min(truth), "accuracy_max": max(truth),
                         "accuracy_mean": float(np.mean(truth)),
                         "per_candidate": [{"architecture": space.describe(g), "parent": p, "accuracy": a}
                                           for g, p, a in zip(genomes, parents, truth)]},
        "clock": "wall (perf_counter)" if settings.device.startswith("cuda") else "process_time (CPU seconds, 1 thread)",
        "settings": {**dataclasses.asdict(settings), "space": SPACE_OPTIONS, "low_fidelity": LOW_FIDELITY,
                     "split_seed": SPLIT_SEED, "sample_seed": SAMPLE_SEED},
    }


def plot(document: dict, path: Path) -> None:
    plt = pyplot()
    full = document["full_training_seconds_per_candidate"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, row in document["estimators"].items():
        share, tau = row["cost_share_of_full_training"], row["kendall_tau"] or 0.0
        ax.scatter(share, tau, s=30)
        ax.annotate(name, (share, tau), textcoords="offset points", xytext=(4, 3), fontsize=8)
    ax.axvline(TARGET_COST_SHARE, color="grey", ls=":", lw=1)
    ax.axhline(TARGET_TAU, color="grey", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel(f"cost per candidate / full training ({full:.1f} s per candidate)")
    ax.set_ylabel("Kendall tau against full training")
    ax.set_title(f"mbv2 on MNIST, {document['ground_truth']['candidates']} architectures")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Settings and the estimators are described in the module docstring.")
    parser.add_argument("--quick", action="store_true", help="5 candidates on tiny subsets (under a minute on an idle core)")
    parser.add_argument("--data", default=DEFAULT_DATA, help="an .npz with arrays x (N, 28, 28) and y")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--workers", type=int, default=1, help="processes training candidates in parallel")
    for field in ("candidates", "roots", "train_rows", "val_rows", "epochs", "lc_epochs", "supernet_epochs",
                  "batch_size"):
        parser.add_argument("--" + field.replace("_", "-"), type=int, help=f"default {getattr(Settings, field)}")
    parser.add_argument("--estimators", nargs="+", choices=(*ESTIMATOR_NAMES, TRUNCATED),
                        default=[*ESTIMATOR_NAMES, TRUNCATED], help="which estimators to run and report (default all)")
    parser.add_argument("--cache", default="runs/estimators_cache",
                        help="folder of the per-setting caches (resume)")
    parser.add_argument("--png", default="benchmarks/results/estimators.png", help="the plot")
    return parser.parse_args(argv)


def settings_of(args: argparse.Namespace) -> Settings:
    values = dict(QUICK) if args.quick else {}
    values.update(data=args.data, device=args.device)
    for field in ("candidates", "roots", "train_rows", "val_rows", "epochs", "lc_epochs", "supernet_epochs",
                  "batch_size"):
        if getattr(args, field) is not None:
            values[field] = getattr(args, field)
    settings = Settings(**values)
    if not 2 <= settings.lc_epochs < settings.epochs:
        raise SystemExit(f"--lc-epochs must lie in 2..{settings.epochs - 1} (below --epochs)")
    if not 1 <= settings.roots <= settings.candidates or settings.candidates < 3:
        raise SystemExit("need --candidates >= 3 and 1 <= --roots <= --candidates")
    if not Path(repo_path(settings.data)).is_file():
        raise SystemExit(f"--data {settings.data}: no such file")
    return settings


def main(argv=None) -> None:
    args = parse_args(argv)
    settings = settings_of(args)
    import torch
    torch.set_num_threads(1)
    cache = Cache(repo_path(args.cache) / settings.key())
    genomes, parents = sample(settings)
    log(f"{len(genomes)} candidates, cache {cache.folder}")
    pool = None
    if args.workers > 1:
        import multiprocessing
        pool = ProcessPoolExecutor(args.workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        indices = range(len(genomes))
        run_phase(cache, "ground_truth", {i: (ground_truth, (settings, i, genomes[i])) for i in indices}, pool)
        chosen = set(args.estimators)
        for name in (n for n in LOW_FIDELITY if n in chosen):
            run_phase(cache, name, {i: (low_fidelity, (settings, name, i, genomes[i])) for i in indices}, pool)
        for i in indices if "learning_curve" in chosen else ():
            if cache.get("learning_curve", i) is None:
                cache.put("learning_curve", i, learning_curve(settings, cache.get("ground_truth", i)))
        run_dir = str(cache.folder / "inheritance_run")
        for level in depth_levels(parents) if "inheritance" in chosen else ():
            run_phase(cache, "inheritance", {i: (inheritance, (settings, i, genomes[i], parents[i], run_dir))
                                             for i in level}, pool)
        path = str(cache.folder / "supernet.npz")
        estimated = all(cache.get("supernet", i) is not None for i in indices)
        if "supernet" in chosen and (cache.get("supernet_training", 0) is None
                                     or not (estimated or Path(path).is_file())):
            log("supernet: training")
            cache.put("supernet_training", 0, train_supernet_once(settings, path))
            cache.data.pop("supernet", None)  # estimates of an older supernet file
        if "supernet" in chosen:
            run_phase(cache, "supernet", {i: (supernet, (settings, i, genomes[i], path)) for i in indices}, pool)
    finally:
        if pool is not None:
            pool.shutdown()
    document = report(settings, cache, genomes, parents, args.estimators)
    plot(document, repo_path(args.png))
    print_json(document)


if __name__ == "__main__":
    sys.exit(main())
