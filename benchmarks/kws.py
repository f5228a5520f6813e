"""Benchmark: keyword spotting on FSDD, kws and tcn searches against MLPerf Tiny's DS-CNN, front-end included.

    python benchmarks/kws.py [--quick] [--arms kws tcn kws_frontend] [--seeds 0] [--budget 40]
        [--final-epochs 15] [--final-models 2] [--jobs 1] [--out DIR] [--results DIR|none] > kws.json

Data (issue 17): the Free Spoken Digit Dataset, ``../shared/datasets/fsdd/recordings`` (3,000
clips, 6 speakers x 10 digits x 50, 8 kHz) through the ``wavfolder`` dataset (labels from the file
names), every clip padded or cut to 1 s. Split by speaker (``TEST_SPEAKERS``): ``theo`` is the test
speaker (500 clips; the speaker the project's examples hold out), and one of the five others,
drawn by the split seed (the search seed; seed 0 draws ``lucas``), is the validation speaker; the
four left train (2,000 clips). Validation is a held-out speaker, not seeded rows of the training
speakers, because the search and the choice of the final model must rank networks by what the test
measures, accuracy on a voice never heard: rows of a training speaker reward networks that learn
the speaker (with six speakers this costs a training speaker; ``meta`` records who went where).

The front-end (``FRONTEND``): MLPerf Tiny's KWS features adapted to 8 kHz. MLPerf Tiny computes
49 x 10 MFCCs of 1 s at 16 kHz: 30 ms windows every 20 ms (1 + (16000 - 480) // 320 = 49 frames),
40 mel bands from 20 to 4,000 Hz, 10 coefficients. At 8 kHz the same times give 240-sample
windows every 160 samples, 1 + (8000 - 240) // 160 = 49 frames (FFT of 256), and 4,000 Hz is
exactly the Nyquist frequency, so the 40 bands span the same 20-4,000 Hz: the DS-CNN's 49x10x1
input, unchanged. ``tinyevo.audio.FrontEnd`` computes it (float32 on the device; its RAM, tables
and work counted like a layer's).

What is searched (``ARMS``), each with the default strategy (``tinyevo.strategies.DEFAULT_STRATEGY``,
the search job's) and the ``training`` estimator, the same budget and seeds. The objectives are
``OBJECTIVES``, accuracy alone, not the search job's default (accuracy and peak SRAM): the benchmark
asks for the most accurate model within a bound, and the bound is already the searches' hard
constraints (``--objectives`` sets others; the JSON's ``strategy.objectives`` says which ran). With
one objective the front is the best candidate, so each search has one finalist:

- ``kws``: the DS-CNN family (``tinyevo.spaces.kws``) on the fixed front-end's 49x10x1 map, with
  settings (``KWS_OPTIONS``) that reach down to a quarter of the DS-CNN (4-channel layers, a 4x2
  stride) and up to it (the DS-CNN is a member: ``DSCNN_GENOME``);
- ``tcn``: temporal convolutions (``tinyevo.spaces.tcn``) on the same features laid out as a
  sequence of 49 frames of 10 coefficients, (1, 49, 10) (``wavfolder``'s ``layout="sequence"``:
  the same bytes as the map, so the same C front-end feeds it);
- ``kws_frontend``: ``kws`` with the front-end's settings as genes too (``frontend="search"`` on
  raw clips, ``features="pcm"``: kind, frame, hop, mel bands, coefficients, as Edge Impulse's EON
  Tuner searches them). ``frontend_search_arm`` builds it; it needs ``kws``'s ``frontend`` option
  (the front-end genes work). Where that is not there the arm is reported ``pending``, with the
  figures of ``kws`` (front-end fixed) and says so.

Bounds: the DS-CNN's peak SRAM and flash as the search counts them, network + front-end: the
network by the search job's cost model (``examples/ds_cnn.json`` re-checked against its published
16,000 B and 29,072 B at 12 classes; FSDD's 10 classes make the dense layer 130 parameters
smaller), with the front-end's RAM (its scratch: FFT buffer, spectrum, mel energies) run inside
the network's arena beside the input tensor it fills (``FrontEndCost.peak_with``: the larger of
the network's peak and input + scratch, what the generated C's ``tinyevo_model_run_pcm`` takes;
``c_arena_bytes_with_frontend`` is that C's arena) and its flash added (window, none when the frame
is the FFT's length; twiddles; filterbank, one weight per FFT bin; DCT); ``dscnn`` is all of it,
``quarter`` a quarter. Where the
runner counts only the network (before the front-end genes work), a fixed-front-end search gets
the bound less the front-end's cost as its network limit: the same totals.

One search per (arm, bound, seed) is one ``tinyevo.pipeline.SearchJob`` in its own run folder
(``OUT/runs/<arm>-<bound>-seed<seed>``; the same command again resumes and retrains nothing), in two
passes: the search (``final_models = 0``), then the final training of its ``--final-models``
Pareto-front models of best search accuracy (``--final-epochs`` on all training rows). Candidates
train in a worker process (``executor = "process"``). A search's model is the run's ``best``: the
finalist of best final VALIDATION accuracy; its test accuracy is reported. The DS-CNN
(``DSCNN_GENOME`` in ``kws``, 10 classes: ``examples/ds_cnn.json``'s graph with FSDD's classes) is
trained by the same final trainer (``SearchJob.estimator(final=True)`` of the ``kws`` searches),
once per seed. The trainer augments every training batch, the searches' and the DS-CNN's alike
(``AUGMENT``, the training estimator's ``augment``, ``tinyevo.data.augment``; ``--augment none``
turns it off): ``shift5``, MLPerf Tiny KWS's random time shift of +-100 ms (5 frames at the 20 ms
hop, as a roll of the feature map), with SpecAugment's masks, ``tmask5`` (up to 5 frames) and
``fmask2`` (up to 2 of the 10 coefficients), each replaced by the clip's mean over time. The image
crops and flips do not suit MFCC maps. The augmentation was chosen on the validation speaker
(``lucas``) only: with the final trainer, three hand-made quarter-bound ``kws`` networks and the
DS-CNN scored a mean validation accuracy of 56.5 % without augmentation, 59.3 % with ``shift5``
and 63.6 % with ``shift5+tmask5+fmask2`` (seed 0, one training each: within the seed noise, a few
points).

Reported per arm and bound (``per_seed`` has each seed's; top-level figures are means over seeds):
test accuracy (float and int8), peak SRAM and flash of network + front-end (and each part),
Cortex-M4 instructions per inference of the network's generated C (``tinyevo.deploy.codegen.mcu``:
layer-by-layer, arm-none-eabi-gcc -O2, QEMU mps2-an386 ``-icount``; ``mcu_bit_exact`` against the
int8 reference executor) and of the front-end's C (``run_frontend_mcu``, Cortex-M4F hard float;
``frontend_mcu_max_step`` is its largest difference from the Python front-end in int8 steps, and
``mcu_end_to_end_class_equal`` says whether the network on the device's features picks the class
it picks on Python's), on the first test clip, null without the toolchain; and the search's CPU
seconds (the search pass; the final pass apart); top-level ``cpu_seconds`` is this invocation's,
``cpu_seconds_all_passes`` every pass's, however many invocations a resumed run took. ``targets``: issue 17's target, a searched model
at least as accurate (test, mean over seeds) as the DS-CNN with at most a quarter of its peak SRAM
and flash, front-end included.

Output: one JSON document on stdout (progress on stderr), also ``OUT/kws.json`` with the plot
``OUT/kws.png`` (test accuracy against peak SRAM, network + front-end, of every final-trained
model); a full run copies both to ``--results`` (default ``benchmarks/results``). ``--quick`` writes
``kws_quick.{json,png}`` under ``--out`` (default: a new temporary folder), never ``benchmarks/results``.

Cost: the default run (``--jobs 1``, one torch thread) took 693 CPU s (32 min at ``nice`` on this
project's shared 2-core machine beside four other jobs) for all three arms at the first settings:
40 trained candidates per search (population 8), 4 epochs each on the 2,000 training clips (about
0.2 CPU s an epoch for the smallest networks, 5 s for the DS-CNN's 2.7 M MACs), 2 finalists per
search at 15 epochs and the DS-CNN at 15 epochs (38 CPU s), the rest loading clips and the
Cortex-M4 runs. ``--budget 60`` with accuracy alone as the objective and the augmenting trainer
(``benchmarks/results/kws.json``): 1,125 CPU s, 26 min at ``nice`` beside other jobs (the
accuracy-only searches drift to larger networks: the ``kws`` search under the DS-CNN's bound took
303 CPU s, 230 before). ``--budget``, ``--population``, ``--epochs``, ``--final-epochs``,
``--final-models`` and ``--seeds`` scale it up. ``--quick`` (about 30 CPU s, under a minute on idle
cores): digits 0-2 only, 2 candidates per search, 1 epoch, one finalist, candidates trained in the
search's own process.

Results (``benchmarks/results/kws.json``, ``python benchmarks/kws.py --budget 60 --jobs 1``, seed 0,
validation speaker ``lucas``): the DS-CNN scores 86.6 % test (85.6 % int8; validation 79.8 %) at
16,000 B / 30,420 B. Within a quarter (4,000 B / 7,605 B): ``tcn`` ``k3d1c16r-k3d1c16p2`` 83.6 %
(84.6 % int8; 2,352 B, 5,684 B), ``kws_frontend`` 70.8 %, ``kws`` ``c16_k3x3_s4x2-ds8_k3-ds16_k3``
63.0 %: the target is not met, 3.0 points short. Within the DS-CNN's memory: ``kws_frontend``
90.2 % (11,648 B, 25,212 B), ``kws`` 84.6 %, ``tcn`` 75.0 %. Before the objectives and the
augmentation changed (default objectives, no augmentation, same budget): DS-CNN 90.2 %, best
quarter-bound model ``kws`` 80.0 %, 10.2 points short. Most of the narrower gap is the DS-CNN's
own score, 3.6 points lower with this trainer (one training: the seed noise is a few points, and
``shift5`` alone gave it 93.6 %); the best quarter-bound model gained 3.6 points, in another arm.
The validation speaker stays the weak link: search validation (4 epochs) of the quarter-bound
``kws`` models tops at 45 %, and the chosen one's final validation 38 % against 63 % test, so the
search's choice is close to a coin toss among the networks near the bound. Hand-made ``kws``
networks that use the quarter bound (``c16_k*_s2x2`` with 2-5 blocks of 16 channels, ``c20``/``c24`` at
4x2), trained by the final trainer without augmentation, scored 34-65 % validation and 74-86 %
test; the one of best validation (65.4 %) 74.4 % test. With this augmenting trainer the same six
scored 40-70 % validation and 73-81 % test: the one of best validation,
``c16_k5x3_s2x2-ds16_k5-ds16_k5-ds16_k5-ds16_k5-ds16_k5`` (70.4 %), 81.4 % test, 5.2 points below
the DS-CNN's 86.6 % with the same trainer (``c20``/``c24`` lie outside ``KWS_OPTIONS``'s channels).
The 3.0 points are one training each: retrained with trial seeds 1-3 (same split and trainer),
the DS-CNN scored 85.4, 88.0 and 85.6 % (mean of the four 86.4 %) and ``k3d1c16r-k3d1c16p2`` 79.0,
77.2 and 75.0 % (mean 78.7 %; validation 39-68 %), so the gap over training seeds is about 7.7
points. And the augmentation, chosen on ``lucas``, costs on ``theo``: without it the DS-CNN scored
90.2 % (and 92.0 % earlier) and the six hand-made networks 79.6 % on average, with it 86.4 % and
76.1 % -- the validation speaker misleads here too; it stays, since nothing is chosen on the test
speaker (``--augment none`` runs without it).
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import itertools
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common import (add_search_arguments, all_passes_cpu_seconds, json_safe, log, print_json, pyplot,
                    repo_path, save_png, set_threads, settings_from, task_pool)
from spaces import (Ledger, add_run_arguments, cpu_seconds, draw_bounds, final_trainer, keep_settings, output_paths,
                    seed_mean, summary)
from tinyevo.audio import FrontEnd
from tinyevo.config import SearchConfig, check_objectives
from tinyevo.data.augment import Augmentation
from tinyevo.deploy.codegen import mcu
from tinyevo.deploy.codegen.emit import generate_c, render_c
from tinyevo.deploy.codegen.frontend_mcu import run_frontend_mcu
from tinyevo.deploy.int8_reference import run_int8
from tinyevo.deploy.quantize import quantize
from tinyevo.errors import TinyevoError
from tinyevo.estimate import EstimationFailed, EvalContext
from tinyevo.estimate.training import cached_dataset
from tinyevo.hardware import load_board
from tinyevo.hardware.cost_model import search_cost_model
from tinyevo.model_file import load_architecture
from tinyevo.pipeline import SearchJob
from tinyevo.run.constraints import ConstraintFilter
from tinyevo.runs import write_results
from tinyevo.runs.export import load_run_model
from tinyevo.runs.int8 import calibration_inputs, int8_record
from tinyevo.spaces import create_space
from tinyevo.spaces.kws import KwsSpace

DEFAULT_DATA = "../shared/datasets/fsdd/recordings"
DATASET = "wavfolder"
BOARD = "stm32f746"
TEST_SPEAKERS = ("theo",)
#: One of the five other speakers (a seeded draw) validates.
VAL_SIZE = 0.2
#: MLPerf Tiny's KWS front-end at 8 kHz (docstring): 49 frames of 10 MFCCs of 1 s.
FRONTEND = dict(kind="mfcc", sample_rate=8000, clip_ms=1000, frame_ms=30, hop_ms=20, n_mels=40, n_mfcc=10,
                lower_hz=20.0)
DSCNN_FILE = "examples/ds_cnn.json"
DSCNN_GENOME = "c64_k10x4_s2x2-ds64_k3-ds64_k3-ds64_k3-ds64_k3"
#: ``examples/ds_cnn.json`` (12 classes, 49x10x1) as the search's cost model counts it (issue 17's
#: kws commit: 22,604 deployed parameters, 2,656,768 MACs, 16,000 B).
DSCNN_PEAK_SRAM_BYTES, DSCNN_FLASH_BYTES = 16_000, 29_072
NUM_CLASSES = 10
BOUND_SHARES = {"dscnn": 1.0, "quarter": 0.25}
KWS_OPTIONS = dict(stem_kernels=[[3, 3], [5, 3], [10, 4]], stem_strides=[[1, 1], [2, 1], [2, 2], [4, 2]],
                   stem_channels=[4, 8, 16, 32, 64], blocks=[1, 2, 3, 4, 5], channels=[4, 8, 16, 32, 64],
                   kernels=[3, 5])
TCN_OPTIONS = dict(blocks=[1, 2, 3, 4], kernels=[3, 5, 7], dilations=[1, 2, 4], channels=[4, 8, 16, 32, 64],
                   residual=[False, True], pools=[1, 2])
ARM_NAMES = ("kws", "tcn", "kws_frontend")
#: What every search maximizes (docstring): accuracy alone, the bound being hard constraints.
OBJECTIVES = ("accuracy",)
#: The trainer's augmentation of every training batch (``tinyevo.data.augment``), the searches' and
#: the DS-CNN's alike: MLPerf Tiny's +-100 ms time shift (5 frames at the 20 ms hop).
AUGMENT = "shift5+tmask5+fmask2"


@dataclass
class Settings:
    seeds: tuple = (0,)
    #: Trained candidates per search (rejected and duplicate candidates do not count).
    budget: int = 40
    population_size: int = 8
    epochs: int = 4
    data_fraction: float = 1.0
    batch_size: int = 64
    lr: float = 0.003
    #: The final trainer (searched models and the DS-CNN alike): every training clip.
    final_epochs: int = 15
    final_models: int = 2
    executor: str = "process"
    #: The digits read (None: all ten); the quick run's subset.
    classes: tuple | None = None
    #: The training estimator's ``augment`` (None: none), the search's and the final trainer's.
    augment: str | None = AUGMENT
    #: The searches' objectives.
    objectives: tuple = OBJECTIVES


QUICK = Settings(budget=2, population_size=2, epochs=1, final_epochs=1, final_models=1, executor="serial",
                 classes=("0", "1", "2"))


# --- the arms ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Arm:
    """One searched configuration: a space, its options and the dataset options it reads."""

    name: str
    space: str
    space_options: dict
    dataset_options: dict
    #: The front-end is a gene of the search (its cost is the candidate's own), not fixed.
    searches_frontend: bool = False


def fixed_frontend() -> FrontEnd:
    return FrontEnd(**FRONTEND)


def class_count(settings: Settings) -> int:
    return len(settings.classes) if settings.classes else NUM_CLASSES


def fixed_arm(name: str, space: str, options: dict, layout: str, classes: int) -> Arm:
    frames, coefficients, _ = fixed_frontend().output_shape
    shape = [frames, coefficients, 1] if layout == "map" else [1, frames, coefficients]
    return Arm(name, space, {**options, "input_shape": shape, "num_classes": classes},
               {"features": "mfcc", "layout": layout})


def kws_arm(classes: int) -> Arm:
    """The DS-CNN family on the fixed front-end's map (the DS-CNN's own arm and trainer)."""
    return fixed_arm("kws", "kws", KWS_OPTIONS, "map", classes)


def frontend_search_available() -> bool:
    """Whether the ``kws`` space takes front-end genes (its ``frontend`` option)."""
    return "frontend" in inspect.signature(KwsSpace.__init__).parameters


def frontend_search_arm(classes: int) -> Arm:
    """``kws`` with the front-end's settings as genes, on raw clips (the search job fills the
    ``frontend_base``, the clips' rate and length, from the dataset)."""
    return Arm("kws_frontend", "kws", {**KWS_OPTIONS, "num_classes": classes, "frontend": "search"},
               {"features": "pcm"}, searches_frontend=True)


def arms_of(names, classes: int) -> tuple[dict[str, Arm], dict[str, str]]:
    """The arms to search, and the pending ones with why."""
    arms = {"kws": kws_arm(classes), "tcn": fixed_arm("tcn", "tcn", TCN_OPTIONS, "sequence", classes)}
    pending = {}
    if frontend_search_available():
        arms["kws_frontend"] = frontend_search_arm(classes)
    else:
        pending["kws_frontend"] = ("the kws space has no frontend option yet (front-end genes not merged); "
                                   "reported with the figures of arm kws, front-end fixed")
    wanted = list(dict.fromkeys(names or ARM_NAMES))
    return {n: arms[n] for n in wanted if n in arms}, {n: pending[n] for n in wanted if n in pending}


def runner_counts_frontend() -> bool:
    """Whether the search's constraint filter adds the data's front-end to each candidate's cost
    (the front-end genes work does); if not, a fixed-front-end search is bounded on its network."""
    return "frontend" in inspect.signature(ConstraintFilter.__init__).parameters


# --- the reference and the bounds ------------------------------------------------------------------
class ReferenceDrift(Exception):
    """The cost model no longer counts the DS-CNN as published."""


def reference_cost(board, config: SearchConfig, classes: int) -> dict:
    """The FSDD DS-CNN's network cost (10 classes), after checking that the kws space's DS-CNN at 12
    classes costs what ``examples/ds_cnn.json`` does and what is published."""
    cost_model = search_cost_model(config.execution, config.runtime)
    published = cost_model(load_architecture(repo_path(DSCNN_FILE)), board).to_dict()
    ours = cost_model(create_space("kws").decode(create_space("kws").parse(DSCNN_GENOME)), board).to_dict()
    figures = [(c["peak_sram_bytes"], c["flash_bytes"], c["params"], c["macs"]) for c in (published, ours)]
    if figures[0] != figures[1] or figures[0][:2] != (DSCNN_PEAK_SRAM_BYTES, DSCNN_FLASH_BYTES):
        raise ReferenceDrift(f"{DSCNN_FILE} costs {figures[0][:2]} B, the kws space's {DSCNN_GENOME} "
                             f"{figures[1][:2]} B, not the published ({DSCNN_PEAK_SRAM_BYTES}, "
                             f"{DSCNN_FLASH_BYTES}): the cost model or the space changed")
    return cost_model(dscnn_architecture(classes), board).to_dict()


def dscnn_architecture(classes: int):
    space = create_space("kws", **kws_arm(classes).space_options)
    return space.decode(space.parse(DSCNN_GENOME))


def with_frontend(network: dict, frontend: FrontEnd) -> dict:
    """Network figures plus the front-end's, and each part."""
    fe = frontend.cost()
    added = fe.ram_added(network["peak_sram_bytes"])  # the front-end runs in the network's arena
    return {"peak_sram_bytes": network["peak_sram_bytes"] + added,
            "flash_bytes": network["flash_bytes"] + fe.flash_bytes, "macs": network["macs"] + fe.macs,
            "network_peak_sram_bytes": network["peak_sram_bytes"], "network_flash_bytes": network["flash_bytes"],
            "network_macs": network["macs"], "frontend_ram_bytes": added,
            "frontend_flash_bytes": fe.flash_bytes, "frontend_macs": fe.macs}


def bounds_of(total: dict) -> dict:
    return {name: {"max_peak_sram_bytes": int(total["peak_sram_bytes"] * share),
                   "max_flash_bytes": int(total["flash_bytes"] * share)} for name, share in BOUND_SHARES.items()}


def search_limits(arm: Arm, bound: dict) -> dict:
    """The limits the search job gets: the totals, or (a runner that counts the network only, with
    the front-end fixed) the totals less the front-end's RAM and flash."""
    if arm.searches_frontend or runner_counts_frontend():
        return dict(bound)
    fe = fixed_frontend().cost()  # (an old runner: the front-end's RAM counted beside the arena)
    return {"max_peak_sram_bytes": bound["max_peak_sram_bytes"] - fe.ram_bytes,
            "max_flash_bytes": bound["max_flash_bytes"] - fe.flash_bytes}


def fit_check(arm: Arm, bounds: dict, cost_model, board) -> dict:
    """The cost (network + front-end) of the arm's smallest architecture, and which bounds it fits."""
    options = {k: v for k, v in arm.space_options.items() if k != "frontend"}
    if arm.searches_frontend:
        options = {**arm.space_options, "input_shape": [1, fixed_frontend().clip_samples, 1],
                   "frontend_base": fixed_frontend().to_json()}
    try:
        space = create_space(arm.space, **options)
        genomes = space.smallest()
        if arm.searches_frontend:  # the smallest network behind every front-end the genes allow
            genomes += with_every_frontend(space, genomes[0])
        totals = [total_cost(space.decode(g), cost_model, board) for g in genomes]
    except (TinyevoError, TypeError, ValueError) as error:
        return {"options": arm.space_options, "error": f"{type(error).__name__}: {error}",
                "fits": {bound: False for bound in bounds}}
    fits = {name: any(t["peak_sram_bytes"] <= b["max_peak_sram_bytes"] and t["flash_bytes"] <= b["max_flash_bytes"]
                      for t in totals) for name, b in bounds.items()}
    return {"options": arm.space_options, "dataset_options": arm.dataset_options,
            "checked_on": "smallest" + (" network behind every front-end" if len(genomes) > 1 else ""),
            "smallest": {"describe": space.describe(genomes[0]), **totals[0]}, "fits": fits}


def with_every_frontend(space, genome: dict) -> list[dict]:
    """``genome`` with each combination of its front-end genes' choices (the head genes named
    ``frontend_*``) that decodes."""
    genes = [(name, choices) for name, choices in space.head_genes if name.startswith("frontend_")]
    out = []
    for values in itertools.product(*(choices for _, choices in genes)):
        candidate = {**genome, **{name: value for (name, _), value in zip(genes, values)}}
        if space.is_valid(candidate):
            out.append(candidate)
    return out


def total_cost(arch, cost_model, board) -> dict:
    """Network + front-end (the architecture's own front-end, else the fixed one)."""
    return with_frontend(cost_model(arch, board).to_dict(), architecture_frontend(arch) or fixed_frontend())


def architecture_frontend(arch) -> FrontEnd | None:
    """The front-end an architecture carries (searched front-end genes), or None."""
    record = getattr(arch, "frontend", None)
    return FrontEnd.from_json(record["settings"]) if record else None


# --- one search ---------------------------------------------------------------------------------------
def dataset_options(settings: Settings, arm_options: dict) -> dict:
    classes = {"classes": list(settings.classes)} if settings.classes else {}
    frontend = {k: v for k, v in FRONTEND.items() if k not in ("kind", "lower_hz")}
    return {"labels": "filename", "split": "speaker", "test_speakers": list(TEST_SPEAKERS), "val_size": VAL_SIZE,
            **frontend, **classes, **arm_options}


def trainer_settings(seed: int, settings: Settings, data_dir: str, arm: Arm) -> dict:
    """The settings every search job shares, the trainer's: data, estimator, fidelity, final training."""
    augment = {"estimator_options": {"augment": settings.augment}} if settings.augment else {}
    return {"dataset": DATASET, "data_dir": data_dir, "dataset_options": dataset_options(settings, arm.dataset_options),
            "board": BOARD, "estimator": "training", "seed": seed, "final_epochs": settings.final_epochs,
            "fidelity": {"epochs": settings.epochs, "data_fraction": settings.data_fraction,
                         "batch_size": settings.batch_size, "lr": settings.lr}, **augment}


def search_config(arm: Arm, bound: dict, seed: int, settings: Settings, data_dir: str,
                  final_models: int) -> SearchConfig:
    """The search job of one (arm, bound, seed); the strategy is the search job's default."""
    limits = search_limits(arm, bound)
    return SearchConfig.from_dict({
        **trainer_settings(seed, settings, data_dir, arm), "space": arm.space, "space_options": arm.space_options,
        "objectives": list(settings.objectives), "strategy_options": {"population_size": settings.population_size}, "budget": settings.budget,
        "final_models": final_models,
        "constraints": {"max_sram": limits["max_peak_sram_bytes"], "max_flash": limits["max_flash_bytes"]},
        "executor": {"kind": settings.executor, "workers": 1}}, "kws benchmark")


def run_search(arm: Arm, bound_name: str, bound: dict, seed: int, settings: Settings, data_dir: str,
               out: Path) -> dict:
    """The search pass, then the final-training pass, over one run folder; the best model's figures."""
    folder = out / "runs" / f"{arm.name}-{bound_name}-seed{seed}"
    ledger = Ledger(folder)

    def run_pass(final_models: int) -> None:
        SearchJob.create(search_config(arm, bound, seed, settings, data_dir, final_models), folder).run(progress=False)
    search_cpu = ledger.run_pass("search", settings.budget, lambda: run_pass(0))
    final_cpu = ledger.run_pass("final", [settings.budget, settings.final_models],
                                lambda: run_pass(settings.final_models))
    results = write_results(folder)
    config = search_config(arm, bound, seed, settings, data_dir, settings.final_models)
    finalists = [final_row(r, arm, folder) for r in results["front"] if r.get("test_accuracy") is not None]
    best = results["best"] if results["best"] and results["best"].get("test_accuracy") is not None else None
    row = {"seed": seed, "status": "ok" if best else "no_model", "run": str(folder),
           "trained_candidates": results["evaluated"], "rejected_by_cost_model": results["infeasible"],
           "failed": results["failed"], "search_cpu_seconds": search_cpu, "final_cpu_seconds": final_cpu}
    if best:
        key = f"mcu_trial_{best['trial']}"
        if key not in ledger.entries:
            ledger.entries[key] = run_model_on_mcu(folder, best["trial"], config)
            ledger.write()
        row.update(final_row(best, arm, folder), **ledger.entries[key])
    return {**row, "finalists": finalists}


def row_cost(row: dict, arm: Arm, folder: Path) -> dict:
    """Network + front-end figures of a results row: its own where the search counted the front-end
    (the row has ``frontend_*`` columns), else the row's network plus the fixed front-end."""
    if "frontend_ram_bytes" in row:
        return {"peak_sram_bytes": row["peak_sram_bytes"], "flash_bytes": row["flash_bytes"], "macs": row["macs"],
                "network_peak_sram_bytes": row["peak_sram_bytes"] - row["frontend_ram_bytes"],
                "network_flash_bytes": row["flash_bytes"] - row["frontend_flash_bytes"],
                "network_macs": row["macs"] - row["frontend_macs"], "frontend_ram_bytes": row["frontend_ram_bytes"],
                "frontend_flash_bytes": row["frontend_flash_bytes"], "frontend_macs": row["frontend_macs"]}
    return with_frontend(row, fixed_frontend())


def final_row(row: dict, arm: Arm, folder: Path) -> dict:
    return {"trial": row["trial"], "architecture": row["describe"], "search_val_accuracy": row["val_accuracy"],
            "final_val_accuracy": row.get("final_val_accuracy"), "test_accuracy": row.get("test_accuracy"),
            "int8_test_accuracy": row.get("int8_test_accuracy"), "params": row["params"],
            **row_cost(row, arm, folder)}


# --- the Cortex-M4 --------------------------------------------------------------------------------------
def test_clip(config: SearchConfig) -> np.ndarray:
    """The first test clip as int16 PCM (1, samples): the same rows as the features' dataset."""
    options = {**config.dataset_options, "features": "pcm", "layout": "map"}
    return cached_dataset(config.dataset, config.data_dir, config.seed, options).x_test[:1].reshape(1, -1)


def mcu_figures(arch, module, calibration: np.ndarray, frontend: FrontEnd, pcm: np.ndarray, work: Path,
                execution: str) -> dict:
    """Executed instructions of one inference of the network's generated C and of the front-end's C
    on the emulated Cortex-M4(F), their flash there, the network's output against the int8 reference
    executor, the device's features against Python's (int8 steps), and the class end to end."""
    if not mcu.mcu_available():
        return {"mcu_instructions": None, "mcu_flash_bytes": None, "mcu_bit_exact": None,
                "frontend_mcu_instructions": None, "frontend_mcu_flash_bytes": None,
                "mcu_missing": mcu.mcu_missing()}
    qmodel = quantize(arch, module.cpu().eval(), calibration)
    arena = render_c(qmodel, execution=execution, frontend=frontend).metadata.arena_bytes
    features = frontend(pcm).reshape(1, *arch.input_shape)  # map or sequence: the same bytes
    x = qmodel.input_spec.quantize(features)
    expected = run_int8(qmodel, x)
    if work.exists():
        shutil.rmtree(work)
    generate_c(qmodel, work / "network", execution=execution)
    built, run = mcu.run_on_mcu(work / "network", x)
    spec = qmodel.input_spec
    fe_run = run_frontend_mcu(frontend, pcm, spec.scale, spec.zero_point, work / "frontend")
    device_features = fe_run.inputs.reshape(x.shape)
    end_to_end = run_int8(qmodel, device_features)
    return {"c_arena_bytes_with_frontend": int(arena),
            "mcu_instructions": int(run.instructions[0]), "mcu_flash_bytes": int(built.model_sizes.flash),
            "mcu_bit_exact": bool(np.array_equal(run.outputs.reshape(expected.shape), expected)),
            "frontend_mcu_instructions": int(fe_run.instructions[0]),
            "frontend_mcu_flash_bytes": int(fe_run.sizes.text + fe_run.sizes.data),
            "frontend_mcu_max_step": int(np.abs(device_features.astype(np.int64) - x).max()),
            "mcu_end_to_end_class_equal": bool(end_to_end.reshape(-1).argmax() == expected.reshape(-1).argmax())}


def run_model_on_mcu(folder: Path, trial: int, config: SearchConfig) -> dict:
    """``mcu_figures`` of a run's final-trained model on the first test clip."""
    model = load_run_model(folder, trial)
    frontend = architecture_frontend(model.architecture) or fixed_frontend()
    return mcu_figures(model.architecture, model.module, model.calibration, frontend, test_clip(config),
                       folder / "mcu", config.execution)


# --- the DS-CNN ------------------------------------------------------------------------------------------
def train_dscnn(seed: int, settings: Settings, data_dir: str, out: Path) -> dict:
    """The DS-CNN trained and scored by the final trainer of the kws searches of ``seed``; kept in
    ``OUT`` (a rerun with the same trainer settings reads it back)."""
    path = out / f"dscnn-seed{seed}.json"
    arm = kws_arm(class_count(settings))
    key = json.loads(json.dumps(trainer_settings(seed, settings, data_dir, arm)))
    if path.exists() and json.loads(path.read_text()).get("trainer") == key:
        return json.loads(path.read_text())
    config = SearchConfig.from_dict(trainer_settings(seed, settings, data_dir, arm), "kws benchmark")
    estimator, arch, start = final_trainer(config), dscnn_architecture(class_count(settings)), cpu_seconds()
    try:
        trained = estimator.fit(arch, EvalContext(seed=config.seed))  # as finalize() trains a finalist
    except EstimationFailed as error:
        return {"seed": seed, "status": "failed", "error": str(error)}
    data = estimator.data()
    row = {"seed": seed, "status": "ok", "final_val_accuracy": trained.metrics["accuracy"],
           "test_accuracy": estimator.accuracy(trained, "test"),
           **int8_record(trained.architecture, trained.module, data, config.seed)}
    row["final_cpu_seconds"] = round(cpu_seconds() - start, 1)
    row.update(mcu_figures(arch, trained.module, calibration_inputs(data, arch, config.seed), fixed_frontend(),
                           test_clip(config), out / f"dscnn-seed{seed}-mcu", config.execution))
    row.update(data_split=speakers_of(data), trainer=key)
    out.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(row, indent=1))
    os.replace(temporary, path)
    return row


def speakers_of(data) -> dict:
    return {part: data.meta.get(f"{part}_speakers") for part in ("train", "val", "test")} | {
        "rows": {"train": len(data.y_train), "val": len(data.y_val), "test": len(data.y_test)}}


# --- processes ------------------------------------------------------------------------------------------
def _search_task(arm, bound_name, bound, seed, settings, data_dir, out) -> dict:
    try:
        return run_search(arm, bound_name, bound, seed, settings, data_dir, out)
    except Exception as error:  # noqa: BLE001 -- one broken arm does not end the benchmark
        return {"seed": seed, "status": "error", "error": f"{type(error).__name__}: {error}"}


def _dscnn_task(seed, settings, data_dir, out) -> dict:
    return train_dscnn(seed, settings, data_dir, out)


def run_benchmark(arms: dict, checks: dict, bounds: dict, settings: Settings, data_dir: str, out: Path,
                  jobs: int = 1, threads: int = 1) -> tuple[dict, list[dict]]:
    """The DS-CNN per seed and every (arm, bound, seed) search that can fit, ``jobs`` at a time."""
    runs: dict = {name: {bound: [] for bound in bounds} for name in arms}
    with task_pool(jobs, threads) as pool:
        dscnn = [pool.submit(_dscnn_task, seed, settings, data_dir, out) for seed in settings.seeds]
        searches = {pool.submit(_search_task, arm, name, bound, seed, settings, data_dir, out): (arm.name, name)
                    for seed in settings.seeds for arm in arms.values() for name, bound in bounds.items()
                    if checks[arm.name]["fits"][name]}
        for future, (arm, name) in searches.items():
            row = future.result()
            runs[arm][name].append(row)
            log(f"{arm} under {name}, seed {row['seed']}: {row['status']} "
                + (f"{row.get('error')}" if row["status"] == "error" else
                   f"{row.get('architecture')} test {row.get('test_accuracy')}, "
                   f"peak SRAM {row.get('peak_sram_bytes')} B, "
                   f"flash {row.get('flash_bytes')} B (front-end included), {row.get('mcu_instructions')} + "
                   f"{row.get('frontend_mcu_instructions')} instructions, search {row['search_cpu_seconds']} CPU s "
                   f"({row['trained_candidates']} trained), finals {row['final_cpu_seconds']} CPU s"))
        references = [future.result() for future in dscnn]
    for row in references:
        log(f"DS-CNN seed {row['seed']}: test {row.get('test_accuracy')}, {row.get('mcu_instructions')} + "
            f"{row.get('frontend_mcu_instructions')} instructions, {row.get('final_cpu_seconds')} CPU s")
    return runs, references


# --- the report -------------------------------------------------------------------------------------------
SUMMED = ("test_accuracy", "int8_test_accuracy", "peak_sram_bytes", "flash_bytes", "network_peak_sram_bytes",
          "network_flash_bytes", "frontend_ram_bytes", "frontend_flash_bytes", "macs", "mcu_instructions",
          "frontend_mcu_instructions", "mcu_flash_bytes", "frontend_mcu_flash_bytes", "search_cpu_seconds",
          "final_cpu_seconds")


def pending_summary(reason: str, stand_in: dict | None) -> dict:
    return {"status": "pending", "reason": reason, "computed_with": "the front-end fixed (arm kws)",
            "bounds": (stand_in or {}).get("bounds", {})}


def targets(arms: dict, reference: dict, bounds: dict) -> dict:
    """Issue 17's target: a ``quarter`` model (at most a quarter of the DS-CNN's peak SRAM and flash,
    front-end included) whose test accuracy (mean over seeds) is at least the DS-CNN's."""
    dscnn = reference["test_accuracy"]
    sram, flash = bounds["quarter"]["max_peak_sram_bytes"], bounds["quarter"]["max_flash_bytes"]
    candidates = []
    for name, arm in arms.items():
        quarter = arm["bounds"].get("quarter", {})
        if arm.get("status") == "pending" or quarter.get("test_accuracy") is None:
            continue
        rows = [r for r in quarter["per_seed"] if r["status"] == "ok"]
        candidates.append({"arm": name, "test_accuracy": quarter["test_accuracy"],
                           "int8_test_accuracy": quarter["int8_test_accuracy"],
                           "within_quarter": all(r["peak_sram_bytes"] <= sram and r["flash_bytes"] <= flash
                                                 for r in rows),
                           "peak_sram_bytes": max(r["peak_sram_bytes"] for r in rows),
                           "flash_bytes": max(r["flash_bytes"] for r in rows),
                           "architectures": [r["architecture"] for r in rows]})
    best = max(candidates, key=lambda c: c["test_accuracy"], default=None)
    met = bool(best and dscnn is not None and best["within_quarter"] and best["test_accuracy"] >= dscnn)
    return {"searched_model_matches_dscnn_with_a_quarter_of_its_peak_sram_and_flash_frontend_included": {
        "met": met, "dscnn_test_accuracy": dscnn, "dscnn_peak_sram_bytes": reference["peak_sram_bytes"],
        "dscnn_flash_bytes": reference["flash_bytes"], "quarter_peak_sram_bytes": sram,
        "quarter_flash_bytes": flash, "best_quarter_bound_model": best, "quarter_bound_models": candidates,
        "gap": None if not best or dscnn is None else round(best["test_accuracy"] - dscnn, 4),
        "pending_arms": [name for name, arm in arms.items() if arm.get("status") == "pending"]}}


def reference_summary(network: dict, rows: list[dict]) -> dict:
    ok = [r for r in rows if r["status"] == "ok"]
    return {"model": "ds_cnn", "file": DSCNN_FILE, "genome": DSCNN_GENOME, "board": BOARD,
            "published_12_classes": {"peak_sram_bytes": DSCNN_PEAK_SRAM_BYTES, "flash_bytes": DSCNN_FLASH_BYTES},
            "params": network["params"], **with_frontend(network, fixed_frontend()),
            **{key: seed_mean(r.get(key) for r in ok) for key in
               ("final_val_accuracy", "test_accuracy", "int8_test_accuracy", "mcu_instructions", "mcu_flash_bytes",
                "frontend_mcu_instructions", "frontend_mcu_flash_bytes", "final_cpu_seconds")},
            "mcu_bit_exact": all(r.get("mcu_bit_exact") is not False for r in ok),
            "per_seed": [{k: v for k, v in r.items() if k != "trainer"} for r in rows]}


MARKERS = {"dscnn": "o", "quarter": "^"}


def plot(arms: dict, reference: dict, bounds: dict, path: Path) -> None:
    """Test accuracy against peak SRAM (network + front-end) of every final-trained model: a colour
    per arm, a marker per bound, each search's model ringed; the DS-CNN a star; the bounds lines."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(8, 5))
    for color, (name, arm) in enumerate(arms.items()):
        if arm.get("status") == "pending":
            continue
        labelled = False
        for bound, result in arm["bounds"].items():
            rows = [r for r in result.get("per_seed", []) if r["status"] == "ok"]
            points = [f for r in rows for f in r["finalists"]]
            axes.scatter([p["peak_sram_bytes"] for p in points], [p["test_accuracy"] for p in points],
                         color=f"C{color}", marker=MARKERS[bound], s=28, alpha=0.6,
                         label=None if labelled or not points else name)
            labelled = labelled or bool(points)
            axes.scatter([r["peak_sram_bytes"] for r in rows], [r["test_accuracy"] for r in rows],
                         facecolors="none", edgecolors=f"C{color}", marker="o", s=140, linewidths=1.5)
    if reference.get("test_accuracy") is not None:
        axes.scatter([reference["peak_sram_bytes"]], [reference["test_accuracy"]], marker="*", s=260, color="black",
                     label=f"DS-CNN ({reference['test_accuracy']:.3f})", zorder=5)
        axes.axhline(reference["test_accuracy"], color="black", lw=0.6, ls=":")
    draw_bounds(axes, bounds, top=False)
    axes.set(xlabel="peak SRAM, network + front-end (bytes)", ylabel=f"FSDD test accuracy ({', '.join(TEST_SPEAKERS)})",
             title="Spoken digits (FSDD, speaker held out) under the DS-CNN's memory (dots) and a quarter\n"
                   "(triangles), front-end included; ringed: each search's model", xlim=(0, bounds["dscnn"]["max_peak_sram_bytes"] * 1.08))
    axes.title.set_fontsize(9)
    axes.legend(fontsize=7, loc="best")
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
                        help="reduced run (< 1 min): digits 0-2, 2 candidates per search, 1 epoch")
    parser.add_argument("--data", default=DEFAULT_DATA,
                        help="FSDD's recordings, {digit}_{speaker}_{index}.wav (default: %(default)s)")
    parser.add_argument("--arms", nargs="+", choices=ARM_NAMES, help="arms to search (default: all)")
    parser.add_argument("--seeds", type=int, nargs="+", help="search seeds (one search per arm, bound and seed)")
    add_search_arguments(parser, "training clips")
    add_run_arguments(parser, "kws", "the DS-CNN", jobs=1)
    parser.add_argument("--augment", help=f"the trainer's augmentation of training batches, searches and "
                                          f"DS-CNN alike (tinyevo.data.augment; default {AUGMENT}; 'none': off)")
    parser.add_argument("--objectives", nargs="+", help=f"the searches' objectives (default: "
                                                        f"{' '.join(OBJECTIVES)})")
    return parser.parse_args(argv)


def settings_of(args: argparse.Namespace) -> Settings:
    """The run's settings; a TinyevoError (one line) for a malformed ``--augment`` or ``--objectives``."""
    if args.augment not in (None, "none"):
        Augmentation.parse(args.augment)
    if args.objectives:
        check_objectives(args.objectives, "--objectives")
    augment = None if args.augment is None else ("" if args.augment == "none" else args.augment)
    settings = settings_from(args, QUICK if args.quick else Settings(), final_epochs=args.final_epochs,
                             final_models=args.final_models, augment=augment,
                             objectives=tuple(args.objectives) if args.objectives else None)
    return dataclasses.replace(settings, augment=settings.augment or None)


def check_out_folder(out: Path, settings: Settings, data_dir: str) -> None:
    """Record in ``OUT/settings.json`` what the run folders there were made with; refuse other
    trainer or strategy settings (``--budget``, ``--seeds``, ``--arms`` and ``--final-models`` may
    change: a rerun extends the runs)."""
    arm = kws_arm(class_count(settings))
    keep_settings(out, {**trainer_settings(0, settings, data_dir, arm), "seed": None,
                        "population_size": settings.population_size, "objectives": list(settings.objectives)})


def load_data(data_dir: str, settings: Settings, arms: dict):
    """Every arm's dataset of every seed, loaded once here so that forked workers share it."""
    if not Path(data_dir).is_dir():
        raise TinyevoError(f"{data_dir}: no such folder; give FSDD's recordings with --data")
    arm = kws_arm(class_count(settings))
    datasets = [cached_dataset(DATASET, data_dir, seed, dataset_options(settings, arm.dataset_options))
                for seed in settings.seeds]
    if datasets[0].meta["frontend"] != fixed_frontend().to_json():
        raise TinyevoError(f"the dataset's front-end {datasets[0].meta['frontend']} is not the benchmark's "
                           f"{fixed_frontend().to_json()}")
    for other in arms.values():
        for seed in settings.seeds:
            cached_dataset(DATASET, data_dir, seed, dataset_options(settings, other.dataset_options))
    return datasets


def main(argv=None) -> int:
    args = parse_args(argv)
    set_threads(args.threads)
    start, cpu_start = time.perf_counter(), cpu_seconds()
    try:
        settings = settings_of(args)
        out, results_dir, stem = output_paths(args, "kws")
        data_dir = str(repo_path(args.data).resolve())
        arms, pending = arms_of(args.arms, class_count(settings))
        default = SearchConfig()
        board = load_board(BOARD)
        network = reference_cost(board, default, class_count(settings))
        total = with_frontend(network, fixed_frontend())
        bounds = bounds_of(total)
        cost_model = search_cost_model(default.execution, default.runtime)
        checks = {name: fit_check(arm, bounds, cost_model, board) for name, arm in arms.items()}
        datasets = load_data(data_dir, settings, arms)
        check_out_folder(out, settings, data_dir)
    except TinyevoError as error:
        print(f"kws: {error}", file=sys.stderr)
        return 2
    except ReferenceDrift as error:
        print(f"kws: {error}", file=sys.stderr)
        return 1
    log(f"data {datasets[0].summary()}; out {out}; strategy {default.strategy}; settings {settings}; "
        f"runner counts the front-end: {runner_counts_frontend()}; pending arms: {pending or 'none'}")
    for name, check in checks.items():
        log(f"{name}: smallest {check.get('smallest') or check.get('error')}; fits {check['fits']}")
    runs, references = run_benchmark(arms, checks, bounds, settings, data_dir, out, args.jobs, args.threads)
    reference = reference_summary(network, references)
    report_arms = {name: {**checks[name], "searches_frontend": arm.searches_frontend,
                          "bounds": {bound: summary(runs[name][bound], checks[name]["fits"][bound], SUMMED)
                                     for bound in bounds}}
                   for name, arm in arms.items()}
    for name, reason in pending.items():
        report_arms[name] = pending_summary(reason, report_arms.get("kws"))
    png, document = out / f"{stem}.png", out / f"{stem}.json"
    plot(report_arms, reference, bounds, png)
    report = {
        "benchmark": "kws", "targets": targets(report_arms, reference, bounds), "reference": reference,
        "bounds": bounds, "arms": report_arms,
        "frontend": {"fixed": fixed_frontend().to_json(), "cost": fixed_frontend().cost().to_json(),
                     "output_shape": list(fixed_frontend().output_shape),
                     "adaptation": "MLPerf Tiny KWS (16 kHz: 30 ms windows every 20 ms, 40 mel bands 20-4000 Hz, "
                                   "10 MFCC, 49x10) at 8 kHz: 240-sample windows every 160 samples, FFT 256, "
                                   "the same 40 bands (4000 Hz is the Nyquist frequency): 49x10",
                     "search_counts_frontend": runner_counts_frontend()},
        "split": {"test_speakers": list(TEST_SPEAKERS), "val_size": VAL_SIZE, **speakers_of(datasets[0]),
                  "why": "validation is a held-out speaker too, so the search and the choice of model rank "
                         "networks by accuracy on an unheard voice, as the test measures"},
        "strategy": {"name": default.strategy, "source": "tinyevo.strategies.DEFAULT_STRATEGY (the default of the "
                     "search job, the CLI and the API)", "options": {"population_size": settings.population_size},
                     "objectives": list(settings.objectives), "default_objectives": default.objectives,
                     "why_objectives": "the benchmark asks for the best accuracy within a bound, which the hard "
                                       "constraints already set; a memory objective spends the budget on models "
                                       "far below it"},
        "estimator": {"name": "training", "augment": settings.augment,
                      "search": {"epochs": settings.epochs, "data_fraction": settings.data_fraction,
                                                     "batch_size": settings.batch_size, "lr": settings.lr},
                      "final": {"epochs": settings.final_epochs, "data_fraction": 1.0},
                      "cost_model": {"execution": default.execution, "runtime": default.runtime, "board": BOARD}},
        "settings": {**dataclasses.asdict(settings), "quick": args.quick, "jobs": args.jobs, "threads": args.threads,
                     "versions": {"torch": torch.__version__}},
        "data": datasets[0].summary(), "out": str(out), "png": str(png), "json": str(document),
        "seconds": round(time.perf_counter() - start, 1), "cpu_seconds": round(cpu_seconds() - cpu_start, 1),
        "cpu_seconds_all_passes": all_passes_cpu_seconds(report_arms, reference)}
    document.write_text(json.dumps(json_safe(report), indent=1))
    if results_dir is not None:
        results_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(png, results_dir / png.name)
        shutil.copyfile(document, results_dir / document.name)
    print_json(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
