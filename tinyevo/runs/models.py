"""A final-trained model's files: ``RUN/models/trial_N.json`` (architecture) and ``trial_N.npz`` (its
weights, a state dict saved without pickle)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from tinyevo.data.npz import read_arrays
from tinyevo.errors import TinyevoError
from tinyevo.runs.layout import atomic_write, model_stem


def save_model(out_dir: Path, trial_id: int, trained) -> str:
    """Weights (.npz, no pickle) and architecture (.json) of a trained model; returns the .npz path."""
    stem = model_stem(out_dir, trial_id)
    stem.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().numpy() for k, v in trained.module.state_dict().items()}
    atomic_write(stem.with_suffix(".json"), trained.architecture.dumps().encode())
    partial = stem.with_name(stem.name + ".part.npz")
    np.savez(partial, **state)
    os.replace(partial, stem.with_suffix(".npz"))
    return str(stem.with_suffix(".npz").relative_to(out_dir))


def load_weights(module: torch.nn.Module, path: str | Path) -> None:
    """Load a state dict saved as .npz (``save_model``) into ``module``."""
    path = Path(path)
    if not path.is_file():
        raise TinyevoError(f"{path}: no such weights file; give the .npz of a trained model")
    state = {key: torch.from_numpy(array) for key, array in read_arrays(path, ".npz weights file").items()}
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        detail = " ".join(str(error).split())
        raise TinyevoError(f"{path}: weights do not fit the architecture ({detail[:200]})") from None
    module.eval()
