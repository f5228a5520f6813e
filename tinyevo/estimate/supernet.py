"""One-shot weight-sharing supernet for the ``mbv2`` space (Once-for-All, Cai et al. 2020; MCUNet's
TinyNAS, Lin et al. 2020), and the ``supernet`` estimator that reads subnets' accuracy from it.

``Supernet(space)`` holds the largest network of a ``MobileNetV2Space``; ``set_active(genome)``
picks a subnet, which ``forward`` runs on weights shared with every other subnet:

- elastic kernel: the centre of the largest kernel, through OFA's kernel transform matrices
  (``kernel_transform=True``, the default) or a plain crop;
- elastic expand ratio: the first channels of the largest hidden layer (OFA also sorts channels by
  importance between training phases; not done here);
- elastic depth: the first ``d`` blocks of each stage;
- elastic resolution: the caller resizes inputs to the genome's resolution;
- width: OFA and MCUNet train one supernet per width multiplier (MCUNet per chosen sub-space of
  width and resolutions): ``Supernet(space, width=0.5)`` accepts only genomes of that width.
  ``width=None`` makes the width elastic too, slimmable-network style (each layer's first
  channels), over all of ``space.widths``.

``train_supernet`` trains it with the sandwich rule (Yu et al., BigNAS / slimmable networks): per
step the largest, the smallest and ``sandwich_random`` random subnets, gradients summed, the
smaller ones distilled in place from the largest's predictions. ``recalibrate_bn`` recomputes
batch-norm statistics on a few batches before a subnet is evaluated, since the shared statistics
fit no subnet. ``extract(genome)`` gives the subnet as ``space.decode(genome)`` and a state dict
for ``tinyevo.nn.build`` of it: the inherited weights a search fine-tunes from.

A trained supernet is saved as ``NAME.npz`` (weights, no pickle) beside ``NAME.json`` (space
options, width, training settings) and reused across searches.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from tinyevo.arch import Architecture
from tinyevo.data import DEFAULT_DATASET, Dataset, load_dataset
from tinyevo.data.npz import read_arrays
from tinyevo.errors import InvalidArchitecture, TinyevoError
from tinyevo.estimate.base import ESTIMATORS, EvalContext, Estimator
from tinyevo.estimate.supernet_layers import (ConvBnAct, ElasticInvertedResidual, ElasticLinear,
                                              Exported)
from tinyevo.estimate.training import (TrainingEstimator, cached_dataset, check_fits,  # noqa: F401
                                       evaluate_accuracy, recalibrate_bn, to_input)
from tinyevo.nn import build
from tinyevo.spaces.mbv2 import (BLOCK_SLOTS, FIRST_BLOCK_CHANNELS, MAX_DEPTHS, MIX_CHANNELS,
                                 SEARCHED_STAGES, STAGE_CHANNELS, STAGE_STRIDES, STEM_CHANNELS,
                                 MobileNetV2Space, make_divisible, stage_slots)

FORMAT, VERSION = "tinyevo-supernet", 1
WEIGHTED_OPS = ("conv2d", "batch_norm", "dense")


@dataclass(frozen=True)
class ChannelPlan:
    """Output channels of each part of an mbv2 network of one width, as ``MobileNetV2Space.decode``."""

    stem: int
    first: int
    stages: tuple[int, ...]
    mix: int | None

    @classmethod
    def of(cls, width: float, feature_mix_layer: bool) -> "ChannelPlan":
        mix = (make_divisible(MIX_CHANNELS * width) if width > 1.0 else MIX_CHANNELS)
        return cls(make_divisible(STEM_CHANNELS * width), make_divisible(FIRST_BLOCK_CHANNELS * width),
                   tuple(make_divisible(c * width) for c in STAGE_CHANNELS),
                   mix if feature_mix_layer else None)

    @classmethod
    def widest(cls, plans: list["ChannelPlan"]) -> "ChannelPlan":
        mixes = [p.mix for p in plans]
        return cls(max(p.stem for p in plans), max(p.first for p in plans),
                   tuple(max(c) for c in zip(*(p.stages for p in plans))),
                   None if mixes[0] is None else max(mixes))


class Supernet(nn.Module):
    """The largest mbv2 network of ``space``; ``set_active(genome)`` chooses the subnet ``forward`` runs."""

    def __init__(self, space: MobileNetV2Space, width: float | None = None, kernel_transform: bool = True,
                 seed: int = 0):
        super().__init__()
        if not isinstance(space, MobileNetV2Space):
            raise TinyevoError(f"a supernet needs the mbv2 search space, got {type(space).__name__}")
        if width is not None and float(width) not in space.widths:
            raise TinyevoError(f"supernet width {width} is not one of the space's widths {space.widths}")
        self.space, self.kernel_transform = space, bool(kernel_transform)
        self.width, self.seed = None if width is None else float(width), int(seed)
        self.widths = space.widths if width is None else [self.width]
        self.trained_with: dict = {}
        with torch.random.fork_rng(devices=[]):  # initial weights from ``seed``, global RNG untouched
            torch.manual_seed(self.seed)
            self._build(ChannelPlan.widest([ChannelPlan.of(w, space.feature_mix_layer)
                                            for w in self.widths]))
        self.set_active(self.largest())

    def _build(self, widest: ChannelPlan) -> None:
        kernels, max_expand = self.space.kernels, max(self.space.expands)
        self.stem = ConvBnAct(self.space.input_shape[2], widest.stem, (3,), 2)
        self.first_depthwise = ConvBnAct(widest.stem, widest.stem, (3,), 1, depthwise=True)
        self.first_project = ConvBnAct(widest.stem, widest.first, act=False)
        blocks, channels = [], widest.first
        for stage, (out, stride) in enumerate(zip(widest.stages, STAGE_STRIDES)):
            for i in range(MAX_DEPTHS[stage]):
                blocks.append(ElasticInvertedResidual(channels, out, kernels, max_expand,
                                                      stride if i == 0 else 1, self.kernel_transform))
                channels = out
        self.blocks = nn.ModuleList(blocks)
        self.feature_mix = None if widest.mix is None else ConvBnAct(channels, widest.mix)
        self.classifier = ElasticLinear(widest.mix or channels, self.space.num_classes)

    # --- choosing a subnet -----------------------------------------------------------------------
    def set_active(self, genome: dict) -> "Supernet":
        """Run the subnet of ``genome`` from now on; a one-line TinyevoError if it is not in here."""
        self.check(genome)
        self.active = {key: (list(v) if isinstance(v, list) else v) for key, v in genome.items()}
        self._steps = self.steps(self.active)
        return self

    def check(self, genome: dict) -> None:
        try:
            self.space.check(genome)
        except InvalidArchitecture as error:
            raise TinyevoError(f"genome not in this supernet's space: {error}") from None
        if genome["width"] not in self.widths:
            raise TinyevoError(f"this supernet was built for width(s) {self.widths}, the genome has "
                               f"width {genome['width']}; train a supernet for that width")

    def steps(self, genome: dict) -> list[tuple[nn.Module, dict]]:
        """(layer, its settings) of the subnet's layers before the classifier, in execution order."""
        plan = ChannelPlan.of(genome["width"], self.space.feature_mix_layer)
        steps = [(self.stem, dict(out_channels=plan.stem, kernel=3)),
                 (self.first_depthwise, dict(out_channels=plan.stem, kernel=3)),
                 (self.first_project, dict(out_channels=plan.first, kernel=1))]
        for stage, depth in enumerate([*genome["depth"], MAX_DEPTHS[-1]]):
            for slot in stage_slots(stage)[:depth]:
                steps.append((self.blocks[slot], dict(out_channels=plan.stages[stage],
                                                      kernel=genome["kernel"][slot],
                                                      expand=genome["expand"][slot])))
        if self.feature_mix is not None:
            steps.append((self.feature_mix, dict(out_channels=plan.mix, kernel=1)))
        return steps

    def largest(self) -> dict:
        return self._extreme(max)

    def smallest(self) -> dict:
        return self._extreme(min)

    def _extreme(self, pick) -> dict:
        space = self.space
        return {"resolution": pick(space.resolutions), "width": pick(self.widths),
                "depth": [pick(space.depths)] * SEARCHED_STAGES,
                "kernel": [pick(space.kernels)] * BLOCK_SLOTS, "expand": [pick(space.expands)] * BLOCK_SLOTS}

    def sample(self, rng: np.random.Generator) -> dict:
        """A uniformly random subnet of this supernet."""
        genome = self.space.sample(rng)
        genome["width"] = self.widths[int(rng.integers(len(self.widths)))]
        return genome

    # --- running and extracting ------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the active subnet; ``x`` is NCHW at the genome's resolution."""
        for layer, settings in self._steps:
            x = layer(x, **settings)
        return self.classifier(x.mean(dim=(2, 3)))

    def export(self, genome: dict) -> Exported:
        """The subnet's weights as (op, {name: tensor}) in execution order."""
        self.check(genome)
        layers, channels = [], self.space.input_shape[2]
        for layer, settings in self.steps(genome):
            layers += layer.export(channels, **settings)
            channels = settings["out_channels"]
        return layers + self.classifier.export(channels)

    def extract(self, genome: dict) -> tuple[Architecture, dict[str, torch.Tensor]]:
        """``space.decode(genome)`` and the state dict, inherited weights, of ``tinyevo.nn.build`` of it.

        Batch-norm statistics are copied as they are: ``recalibrate_bn`` the active subnet first."""
        arch = self.space.decode(genome)
        nodes = [n for n in arch.live_nodes() if n.op in WEIGHTED_OPS]
        layers = self.export(genome)
        if [n.op for n in nodes] != [op for op, _ in layers]:
            raise RuntimeError("supernet and mbv2 decode disagree on the subnet's layers")
        return arch, {f"layers.{node.name}.{key}": value.detach().clone()
                      for node, (_, tensors) in zip(nodes, layers) for key, value in tensors.items()}

    def subnet_module(self, genome: dict) -> nn.Module:
        """A standalone ``tinyevo.nn`` module of the subnet with its inherited weights."""
        arch, state = self.extract(genome)
        module = build(arch).to(self.classifier.linear.weight.device)
        module.load_state_dict(state)
        return module

    # --- storing ---------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write ``path`` as NAME.npz (weights) and NAME.json (how to rebuild it); returns the .npz."""
        weights = Path(path).with_suffix(".npz")
        weights.parent.mkdir(parents=True, exist_ok=True)
        np.savez(weights, **{k: v.detach().cpu().numpy() for k, v in self.state_dict().items()})
        meta = {"format": FORMAT, "version": VERSION, "space": self.space.options(), "width": self.width,
                "kernel_transform": self.kernel_transform, "seed": self.seed, "training": self.trained_with}
        weights.with_suffix(".json").write_text(json.dumps(meta, indent=2, default=str))
        return weights

    @classmethod
    def load(cls, path, device: str = "cpu") -> "Supernet":
        """A supernet written by ``save`` (give the .npz or the .json)."""
        weights = Path(path).with_suffix(".npz")
        sidecar = weights.with_suffix(".json")
        if not weights.is_file() or not sidecar.is_file():
            raise TinyevoError(f"no supernet at {str(weights)!r}: it needs {weights.name} and "
                               f"{sidecar.name}; train one with train_supernet and save it")
        meta = json.loads(sidecar.read_text())
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise TinyevoError(f"{sidecar} is not a {FORMAT} version {VERSION} file")
        net = cls(MobileNetV2Space(**meta["space"]), meta["width"], meta["kernel_transform"], meta["seed"])
        net.load_state_dict({key: torch.from_numpy(array)
                             for key, array in read_arrays(weights, "supernet weights file").items()})
        net.trained_with = meta.get("training", {})
        return net.to(device)


# --- training --------------------------------------------------------------------------------------
@dataclass
class SupernetTraining:
    """Settings of ``train_supernet`` (stored in the supernet's JSON sidecar)."""

    epochs: int = 5
    batch_size: int = 64
    lr: float = 3e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    #: Random subnets per step besides the largest and the smallest (the sandwich rule).
    sandwich_random: int = 2
    #: In-place distillation: smaller subnets learn the largest's soft predictions (BigNAS).
    distill: bool = True
    data_fraction: float = 1.0
    seed: int = 0
    device: str = "auto"


def train_supernet(supernet: Supernet, dataset: Dataset | str = DEFAULT_DATASET,
                   settings: SupernetTraining | None = None, progress: bool = True, **overrides) -> dict:
    """Train with the sandwich rule; ``overrides`` are ``SupernetTraining`` fields (``epochs=3``).

    Returns {"seconds", "epochs", "loss_largest", "loss_smallest"} (mean loss per epoch)."""
    settings = dataclasses.replace(settings or SupernetTraining(), **overrides)
    data = load_dataset(dataset) if isinstance(dataset, str) else dataset
    trainer = TrainingEstimator(epochs=settings.epochs, batch_size=settings.batch_size, lr=settings.lr,
                                optimizer=settings.optimizer, weight_decay=settings.weight_decay,
                                data_fraction=settings.data_fraction, seed=settings.seed,
                                device=settings.device)
    device = torch.device(trainer.device_name())
    supernet.to(device).train()
    x, y, _, _ = trainer.tensors(data, device)
    steps = math.ceil(len(y) / settings.batch_size)
    optimizer, scheduler = trainer.make_optimizer(supernet, settings.epochs * steps)
    rng, generator = np.random.default_rng(settings.seed), torch.Generator().manual_seed(settings.seed)
    history, start = {"loss_largest": [], "loss_smallest": []}, time.perf_counter()
    bar = tqdm(total=settings.epochs * steps, desc="supernet", disable=not progress, leave=False)
    for _ in range(settings.epochs):
        order, losses = torch.randperm(len(y), generator=generator).to(device), []
        for first in range(0, len(y), settings.batch_size):
            batch = order[first:first + settings.batch_size]
            if len(batch) > 1:  # batch norm cannot train on one row
                losses.append(sandwich_step(supernet, x[batch], y[batch], data.scale, rng, settings))
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
            bar.update()
        for key, column in zip(history, zip(*losses)):
            history[key].append(float(np.mean(column)))
    bar.close()
    result = {"seconds": time.perf_counter() - start, "epochs": settings.epochs, **history}
    supernet.trained_with = {**dataclasses.asdict(settings), "dataset": data.name, **result}
    supernet.set_active(supernet.largest())
    return result


def sandwich_step(supernet: Supernet, x: torch.Tensor, y: torch.Tensor, scale: float,
                  rng: np.random.Generator, settings: SupernetTraining) -> tuple[float, float]:
    """Gradients of the largest, smallest and random subnets on one batch (not yet applied).

    Returns the losses of the largest and of the smallest subnet."""
    supernet.zero_grad(set_to_none=True)
    genomes = [supernet.largest(), supernet.smallest()]
    genomes += [supernet.sample(rng) for _ in range(settings.sandwich_random)]
    teacher, losses = None, []
    for genome in genomes:
        supernet.set_active(genome)
        size = (genome["resolution"], genome["resolution"])
        logits = supernet(to_input(x, scale, size))
        target = y if teacher is None or not settings.distill else teacher
        loss = F.cross_entropy(logits, target)
        if not torch.isfinite(loss):
            raise TinyevoError(f"supernet training diverged (loss {loss.item()}); lower lr "
                               f"(now {settings.lr})")
        loss.backward()
        teacher = logits.detach().softmax(1) if teacher is None else teacher
        losses.append(loss.item())
    return losses[0], losses[1]


# --- the estimator ---------------------------------------------------------------------------------
_SUPERNETS: dict[tuple, Supernet] = {}


def cached_supernet(path, device: str) -> Supernet:
    """``Supernet.load`` once per process for each (file, its modification time, device)."""
    weights = Path(path).expanduser().resolve().with_suffix(".npz")
    key = (str(weights), weights.stat().st_mtime_ns if weights.exists() else 0, device)
    if key not in _SUPERNETS:
        _SUPERNETS[key] = Supernet.load(weights, device).eval()
    return _SUPERNETS[key]


@ESTIMATORS.register("supernet")
@dataclass
class SupernetEstimator(Estimator):
    """Validation accuracy of a subnet with inherited weights, after batch-norm recalibration.

    Holds only settings (picklable); the supernet and the dataset load on first use, once per process."""

    supernet_path: str = "supernet.npz"
    dataset: str | Dataset = DEFAULT_DATASET
    data_dir: str | None = None
    dataset_seed: int = 0
    dataset_options: dict = field(default_factory=dict)
    #: Training batches the batch-norm statistics are recomputed on (the same ones for every subnet).
    calibration_batches: int = 4
    batch_size: int = 64
    #: Validation rows read (the first ones); None reads them all.
    val_rows: int | None = None
    eval_batch_size: int = 512
    seed: int = 0
    device: str = "cpu"

    name = "supernet"
    provides = ("accuracy", "seconds")
    needs = ("genome",)
    timings = ("seconds",)

    def evaluate(self, architecture: Architecture, context: EvalContext | None = None) -> dict:
        start = time.perf_counter()
        if context is None or context.genome is None:
            raise TinyevoError("the supernet estimator needs each candidate's mbv2 genome in the context")
        net, data = cached_supernet(self.supernet_path, self.device), self.data()
        check_fits(architecture, data)
        net.set_active(context.genome)
        if architecture.fingerprint() != net.space.decode(context.genome).fingerprint():
            raise TinyevoError("the genome decodes to another network in the supernet's space; search "
                               f"the space it was trained for: {net.space.options()}")
        size = (context.genome["resolution"],) * 2
        recalibrate_bn(net, [to_input(batch, data.scale, size) for batch in self.calibration_rows(data)])
        x_val, y_val = (torch.from_numpy(a[:self.val_rows]).to(self.device) for a in data.split("val"))
        accuracy = evaluate_accuracy(net, x_val, y_val, data.scale, size, self.eval_batch_size)
        return {"accuracy": accuracy, "seconds": time.perf_counter() - start}

    def calibration_rows(self, data: Dataset) -> list[torch.Tensor]:
        """``calibration_batches`` batches of a seeded permutation of the training rows."""
        order = np.random.default_rng(self.seed).permutation(len(data.y_train))
        rows = np.sort(order[:self.calibration_batches * self.batch_size])
        x = torch.from_numpy(data.x_train[rows]).to(self.device)
        batches = [x[i:i + self.batch_size] for i in range(0, len(x), self.batch_size)]
        return [batch for batch in batches if len(batch) > 1]  # batch norm needs two rows

    def data(self) -> Dataset:
        if isinstance(self.dataset, Dataset):
            return self.dataset
        return cached_dataset(self.dataset, self.data_dir, self.dataset_seed, self.dataset_options)
