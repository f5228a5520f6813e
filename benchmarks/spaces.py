"""Benchmark: every image search space on CIFAR-10 under the MLPerf Tiny image-classification memory.

    python benchmarks/spaces.py [--quick] [--spaces chain dag ...] [--seeds 0] [--budget 10]
        [--final-epochs 2] [--final-models 1] [--jobs 2] [--out DIR] [--results DIR|none]
        [--bounds resnet8 half] [--objectives accuracy ...] [--space-options JSON] > spaces.json

What is compared (issue 15): each registered image search space (``tinyevo.spaces.SPACES``; a
space whose inputs are not images is skipped and listed) searched with the same strategy (the
search job's, the CLI's and the API's default, ``tinyevo.strategies.DEFAULT_STRATEGY``, read from the
config's default), with one population size for all, the same estimator (the
``training`` estimator), the same budget and seeds, on CIFAR-10 read from
``../shared/datasets/cifar10-jpg`` through the ``imagefolder`` dataset (45,000 training rows, a
seeded 5,000 for validation, the 10,000 test images; the test split is read only by the final
trainings), under two bounds:

- ``resnet8``: the MLPerf Tiny reference ResNet-8's own memory, 49,152 B peak SRAM (layer by
  layer) and 81,512 B flash, as ``tinyevo cost examples/resnet8.json --board stm32f746`` counts
  them. The script recomputes both from ``examples/resnet8.json`` with the search's cost model and
  stops if they drift from these published figures;
- ``half``: half of each (24,576 B and 40,756 B).

``--bounds half`` searches under that bound alone (the default: both). ``--objectives`` replaces
the search job's objectives (default ``accuracy, peak_sram_bytes``; e.g. ``accuracy`` alone, so
that the strategy, still the default one, is not drawn to small models: the bound stays a hard
constraint either way). ``--space-options`` replaces some of a space's CIFAR settings, e.g.
``'{"dag": {"channels": [8, 16, 24]}}'`` (the dag space searches connections only: its fixed
channels decide how much of the flash bound its models can use). The report records all three;
an ``--out`` folder keeps the objectives and space options its runs were made with.

Each space gets CIFAR settings (``SPACE_OPTIONS``; input 32x32x3, 10 classes) under which its
smallest architectures fit the half bound (checked with the cost model before searching; a space
whose smallest architecture breaks a bound is reported as ``cannot_fit`` for that bound, not
searched). A registered image space missing from the table is searched with its own defaults.

One search per (space, bound, seed) is one ``tinyevo.pipeline.SearchJob`` in its own run folder
(``OUT/runs/<space>-<bound>-seed<seed>``; the same command run again resumes it and retrains
nothing), in two passes over the same folder: the search (``final_models = 0``), then the final
training of its ``--final-models`` Pareto-front models of best search accuracy
(``--final-epochs`` on every training row, random crop + flip: ``augment="crop+flip"`` is an
estimator option, so the search's low-fidelity trainings are augmented too). Candidates train in a
worker process of their own (``executor = "process"``): one that crashes is a failed trial and the
search goes on. The model of a search is the run's ``best`` (``tinyevo show``): the finalist of
best final VALIDATION accuracy; its test accuracy is reported (the test split picks nothing).

ResNet-8 (``examples/resnet8.json``) is trained by the same final trainer, the search job's
``estimator(final=True)`` with the seed of the search (same epochs, rows, optimizer, schedule,
augmentation), once per seed. MLPerf Tiny's target for it is 85 % top-1 (after 500 epochs; the
default CPU run trains it for ``final_epochs``).

Reported per space and bound (``per_seed`` has each seed's model; the top-level figures are means
over seeds): test accuracy (float; ``int8_test_accuracy`` of the int8 model too), peak SRAM and
flash as the search counts them, executed Cortex-M4 instructions per inference of the model's
generated C (``tinyevo.deploy.codegen``, layer-by-layer execution as the search counts SRAM,
arm-none-eabi-gcc -O2, QEMU's mps2-an386 with ``-icount``; ``mcu_bit_exact`` compares its outputs
with the int8 reference executor; null without the toolchain) and the search's CPU seconds
(``resource.getrusage`` of the process and its children: the search pass, and apart from it the
final-training pass). Top-level ``seconds`` and ``cpu_seconds`` are this invocation's (a rerun that
resumes a folder counts only what it did itself); ``cpu_seconds_all_passes`` adds up every pass's
CPU seconds kept in the run folders, the benchmark's whole cost however many invocations it took,
ResNet-8's training included. The ``targets`` entry states the issue's target: some searched model matches
ResNet-8's test accuracy with at most half its peak SRAM and flash (a ``half`` model whose test
accuracy, mean over seeds, is at least ResNet-8's).

Output: one JSON document on stdout (progress on stderr), written also to ``OUT/spaces.json`` with
the plot ``OUT/spaces.png`` (test accuracy against peak SRAM of every final-trained model, one
colour per space, the chosen models ringed, ResNet-8 a star, the two bounds vertical lines). A full
run (not ``--quick``) also copies both to ``--results`` (default ``benchmarks/results``, the
checked-in ``spaces.json`` / ``spaces.png``); ``--quick`` writes ``spaces_quick.{json,png}`` under
``--out`` (default: a new temporary folder) and never under ``benchmarks/results``.

Cost: the default run is sized for about 45 minutes on 2 idle CPU cores (``--jobs 2``; one
torch thread per process): per search 10 trained candidates (population 5: the initial population
and one generation), each one epoch on 4,500 rows validated on 5,000 (1.6 to 17 CPU s measured at
2,250 rows, by MACs); one finalist per search and ResNet-8 trained 2 epochs on all 45,000 rows
(about 200 CPU s an epoch for ResNet-8's 12.5 M MACs; the int8 test pass adds about half an epoch).
Estimated for 7 spaces x 2 bounds: about 1,800 CPU s of search, 3,200 of final training, 600 for
ResNet-8, i.e. about 5,600 CPU s. ``--seeds``, ``--budget``, ``--population``, ``--epochs``,
``--data-fraction``, ``--final-epochs`` and ``--final-models`` scale it up (e.g. on a GPU machine:
``--budget 60 --population 20 --final-epochs 30 --final-models 3 --seeds 0 1 2``).
``--quick`` (about 60 CPU s in all, under a minute on 2 idle cores): 20 images per class and split,
2 candidates per search, 1 epoch, 1 final epoch, one finalist, candidates trained in the search's
own process (``executor = "serial"``: no worker process to start per search).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common import (REPO_ROOT, add_search_arguments, all_passes_cpu_seconds, json_safe, log, mean, positive_int,
                    print_json, pyplot, quick_path, repo_path, save_png, set_threads, settings_from,
                    task_pool)
from tinyevo.config import SearchConfig, check_objectives
from tinyevo.deploy.codegen import mcu
from tinyevo.deploy.codegen.emit import generate_c
from tinyevo.deploy.int8_reference import run_int8
from tinyevo.deploy.quantize import quantize
from tinyevo.errors import TinyevoError
from tinyevo.estimate import EstimationFailed, EvalContext
from tinyevo.estimate.training import cached_dataset
from tinyevo.hardware import load_board
from tinyevo.hardware.cost_model import search_cost_model
from tinyevo.model_file import load_architecture
from tinyevo.nn import build
from tinyevo.pipeline import SearchJob
from tinyevo.runs import write_results
from tinyevo.runs.export import load_run_model
from tinyevo.runs.int8 import calibration_inputs, int8_record, network_inputs
from tinyevo.runs.models import load_weights, save_model
from tinyevo.spaces import SPACES, create_space

DEFAULT_DATA = "../shared/datasets/cifar10-jpg"
DATASET = "imagefolder"
BOARD = "stm32f746"
RESNET8_FILE = "examples/resnet8.json"
#: ResNet-8's figures as issue 15 publishes them (``tinyevo cost examples/resnet8.json``).
RESNET8_PEAK_SRAM_BYTES = 49_152
RESNET8_FLASH_BYTES = 81_512
MLPERF_TINY_TARGET_TOP1 = 0.85
#: Each bound as a share of ResNet-8's peak SRAM and flash.
BOUND_SHARES = {"resnet8": 1.0, "half": 0.5}
INPUT_SHAPE, NUM_CLASSES = (32, 32, 3), 10
#: CIFAR settings of each space: the smallest architectures fit the half bound, a good share of the
#: samples fit each bound, and no layer is wider than the bound allows at 32x32 (checked at run
#: time; a space missing here is searched with its defaults).
SPACE_OPTIONS = {
    "chain": dict(filters=[8, 16, 24, 32, 48], kernels=[1, 3, 5], strides=[1, 2], pool_kernels=[2, 3],
                  units=[16, 32, 64], max_initial_layers=4, max_initial_dense=1),
    "dag": dict(nodes=[3, 4, 5], channels=[8, 12, 16], op="conv3x3"),
    "mbv2": dict(resolutions=[32], widths=[0.1, 0.15, 0.2, 0.3], depths=[1, 2], kernels=[3, 5],
                 expands=[3, 4, 6], feature_mix_layer=False),
    "nb201": dict(channels=8, cells_per_stage=1),
    # Two blocks and one normal cell per stage: NASNet's many small ops train slowly on a CPU (about
    # 0.4 CPU s per batch of 64 here, against 1.1 s with three blocks and up to two cells a stage).
    "nasnet": dict(blocks=2, channels=[4, 8, 12], cells_per_stage=[1], reductions=[1, 2]),
    "blocks": dict(channels=[8, 16, 24, 32], kernels=[1, 3, 5], strides=[1, 2], layers=[2, 3, 4],
                   growth=[4, 8, 12], max_units=8, max_initial_units=4),
    "densenet": dict(blocks=3, layers=[1, 2, 3, 4], growth=[2, 4, 6, 8], bottleneck=[1, 2, 4],
                     kernels=[3, 5]),
}
#: Random samples tried when a space has no smallest architectures to check the bounds with.
FIT_SAMPLES = 200


@dataclass
class Settings:
    seeds: tuple = (0,)
    #: Trained candidates per search (rejected and duplicate candidates do not count).
    budget: int = 10
    population_size: int = 5
    #: Search fidelity: one epoch on a tenth of the training rows (4,500).
    epochs: int = 1
    data_fraction: float = 0.1
    batch_size: int = 64
    lr: float = 0.003
    #: The final trainer (searched models and ResNet-8 alike): every training row, crop + flip.
    final_epochs: int = 2
    final_models: int = 1
    augment: str = "crop+flip"
    executor: str = "process"
    #: Images read per class and split (None: all); the quick run's subset of CIFAR-10.
    limit_per_class: int | None = None
    #: The searches' objectives (None: the search job's default, ``SearchConfig().objectives``).
    objectives: tuple | None = None
    #: Per space, options that replace ``SPACE_OPTIONS``'s (e.g. {"dag": {"channels": [8, 16, 24]}}).
    space_options: dict = dataclasses.field(default_factory=dict)


QUICK = Settings(budget=2, population_size=2, epochs=1, data_fraction=1.0, final_epochs=1, final_models=1,
                 executor="serial",
                 limit_per_class=20)


# --- the reference and the bounds ------------------------------------------------------------------
class ReferenceDrift(Exception):
    """The cost model no longer counts ResNet-8 as issue 15 publishes it."""


def reference_cost(board, config: SearchConfig) -> dict:
    """ResNet-8's cost as the search counts it (the search job's cost model and execution), checked
    against the published figures."""
    arch = load_architecture(repo_path(RESNET8_FILE))
    cost = search_cost_model(config.execution, config.runtime)(arch, board).to_dict()
    if (cost["peak_sram_bytes"], cost["flash_bytes"]) != (RESNET8_PEAK_SRAM_BYTES, RESNET8_FLASH_BYTES):
        raise ReferenceDrift(f"{RESNET8_FILE} now costs {cost['peak_sram_bytes']} B peak SRAM and "
                             f"{cost['flash_bytes']} B flash, not the published {RESNET8_PEAK_SRAM_BYTES} "
                             f"and {RESNET8_FLASH_BYTES}: the cost model changed")
    return cost


def bounds_of(cost: dict) -> dict:
    return {name: {"max_peak_sram_bytes": int(cost["peak_sram_bytes"] * share),
                   "max_flash_bytes": int(cost["flash_bytes"] * share)} for name, share in BOUND_SHARES.items()}


# --- the spaces --------------------------------------------------------------------------------------
def space_options(name: str, overrides: dict | None = None) -> dict:
    """The CIFAR settings of space ``name``: ``SPACE_OPTIONS``'s, with ``overrides[name]`` over them."""
    return {**space_settings(name, overrides), "input_shape": list(INPUT_SHAPE), "num_classes": NUM_CLASSES}


def space_settings(name: str, overrides: dict | None = None) -> dict:
    """``SPACE_OPTIONS[name]`` with ``overrides[name]`` over it (no input shape or class count)."""
    return {**SPACE_OPTIONS.get(name, {}), **(overrides or {}).get(name, {})}


def image_spaces(names, overrides: dict | None = None) -> tuple[list[str], dict]:
    """The registered spaces among ``names`` that read images (``SearchSpace.inputs``), and why each
    other one is skipped."""
    chosen, skipped = [], {}
    for name in names:
        try:
            space = create_space(name, **space_settings(name, overrides))
        except (TinyevoError, TypeError, ValueError) as error:
            skipped[name] = f"cannot be built with its defaults: {error}"
            continue
        if space.inputs == "image":
            chosen.append(name)
        else:
            skipped[name] = f"not an image space (it reads {space.inputs})"
    return chosen, skipped


def fit_check(name: str, bounds: dict, cost_model, board, overrides: dict | None = None) -> dict:
    """The space's CIFAR settings, the cost of its smallest architecture and which bounds it fits."""
    options = space_options(name, overrides)
    try:
        space = create_space(name, **options)
        try:
            genomes, source = space.smallest(), "smallest"
        except NotImplementedError:
            rng = np.random.default_rng(0)
            genomes, source = [space.sample(rng) for _ in range(FIT_SAMPLES)], f"{FIT_SAMPLES} samples"
        costs = [cost_model(space.decode(g), board).to_dict() for g in genomes]
    except (TinyevoError, TypeError, ValueError) as error:
        return {"options": options, "error": f"{type(error).__name__}: {error}",
                "fits": {bound: False for bound in bounds}}
    least = min(costs, key=lambda c: (c["peak_sram_bytes"], c["flash_bytes"]))
    fits = {bound: any(c["peak_sram_bytes"] <= b["max_peak_sram_bytes"] and c["flash_bytes"] <= b["max_flash_bytes"]
                       for c in costs) for bound, b in bounds.items()}
    return {"options": options, "checked_on": source,
            "smallest": {"describe": space.describe(genomes[costs.index(least)]),
                         **{k: least[k] for k in ("peak_sram_bytes", "flash_bytes", "macs", "params")}},
            "fits": fits}


# --- one search ---------------------------------------------------------------------------------------
def trainer_settings(seed: int, settings: Settings, data_dir: str) -> dict:
    """The settings every search job shares, the trainer's: data, estimator, fidelity, final training."""
    dataset_options = {"limit_per_class": settings.limit_per_class} if settings.limit_per_class else {}
    return {"dataset": DATASET, "data_dir": data_dir, "dataset_options": dataset_options, "board": BOARD,
            "estimator": "training", "estimator_options": {"augment": settings.augment},
            "seed": seed, "final_epochs": settings.final_epochs,
            "fidelity": {"epochs": settings.epochs, "data_fraction": settings.data_fraction,
                         "batch_size": settings.batch_size, "lr": settings.lr}}


def search_config(space: str, bound: dict, seed: int, settings: Settings, data_dir: str,
                  final_models: int) -> SearchConfig:
    """The search job of one (space, bound, seed): the strategy is the search job's default."""
    objectives = {"objectives": list(settings.objectives)} if settings.objectives else {}
    return SearchConfig.from_dict({
        **trainer_settings(seed, settings, data_dir), **objectives, "space": space,
        "space_options": space_options(space, settings.space_options),
        "strategy_options": {"population_size": settings.population_size}, "budget": settings.budget,
        "final_models": final_models,
        "constraints": {"max_sram": bound["max_peak_sram_bytes"], "max_flash": bound["max_flash_bytes"]},
        "executor": {"kind": settings.executor, "workers": 1}}, "spaces benchmark")


def final_trainer(config: SearchConfig):
    """The final trainer of a search job (``SearchJob.estimator(final=True)``): it reads only the
    trainer's settings of ``config``."""
    return SearchJob(config, Path("."), space=None, board=None).estimator(final=True)


def cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and of its children that have ended."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Ledger:
    """``benchmark.json`` in a run folder: the CPU seconds of its passes and the Cortex-M4 figures of
    its model, so that a rerun reports them without doing the work again. A pass is done again when
    what it was done for changes (a larger ``--budget`` extends the search, more ``--final-models``
    trains more finalists); its CPU seconds add up (a pass that was interrupted and resumed is
    counted from its resume)."""

    def __init__(self, folder: Path):
        self.path = folder / "benchmark.json"
        self.entries = json.loads(self.path.read_text()) if self.path.exists() else {}

    def run_pass(self, name: str, done_for, work) -> float:
        """``work()`` unless it was done for ``done_for``; the pass's CPU seconds, all runs together."""
        done_for = json.loads(json.dumps(done_for))
        if self.entries.get(f"{name}_done_for") != done_for:
            start = cpu_seconds()
            work()
            spent = self.entries.get(f"{name}_cpu_seconds", 0.0) + cpu_seconds() - start
            self.entries.update({f"{name}_cpu_seconds": round(spent, 1), f"{name}_done_for": done_for})
            self.write()
        return self.entries[f"{name}_cpu_seconds"]

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(self.entries, indent=1))
        os.replace(temporary, self.path)


def run_search(space: str, bound_name: str, bound: dict, seed: int, settings: Settings, data_dir: str,
               out: Path) -> dict:
    """The search pass, then the final-training pass, over one run folder; the best model's figures."""
    folder = out / "runs" / f"{space}-{bound_name}-seed{seed}"
    ledger = Ledger(folder)

    def run_pass(final_models: int) -> None:
        config = search_config(space, bound, seed, settings, data_dir, final_models)
        SearchJob.create(config, folder).run(progress=False)
    search_cpu = ledger.run_pass("search", settings.budget, lambda: run_pass(0))
    final_cpu = ledger.run_pass("final", [settings.budget, settings.final_models],
                                lambda: run_pass(settings.final_models))
    results = write_results(folder)
    finalists = [final_row(r) for r in results["front"] if r.get("test_accuracy") is not None]
    best = results["best"] if results["best"] and results["best"].get("test_accuracy") is not None else None
    row = {"seed": seed, "status": "ok" if best else "no_model", "run": str(folder),
           "trained_candidates": results["evaluated"], "rejected_by_cost_model": results["infeasible"],
           "failed": results["failed"], "search_cpu_seconds": search_cpu, "final_cpu_seconds": final_cpu}
    if best:
        key = f"mcu_trial_{best['trial']}"
        if key not in ledger.entries or missing_mcu_figures(ledger.entries[key]):
            config = search_config(space, bound, seed, settings, data_dir, settings.final_models)
            ledger.entries[key] = run_model_on_mcu(folder, best["trial"], config)
            ledger.write()
        row.update(final_row(best), **ledger.entries[key])
    return {**row, "finalists": finalists}


def missing_mcu_figures(entry: dict) -> bool:
    """Whether a kept Cortex-M4 entry was made without the toolchain (a run on a machine without
    it, e.g. a GPU machine) and the toolchain is here now: a rerun then fills the figures in."""
    return entry.get("mcu_instructions") is None and mcu.mcu_available()


def final_row(row: dict) -> dict:
    return {"trial": row["trial"], "architecture": row["describe"], "search_val_accuracy": row["val_accuracy"],
            "final_val_accuracy": row.get("final_val_accuracy"), "test_accuracy": row.get("test_accuracy"),
            "int8_test_accuracy": row.get("int8_test_accuracy"),
            **{k: row[k] for k in ("peak_sram_bytes", "flash_bytes", "macs", "params")}}


# --- the Cortex-M4 --------------------------------------------------------------------------------------
def mcu_figures(arch, module, calibration: np.ndarray, image: np.ndarray, work: Path,
                execution: str) -> dict:
    """Executed instructions of one inference of the model's generated C on the emulated Cortex-M4,
    the library's flash there (text + data), and whether its output equals the int8 reference
    executor's."""
    if not mcu.mcu_available():
        return {"mcu_instructions": None, "mcu_flash_bytes": None, "mcu_bit_exact": None,
                "mcu_missing": mcu.mcu_missing()}
    qmodel = quantize(arch, module.cpu().eval(), calibration)
    x = qmodel.input_spec.quantize(image.transpose(0, 2, 3, 1))
    expected = run_int8(qmodel, x)
    if work.exists():
        shutil.rmtree(work)
    generate_c(qmodel, work, execution=execution)
    built, run = mcu.run_on_mcu(work, x)
    return {"mcu_instructions": int(run.instructions[0]), "mcu_flash_bytes": int(built.model_sizes.flash),
            "mcu_bit_exact": bool(np.array_equal(run.outputs.reshape(expected.shape), expected))}


def run_model_on_mcu(folder: Path, trial: int, config: SearchConfig) -> dict:
    """``mcu_figures`` of a run's final-trained model, on its first test image."""
    model = load_run_model(folder, trial)
    data = final_trainer(config).data()
    image = network_inputs(data.x_test[:1], data, model.architecture)
    return mcu_figures(model.architecture, model.module, model.calibration, image, folder / "mcu",
                       config.execution)


# --- ResNet-8 -------------------------------------------------------------------------------------------
def train_resnet8(seed: int, settings: Settings, data_dir: str, out: Path) -> dict:
    """ResNet-8 trained and scored by the final trainer of the searches of ``seed``; kept in ``OUT``
    (a rerun with the same trainer settings reads it back)."""
    path, models = out / f"resnet8-seed{seed}.json", out / f"resnet8-seed{seed}-model"
    config = SearchConfig.from_dict(trainer_settings(seed, settings, data_dir), "spaces benchmark")
    key = json.loads(json.dumps(trainer_settings(seed, settings, data_dir)))
    if path.exists() and json.loads(path.read_text()).get("trainer") == key:
        row = json.loads(path.read_text())
        weights = models / "models" / "trial_0.npz"
        if not (missing_mcu_figures(row) and weights.exists()):
            return row
        # trained where the toolchain was missing: its kept weights on the emulated Cortex-M4 now
        estimator, arch = final_trainer(config), load_architecture(weights.with_suffix(".json"))
        module = build(arch)
        load_weights(module, weights)
        data = estimator.data()
        image = network_inputs(data.x_test[:1], data, arch)
        row.update(mcu_figures(arch, module, calibration_inputs(data, arch, config.seed), image,
                               out / f"resnet8-seed{seed}-mcu", config.execution))
        write_json_atomic(path, row)
        return row
    estimator, arch, start = final_trainer(config), load_architecture(repo_path(RESNET8_FILE)), cpu_seconds()
    try:
        trained = estimator.fit(arch, EvalContext(seed=config.seed))  # as finalize() trains a finalist
    except EstimationFailed as error:
        return {"seed": seed, "status": "failed", "error": str(error)}
    save_model(models, 0, trained)
    data = estimator.data()
    row = {"seed": seed, "status": "ok", "final_val_accuracy": trained.metrics["accuracy"],
           "test_accuracy": estimator.accuracy(trained, "test"),
           **int8_record(trained.architecture, trained.module, data, config.seed)}
    row["final_cpu_seconds"] = round(cpu_seconds() - start, 1)
    image = network_inputs(data.x_test[:1], data, arch)
    row.update(mcu_figures(arch, trained.module, calibration_inputs(data, arch, config.seed), image,
                           out / f"resnet8-seed{seed}-mcu", config.execution))
    row["trainer"] = key
    write_json_atomic(path, row)
    return row


def write_json_atomic(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(document, indent=1))
    os.replace(temporary, path)


# --- processes ------------------------------------------------------------------------------------------
def _search_task(space, bound_name, bound, seed, settings, data_dir, out) -> dict:
    try:
        return run_search(space, bound_name, bound, seed, settings, data_dir, out)
    except Exception as error:  # noqa: BLE001 -- one broken space does not end the benchmark
        return {"seed": seed, "status": "error", "error": f"{type(error).__name__}: {error}"}


def _resnet8_task(seed, settings, data_dir, out) -> dict:
    return train_resnet8(seed, settings, data_dir, out)


# --- the benchmark --------------------------------------------------------------------------------------
def run_benchmark(spaces: list[str], checks: dict, bounds: dict, settings: Settings, data_dir: str, out: Path,
                  jobs: int = 1, threads: int = 1) -> tuple[dict, list[dict]]:
    """ResNet-8 per seed and every (space, bound, seed) search that can fit, ``jobs`` at a time."""
    runs: dict = {space: {bound: [] for bound in bounds} for space in spaces}
    with task_pool(jobs, threads) as pool:
        resnet8 = [pool.submit(_resnet8_task, seed, settings, data_dir, out) for seed in settings.seeds]
        searches = {pool.submit(_search_task, space, name, bound, seed, settings, data_dir, out): (space, name)
                    for seed in settings.seeds for space in spaces for name, bound in bounds.items()
                    if checks[space]["fits"][name]}
        for future in as_completed(searches):
            space, name = searches[future]
            row = future.result()
            runs[space][name].append(row)
            log(f"{space} under {name}, seed {row['seed']}: {row['status']} "
                + (f"{row.get('error')}" if row["status"] == "error" else
                   f"test {row.get('test_accuracy')}, peak SRAM {row.get('peak_sram_bytes')} B, flash "
                   f"{row.get('flash_bytes')} B, {row.get('mcu_instructions')} instructions, search "
                   f"{row['search_cpu_seconds']} CPU s ({row['trained_candidates']} trained), finals "
                   f"{row['final_cpu_seconds']} CPU s"))
        references = [future.result() for future in resnet8]
    for row in references:
        log(f"resnet8 seed {row['seed']}: test {row.get('test_accuracy')}, "
            f"{row.get('mcu_instructions')} instructions, {row.get('final_cpu_seconds')} CPU s")
    for bound_runs in runs.values():
        for rows in bound_runs.values():
            rows.sort(key=lambda r: settings.seeds.index(r["seed"]))
    return runs, references


def seed_mean(values) -> float | int | None:
    """The mean over seeds; an int when it is one (one seed, or equal counts)."""
    value = mean(values)
    return int(value) if value is not None and float(value).is_integer() else value


SUMMED = ("test_accuracy", "int8_test_accuracy", "peak_sram_bytes", "flash_bytes", "macs", "mcu_instructions",
          "mcu_flash_bytes", "search_cpu_seconds", "final_cpu_seconds")


def summary(rows: list[dict], fits: bool, summed=SUMMED) -> dict:
    """One bound of one space (or arm): means over seeds of the models' ``summed`` figures, and each
    seed's row."""
    if not fits:
        return {"status": "cannot_fit", "per_seed": []}
    ok = [r for r in rows if r["status"] == "ok"]
    if ok:
        status = "ok" if len(ok) == len(rows) else "partial"
    else:
        status = rows[0]["status"] if rows else "not_run"
    figures = {key: seed_mean(r.get(key) for r in ok) for key in summed}
    return {"status": status, **figures, "mcu_bit_exact": all(r.get("mcu_bit_exact") is not False for r in ok),
            "per_seed": rows}


def targets(spaces: dict, reference: dict, bounds: dict) -> dict:
    """Issue 15's target: a ``half`` model (at most half ResNet-8's peak SRAM and flash) whose test
    accuracy (mean over seeds) is at least ResNet-8's, trained by the same final trainer."""
    resnet8 = reference["test_accuracy"]
    half_sram, half_flash = bounds["half"]["max_peak_sram_bytes"], bounds["half"]["max_flash_bytes"]
    candidates = []
    for name, space in spaces.items():
        half = space["bounds"].get("half", {})
        if half.get("test_accuracy") is None:
            continue
        rows = [r for r in half["per_seed"] if r["status"] == "ok"]
        within = all(r["peak_sram_bytes"] <= half_sram and r["flash_bytes"] <= half_flash for r in rows)
        candidates.append({"space": name, "test_accuracy": half["test_accuracy"], "within_half": within,
                           "peak_sram_bytes": max(r["peak_sram_bytes"] for r in rows),
                           "flash_bytes": max(r["flash_bytes"] for r in rows),
                           "architectures": [r["architecture"] for r in rows]})
    best = max(candidates, key=lambda c: c["test_accuracy"], default=None)
    met = bool(best and resnet8 is not None and best["within_half"] and best["test_accuracy"] >= resnet8)
    return {"searched_model_matches_resnet8_with_half_its_peak_sram_and_flash": {
        "met": met, "resnet8_test_accuracy": resnet8,
        "resnet8_peak_sram_bytes": RESNET8_PEAK_SRAM_BYTES, "resnet8_flash_bytes": RESNET8_FLASH_BYTES,
        "half_peak_sram_bytes": half_sram, "half_flash_bytes": half_flash,
        "best_half_bound_model": best,
        "gap": None if not best or resnet8 is None else round(best["test_accuracy"] - resnet8, 4)},
        "resnet8_at_mlperf_tiny_target": {"target_top1": MLPERF_TINY_TARGET_TOP1, "test_accuracy": resnet8,
                                          "met": resnet8 is not None and resnet8 >= MLPERF_TINY_TARGET_TOP1}}


def reference_summary(cost: dict, rows: list[dict]) -> dict:
    ok = [r for r in rows if r["status"] == "ok"]
    return {"model": "resnet8", "file": RESNET8_FILE, "board": BOARD,
            "published": {"peak_sram_bytes": RESNET8_PEAK_SRAM_BYTES, "flash_bytes": RESNET8_FLASH_BYTES},
            **{k: cost[k] for k in ("peak_sram_bytes", "flash_bytes", "macs", "params")},
            **{key: seed_mean(r.get(key) for r in ok) for key in
               ("final_val_accuracy", "test_accuracy", "int8_test_accuracy", "mcu_instructions",
                "mcu_flash_bytes", "final_cpu_seconds")},
            "mcu_bit_exact": all(r.get("mcu_bit_exact") is not False for r in ok),
            "per_seed": [{k: v for k, v in r.items() if k != "trainer"} for r in rows]}


# --- the plot --------------------------------------------------------------------------------------------
MARKERS = {"resnet8": "o", "half": "^"}
BOUND_TITLES = {"resnet8": "ResNet-8's memory (dots)", "half": "half ResNet-8's memory (triangles)"}


def plot(spaces: dict, reference: dict, bounds: dict, path: Path) -> None:
    """Test accuracy against peak SRAM of every final-trained model: one colour per space, a marker
    per bound, the chosen models ringed; ResNet-8 a star; the bounds vertical lines."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(8, 5))
    labelled: dict = {}
    for color, (name, space) in enumerate(spaces.items()):
        for bound, result in space["bounds"].items():
            rows = [r for r in result.get("per_seed", []) if r["status"] == "ok"]
            points = [f for r in rows for f in r["finalists"]]
            label = name if points and not labelled.get(name) else None
            labelled[name] = labelled.get(name) or bool(points)
            axes.scatter([p["peak_sram_bytes"] for p in points], [p["test_accuracy"] for p in points],
                         color=f"C{color}", marker=MARKERS[bound], s=28, alpha=0.6, label=label)
            axes.scatter([r["peak_sram_bytes"] for r in rows], [r["test_accuracy"] for r in rows],
                         facecolors="none", edgecolors=f"C{color}", marker="o", s=140, linewidths=1.5)
    if reference.get("test_accuracy") is not None:
        axes.scatter([reference["peak_sram_bytes"]], [reference["test_accuracy"]], marker="*", s=260,
                     color="black", label=f"ResNet-8 ({reference['test_accuracy']:.3f})", zorder=5)
        axes.axhline(reference["test_accuracy"], color="black", lw=0.6, ls=":")
    draw_bounds(axes, bounds, top=True)
    axes.set(xlabel="peak SRAM (bytes, layer by layer)", ylabel="CIFAR-10 test accuracy",
             title="CIFAR-10 under " + " and ".join(BOUND_TITLES[b] for b in bounds) + "; ringed: each search's model",
             xlim=(0, RESNET8_PEAK_SRAM_BYTES * 1.08))
    axes.title.set_fontsize(9)
    axes.legend(fontsize=7, loc="best", ncol=2)
    figure.tight_layout()
    save_png(figure, path)


# --- command line -----------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Prints one JSON document on stdout; progress goes to stderr. Defaults: "
               + ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(Settings()).items())
               + ". --quick: " + ", ".join(f"{k}={v}" for k, v in dataclasses.asdict(QUICK).items()) + ".")
    parser.add_argument("--quick", action="store_true",
                        help="reduced run (< 1 min): 20 images per class, 2 candidates per search, 1 epoch")
    parser.add_argument("--data", default=DEFAULT_DATA,
                        help="CIFAR-10 as an image folder, train/ and test/ (default: %(default)s)")
    parser.add_argument("--spaces", nargs="+", help="spaces to search (default: every registered image space)")
    parser.add_argument("--seeds", type=int, nargs="+", help="search seeds (one search per space, bound and seed)")
    parser.add_argument("--bounds", nargs="+", choices=list(BOUND_SHARES),
                        help="bounds to search under (default: all of them)")
    parser.add_argument("--objectives", nargs="+",
                        help="the searches' objectives, e.g. accuracy (default: the search job's, "
                             f"{' '.join(SearchConfig().objectives)}); the bound stays a hard constraint")
    parser.add_argument("--space-options", type=json_object,
                        help='JSON: per space, options over the CIFAR settings, e.g. '
                             '\'{"dag": {"channels": [8, 16, 24]}}\'')
    add_search_arguments(parser, "training rows")
    add_run_arguments(parser, "spaces", "ResNet-8", jobs=2)
    return parser.parse_args(argv)


def add_run_arguments(parser: argparse.ArgumentParser, stem: str, reference: str, jobs: int) -> None:
    """The final trainer's, the run folders' and the workers' options of a bounded-search benchmark
    whose files are ``STEM.json`` and ``STEM.png`` and whose baseline is ``reference``."""
    parser.add_argument("--final-epochs", type=positive_int, help=f"epochs of the final trainer (and {reference})")
    parser.add_argument("--final-models", type=positive_int, help="front models final-trained per search")
    parser.add_argument("--out", help=f"folder of the run folders, {stem}.json and {stem}.png; the same "
                                      f"command run again resumes (default: runs/{stem}; --quick: a new "
                                      f"temporary folder)")
    parser.add_argument("--results", help=f"full run: also copy {stem}.json and {stem}.png here "
                                          f"(default: benchmarks/results; 'none': do not)")
    parser.add_argument("--jobs", type=positive_int, default=jobs, help=f"searches run at once (default {jobs})")
    parser.add_argument("--threads", type=positive_int, default=1, help="torch CPU threads per process")


def draw_bounds(axes, bounds: dict, top: bool) -> None:
    """A dashed vertical line at each bound's peak SRAM, labelled with its SRAM and flash, the label
    at the top of the axes or (``top=False``) at the bottom."""
    for bound, limits in bounds.items():
        axes.axvline(limits["max_peak_sram_bytes"], color="gray", ls="--", lw=1)
        axes.text(limits["max_peak_sram_bytes"], 0.98 if top else 0.02,
                  f"{bound}: {limits['max_peak_sram_bytes']:,} B SRAM, {limits['max_flash_bytes']:,} B flash",
                  rotation=90, fontsize=7, color="gray", transform=axes.get_xaxis_transform(),
                  va="top" if top else "bottom", ha="right")


def json_object(text: str) -> dict:
    """``--space-options``: a JSON object of one object of options per space."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from None
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise argparse.ArgumentTypeError('give one object of options per space, e.g. {"dag": {"channels": [8, 16, 24]}}')
    return value


def settings_of(args: argparse.Namespace) -> Settings:
    objectives = tuple(dict.fromkeys(args.objectives)) if getattr(args, "objectives", None) else None
    return settings_from(args, QUICK if args.quick else Settings(), final_epochs=args.final_epochs,
                         final_models=args.final_models, objectives=objectives,
                         space_options=getattr(args, "space_options", None))


def chosen_spaces(names: list[str] | None, overrides: dict | None = None) -> tuple[list[str], dict]:
    registered = SPACES.names()
    unknown = [n for n in [*(names or []), *(overrides or {})] if n not in registered]
    if unknown:
        raise TinyevoError(f"unknown space {unknown[0]!r}; registered: {', '.join(registered)}")
    return image_spaces(list(dict.fromkeys(names)) if names else registered, overrides)


def output_paths(args: argparse.Namespace, stem: str = "spaces") -> tuple[Path, Path | None, str]:
    """(``--out``, the folder the full run's files are copied to or None, the files' stem)."""
    if args.quick:
        out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix=f"{stem}_quick-",
                                                                    dir=quick_path(stem).parent))
        return out.resolve(), None, f"{stem}_quick"
    out = Path(args.out) if args.out else REPO_ROOT / "runs" / stem
    results = None if args.results == "none" else Path(args.results or REPO_ROOT / "benchmarks" / "results")
    return out.resolve(), results, stem


def check_out_folder(out: Path, settings: Settings, data_dir: str) -> None:
    """Record in ``OUT/settings.json`` what the run folders there were made with; refuse other
    trainer or strategy settings (``--budget``, ``--seeds``, ``--spaces`` and ``--final-models`` may
    change: a rerun extends the runs)."""
    searches = {key: value for key, value in (("objectives", settings.objectives),
                                              ("space_options", settings.space_options)) if value}
    keep_settings(out, {**trainer_settings(0, settings, data_dir), "seed": None,
                        "population_size": settings.population_size, **searches})


def keep_settings(out: Path, fixed: dict) -> None:
    """``fixed`` written to ``OUT/settings.json`` on the first run; a TinyevoError naming the first
    setting that differs from what is stored there on a later one."""
    fixed = json.loads(json.dumps(fixed))
    marker = out / "settings.json"
    if marker.exists():
        stored = json.loads(marker.read_text())
        if stored != fixed:
            name = next(k for k in sorted(set(stored) | set(fixed)) if stored.get(k) != fixed.get(k))
            raise TinyevoError(f"{out} holds runs made with {name}={stored.get(name)!r}, not "
                               f"{fixed.get(name)!r}; give another --out or the same settings")
        return
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(fixed, indent=1))


def load_data(data_dir: str, settings: Settings):
    """Every seed's dataset, loaded once here so that forked workers share it."""
    options = {"limit_per_class": settings.limit_per_class} if settings.limit_per_class else {}
    if not Path(data_dir).is_dir():
        raise TinyevoError(f"{data_dir}: no such folder; give CIFAR-10 as an image folder with --data")
    return [cached_dataset(DATASET, data_dir, seed, options) for seed in settings.seeds]


def main(argv=None) -> int:
    args = parse_args(argv)
    set_threads(args.threads)
    settings, start, cpu_start = settings_of(args), time.perf_counter(), cpu_seconds()
    try:
        out, results_dir, stem = output_paths(args)
        data_dir = str(repo_path(args.data).resolve())
        spaces, skipped = chosen_spaces(args.spaces, settings.space_options)
        default = SearchConfig()
        if settings.objectives:
            check_objectives(list(settings.objectives), "--objectives")
        board = load_board(BOARD)
        cost = reference_cost(board, default)
        every_bound = bounds_of(cost)
        bounds = {name: every_bound[name] for name in args.bounds or every_bound}
        cost_model = search_cost_model(default.execution, default.runtime)
        checks = {name: fit_check(name, bounds, cost_model, board, settings.space_options) for name in spaces}
        datasets = load_data(data_dir, settings)
        check_out_folder(out, settings, data_dir)
    except TinyevoError as error:
        print(f"spaces: {error}", file=sys.stderr)
        return 2
    except ReferenceDrift as error:
        print(f"spaces: {error}", file=sys.stderr)
        return 1
    log(f"data {datasets[0].summary()}; out {out}; strategy {default.strategy}; settings {settings}")
    for name, check in checks.items():
        log(f"{name}: smallest {check.get('smallest') or check.get('error')}; fits {check['fits']}")
    runs, references = run_benchmark(spaces, checks, bounds, settings, data_dir, out, args.jobs, args.threads)
    reference = reference_summary(cost, references)
    report_spaces = {name: {**checks[name], "bounds": {bound: summary(runs[name][bound], checks[name]["fits"][bound])
                                                        for bound in bounds}} for name in spaces}
    png, document = out / f"{stem}.png", out / f"{stem}.json"
    plot(report_spaces, reference, bounds, png)
    report = {
        "benchmark": "spaces", "targets": targets(report_spaces, reference, every_bound), "reference": reference,
        "bounds": bounds, "spaces": report_spaces, "skipped_spaces": skipped,
        "strategy": {"name": default.strategy, "source": "tinyevo.strategies.DEFAULT_STRATEGY (the "
                     "default of the search job, the CLI and the API)", "options": {"population_size": settings.population_size},
                     "objectives": list(settings.objectives or default.objectives),
                     "objectives_source": "--objectives" if settings.objectives else "the search job's default"},
        "estimator": {"name": "training", "search": trainer_settings(0, settings, data_dir)["fidelity"],
                      "final": {"epochs": settings.final_epochs, "data_fraction": 1.0,
                                "augment": settings.augment}, "augment": settings.augment,
                      "cost_model": {"execution": default.execution, "runtime": default.runtime, "board": BOARD}},
        "settings": {**dataclasses.asdict(settings), "quick": args.quick, "jobs": args.jobs,
                     "threads": args.threads, "versions": {"torch": torch.__version__}},
        "data": datasets[0].summary(), "out": str(out), "png": str(png), "json": str(document),
        "seconds": round(time.perf_counter() - start, 1), "cpu_seconds": round(cpu_seconds() - cpu_start, 1),
        "cpu_seconds_all_passes": all_passes_cpu_seconds(report_spaces, reference)}
    document.write_text(json.dumps(json_safe(report), indent=1))
    if results_dir is not None:
        results_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, results_dir / png.name)
        shutil.copyfile(document, results_dir / document.name)
    print_json(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
