"""Small helpers the benchmark scripts share: progress lines, the JSON document, plots, paths.

A benchmark prints exactly one JSON document to stdout (``print_json``) and everything else to
stderr (``log``), so ``python benchmarks/X.py > result.json`` keeps a clean result.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

#: The repository root (the folder holding ``benchmarks/``).
REPO_ROOT = Path(__file__).resolve().parent.parent


def quick_path(name: str) -> Path:
    """Where a ``--quick`` run writes ``name`` unless told otherwise: a temporary folder, never
    over the full runs' results in ``benchmarks/results/``."""
    folder = Path(tempfile.gettempdir()) / "tinyevo-benchmarks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def log(message: str) -> None:
    """A progress line on stderr, stamped with the wall time."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def print_json(document: dict) -> None:
    """The benchmark's result: one JSON document on stdout (NaN and infinities become null)."""
    print(json.dumps(json_safe(document), indent=1))


def save_and_print_json(document: dict, path: str | Path) -> None:
    """``print_json`` of ``document``, also written to ``path`` (``repo_path``; folders made)."""
    out = repo_path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(json_safe(document), indent=1) + "\n")
    print_json(document)


def json_safe(value):
    """``value`` with non-finite floats replaced by None, tuples by lists (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def all_passes_cpu_seconds(searched: dict, reference: dict) -> float:
    """Every pass's CPU seconds in a report of searches (``searched``: name -> {"bounds": {bound:
    {"per_seed": rows}}}) and of the reference model trained beside them (its ``per_seed``): each
    search's and final training's, kept in the run folders, so a resumed benchmark counts them
    all, not only what its last invocation did."""
    rows = [row for entry in searched.values() for bound in entry.get("bounds", {}).values()
            for row in bound.get("per_seed", [])] + list(reference.get("per_seed", []))
    return round(sum(row.get(key) or 0.0 for row in rows for key in ("search_cpu_seconds", "final_cpu_seconds")), 1)


def repo_path(path: str | Path) -> Path:
    """``path`` as given when it exists from the working directory, else relative to the repo root."""
    path = Path(path).expanduser()
    if path.is_absolute() or path.exists():
        return path
    return REPO_ROOT / path


def mean(values) -> float | None:
    """Arithmetic mean of the values that are not None; None when there are none."""
    present = [float(v) for v in values if v is not None]
    return sum(present) / len(present) if present else None


def pyplot():
    """``matplotlib.pyplot`` with the file-only Agg backend (no display needed)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_png(figure, path: Path, dpi: int = 110) -> None:
    """Write ``figure`` to ``path`` whole or not at all (a temporary file, then a rename), and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp.png")
    figure.savefig(temporary, dpi=dpi)
    os.replace(temporary, path)
    pyplot().close(figure)


def set_threads(threads: int) -> None:
    """Torch threads of this process, and of the processes it starts (``OMP_NUM_THREADS``)."""
    import torch  # only the benchmarks that train need it

    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)


class InlineExecutor:
    """``--jobs 1``: each task runs at once, in this process."""

    def submit(self, fn, *args) -> Future:
        future = Future()
        future.set_result(fn(*args))
        return future

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def task_pool(jobs: int, threads: int):
    """``jobs`` worker processes (forked where possible, so they share what the parent loaded) of
    ``threads`` torch threads each; the parent itself for one job."""
    if jobs <= 1:
        return InlineExecutor()
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods()
                                          else None)
    return ProcessPoolExecutor(jobs, mp_context=context, initializer=set_threads, initargs=(threads,))


def positive_int(text: str) -> int:
    """An argparse type: an int of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def fraction(text: str) -> float:
    """An argparse type: a float in (0, 1]."""
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def add_search_arguments(parser: argparse.ArgumentParser, rows: str = "training rows") -> None:
    """The flags every search benchmark takes for its searches' settings (each None when not given)."""
    parser.add_argument("--budget", type=positive_int, help="trained candidates per search")
    parser.add_argument("--population", type=positive_int, help="population size of the strategy")
    parser.add_argument("--epochs", type=positive_int, help="epochs per candidate during the search")
    parser.add_argument("--data-fraction", type=fraction, help=f"share of the {rows} per candidate")


def settings_from(args: argparse.Namespace, base, **more):
    """``base`` (a settings dataclass) with what the command line gave: ``--seeds`` (repeats
    dropped), the flags of ``add_search_arguments`` and ``more`` (field: value; None: not given)."""
    given = {"seeds": tuple(dict.fromkeys(args.seeds)) if args.seeds else None, "budget": args.budget,
             "population_size": args.population, "epochs": args.epochs,
             "data_fraction": args.data_fraction, **more}
    return dataclasses.replace(base, **{k: v for k, v in given.items() if v is not None})
