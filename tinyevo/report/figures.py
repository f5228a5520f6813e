"""The report's figures as inline SVG, drawn with matplotlib (no JavaScript, no network).

Points that a reader may want to identify carry an SVG ``<title>`` (browsers show it on hover):
every trial in the Pareto plots says its id, genome, accuracy and cost.
"""
from __future__ import annotations

import html
import io
import re

import matplotlib
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullLocator

from tinyevo.units import format_bytes

STATUS_COLOURS = {"ok": "#1f77b4", "infeasible": "#ff7f0e", "failed": "#d62728"}
FRONT, OTHER, LIMIT, BOARD = "#d62728", "#9aa5b1", "#555555", "#2ca02c"
LAYER_BY_LAYER_COLOUR, STREAMED_COLOUR = "#1f77b4", "#9467bd"
SVG_STYLE = {"svg.hashsalt": "tinyevo-report", "svg.fonttype": "none", "font.size": 9}
#: A metric's axis label.
LABELS = {"peak_sram_bytes": "peak SRAM (bytes)", "flash_bytes": "flash (bytes)",
          "latency_ms": "latency (ms)", "macs": "MACs", "params": "parameters",
          "energy_mj": "energy (mJ)"}


def to_svg(fig: Figure, titles: dict[str, str] | None = None) -> str:
    """The figure as SVG text (no XML prologue), each ``<g id=...>`` of ``titles`` given a
    ``<title>``."""
    buffer = io.StringIO()
    with matplotlib.rc_context(SVG_STYLE):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    for gid, title in (titles or {}).items():
        text = text.replace(f'<g id="{gid}">', f'<g id="{gid}"><title>{html.escape(title)}</title>', 1)
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)  # matplotlib's RDF credits
    return re.sub(r"<!--.*?-->", "", text, flags=re.S)


def _figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(SVG_STYLE):
        return Figure(figsize=(width, height), layout="constrained")


def progress_figure(trials: list[dict]) -> str:
    """Left: each trial's search accuracy and the best feasible one so far. Right: how many trials
    were feasible, infeasible or failed after each trial."""
    fig = _figure(10, 3.2)
    left, right = fig.subplots(1, 2)
    numbers = list(range(1, len(trials) + 1))
    for status, colour in STATUS_COLOURS.items():
        points = [(n, t["accuracy"]) for n, t in zip(numbers, trials)
                  if t["status"] == status and t["accuracy"] is not None]
        if points:
            left.scatter(*zip(*points), s=14, color=colour, label=f"{status} trial", zorder=3)
    best, so_far = [], None
    for t in trials:
        if t["status"] == "ok" and t["accuracy"] is not None:
            so_far = t["accuracy"] if so_far is None else max(so_far, t["accuracy"])
        best.append(so_far)
    if any(b is not None for b in best):
        left.step(numbers, [float("nan") if b is None else b for b in best], where="post",
                  color="black", label="best feasible so far")
    left.set(xlabel="trial (in the order evaluated)", ylabel="search accuracy",
             title="Accuracy over trials")
    left.legend(loc="lower right", fontsize=8)
    for ax in (left, right):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=ax is right))
    for status, colour in STATUS_COLOURS.items():
        counts, n = [], 0
        for t in trials:
            n += t["status"] == status
            counts.append(n)
        right.step(numbers, counts, where="post", color=colour,
                   label="feasible (ok)" if status == "ok" else status)
    right.set(xlabel="trial", ylabel="trials so far", title="Feasible, infeasible, failed")
    right.legend(loc="upper left", fontsize=8)
    return to_svg(fig)


def trial_title(t: dict, metric: str) -> str:
    return (f"trial {t['trial']}: {t['describe']}\nsearch accuracy {_pct(t['accuracy'])}, "
            f"{metric} {t.get(metric)}")


def pareto_figure(trials: list[dict], front_ids: list[int], metrics: list[str],
                  limits: dict[str, float]) -> str:
    """Search accuracy against each cost metric: every feasible trial, the front highlighted (its
    staircase drawn), the run's limit on the metric as a dashed line. Hover: the genome."""
    fig = _figure(5 * len(metrics), 3.6)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    titles = {}
    ok = [t for t in trials if t["status"] == "ok" and t["accuracy"] is not None]
    for k, (ax, metric) in enumerate(zip(axes, metrics)):
        shown = [t for t in ok if t.get(metric) is not None]
        for t in shown:
            on_front = t["trial"] in front_ids
            gid = f"trial-{t['trial']}-{k}"
            ax.plot([t[metric]], [t["accuracy"]], "o", gid=gid, zorder=3 if on_front else 2,
                    color=FRONT if on_front else OTHER, markersize=6 if on_front else 4)
            titles[gid] = trial_title(t, metric)
        front = sorted((t[metric], t["accuracy"]) for t in shown if t["trial"] in front_ids)
        if front:
            ax.step(*zip(*front), where="post", color=FRONT, linewidth=1, label="Pareto front")
        values = [t[metric] for t in shown]
        if metric.endswith("_bytes") and values and min(values) > 0 and limits.get(metric, 0) > 5 * max(values):
            ax.set_xscale("log")  # bytes over orders of magnitude, up to the limit
        if metric in limits:
            ax.axvline(limits[metric], color=LIMIT, linestyle="--", linewidth=1,
                       label=f"limit {_amount(metric, limits[metric])}")
        ax.set(xlabel=LABELS.get(metric, metric), ylabel="search accuracy",
               title=f"Accuracy vs {LABELS.get(metric, metric).split(' (')[0]}")
        if front or metric in limits:
            ax.legend(loc="lower right", fontsize=8)
    return to_svg(fig, titles)


def memory_figure(timelines, board_sram: int, limit: int | None) -> str:
    """Live activation bytes at each op step of the best model, one panel per way of running it
    (MCUNet's per-layer memory plot), with the board's SRAM and the run's limit as lines."""
    fig = _figure(10, 2.6 * len(timelines))
    axes = fig.subplots(len(timelines), 1, squeeze=False)[:, 0]
    top = max(max((s.live_bytes for s in t.steps), default=1) for t in timelines)
    log = board_sram > 20 * top
    for ax, line in zip(axes, timelines):
        colours = [STREAMED_COLOUR if s.streamed else LAYER_BY_LAYER_COLOUR for s in line.steps]
        positions = range(len(line.steps))
        ax.bar(positions, [s.live_bytes for s in line.steps], color=colours)
        ax.set_xticks(list(positions), [f"{s.op}" for s in line.steps], rotation=60, ha="right",
                      fontsize=7)
        ax.axhline(board_sram, color=BOARD, linewidth=1.2, label=f"board SRAM {format_bytes(board_sram)}")
        if limit is not None and limit != board_sram:
            ax.axhline(limit, color=LIMIT, linestyle="--", linewidth=1,
                       label=f"--max-sram {format_bytes(limit)}")
        streamed = sum(s.streamed for s in line.steps)
        how = (f"streamed: the first {streamed} ops row by row" if streamed else
               "streamed: no prefix streams smaller, so layer by layer" if line.execution == "streamed"
               else "layer by layer: whole tensors")
        ax.set_title(f"{how}; peak {line.peak_bytes:,} B, arena {line.arena_bytes:,} B", fontsize=9)
        ax.set_ylabel("live bytes")
        if log:
            ax.set_yscale("log")
            ax.yaxis.set_minor_locator(NullLocator())
        ax.legend(loc="upper right", fontsize=8)
    return to_svg(fig)


def flash_figure(parts: dict[str, int | None], board_flash: int, limit: int | None) -> str:
    """The best model's flash, stacked: weights, biases, scales and, when measured, code."""
    fig = _figure(10, 1.9)
    ax = fig.subplots()
    left = 0
    colours = {"weights": "#1f77b4", "biases": "#ff7f0e", "scales": "#2ca02c", "code": "#9467bd"}
    for name, colour in colours.items():
        if name == "code" and parts.get(name) is None:
            continue
        size = parts.get(name) or 0
        ax.barh([0], [size], left=left, color=colour, label=f"{name} {size:,} B")
        left += size
    if limit is not None:
        ax.axvline(limit, color=LIMIT, linestyle="--", linewidth=1, label=f"--max-flash {format_bytes(limit)}")
    ax.set_yticks([])
    ax.set_xlabel(f"bytes (board flash {format_bytes(board_flash)})")
    fig.legend(loc="outside lower center", ncol=5, fontsize=8, frameon=False)
    return to_svg(fig)


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _amount(metric: str, value: float) -> str:
    return format_bytes(value) if metric.endswith("_bytes") else f"{value:g}"
