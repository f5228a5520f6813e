"""The Python front door: ``tinyevo.search(...)`` runs the search ``tinyevo search`` runs.

    import tinyevo
    result = tinyevo.search(space="chain", dataset="digits", board="stm32f746",
                            max_sram="32KB", max_flash="64KB", budget=20, out="runs/digits")
    result.pareto_front                  # trials with their metrics and costs
    result.best.export("model.tflite")   # or format="c", out="model_c/"

Keywords are the ``tinyevo search`` flags without their dashes (``max_sram``, ``final_epochs``,
``executor``, ...; ``tinyevo search --help`` explains each), plus ``config`` (a TOML file the
keywords override) and ``objectives`` (a list). The run folder ``out`` is the CLI's: the same
store, the same resume (calling again with the same settings continues the run, a larger
``budget`` extends it), ``tinyevo show`` and ``tinyevo export`` read it.

Bring your own data with ``data=``: ``(x, y)``, ``(x, y, x_test, y_test)``, a dict of those names,
or a ``torch.utils.data.Dataset`` of ``(input, label)`` pairs (or a pair of them: train, test).
Inputs are images (N, H, W, C) or (N, H, W), or 1-D signals (N, L); uint8 is read as pixels. The
arrays are written once to ``out/data.npz`` and the run reads them as ``--dataset npz`` does, so a
resumed or exported run finds its data without the caller.

Every error of the input is a ``tinyevo.TinyevoError`` whose message is the line the CLI prints.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyevo.commands.search import FLAGS
from tinyevo.config import SearchConfig, load_config, merge
from tinyevo.data.npz import write_npz
from tinyevo.deploy.export import ExportResult
from tinyevo.errors import TinyevoError
from tinyevo.export_job import export_model
from tinyevo.pipeline import SearchJob
from tinyevo.runs.folder import check_out_dir
from tinyevo.runs.layout import DATA_FILE, RUN_MARKERS
from tinyevo.runs.results import load_results, write_results


#: keyword -> config field: the CLI's flags, e.g. ``max_sram`` -> ``constraints.max_sram``.
KEYWORDS = {flag[2:].replace("-", "_"): target for flag, (target, _, _) in FLAGS.items()}


@dataclass(frozen=True)
class TrialResult:
    """One model of a run: its search metrics and costs, and its final scores when it has them."""

    run: Path
    trial: int
    describe: str
    metrics: dict = field(repr=False)

    def __getitem__(self, name: str) -> Any:
        return self.metrics[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.metrics.get(name, default)

    @property
    def test_accuracy(self) -> float | None:
        return self.metrics.get("test_accuracy")

    def export(self, out: str | Path, format: str | None = None, execution: str = "streamed") -> ExportResult:
        """Write this model (``tinyevo export RUN --trial ID``): the format from ``format`` or the
        suffix of ``out`` (.tflite, .onnx; a folder for ``format="c"``)."""
        return export_model(self.run, format or format_of(out), out, trial=self.trial,
                            warn=lambda line: None, execution=execution)


@dataclass(frozen=True)
class SearchResult:
    """What a run holds now (``tinyevo show RUN --json`` as objects)."""

    run: Path
    summary: dict = field(repr=False)

    @property
    def pareto_front(self) -> list[TrialResult]:
        return [self._trial(row) for row in self.summary["front"]]

    @property
    def best(self) -> TrialResult | None:
        """The best model under the constraints (the one ``tinyevo export RUN`` writes)."""
        row = self.summary["best"]
        return self._trial(row) if row else None

    def _trial(self, row: dict) -> TrialResult:
        return TrialResult(self.run, row["trial"], row["describe"], dict(row))


def search(out: str | Path, *, data: Any = None, config: str | Path | None = None,
           objectives: list[str] | str | None = None, progress: bool = True, **settings) -> SearchResult:
    """Run (or resume) a search into the folder ``out`` and return its results."""
    search_config = settings_config(settings, config, objectives)
    out = check_out_dir(out, RUN_MARKERS, "out")  # before data= is written there
    if data is not None:
        search_config = with_own_data(search_config, data, out)
    job = SearchJob.create(search_config, out)
    job.run(progress=progress)
    return SearchResult(out, write_results(out))


def load(run: str | Path) -> SearchResult:
    """The results of an existing run folder (``tinyevo show RUN``)."""
    return SearchResult(Path(run), load_results(run))


def settings_config(settings: dict, config: str | Path | None = None,
                    objectives: list[str] | str | None = None) -> SearchConfig:
    """The ``SearchConfig`` the CLI would build from the same flags."""
    unknown = sorted(set(settings) - set(KEYWORDS))
    if unknown:
        raise TinyevoError(f"tinyevo.search() got an unknown setting {unknown[0]!r}; known: "
                           f"{', '.join(sorted(KEYWORDS))}")
    base = load_config(config) if config else SearchConfig()
    overrides = {KEYWORDS[name]: value for name, value in settings.items()}
    if isinstance(objectives, str):
        objectives = [o.strip() for o in objectives.split(",") if o.strip()]
    if objectives is not None:
        overrides["objectives"] = list(objectives)
    return merge(base, overrides)


def with_own_data(config: SearchConfig, data: Any, out: Path) -> SearchConfig:
    """The config reading ``data`` from ``out/data.npz`` (written unless the same arrays are there)."""
    if config.dataset not in ("digits", "npz") or config.data_dir:
        raise TinyevoError(f"give either data= or dataset={config.dataset!r}, not both")
    path = write_npz(out / DATA_FILE, data_arrays(data))
    options = {**config.dataset_options, "path": str(path.resolve())}
    return merge(config, {"dataset": "npz", "dataset_options": options})


def data_arrays(data: Any) -> dict[str, np.ndarray]:
    """``{"x", "y"[, "x_test", "y_test"]}`` from a tuple, a dict or torch Dataset(s)."""
    if isinstance(data, dict):
        arrays = dict(data)
    elif isinstance(data, (tuple, list)) and len(data) in (2, 4) and all(_is_array(a) for a in data):
        arrays = dict(zip(("x", "y", "x_test", "y_test"), data))
    elif isinstance(data, (tuple, list)) and len(data) == 2 and all(_is_dataset(d) for d in data):
        arrays = {**_dataset_arrays(data[0], ""), **_dataset_arrays(data[1], "_test")}
    elif _is_dataset(data):
        arrays = _dataset_arrays(data, "")
    else:
        raise TinyevoError("data= must be (x, y), (x, y, x_test, y_test), a dict of those arrays, or "
                           "a torch Dataset of (input, label) pairs (or a (train, test) pair of them)")
    unknown = sorted(set(arrays) - {"x", "y", "x_test", "y_test"})
    if unknown or not {"x", "y"} <= set(arrays) or (("x_test" in arrays) != ("y_test" in arrays)):
        raise TinyevoError(f"data= must hold x and y (and optionally both x_test and y_test), got "
                           f"{sorted(arrays)}")
    return {name: np.asarray(value) for name, value in arrays.items()}


def format_of(out: str | Path) -> str:
    suffix = Path(out).suffix.lower()
    formats = {".tflite": "tflite", ".onnx": "onnx"}
    if suffix in formats:
        return formats[suffix]
    raise TinyevoError(f"cannot tell the export format from {str(out)!r}; pass format= (tflite, "
                       f"onnx, onnx-qdq or c)")


def _is_array(value: Any) -> bool:
    return hasattr(value, "__array__") or isinstance(value, (list, np.ndarray))


def _is_dataset(value: Any) -> bool:
    return (hasattr(value, "__getitem__") and hasattr(value, "__len__") and not _is_array(value)
            and not isinstance(value, (str, bytes, dict, tuple)))


def _dataset_arrays(dataset, suffix: str) -> dict[str, np.ndarray]:
    """Every (input, label) pair of a map-style dataset, stacked; a CHW tensor becomes HWC."""
    pairs = [dataset[i] for i in range(len(dataset))]
    if not pairs or not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in pairs):
        raise TinyevoError("a torch Dataset given as data= must yield (input, label) pairs")
    x = np.stack([np.asarray(p[0]) for p in pairs])
    if x.ndim == 4 and x.shape[1] in (1, 3) and x.shape[-1] not in (1, 3):
        x = x.transpose(0, 2, 3, 1)  # torchvision's C, H, W -> H, W, C
    y = np.asarray([int(np.asarray(p[1])) for p in pairs], dtype=np.int64)
    return {f"x{suffix}": x, f"y{suffix}": y}
