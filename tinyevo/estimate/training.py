"""Performance estimation by training (survey section I-C): train the candidate, read validation accuracy.

Fidelity knobs make it cheaper and rougher: ``epochs``, ``data_fraction`` (a seeded share of the
training rows), ``resolution`` (the input size the network sees) and ``width_scale`` (channels of
every layer but the classifier). Inputs are resized (bilinear) to the architecture's input size
when they differ from the data's, so a genome may choose its own resolution.

Two knobs make short trainings read better. ``schedule_epochs`` lets the learning-rate schedule
span more epochs than are trained: ``epochs=2, schedule_epochs=12`` trains the first two epochs of
the 12-epoch run (same seed, same batches: exactly its start) instead of a 2-epoch cosine of its
own. ``bn_recalibration`` recomputes the batch-norm statistics on that many training batches
before each validation: after a few dozen steps the running averages lag far behind the weights
and a network validates near chance in eval mode (seen on mbv2 after one epoch on 1,200 rows).

A network with its own audio front-end (``Architecture.frontend``, a search with front-end genes)
is trained on the features of the dataset's raw clips computed by that front-end (``data_for``).

``context.extra`` may carry ``"fidelity"`` (knob overrides, e.g. ``{"epochs": 1}``, for
multi-fidelity strategies) and ``"on_epoch"`` (a callable given the validation curve so far after
each epoch; True stops training early, as a learning-curve pruner does).

The estimator holds only its settings: the dataset is loaded by name on first use and cached per
process, so a process pool ships a few hundred bytes. A candidate that cannot be trained (an
exception, a NaN loss, out of memory) raises ``EstimationFailed`` and the search goes on.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tinyevo.arch import Architecture
from tinyevo.data import DEFAULT_DATASET, Dataset, load_dataset
from tinyevo.data.augment import Augmenter
from tinyevo.data.featurized import featurized
from tinyevo.errors import TinyevoError
from tinyevo.estimate.base import ESTIMATORS, EstimationFailed, EvalContext, Trainer
from tinyevo.estimate.fidelity import input_size, scale_width, with_input_size
from tinyevo.nn import build
from tinyevo.nn.build import nchw

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("cosine", "constant")
_DATA_CACHE: dict[str, Dataset] = {}


def cached_dataset(name: str, data_dir, seed: int, options: dict) -> Dataset:
    """``load_dataset`` once per process for each (name, data_dir, seed, options)."""
    key = json.dumps([name, None if data_dir is None else str(data_dir), seed, options],
                     sort_keys=True, default=str)
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = load_dataset(name, data_dir, seed, **options)
    return _DATA_CACHE[key]


def trial_seed(estimator_seed: int, context_seed: int) -> int:
    """One torch seed from the estimator's seed and the trial's."""
    sequence = np.random.SeedSequence([estimator_seed % 2**32, context_seed % 2**32])
    return int(sequence.generate_state(1)[0])


def to_input(x: torch.Tensor, scale: float, size: tuple[int, int]) -> torch.Tensor:
    """NHWC stored rows -> NCHW float batch of the network's (height, width), bilinear.

    The batch has the strides of a fresh NCHW tensor (``tinyevo.nn.build.nchw``): with one channel,
    ``permute(...).contiguous()`` kept the NHWC strides, which PyTorch reads as channels-last, so
    every MNIST network ran channels-last -- and a 1x1 strided convolution's backward in oneDNN
    corrupts the heap or hangs on such inputs (see ``tinyevo.nn.build.Conv``)."""
    x = (x.to(torch.float32) * scale).permute(0, 3, 1, 2)
    if tuple(x.shape[2:]) != tuple(size):
        shrink = size[0] < x.shape[2] or size[1] < x.shape[3]
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)
    return nchw(x)


@dataclass
class TrainedModel:
    """A trained network, the architecture it was built from (after fidelity changes) and its metrics."""

    module: nn.Module
    architecture: Architecture
    metrics: dict


@ESTIMATORS.register("training")
@dataclass
class TrainingEstimator(Trainer):
    """Trains any architecture with PyTorch (CPU or CUDA); metrics are about the validation split."""

    dataset: str | Dataset = DEFAULT_DATASET
    data_dir: str | None = None
    #: Seed of the dataset's splits: the same for every candidate of a search.
    dataset_seed: int = 0
    dataset_options: dict = field(default_factory=dict)
    epochs: int = 5
    batch_size: int = 64
    lr: float = 3e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    schedule: str = "cosine"
    data_fraction: float = 1.0
    resolution: float | int | tuple | None = None
    width_scale: float = 1.0
    #: Epochs the learning-rate schedule spans (None: ``epochs``); more trains the start of a longer run.
    schedule_epochs: int | None = None
    #: Training batches (of ``batch_size``, the same rows for every candidate) the batch-norm
    #: statistics are recomputed on before each validation; 0 keeps the running averages.
    bn_recalibration: int = 0
    device: str = "auto"
    seed: int = 0
    eval_batch_size: int = 512
    #: Random crops / flips of each training batch (``tinyevo.data.augment``), e.g. "crop+flip"; None: off.
    augment: str | None = None

    name = "training"
    provides = ("accuracy", "learning_curve", "train_seconds", "epochs", "train_rows", "train_loss",
                "stopped_early")
    timings = ("train_seconds",)

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS or self.schedule not in SCHEDULES:
            raise TinyevoError(f"optimizer must be one of {OPTIMIZERS} and schedule one of {SCHEDULES}, "
                               f"got {self.optimizer!r} and {self.schedule!r}")
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise TinyevoError(f"epochs and batch_size must be >= 1 and lr > 0, got epochs={self.epochs}, "
                               f"batch_size={self.batch_size}, lr={self.lr}")
        if not 0 < self.data_fraction <= 1:
            raise TinyevoError(f"data_fraction must be in (0, 1], got {self.data_fraction}")
        if not self.width_scale > 0:
            raise TinyevoError(f"width_scale must be positive, got {self.width_scale}")
        if self.schedule_epochs is not None and self.schedule_epochs < self.epochs:
            raise TinyevoError(f"schedule_epochs must be at least epochs ({self.epochs}), got "
                               f"{self.schedule_epochs}")
        if self.bn_recalibration < 0:
            raise TinyevoError(f"bn_recalibration must be >= 0 batches, got {self.bn_recalibration}")
        input_size(self.resolution, 8, 8)  # raises on a malformed resolution
        Augmenter.create(self.augment, 0)  # raises on a malformed augment

    # --- what the runner calls -----------------------------------------------------------------
    def evaluate(self, architecture: Architecture, context: EvalContext | None = None) -> dict:
        return self.fit(architecture, context).metrics

    def evaluate_test(self, architecture: Architecture, context: EvalContext | None = None) -> dict:
        """Train, then add ``test_accuracy``: for the final report only, never for the search."""
        trained = self.fit(architecture, context)
        return {**trained.metrics, "test_accuracy": self.accuracy(trained, "test")}

    def fit(self, architecture: Architecture, context: EvalContext | None = None) -> TrainedModel:
        """Train ``architecture``; raises EstimationFailed when it cannot be trained."""
        context = context or EvalContext()
        settings = self.with_fidelity(context)
        data = settings.data_for(architecture)
        check_fits(architecture, data)
        try:
            return settings._train(architecture, data, context)
        except EstimationFailed as error:
            message = str(error)
        except torch.cuda.OutOfMemoryError as error:
            message = f"out of memory: {first_line(error)}"
        except Exception as error:  # noqa: BLE001 -- any crash of a candidate is a failed trial
            message = f"{type(error).__name__}: {first_line(error)}"
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        raise EstimationFailed(message)

    def accuracy(self, trained: TrainedModel, part: str = "val") -> float:
        """Accuracy of a trained model on ``"val"`` or ``"test"`` of this estimator's dataset."""
        data = self.data_for(trained.architecture)
        x, y = data.split(part)
        device = next(trained.module.parameters()).device
        return evaluate_accuracy(trained.module, torch.from_numpy(x).to(device),
                                 torch.from_numpy(y).to(device), data.scale,
                                 trained.architecture.input_shape[:2], self.eval_batch_size)

    # --- pieces --------------------------------------------------------------------------------
    def with_fidelity(self, context: EvalContext) -> "TrainingEstimator":
        """A copy with the knobs of ``context.extra["fidelity"]`` (e.g. {"epochs": 2}) applied."""
        overrides = (context.extra or {}).get("fidelity") or {}
        return dataclasses.replace(self, **overrides) if overrides else self

    def data(self) -> Dataset:
        if isinstance(self.dataset, Dataset):
            return self.dataset
        return cached_dataset(self.dataset, self.data_dir, self.dataset_seed, self.dataset_options)

    def data_for(self, architecture: Architecture) -> Dataset:
        """The data as ``architecture`` reads it: the dataset, or, for a network with its own audio
        front-end (``Architecture.frontend``), the features of the dataset's raw clips
        (``tinyevo.data.featurized``, computed once per front-end setting)."""
        data = self.data()
        return data if architecture.frontend is None else featurized(data, architecture.frontend)

    def device_name(self) -> str:
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device

    def low_fidelity(self, architecture: Architecture) -> Architecture:
        """The architecture as trained: width scaled, input resized."""
        height, width = input_size(self.resolution, *architecture.input_shape[:2])
        return with_input_size(scale_width(architecture, self.width_scale), height, width)

    def training_rows(self, total: int) -> np.ndarray | None:
        """Indices of the seeded ``data_fraction`` share of the training rows (None: all of them)."""
        if self.data_fraction >= 1:
            return None
        count = max(1, int(round(self.data_fraction * total)))
        return np.sort(np.random.default_rng(self.seed).permutation(total)[:count])

    def _train(self, architecture: Architecture, data: Dataset, context: EvalContext) -> TrainedModel:
        arch = self.low_fidelity(architecture)
        seed, device = trial_seed(self.seed, context.seed), torch.device(self.device_name())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = build(arch).to(device)
        start_metrics = self.init_module(module, arch, context)
        x, y, x_val, y_val = self.tensors(data, device)
        size = arch.input_shape[:2]
        schedule_epochs = self.schedule_epochs or self.epochs
        optimizer, scheduler = self.make_optimizer(module, schedule_epochs * math.ceil(len(y) / self.batch_size))
        generator, curve, loss = torch.Generator().manual_seed(seed), [], float("nan")
        on_epoch = (context.extra or {}).get("on_epoch")
        augment = Augmenter.create(self.augment, seed)
        calibration = self.bn_calibration_inputs(x, data.scale, size)
        start = time.perf_counter()
        for epoch in range(self.epochs):
            order = torch.randperm(len(y), generator=generator).to(device)
            loss = self._train_epoch(module, x, y, order, data.scale, size, optimizer, scheduler, epoch,
                                     augment)
            if calibration:
                recalibrate_bn(module, calibration)
            curve.append(evaluate_accuracy(module, x_val, y_val, data.scale, size, self.eval_batch_size))
            if on_epoch is not None and epoch + 1 < self.epochs and on_epoch(list(curve)):
                break
        metrics = {"accuracy": curve[-1], "learning_curve": curve, "train_seconds": time.perf_counter() - start,
                   "epochs": len(curve), "train_rows": len(y), "train_loss": loss,
                   "stopped_early": len(curve) < self.epochs}
        metrics.update(start_metrics)
        return TrainedModel(module, arch, metrics)

    def bn_calibration_inputs(self, x: torch.Tensor, scale: float, size: tuple[int, int]) -> list[torch.Tensor]:
        """The first ``bn_recalibration`` batches of a seeded permutation of the training rows, as inputs."""
        if not self.bn_recalibration:
            return []
        rows = torch.from_numpy(np.random.default_rng(self.seed).permutation(len(x))
                                [:self.bn_recalibration * self.batch_size]).to(x.device)
        batches = [to_input(x[rows[i:i + self.batch_size]], scale, size) for i in range(0, len(rows), self.batch_size)]
        return [batch for batch in batches if len(batch) > 1]  # batch norm needs two rows

    def init_module(self, module: nn.Module, architecture: Architecture, context: EvalContext) -> dict:
        """Hook: change the freshly built (seeded) module before training; returns extra metrics."""
        return {}

    def tensors(self, data: Dataset, device: torch.device) -> tuple[torch.Tensor, ...]:
        """Training rows (the ``data_fraction`` share) and validation rows, stored type, on ``device``."""
        rows = self.training_rows(len(data.y_train))
        x, y = (data.x_train, data.y_train) if rows is None else (data.x_train[rows], data.y_train[rows])
        return tuple(torch.from_numpy(a).to(device) for a in (x, y, data.x_val, data.y_val))

    def _train_epoch(self, module, x, y, order, scale, size, optimizer, scheduler, epoch: int,
                     augment: Augmenter | None = None) -> float:
        """One pass over ``order``; the mean training loss. Raises EstimationFailed on a non-finite loss."""
        module.train()
        total, seen = 0.0, 0
        for step, start in enumerate(range(0, len(order), self.batch_size)):
            batch = order[start:start + self.batch_size]
            if len(batch) < 2:  # batch norm cannot train on one row
                continue
            inputs = to_input(x[batch], scale, size)
            if augment is not None:
                inputs = augment(inputs)
            loss = F.cross_entropy(module(inputs), y[batch])
            if not torch.isfinite(loss):
                raise EstimationFailed(f"loss is {loss.item()} at epoch {epoch + 1}, step {step + 1}: "
                                       f"training diverged (try a lower lr)")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total, seen = total + loss.item() * len(batch), seen + len(batch)
        return total / max(seen, 1)

    def make_optimizer(self, module: nn.Module, steps: int):
        params = module.parameters()
        if self.optimizer == "sgd":
            optimizer = torch.optim.SGD(params, self.lr, momentum=0.9, nesterov=True,
                                        weight_decay=self.weight_decay)
        else:
            kind = torch.optim.AdamW if self.optimizer == "adamw" else torch.optim.Adam
            optimizer = kind(params, self.lr, weight_decay=self.weight_decay)
        if self.schedule == "constant":
            return optimizer, None
        return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))


@torch.no_grad()
def recalibrate_bn(module: nn.Module, batches) -> None:
    """Recompute every batch norm's running statistics as the average over ``batches`` (NCHW inputs).

    Works on a supernet (its active subnet) and on any module with ``nn.BatchNorm2d`` layers."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches
    was_training = module.training
    module.train()
    try:
        for batch in batches:
            module(batch)
    finally:
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum
        module.train(was_training)


@torch.no_grad()
def evaluate_accuracy(module: nn.Module, x: torch.Tensor, y: torch.Tensor, scale: float,
                      size: tuple[int, int], batch_size: int = 512) -> float:
    """Share of rows whose arg-max prediction is the label (eval mode: batch-norm running statistics)."""
    was_training = module.training
    module.eval()
    correct = 0
    for start in range(0, len(y), batch_size):
        logits = module(to_input(x[start:start + batch_size], scale, size))
        correct += int((logits.argmax(1) == y[start:start + batch_size]).sum())
    module.train(was_training)
    return correct / len(y)


def check_fits(architecture: Architecture, data: Dataset) -> None:
    """A one-line error when the architecture cannot read the data or predict its classes."""
    channels, classes = architecture.input_shape[2], data.num_classes
    if channels != data.input_shape[2]:
        raise TinyevoError(f"the architecture reads {channels} input channel(s) but dataset {data.name!r} "
                           f"has {data.input_shape[2]}; set the search space's input_shape to "
                           f"{list(data.input_shape)}")
    if architecture.output_shape != (1, 1, classes):
        raise TinyevoError(f"the architecture outputs {list(architecture.output_shape)} but dataset "
                           f"{data.name!r} has {classes} classes; end it with a dense layer of {classes} "
                           f"units")
    if len(data.y_val) == 0:
        raise TinyevoError(f"dataset {data.name!r} has no validation rows; give it a val_size above 0")


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
