"""Trained weights of a run's trials, kept on disk so that children can inherit them.

One file per trial: ``<run_dir>/weights/<trial_id>.npz``, a plain NumPy archive (no pickle) of the
module's ``state_dict`` plus the JSON of the architecture it was trained as (key
``architecture.json``). Files are written to a temporary name in the same folder and renamed, so a
reader (another worker process) sees either no file or a whole one.

Cleanup policy: a trial's weights are needed only while it can still be chosen as a parent, and
the Pareto front's are kept as the run's result. The runner calls ``prune_run_weights`` after each
batch is told and at the end of the run: it keeps the strategy's ``possible_parents`` (population,
results told but not yet merged, parents of children bred but not yet asked) and the Pareto front
of the trials so far, and deletes every other trial's file. Pruning happens between batches, never
while children are being evaluated; a child whose parent file is gone simply trains from scratch.
Only trials the run has seen are pruned, so a resumed run replaying its store does not delete the
weights of later trials that its population will hold again. ``prune_weights(run_dir, keep_ids)``
is the low-level form.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from tinyevo.arch import Architecture

ARCHITECTURE_KEY = "architecture.json"
SUFFIX = ".npz"


@dataclass
class StoredWeights:
    """The trained weights of one trial and the architecture they belong to."""

    trial_id: int
    architecture: Architecture
    state: dict[str, np.ndarray]


def weights_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "weights"


def weights_path(run_dir: str | Path, trial_id: int) -> Path:
    return weights_dir(run_dir) / f"{int(trial_id)}{SUFFIX}"


def save_weights(run_dir: str | Path, trial_id: int, state: dict[str, torch.Tensor],
                 architecture: Architecture) -> Path:
    """Write ``state`` (a state_dict) and ``architecture`` for ``trial_id``; atomic (temp file + rename)."""
    folder = weights_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {name: tensor.detach().cpu().numpy() for name, tensor in state.items()}
    arrays[ARCHITECTURE_KEY] = np.array(json.dumps(architecture.to_json()))
    handle, temp_name = tempfile.mkstemp(prefix=f".{int(trial_id)}-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **arrays)
        os.replace(temp_name, weights_path(run_dir, trial_id))
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    return weights_path(run_dir, trial_id)


def load_weights(run_dir: str | Path | None, trial_id: int) -> StoredWeights | None:
    """The stored weights of ``trial_id``, or None when there are none (never kept, pruned, unreadable)."""
    if run_dir is None:
        return None
    try:
        with np.load(weights_path(run_dir, trial_id), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        architecture = Architecture.from_json(json.loads(str(arrays.pop(ARCHITECTURE_KEY))))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return StoredWeights(int(trial_id), architecture, arrays)


def stored_trial_ids(run_dir: str | Path) -> list[int]:
    """Ids of the trials whose weights are on disk, sorted."""
    folder = weights_dir(run_dir)
    if not folder.is_dir():
        return []
    return sorted(int(p.stem) for p in folder.glob(f"*{SUFFIX}") if p.stem.isdigit())


def prune_weights(run_dir: str | Path, keep_ids: Iterable[int]) -> list[int]:
    """Delete the weights of every trial not in ``keep_ids``; returns the ids deleted."""
    keep = {int(i) for i in keep_ids}
    removed = [i for i in stored_trial_ids(run_dir) if i not in keep]
    for trial_id in removed:
        weights_path(run_dir, trial_id).unlink(missing_ok=True)
    return removed


def possible_parents(strategy) -> set[int]:
    """Trial ids ``strategy`` may still breed children from (duck-typed; none for a strategy
    without a population, such as random search): its ``population``, results told but not merged
    into it yet (a generational evolution's ``_offspring``) and the parents of children bred but
    not handed out yet (``_queue``)."""
    ids = {int(getattr(member, "trial", member).id) for member in getattr(strategy, "population", None) or ()}
    for members in (getattr(strategy, "_offspring", None) or {}).values():
        ids.update(int(member.trial.id) for member in members)
    for candidate in getattr(strategy, "_queue", None) or ():
        ids.update(int(parent) for parent in candidate.parents)
    return ids


def prune_run_weights(run_dir: str | Path, strategy, trials, objectives) -> list[int]:
    """The cleanup policy (module docstring): among ``trials``, delete the weights of those that are
    neither ``possible_parents(strategy)`` nor on the Pareto front of ``trials`` under ``objectives``;
    files of other trial ids are left alone. Returns the ids deleted."""
    from tinyevo.strategies.pareto import pareto_front

    trials = list(trials)
    keep = possible_parents(strategy) | {int(t.id) for t in pareto_front(trials, list(objectives))}
    seen = {int(t.id) for t in trials}
    return prune_weights(run_dir, keep | (set(stored_trial_ids(run_dir)) - seen))
