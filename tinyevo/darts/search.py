"""``DartsSearch``: the one-shot DARTS pipeline on the nb201 or mbv2 space, resumable epoch by epoch.

It trains the relaxed network of a *proxy* of the target space (``channels`` and ``cells_per_stage``
of its own, as Liu et al. search 8 cells of 16 channels and train 20 of 36), bilevel on two halves
of the training rows, applies the chosen remedy, and discretizes to a cell string of the target
space. On mbv2 (``relaxed_mbv2``) it searches kernels, expand ratios and depths at one width and
resolution (``width``, ``resolution``). The hardware penalty is the expected cost of the *target* space's network, the one that will
be trained, exported and flashed.

After every epoch the whole state (weights, ``alpha``, masks, both optimizers, history) is written
to one ``.npz`` file in the run folder, atomically; a rerun resumes after its last epoch. The data
order of epoch ``e`` is a permutation seeded by (seed, e), and the initial weights come from
``seed``: the same seed gives the same cell.
"""
from __future__ import annotations

import dataclasses
import io
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tinyevo.darts.bilevel import CostPenalty, alpha_step, cosine_lr, weight_step
from tinyevo.darts.expected_cost import expected_cost
from tinyevo.darts.expected_cost_mbv2 import expected_cost_mbv2
from tinyevo.darts.relaxed_mbv2 import RelaxedMbv2
from tinyevo.darts.relaxed_nb201 import RelaxedNb201, skip_count
from tinyevo.darts.remedies import REMEDIES, accuracy, perturbation_select, shrink
from tinyevo.data import Dataset
from tinyevo.errors import TinyevoError
from tinyevo.estimate.training import to_input
from tinyevo.hardware.limits import Constraints
from tinyevo.runs.layout import atomic_write
from tinyevo.spaces.mbv2 import MobileNetV2Space
from tinyevo.spaces.nb201 import NB201_OPS, NasBench201Space

CHECKPOINT_FILE = "darts_checkpoint.npz"
FORMAT, VERSION = "tinyevo-darts", 1


@dataclass
class DartsSettings:
    """Options of ``--strategy darts`` (``strategy_options``); see the README's strategy list."""

    epochs: int = 10
    order: int = 1  # 1: first-order DARTS, 2: second-order (finite-difference Hessian-vector product)
    batch_size: int = 64
    channels: int | None = None  # proxy network's channels (None: the space's)
    cells_per_stage: int | None = None  # proxy network's cells per stage (None: the space's)
    data_fraction: float = 1.0  # share of the training rows searched on (half w, half alpha)
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    grad_clip: float = 5.0
    alpha_lr: float = 3e-4
    alpha_weight_decay: float = 1e-3
    remedy: str = "none"  # none | early_stop | shrink | perturbation
    #: Epochs that train the weights ``w`` only before ``alpha`` is updated at all (a warm-up, as
    #: many DARTS variants have: untrained convolutions otherwise lose early to parameter-free ops).
    warmup_epochs: int = 0
    #: nb201: never discretize an edge to ``none`` (Liu et al. 2019, section 2.4: the zero op is
    #: excluded when the cell is derived; the NB201 paper's DARTS keeps it as a candidate).
    exclude_none: bool = False
    max_skips: int = 2  # early_stop: stop at this many skip-connections in the cell
    shrink_every: int | None = None  # shrink: epochs between drops (None: spread over the search)
    shrink_to: int = 2  # shrink: ops left per edge
    tune_steps: int = 20  # perturbation: weight steps between edges
    cost_weight: float = 1.0  # hardware penalty's weight (0: off; on only when limits are set)
    cost_margin: float = 0.05  # the penalty starts at (1 - margin) x each limit
    width: float | None = None  # mbv2: the width searched at (None: the space's first)
    resolution: int | None = None  # mbv2: the resolution searched at (None: the space's first)

    def __post_init__(self):
        if self.remedy not in REMEDIES:
            raise TinyevoError(f"darts remedy must be one of {', '.join(REMEDIES)}, got {self.remedy!r}")
        if self.order not in (1, 2):
            raise TinyevoError(f"darts order must be 1 (first order) or 2 (second order), got {self.order!r}")
        for name in ("epochs", "batch_size", "max_skips", "shrink_to"):
            if int(getattr(self, name)) < 1:
                raise TinyevoError(f"darts {name} must be at least 1, got {getattr(self, name)}")
        if int(self.warmup_epochs) < 0 or int(self.warmup_epochs) >= int(self.epochs):
            raise TinyevoError(f"darts warmup_epochs must be at least 0 and below epochs "
                               f"({self.epochs}), got {self.warmup_epochs}")
        if not 0 < self.data_fraction <= 1:
            raise TinyevoError(f"darts data_fraction must be in (0, 1], got {self.data_fraction}")

    @classmethod
    def from_options(cls, options: dict) -> "DartsSettings":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TinyevoError(f"unknown darts option {unknown[0]!r}; known: {', '.join(sorted(known))}")
        return cls(**options)


@dataclass
class DartsResult:
    genome: str
    accuracy: float  # the relaxed network's accuracy on the alpha half, after the search
    epochs: int  # epochs trained (fewer when early stopping stopped the search)
    seconds: float  # search CPU (process) seconds over all sessions of the run
    history: list
    selection: list


def check_space(space, settings: DartsSettings) -> None:
    """A one-line TinyevoError unless DARTS can relax ``space`` with ``settings``."""
    if isinstance(space, MobileNetV2Space):
        if settings.remedy != "none" or settings.channels or settings.cells_per_stage:
            raise TinyevoError("darts on mbv2 takes no remedy, channels or cells_per_stage (nb201 "
                               "options); drop them, or search --space nb201")
        width = space.widths[0] if settings.width is None else float(settings.width)
        resolution = space.resolutions[0] if settings.resolution is None else int(settings.resolution)
        if width not in space.widths or resolution not in space.resolutions:
            raise TinyevoError(f"darts width {width} / resolution {resolution} must be among the mbv2 "
                               f"space's widths {space.widths} and resolutions {space.resolutions}")
    elif not isinstance(space, NasBench201Space):
        raise TinyevoError(f"--strategy darts searches the nb201 and mbv2 spaces; got space "
                           f"{space.name!r}: use --space nb201 or --space mbv2")


def relaxation(space, settings: DartsSettings, seed: int):
    """(relaxed network, its expected cost function, input size) for ``space``."""
    check_space(space, settings)
    if isinstance(space, NasBench201Space):
        proxy = NasBench201Space(space.input_shape, space.num_classes, settings.channels or space.channels,
                                 settings.cells_per_stage or space.cells_per_stage)
        return (RelaxedNb201(proxy), lambda net: expected_cost(space, net.edge_weights()),
                tuple(space.input_shape[:2]))
    width = space.widths[0] if settings.width is None else float(settings.width)
    resolution = space.resolutions[0] if settings.resolution is None else int(settings.resolution)
    net = RelaxedMbv2(space, width, resolution, seed)
    return (net, lambda n: expected_cost_mbv2(space, width, resolution, n.choice_weights()),
            (resolution, resolution))


class DartsSearch:
    """``DartsSearch(space, data, settings, seed, constraints, run_dir).run()`` -> ``DartsResult``."""

    def __init__(self, space, data: Dataset, settings: DartsSettings, seed: int = 0,
                 constraints: Constraints | None = None, run_dir: str | Path | None = None,
                 progress: bool = True):
        self.space, self.data, self.settings, self.seed = space, data, settings, int(seed)
        self.run_dir, self.progress = (None if run_dir is None else Path(run_dir)), progress
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.net, cost_of, self.input_size = relaxation(space, settings, self.seed)
        if settings.exclude_none:
            if not isinstance(space, NasBench201Space):
                raise TinyevoError("darts exclude_none is an nb201 option (mbv2 has no none op)")
            self.net.exclude_none = True
        self.penalty = CostPenalty(cost_of, constraints, settings.cost_weight, settings.cost_margin)
        self.is_cell = isinstance(space, NasBench201Space)
        s = settings
        self.w_opt = torch.optim.SGD(self.net.weight_parameters(), lr=s.w_lr, momentum=s.w_momentum,
                                     weight_decay=s.w_weight_decay)
        self.alpha_opt = torch.optim.Adam(self.net.arch_parameters(), lr=s.alpha_lr, betas=(0.5, 0.999),
                                          weight_decay=s.alpha_weight_decay)
        self.state = {"epoch": 0, "history": [], "stopped": False, "kept_alpha": None, "seconds": 0.0,
                      "selection": None}
        self.halves = self.split()

    def log(self, message: str) -> None:
        if self.progress:
            print(f"darts: {message}", file=sys.stderr, flush=True)

    # --- data ----------------------------------------------------------------------------------
    def split(self) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """The two halves of the (``data_fraction`` share of the) training rows: for w, for alpha."""
        x, y = self.data.split("train")
        rows = np.random.default_rng(self.seed).permutation(len(y))
        rows = rows[:max(4, int(round(len(y) * self.settings.data_fraction)))]
        size = self.input_size
        half = len(rows) // 2
        parts = []
        for chosen in (np.sort(rows[:half]), np.sort(rows[half:])):
            inputs = to_input(torch.from_numpy(x[chosen]), self.data.scale, size)
            parts.append((inputs, torch.from_numpy(y[chosen]).long()))
        return parts[0], parts[1]

    def batches(self, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Index batches of both halves for ``epoch``, seeded by (seed, epoch)."""
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        orders = [torch.randperm(len(h[1]), generator=generator) for h in self.halves]
        n, size = min(len(o) for o in orders), self.settings.batch_size
        return [(orders[0][i:i + size], orders[1][i:i + size]) for i in range(0, n, size)
                if len(orders[0][i:i + size]) > 1]

    # --- the search ----------------------------------------------------------------------------
    def run(self) -> DartsResult:
        self.load()
        s = self.settings
        while self.state["epoch"] < s.epochs and not self.state["stopped"]:
            start = time.process_time()
            record = self.epoch(self.state["epoch"])
            self.state["epoch"] += 1
            self.after_epoch(record)
            self.state["seconds"] += time.process_time() - start
            self.save()
        if self.state["selection"] is None:
            start = time.process_time()
            self.state["selection"] = self.select()
            self.state["seconds"] += time.process_time() - start
            self.save()
        genome = self.net.genome()
        self.log(f"discretized: {self.space.describe(genome)}, {self.state['seconds']:.1f} CPU s")
        final_acc = self.state["history"][-1]["alpha_accuracy"] if self.state["history"] else 0.0
        return DartsResult(genome, final_acc, self.state["epoch"], self.state["seconds"],
                           self.state["history"], self.state["selection"])

    def epoch(self, epoch: int) -> dict:
        s, net = self.settings, self.net
        lr = cosine_lr(epoch, s.epochs, s.w_lr, s.w_lr_min)
        for group in self.w_opt.param_groups:
            group["lr"] = lr
        net.train()
        (xw, yw), (xa, ya) = self.halves
        losses, alpha_losses, correct = [], [], []
        warmup = epoch < s.warmup_epochs
        for rows_w, rows_a in self.batches(epoch):
            batch_w, batch_a = (xw[rows_w], yw[rows_w]), (xa[rows_a], ya[rows_a])
            if not warmup:
                loss_a, acc = alpha_step(net, self.alpha_opt, batch_w, batch_a, self.penalty, s.order,
                                         lr, s.w_weight_decay)
                alpha_losses.append(loss_a)
                correct.append(acc)
            losses.append(weight_step(net, self.w_opt, *batch_w, s.grad_clip))
        genome = net.genome()
        record = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)),
                  "alpha_loss": float(np.mean(alpha_losses)) if not warmup else None,
                  "alpha_accuracy": float(np.mean(correct)) if not warmup else None,
                  "genome": genome}
        if self.is_cell:
            record["skips"] = skip_count(genome)
        if self.penalty.active:
            record["expected_cost"] = self.penalty.expected(net)
        skips = f"skips {record['skips']}  " if self.is_cell else ""
        val = ("warm-up (w only)" if warmup else f"val loss {record['alpha_loss']:.3f}  val acc "
               f"{record['alpha_accuracy']:.3f}")
        self.log(f"epoch {epoch + 1}/{s.epochs}  train loss {record['train_loss']:.3f}  {val}  {skips}"
                 f"{self.space.describe(genome)}")
        return record

    def after_epoch(self, record: dict) -> None:
        """The remedies that act between epochs: early stopping, shrinking."""
        s, state = self.settings, self.state
        state["history"].append(record)
        if s.remedy == "early_stop" and state["epoch"] > s.warmup_epochs:  # alpha has moved
            if record["skips"] >= s.max_skips:
                state["stopped"] = True
                if state["kept_alpha"] is not None:
                    with torch.no_grad():
                        self.net.alpha.copy_(torch.tensor(state["kept_alpha"]))
                self.log(f"early stop (DARTS+): {record['skips']} skip-connections >= {s.max_skips}; "
                         f"keeping the cell {self.net.genome()}")
            else:
                state["kept_alpha"] = self.net.alpha.detach().tolist()
        if s.remedy == "shrink" and state["epoch"] % self.shrink_every() == 0:
            dropped = shrink(self.net, s.shrink_to)
            if dropped:
                self.log(f"shrink: dropped {', '.join(dropped)}")

    def shrink_every(self) -> int:
        s = self.settings
        return s.shrink_every or max(1, s.epochs // max(1, len(NB201_OPS) - s.shrink_to))

    def select(self) -> list:
        """Perturbation-based selection when asked for (it fixes ``op_mask``); else nothing to do."""
        if self.settings.remedy != "perturbation":
            return []
        s, net = self.settings, self.net
        rng = np.random.default_rng(self.seed)
        generator = torch.Generator().manual_seed(self.seed)
        (xw, yw), (xa, ya) = self.halves

        def tune():
            net.train()
            for _ in range(s.tune_steps):
                rows = torch.randint(len(yw), (s.batch_size,), generator=generator)
                weight_step(net, self.w_opt, xw[rows], yw[rows], s.grad_clip)

        return perturbation_select(net, (xa, ya), tune, 256, rng, self.log, s.exclude_none)

    # --- checkpoints -----------------------------------------------------------------------------
    def checkpoint_path(self) -> Path | None:
        return None if self.run_dir is None else self.run_dir / CHECKPOINT_FILE

    def save(self) -> None:
        path = self.checkpoint_path()
        if path is None:
            return
        arrays = {f"model/{k}": v.detach().cpu().numpy() for k, v in self.net.state_dict().items()}
        groups = {}
        for name, optimizer in (("w_opt", self.w_opt), ("alpha_opt", self.alpha_opt)):
            state = optimizer.state_dict()
            groups[name] = state["param_groups"]
            for index, values in state["state"].items():
                for key, value in values.items():
                    arrays[f"{name}/{index}/{key}"] = torch.as_tensor(value).cpu().numpy()
        meta = {"format": FORMAT, "version": VERSION, "settings": dataclasses.asdict(self.settings),
                "seed": self.seed, "state": self.state, "param_groups": groups}
        arrays["meta"] = np.array(json.dumps(meta))
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, buffer.getvalue())

    def load(self) -> None:
        path = self.checkpoint_path()
        if path is None or not path.is_file():
            return
        with np.load(path, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
        meta = json.loads(str(arrays.pop("meta")))
        if meta.get("format") != FORMAT or meta["settings"] != dataclasses.asdict(self.settings) \
                or meta["seed"] != self.seed:
            raise TinyevoError(f"{path} holds a DARTS search with other settings; rerun with the same "
                               f"settings to resume, or give another --out")
        self.net.load_state_dict({k[6:]: torch.from_numpy(v) for k, v in arrays.items()
                                  if k.startswith("model/")})
        for name, optimizer in (("w_opt", self.w_opt), ("alpha_opt", self.alpha_opt)):
            state: dict = {}
            for key, value in arrays.items():
                if key.startswith(name + "/"):
                    _, index, field = key.split("/")
                    state.setdefault(int(index), {})[field] = torch.from_numpy(value)
            optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"][name]})
        self.state = meta["state"]
        self.log(f"resuming after epoch {self.state['epoch']} from {path}")
