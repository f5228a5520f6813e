"""Stage 1 of TinyNAS: search-space optimization (Lin et al. 2020, MCUNet, section 3.1).

MCUNet scales the ``mbv2`` space by a width multiplier W and an input resolution R and asks which
(W, R) sub-space to search for a board. It samples models of each sub-space at random, keeps the
ones that satisfy the memory limits, and compares the cumulative distribution (CDF) of their MACs
(FLOPs): the sub-space whose satisfying models compute the most has the most capacity within the
budget and, as the paper shows, yields the most accurate models. The choice is the highest mean
MACs of the satisfying models; a sub-space with none is never chosen.

``optimize_search_space`` works on any candidate spaces (a dict label -> ``SearchSpace``) and any
``cost(space, genome) -> dict`` (with ``macs``, ``peak_sram_bytes``, ``flash_bytes``), so it is
tested on toy spaces whose answer is known; ``mbv2_sub_spaces`` gives MCUNet's grid of candidates.
``plot_cdfs`` draws Figure 3 of the paper: one MACs CDF per candidate sub-space.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from tinyevo.errors import TinyevoError
from tinyevo.run.constraints import Constraints
from tinyevo.spaces.base import SearchSpace
from tinyevo.spaces.mbv2 import MobileNetV2Space

CostFunction = Callable[[SearchSpace, dict], dict]


@dataclass
class SubSpaceStats:
    """What the random sample of one sub-space says: how many models fit and how much they compute."""

    label: str
    options: dict  # what identifies the sub-space, e.g. {"width": 0.3, "resolution": 96}
    sampled: int
    macs: list[int] = field(default_factory=list)  # MACs of the satisfying models, sorted
    peak_sram_bytes: list[int] = field(default_factory=list)  # of the satisfying models

    @property
    def satisfying(self) -> int:
        return len(self.macs)

    @property
    def satisfying_share(self) -> float:
        return self.satisfying / self.sampled if self.sampled else 0.0

    @property
    def mean_macs(self) -> float | None:
        """Mean MACs of the satisfying models (None when none satisfies the limits)."""
        return float(np.mean(self.macs)) if self.macs else None

    def summary(self) -> dict:
        return {"label": self.label, **self.options, "sampled": self.sampled,
                "satisfying": self.satisfying, "satisfying_share": self.satisfying_share,
                "mean_macs": self.mean_macs, "max_macs": max(self.macs, default=None)}


@dataclass
class SpaceOptimization:
    """Every candidate's statistics and the chosen sub-space (a label of ``stats``)."""

    stats: list[SubSpaceStats]
    chosen: str
    limits: dict

    def chosen_stats(self) -> SubSpaceStats:
        return next(s for s in self.stats if s.label == self.chosen)

    def to_json(self) -> dict:
        return {"chosen": self.chosen, "chosen_options": self.chosen_stats().options,
                "limits": self.limits, "candidates": [asdict(s) for s in self.stats]}

    @classmethod
    def from_json(cls, data: dict) -> "SpaceOptimization":
        return cls([SubSpaceStats(**s) for s in data["candidates"]], data["chosen"], data["limits"])

    def save(self, path: Path) -> None:
        partial = Path(path).with_name(Path(path).name + ".part")
        partial.write_text(json.dumps(self.to_json(), indent=1))
        partial.replace(path)


# --- the candidates ----------------------------------------------------------------------------
def mbv2_sub_spaces(space: MobileNetV2Space, widths=None, resolutions=None) -> dict[str, MobileNetV2Space]:
    """MCUNet's grid: one ``mbv2`` space per (width, resolution), the other options of ``space`` kept.

    Labels read ``w0.3-r96``; ``widths`` and ``resolutions`` default to the space's own."""
    grid = {}
    for width in widths if widths is not None else space.widths:
        for resolution in resolutions if resolutions is not None else space.resolutions:
            options = {**space.options(), "widths": [float(width)], "resolutions": [int(resolution)]}
            grid[sub_space_label(width, resolution)] = MobileNetV2Space(**options)
    if not grid:
        raise TinyevoError("stage 1 needs at least one width and one resolution")
    return grid


def sub_space_label(width: float, resolution: int) -> str:
    return f"w{float(width):g}-r{int(resolution)}"


def sub_space_options(space: SearchSpace) -> dict:
    """The (width, resolution) of a one-width, one-resolution mbv2 space; {} for other spaces."""
    widths, resolutions = getattr(space, "widths", []), getattr(space, "resolutions", [])
    if len(widths) == 1 and len(resolutions) == 1:
        return {"width": widths[0], "resolution": resolutions[0]}
    return {}


def model_cost(board=None, cost_model=None) -> CostFunction:
    """``cost(space, genome)``: the cost model (default ``deployed_cost``) of the decoded genome."""
    if cost_model is None:
        from tinyevo.tinynas.cost import deployed_cost
        cost_model = deployed_cost

    def cost(space: SearchSpace, genome) -> dict:
        figures = cost_model(space.decode(genome), board)
        return figures if isinstance(figures, dict) else figures.to_dict()
    return cost


# --- sampling and choosing ---------------------------------------------------------------------
#: Stage 1 keeps its progress every this many models (``optimize_search_space``'s ``checkpoint``).
CHECKPOINT_EVERY = 20
#: What stage 1 has done of one sub-space: models drawn, (MACs, peak SRAM) of those that fit, and
#: the generator's state after them, so that a resumed sample draws exactly the models still to come.
Progress = dict


def sample_sub_space(label: str, space: SearchSpace, samples: int, rng: np.random.Generator,
                     constraints: Constraints, cost: CostFunction, start: Progress | None = None,
                     checkpoint: Callable[[Progress], None] | None = None,
                     tick: Callable[[], None] | None = None) -> SubSpaceStats:
    """Draw ``samples`` random models of ``space``; keep the MACs of those within ``constraints``.
    ``start``: the progress of an interrupted sample to go on from; ``checkpoint`` gets the progress
    every ``CHECKPOINT_EVERY`` models and at the end."""
    kept = [tuple(pair) for pair in (start or {}).get("kept", [])]
    drawn = int((start or {}).get("drawn", 0))
    if start:
        rng.bit_generator.state = start["rng"]
    while drawn < samples:
        figures = cost(space, space.sample(rng))
        drawn += 1
        if constraints.violation(figures) == 0:
            kept.append((int(figures["macs"]), int(figures["peak_sram_bytes"])))
        if tick:
            tick()
        if checkpoint and (drawn % CHECKPOINT_EVERY == 0 or drawn == samples):
            checkpoint({"drawn": drawn, "kept": [list(k) for k in kept], "rng": rng.bit_generator.state})
    kept.sort()
    stats = SubSpaceStats(label, sub_space_options(space), samples)
    stats.macs = [m for m, _ in kept]
    stats.peak_sram_bytes = [p for _, p in kept]
    return stats


def choose_sub_space(stats: list[SubSpaceStats]) -> str:
    """The label with the highest mean MACs among satisfying models (ties: the larger satisfying
    share, then the first listed). A one-line error when no sub-space has a satisfying model."""
    candidates = [s for s in stats if s.satisfying]
    if not candidates:
        raise TinyevoError("no sampled model of any sub-space fits the memory limits; loosen "
                           "--max-sram / --max-flash, or add smaller widths or resolutions")
    order = {s.label: i for i, s in enumerate(stats)}
    return max(candidates, key=lambda s: (s.mean_macs, s.satisfying_share, -order[s.label])).label


def optimize_search_space(candidates: dict[str, SearchSpace], constraints: Constraints,
                          cost: CostFunction, samples: int = 1000, seed: int = 0,
                          progress: bool = False, partial: dict[str, Progress] | None = None,
                          checkpoint: Callable[[dict[str, Progress]], None] | None = None
                          ) -> SpaceOptimization:
    """Stage 1: sample each candidate space, choose by the FLOPs-CDF heuristic.

    Each candidate gets its own seeded generator (from ``seed`` and its position), so adding a
    candidate does not change the sample of the others. ``partial`` ({label: progress}) is what an
    interrupted stage 1 had done, ``checkpoint`` is handed that record as it grows: resumed from
    it, stage 1 gives what an uninterrupted one gives."""
    if samples < 1:
        raise TinyevoError(f"stage 1 needs at least one sample per sub-space, got {samples}")
    partial = dict(partial or {})
    stats = []
    bar = tqdm(total=len(candidates) * samples, desc="stage 1", unit="model", disable=not progress,
               leave=False, initial=sum(int(p.get("drawn", 0)) for p in partial.values()))
    for index, (label, space) in enumerate(candidates.items()):
        rng = np.random.default_rng([int(seed), index])

        def keep(state: Progress, label: str = label) -> None:
            partial[label] = state
            if checkpoint:
                checkpoint(partial)
        stats.append(sample_sub_space(label, space, samples, rng, constraints, cost,
                                      start=partial.get(label), checkpoint=keep,
                                      tick=lambda: bar.update(1)))
    bar.close()
    return SpaceOptimization(stats, choose_sub_space(stats), constraints.to_dict())


# --- Figure 3 ----------------------------------------------------------------------------------
def plot_cdfs(result: SpaceOptimization, path: str | Path, title: str = "", top: int = 8) -> Path:
    """MCUNet Figure 3: the MACs CDF of the satisfying models of each candidate sub-space.

    The ``top`` sub-spaces by mean MACs are drawn in colour and named in the legend (the chosen one
    thick), the others in grey."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranked = sorted((s for s in result.stats if s.satisfying), key=lambda s: -s.mean_macs)
    figure, axis = plt.subplots(figsize=(6.4, 4.4))
    colours = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 7]  # 7 is grey
    for rank, stats in reversed(list(enumerate(ranked))):
        macs = np.asarray(stats.macs) / 1e6
        share = np.arange(1, len(macs) + 1) / len(macs)
        chosen = stats.label == result.chosen
        named = rank < top or chosen
        axis.step(macs, share, where="post", linewidth=2.8 if chosen else 1.2,
                  color="black" if chosen else (colours[rank % len(colours)] if named else "0.85"),
                  zorder=3 if chosen else 2,
                  label=(f"{stats.label} (mean {stats.mean_macs / 1e6:.2f}M, "
                         f"{stats.satisfying}/{stats.sampled} fit)" + (" chosen" if chosen else ""))
                  if named else None)
    axis.set_xlabel("MACs of satisfying models (millions)")
    axis.set_ylabel("cumulative probability")
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3)
    axis.set_title(title or "TinyNAS stage 1: MACs CDF per sub-space", fontsize=9)
    axis.legend(fontsize=7, loc="best")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
