"""The names of a run folder's files, and how they are written (atomically: a rename over the target)."""
from __future__ import annotations

import os
from pathlib import Path

STORE_FILE = "trials.sqlite"
MODELS_DIR = "models"
RESULTS_FILE = "results.json"
REPORT_FILE = "report.html"  # tinyevo report's page, by default
CONFIG_KEY = "search_config"  # the store's entry with the run's SearchConfig
FINAL_KEY = "final"  # the store's entry with the final records, {trial id: record}
FINISHED_KEY = "finished"  # set when a run's command has done all it was asked (search, final training)
DATA_FILE = "data.npz"  # a run's own data (``tinyevo.search(data=...)``)
#: Files of which a search's run folder holds one from its start (``folder.check_out_dir``).
RUN_MARKERS = (STORE_FILE, DATA_FILE)


def model_stem(out_dir: Path, trial_id: int) -> Path:
    """``RUN/models/trial_N``: the .json (architecture) and .npz (weights) of a final-trained model."""
    return Path(out_dir) / MODELS_DIR / f"trial_{trial_id}"


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path.part``, then rename it over ``path``."""
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(data)
    os.replace(partial, path)
