"""Benchmark: how well each performance estimator ranks mbv2 architectures, and what it costs.

    python benchmarks/estimators.py [--quick] [--data PATH] [--device cpu|cuda] [--workers N]
                                    [--repeat-truth] [--cache DIR] [--png PATH] > benchmarks/results/estimators.json

A fixed, seeded sample of ``--candidates`` (30) architectures of a small ``mbv2`` space for 28x28
MNIST is trained "fully" as the ground truth; every estimator then estimates the same
architectures, and its estimates are rank-correlated (Kendall tau, Spearman; scipy.stats) with
the ground truth. The space (``--space``, ``SPACES``): ``wide`` (default: input resolution 12-32,
width 0.1-0.5, 1-3 blocks per stage, kernels 3/5/7, expand 3/4/6, no feature-mix layer) or
``narrow`` (resolution 24 or 32, width 0.2-0.4). A rank correlation means something only where
architectures differ by more than the seed-to-seed noise of one training (``--repeat-truth``
measures it): in the narrow space two full trainings of the same 30 networks with different seeds
agree at tau 0.42 only, so no estimator can be shown to reach 0.7 there; in the wide space they
agree at 0.54, and against the mean of the two seeds a perfect estimator would reach about 0.75.

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
- ``epochs_1_bn``: the same, batch-norm statistics recalibrated on 4 training batches before the
  validation (``TrainingEstimator(bn_recalibration=4)``): after ~40 steps the running averages lag
  the weights and ``epochs_1`` validates near chance.
- ``first_epoch_bn``: the first epoch of the full 12-epoch schedule (``schedule_epochs``), recalibrated:
  the start of the very run the ground truth finishes (same seed, same batches).
- ``data_fraction_0.25``: all epochs on a seeded quarter of the training rows.
- ``resolution_0.5``: all epochs on inputs downsampled to half the genome's resolution.
- ``width_0.5``: all epochs with every layer's channels halved (not the classifier's).
- ``combined``: the knobs composed: 2 epochs, half the rows, half the resolution; ``combined_bn`` recalibrated.
- ``learning_curve``: Domhan-style extrapolation (``tinyevo.estimate.learning_curve``) of the
  validation curve of the first ``--lc-epochs`` (6) epochs to the last epoch. The training run of
  a candidate is deterministic for its seed and its schedule is that of the full run, so the first
  epochs are those of the ground-truth run: they are read from it (not trained twice), and the cost
  charged is the measured time to the end of epoch ``--lc-epochs`` plus the time of the prediction.
- ``truncated``: the baseline of ``learning_curve``: the accuracy measured at epoch ``--lc-epochs``
  of the same run, not extrapolated; same cost without the prediction.
- ``inheritance``: weight inheritance (``InheritanceEstimator``): a root trains from scratch for 2
  epochs, every later candidate starts from its parent's weights (kept on disk by trial id) and
  trains 1 epoch. Candidates are estimated parents first. ``inheritance_bn``: the same, recalibrated.
- ``supernet``: one OFA-style supernet of the whole space (elastic kernel, expand ratio, depth and
  width) trained once with the sandwich rule for ``--supernet-epochs`` (6) on the same rows; each
  candidate is its subnet after batch-norm recalibration on 4 batches. Its training time is charged
  in ``total_seconds`` and spread over the candidates in ``seconds_per_candidate`` (amortized);
  ``marginal_seconds_per_candidate`` is the evaluation alone.

The ground truth's own noise: ``--repeat-truth`` trains every candidate fully a second time with
another seed and reports the rank correlation of the two (``ground_truth_noise``), and each
estimator's Kendall tau against that repeat and against the mean of the two. Estimators that read
the ground-truth run itself (``truncated``, ``learning_curve``, ``first_epoch_bn``) share its seed
noise; their tau against the repeat says how much of their agreement is that. (All training-based
estimators use the ground truth's seed 0, so they start from its initial weights too.) From the two
seeds' agreement, ``ceiling_kendall_tau_vs_one_seed`` is the tau a perfect estimator of seed-free
quality would reach against one seed's ground truth (quality plus Gaussian seed noise; ``ceiling``).

Cost: ``time.process_time()`` of the process doing the work (torch threads = 1, so CPU seconds;
other processes on the machine do not inflate it), or wall time on CUDA (``"clock"`` says which).
``seconds_per_candidate`` = ``total_seconds`` / candidates; ``total_seconds`` includes one-off costs
that belong to the estimator (supernet training). Each worker process first trains one network
briefly, untimed (``warm_up``): the first training in a fresh process pays ~1.5 CPU s of lazy
initialisation (more on CUDA) that a search pays once per worker, not per candidate. Process time
still grows when the machine is oversubscribed (shared caches), so compare runs made alike.
``phase_wall_seconds``: the wall-clock time of each phase with its workers.

Results: ``benchmarks/results/estimators.json`` (the default, wide space, CPU:
``python benchmarks/estimators.py --workers 2 --repeat-truth``), ``estimators_narrow.json`` (the
same with ``--space narrow``) and, at larger scale on a GPU, ``estimators_gpu.json`` (narrow space;
one H200, 12 workers sharing it, about 11 minutes; ``--data`` a copy of the shared file inside the
repository):

    PYTHONPATH=. python3 benchmarks/estimators.py --space narrow --device cuda --workers 12 --data .data/mnist70k.npz \
        --train-rows 30000 --val-rows 5000 --epochs 10 --batch-size 256 --lc-epochs 5 \
        --supernet-epochs 15 --repeat-truth --estimators supernet truncated learning_curve epochs_1 \
        epochs_1_bn first_epoch_bn data_fraction_0.25 combined_bn inheritance inheritance_bn

(with ``--lc-epochs 5`` the curve is too short for every curve family to fit, so ``learning_curve``
gave the last value, as ``truncated``: ``extrapolated_candidates`` says so; it needs 6 epochs.)

Results are cached per setting under ``--cache`` (``runs/estimators_cache/<hash>``, git-ignored)
one candidate at a time: an interrupted run started again resumes; ``--report-only`` reports what a
cache holds (e.g. one copied back from a GPU machine) without training. ``--quick``: 5 candidates,
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

from common import log, print_json, pyplot, quick_path, repo_path

DEFAULT_DATA = "../shared/datasets/mnist70k.npz"
SPLIT_SEED, SAMPLE_SEED = 0, 0
SPACE_OPTIONS = dict(input_shape=[28, 28, 1], num_classes=10, resolutions=[24, 32], widths=[0.2, 0.3, 0.4],
                     depths=[1, 2, 3], kernels=[3, 5, 7], expands=[3, 4, 6], feature_mix_layer=False)
#: ``--space wide``: a sample that spans more of the mbv2 space (input resolution 12-32, width
#: 0.1-0.5), so that architectures differ by more than the seed-to-seed noise of one training.
SPACES = {"narrow": SPACE_OPTIONS,
          "wide": {**SPACE_OPTIONS, "resolutions": [12, 16, 20, 24, 28, 32], "widths": [0.1, 0.2, 0.3, 0.4, 0.5]}}
#: Batch-norm recalibration of the ``_bn`` variants: batches of ``batch_size`` training rows.
BN_BATCHES = 4
FULL = "full"  # a knob value: the full training's epochs
LOW_FIDELITY = {  # name -> TrainingEstimator knobs over the full-training settings
    "epochs_1": {"epochs": 1},
    "epochs_1_bn": {"epochs": 1, "bn_recalibration": BN_BATCHES},
    "first_epoch_bn": {"epochs": 1, "schedule_epochs": FULL, "bn_recalibration": BN_BATCHES},
    "data_fraction_0.25": {"data_fraction": 0.25},
    "resolution_0.5": {"resolution": 0.5},
    "width_0.5": {"width_scale": 0.5},
    "combined": {"epochs": 2, "data_fraction": 0.5, "resolution": 0.5},
    "combined_bn": {"epochs": 2, "data_fraction": 0.5, "resolution": 0.5, "bn_recalibration": BN_BATCHES},
}
#: name -> InheritanceEstimator knobs (over the inherit/scratch epochs of the settings).
INHERITANCE = {"inheritance": {}, "inheritance_bn": {"bn_recalibration": BN_BATCHES}}
ESTIMATOR_NAMES = (*LOW_FIDELITY, "learning_curve", *INHERITANCE, "supernet")
#: Reported beside ``learning_curve``: the same first epochs, the last measured accuracy as the estimate.
TRUNCATED = "truncated"
#: The ground truth trained again with another seed (``--repeat-truth``): its own noise.
REPEAT = "ground_truth_repeat"
#: Cache key of the wall-clock seconds each phase took with its workers (what a user waits).
WALL = "phase_wall"
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
    space: str = "wide"  # a name of ``SPACES``

    @property
    def space_options(self) -> dict:
        return SPACES[self.space]

    def key(self) -> str:
        """Names the cache folder: every setting, the data file by name and size (not by path)."""
        values = dataclasses.asdict(self)
        if values["space"] == "narrow":  # the original sample: its cache folder keeps its name
            del values["space"]
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
        _BENCH[settings] = (create_space("mbv2", **settings.space_options), subset)
        warm_up(settings, *_BENCH[settings])
    return _BENCH[settings]


def warm_up(settings: Settings, space, data) -> None:
    """Train one network briefly, once per process, before anything is timed.

    The first training in a fresh process pays one-off costs (lazy initialisation of torch's CPU
    kernels or of CUDA, its allocator and kernel caches) that a search pays once per worker, not per
    candidate; without this they would be charged to whichever candidate a worker takes first."""
    from tinyevo.estimate import EvalContext
    from tinyevo.estimate.training import TrainingEstimator

    genome = space.sample(np.random.default_rng(12345))
    start = clock(settings)
    TrainingEstimator(dataset=data, epochs=1, data_fraction=min(1.0, 4 * settings.batch_size / len(data.y_train)),
                      batch_size=settings.batch_size, device=settings.device, seed=0,
                      bn_recalibration=1).evaluate(space.decode(genome), EvalContext(seed=0))
    log(f"warm-up (not charged to any candidate): {clock(settings) - start:.1f} s")


def sample(settings: Settings) -> tuple[list[dict], list[int | None]]:
    """The fixed sample: ``roots`` random genomes, then mutants (two mutations) of earlier ones."""
    from tinyevo.spaces import create_space

    space = create_space("mbv2", **settings.space_options)
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
def ground_truth(settings: Settings, index: int, genome: dict, seed: int = 0) -> dict:
    """Full training of one candidate: final validation accuracy, curve, time to the end of each epoch.

    ``seed`` is the estimator's seed: 0 for the ground truth, 1 for its repeat (``--repeat-truth``)."""
    from tinyevo.estimate import EvalContext

    space, _ = bench(settings)
    marks: list[float] = []
    start = clock(settings)

    def mark(curve):
        marks.append(clock(settings) - start)
        return False

    metrics = training(settings, seed=seed).evaluate(space.decode(genome),
                                                     EvalContext(seed=index, extra={"on_epoch": mark}))
    seconds = clock(settings) - start
    return {"accuracy": metrics["accuracy"], "curve": metrics["learning_curve"], "seconds": seconds,
            "epoch_marks": marks + [seconds]}


def low_fidelity(settings: Settings, name: str, index: int, genome: dict) -> dict:
    from tinyevo.estimate import EvalContext

    space, _ = bench(settings)
    start = clock(settings)
    knobs = {k: settings.epochs if v == FULL else v for k, v in LOW_FIDELITY[name].items()}
    metrics = training(settings, **knobs).evaluate(space.decode(genome), EvalContext(seed=index))
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


def inheritance(settings: Settings, name: str, index: int, genome: dict, parent: int | None, run_dir: str) -> dict:
    from tinyevo.estimate import EvalContext
    from tinyevo.estimate.inheritance import InheritanceEstimator

    space, data = bench(settings)
    estimator = InheritanceEstimator(dataset=data, epochs=settings.inherit_epochs,
                                     scratch_epochs=settings.inherit_scratch_epochs,
                                     batch_size=settings.batch_size, lr=settings.lr, device=settings.device,
                                     seed=0, eval_batch_size=1000, **INHERITANCE[name])
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
    start = time.perf_counter()
    if pool is None:
        for key, (function, args) in todo.items():
            cache.put(phase, key, function(*args))
    else:
        futures = {key: pool.submit(function, *args) for key, (function, args) in todo.items()}
        for key, future in futures.items():
            cache.put(phase, key, future.result())
    wall = cache.data.setdefault(WALL, {}).setdefault(phase, {"seconds": 0.0, "jobs": 0})
    wall["seconds"] += time.perf_counter() - start
    wall["jobs"] += len(todo)
    wall["workers"] = 1 if pool is None else pool._max_workers
    cache.put(WALL, phase, wall)


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


def ceiling(seed_tau: float | None) -> dict:
    """The Kendall tau a perfect estimator of an architecture's seed-free accuracy would reach.

    A model: accuracy = quality + independent seed noise, jointly Gaussian. Two seeds' Pearson
    correlation r follows from their Kendall tau (r = sin(pi tau / 2), Greiner's relation); the
    quality correlates with one seed's accuracy at sqrt(r) and with the two seeds' mean at
    sqrt(2r / (1 + r)) (Spearman-Brown); tau = 2 arcsin(correlation) / pi."""
    if seed_tau is None or seed_tau <= 0:
        return {}
    r = float(np.sin(np.pi * seed_tau / 2))
    tau = lambda correlation: float(2 * np.arcsin(correlation) / np.pi)  # noqa: E731
    return {"ceiling_kendall_tau_vs_one_seed": tau(np.sqrt(r)),
            "ceiling_kendall_tau_vs_seed_mean": tau(np.sqrt(2 * r / (1 + r)))}


def report(settings: Settings, cache: Cache, genomes: list[dict], parents: list, names) -> dict:
    from tinyevo.spaces import create_space

    space = create_space("mbv2", **settings.space_options)
    n = len(genomes)
    if any(cache.get("ground_truth", i) is None for i in range(n)):
        raise SystemExit(f"the cache {cache.folder} lacks ground truth of some candidates: run without "
                         f"--report-only")
    if "supernet" in names and cache.get("supernet_training", 0) is None:
        cache.data.pop("supernet", None)
    missing = [name for name in names if name != TRUNCATED and any(cache.get(name, i) is None for i in range(n))]
    names = [name for name in names if name not in missing]
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
        if name == "learning_curve":  # a curve too short for every family to fit gives its last value
            row["extrapolated_candidates"] = sum(r["estimate"] != cache.get("ground_truth", i)["curve"]
                                                 [settings.lc_epochs - 1] for i, r in enumerate(records))
        if name in INHERITANCE:
            row["mean_inherited_fraction"] = float(np.mean([r["inherited_fraction"] for r in records]))
        row["cost_share_of_full_training"] = row["seconds_per_candidate"] / full
        rows[name] = row
    repeated = [i for i in range(n) if cache.get(REPEAT, i) is not None]  # all, unless cut short
    if len(repeated) >= 5:
        first = [truth[i] for i in repeated]
        repeat = [cache.get(REPEAT, i)["accuracy"] for i in repeated]
        noise = {**correlations(first, repeat), "candidates": len(repeated),
                 "mean_absolute_difference": float(np.mean(np.abs(np.subtract(first, repeat)))),
                 "seconds_per_candidate": float(np.mean([cache.get(REPEAT, i)["seconds"] for i in repeated]))}
        noise.update(ceiling(noise["kendall_tau"]))
        mean = list(np.add(first, repeat) / 2)
        for name, row in rows.items():  # against the repeat and the two seeds' mean, beside the noise
            estimates = [cache.get(name, i)["estimate"] for i in repeated]
            row["kendall_tau_vs_repeat"] = correlations(repeat, estimates)["kendall_tau"]
            row["kendall_tau_vs_seed_mean"] = correlations(mean, estimates)["kendall_tau"]
    else:
        noise = None
    reached = sorted(name for name, r in rows.items() if (r["kendall_tau"] or -1) >= TARGET_TAU
                     and r["cost_share_of_full_training"] <= TARGET_COST_SHARE)
    return {
        "full_training_seconds_per_candidate": full,
        "full_training_total_seconds": full_total,
        "estimators": rows,
        "ground_truth_noise": noise,
        "not_estimated": missing,
        "phase_wall_seconds": cache.data.get(WALL, {}),
        "target": {"kendall_tau_at_least": TARGET_TAU, "cost_share_at_most": TARGET_COST_SHARE,
                   "reached_by": reached},
        "ground_truth": {"candidates": n, "accuracy_min": min(truth), "accuracy_max": max(truth),
                         "accuracy_mean": float(np.mean(truth)),
                         "per_candidate": [{"architecture": space.describe(g), "parent": p, "accuracy": a}
                                           for g, p, a in zip(genomes, parents, truth)]},
        "clock": "wall (perf_counter)" if settings.device.startswith("cuda") else "process_time (CPU seconds, 1 thread)",
        "settings": {**dataclasses.asdict(settings), "space_options": settings.space_options, "low_fidelity": LOW_FIDELITY,
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
    noise = document.get("ground_truth_noise") or {}
    for key, label, style in (("kendall_tau", "full training, another seed", "--"),
                              ("ceiling_kendall_tau_vs_one_seed", "perfect estimator (noise model)", "-.")):
        if noise.get(key) is not None:
            ax.axhline(noise[key], color="tab:red", ls=style, lw=1, label=f"{label}: {noise[key]:.2f}")
    if noise:
        ax.legend(loc="best", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(f"cost per candidate / full training ({full:.1f} s per candidate)")
    ax.set_ylabel("Kendall tau against full training")
    settings = document["settings"]
    ax.set_title(f"mbv2 on MNIST, {document['ground_truth']['candidates']} architectures; full training: "
                 f"{settings['epochs']} epochs on {settings['train_rows']:,} rows")
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
    parser.add_argument("--space", choices=sorted(SPACES), default="wide",
                        help="the mbv2 space the sample is drawn from: wide (default; resolution 12-32, "
                             "width 0.1-0.5) or narrow (resolution 24/32, width 0.2-0.4)")
    parser.add_argument("--estimators", nargs="+", choices=(*ESTIMATOR_NAMES, TRUNCATED),
                        default=[*ESTIMATOR_NAMES, TRUNCATED], help="which estimators to run and report (default all)")
    parser.add_argument("--repeat-truth", action="store_true",
                        help="train the ground truth a second time with another seed and report how well the "
                             "two agree (the ceiling of any estimator's rank correlation)")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: report the estimators whose estimates are all in the cache")
    parser.add_argument("--cache", default="runs/estimators_cache",
                        help="folder of the per-setting caches (resume)")
    parser.add_argument("--png", help="the plot (default benchmarks/results/estimators.png; with --quick "
                                       "a temporary file)")
    return parser.parse_args(argv)


def settings_of(args: argparse.Namespace) -> Settings:
    values = dict(QUICK) if args.quick else {}
    values.update(data=args.data, device=args.device, space=args.space)
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


def run_all(settings: Settings, cache: Cache, genomes: list[dict], parents: list, chosen: set,
            repeat_truth: bool, pool) -> None:
    """Every phase not yet cached, the must-haves first: the ground truth and its repeat (the supernet
    trains beside them in the pool), the supernet's estimates, then the other estimators."""
    indices = range(len(genomes))
    path = str(cache.folder / "supernet.npz")
    estimated = all(cache.get("supernet", i) is not None for i in indices)
    training = None
    if "supernet" in chosen and (cache.get("supernet_training", 0) is None
                                 or not (estimated or Path(path).is_file())):
        log("supernet: training" + (" beside the ground truth" if pool is not None else ""))
        cache.data.pop("supernet", None)  # estimates of an older supernet file
        if pool is None:
            cache.put("supernet_training", 0, train_supernet_once(settings, path))
        else:
            training = pool.submit(train_supernet_once, settings, path)
    run_phase(cache, "ground_truth", {i: (ground_truth, (settings, i, genomes[i])) for i in indices}, pool)
    if repeat_truth:
        run_phase(cache, REPEAT, {i: (ground_truth, (settings, i, genomes[i], 1)) for i in indices}, pool)
    if training is not None:
        cache.put("supernet_training", 0, training.result())
    if "supernet" in chosen:
        run_phase(cache, "supernet", {i: (supernet, (settings, i, genomes[i], path)) for i in indices}, pool)
    for name in (n for n in LOW_FIDELITY if n in chosen):
        run_phase(cache, name, {i: (low_fidelity, (settings, name, i, genomes[i])) for i in indices}, pool)
    for i in indices if "learning_curve" in chosen else ():
        if cache.get("learning_curve", i) is None:
            cache.put("learning_curve", i, learning_curve(settings, cache.get("ground_truth", i)))
    for name in (n for n in INHERITANCE if n in chosen):
        run_dir = str(cache.folder / f"{name}_run")
        for level in depth_levels(parents):
            run_phase(cache, name, {i: (inheritance, (settings, name, i, genomes[i], parents[i], run_dir))
                                    for i in level}, pool)


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
        if not args.report_only:
            run_all(settings, cache, genomes, parents, set(args.estimators), args.repeat_truth, pool)
    finally:
        if pool is not None:
            pool.shutdown()
    document = report(settings, cache, genomes, parents, args.estimators)
    png = repo_path(args.png) if args.png else (quick_path("estimators_quick.png") if args.quick
                                                else repo_path("benchmarks/results/estimators.png"))
    plot(document, png)
    print_json(document)


if __name__ == "__main__":
    sys.exit(main())
