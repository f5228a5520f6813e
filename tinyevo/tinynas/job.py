"""``TinyNASJob``: both stages of TinyNAS into one folder, written as produced, resumed on rerun.

The folder (``--out DIR``) holds, in the order they are produced:

- ``tinynas.json``: the settings of the run (a rerun with other settings is refused);
- ``stage1.partial.json`` while stage 1 runs: what it has sampled so far (every few models), so an
  interrupted stage 1 goes on where it stopped; then ``stage1.json`` and ``stage1_cdf.png``: every
  candidate sub-space's sample and the choice (read back, not recomputed, on a rerun);
- ``supernet.npz`` / ``supernet.json``: the trained supernet of the chosen sub-space;
- ``trials.sqlite``: the evolution's trials (the runner's store: a rerun replays it and goes on),
  with the run's settings as a ``tinyevo search`` run keeps them, and the ``final`` records of the
  fine-tuned winners;
- ``models/trial_N.npz|.json``: the fine-tuned weights; ``results.json``: what ``tinyevo show``
  prints. So ``tinyevo show DIR`` and ``tinyevo export DIR --out model.tflite`` read a TinyNAS run
  as they read a search run.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tinyevo.errors import TinyevoError
from tinyevo.hardware.execution import DEPLOYED
from tinyevo.hardware.limits import Constraints
from tinyevo.runs.folder import RunInUse, RunLock, check_out_dir
from tinyevo.runs.layout import FINISHED_KEY, atomic_write
from tinyevo.units import check_seed

SETTINGS_FILE, STAGE1_FILE, CDF_FILE, SUPERNET_FILE = ("tinynas.json", "stage1.json", "stage1_cdf.png",
                                                       "supernet.npz")
STAGE1_PARTIAL = "stage1.partial.json"
#: Settings a rerun may change: they extend or shorten the evolution, or change what is printed.
EXTENDABLE = ("generations", "max_seconds", "finetune_models", "device")
#: The limits a TinyNAS run takes: its settings of those TOML keys (``tinyevo.hardware.limits``).
LIMIT_KEYS = ("max_sram", "max_flash")


@dataclass
class TinyNASSettings:
    """Everything a TinyNAS run depends on (``tinyevo tinynas --help`` explains each)."""

    dataset: str = "digits"
    data_dir: str | None = None
    dataset_options: dict = field(default_factory=dict)
    board: str = "stm32f746"
    max_sram: str | int | None = None  # default: the board's SRAM
    max_flash: str | int | None = None  # default: the board's flash
    seed: int = 0
    #: Stage 1 grid; None: the space's widths, and resolutions suited to the data (``default_resolutions``).
    widths: list | None = None
    resolutions: list | None = None
    #: Other ``mbv2`` options (depths, kernels, expands, feature_mix_layer).
    space_options: dict = field(default_factory=dict)
    samples: int = 1000  # stage 1: random models per sub-space
    supernet_epochs: int = 5
    supernet_lr: float = 3e-3
    batch_size: int = 64
    data_fraction: float = 1.0  # share of the training rows the supernet trains on
    population: int = 100
    generations: int = 30
    max_seconds: float | None = None  # wall-clock limit of the evolution
    calibration_batches: int = 4
    val_rows: int | None = None  # validation rows each subnet is scored on (None: all)
    finetune_epochs: int = 5
    finetune_lr: float = 1e-3
    finetune_models: int = 1
    device: str = "cpu"  # cpu, cuda or auto

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def default_resolutions(native: int, space_resolutions: list[int]) -> list[int]:
    """MCUNet's resolutions (the space's, 48..160) for inputs of 48 pixels and more; for smaller
    inputs, multiples of 4 from half to 1.5 times the native size (at least 8)."""
    if native >= 48:
        return list(space_resolutions)
    return sorted({max(8, 4 * round(native * f / 4)) for f in (0.5, 0.75, 1.0, 1.25, 1.5)})


class TinyNASJob:
    """``TinyNASJob(settings, out_dir).run()``: stage 1, supernet, evolution, fine-tuning."""

    def __init__(self, settings: TinyNASSettings, out_dir: str | Path, progress: bool = True):
        self.settings, self.out_dir, self.progress = settings, Path(out_dir), progress
        self.seconds: dict[str, float] = {}

    def log(self, message: str) -> None:
        if self.progress:
            print(f"tinynas: {message}", file=sys.stderr, flush=True)

    def device(self) -> str:
        import torch

        if self.settings.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.settings.device not in ("cpu", "cuda"):
            raise TinyevoError(f"device must be cpu, cuda or auto, got {self.settings.device!r}")
        if self.settings.device == "cuda" and not torch.cuda.is_available():
            raise TinyevoError("device cuda: no CUDA GPU is available here; use --device cpu")
        return self.settings.device

    # --- the pieces ----------------------------------------------------------------------------
    def prepare(self) -> None:
        """Load board and data, check the settings; nothing is written yet."""
        from tinyevo.estimate.training import cached_dataset
        from tinyevo.hardware import load_board
        from tinyevo.spaces.mbv2 import MobileNetV2Space

        s = self.settings
        _check_settings(s)
        self.device()
        self.board = load_board(s.board)
        self.data = cached_dataset(s.dataset, s.data_dir, s.seed, s.dataset_options)
        self.constraints = Constraints.from_settings(limit_settings(s), self.board)
        try:
            self.space = MobileNetV2Space(input_shape=self.data.input_shape,
                                          num_classes=self.data.num_classes, **s.space_options)
        except TypeError as error:
            raise TinyevoError(f"bad mbv2 space option: {error}") from None
        self.widths = s.widths or self.space.widths
        self.resolutions = s.resolutions or default_resolutions(min(self.data.input_shape[:2]),
                                                                self.space.resolutions)
        for width in self.widths:
            if float(width) not in self.space.widths:
                raise TinyevoError(f"width {width} is not one of mbv2's widths {self.space.widths}")

    def check_folder(self) -> bool:
        """Whether ``out_dir`` holds this run already; refuse one with a run of other settings or
        other files. Writes nothing."""
        check_out_dir(self.out_dir, (SETTINGS_FILE,))
        path = self.out_dir / SETTINGS_FILE
        current = {k: v for k, v in self.settings.to_dict().items() if k not in EXTENDABLE}
        if path.is_file():
            stored = {k: v for k, v in json.loads(path.read_text()).items() if k not in EXTENDABLE}
            if stored != current:
                name = next(k for k in sorted(set(stored) | set(current)) if stored.get(k) != current.get(k))
                raise TinyevoError(f"{self.out_dir} holds a TinyNAS run with {name}={stored.get(name)!r}, "
                                   f"not {current.get(name)!r}; rerun with the same settings to resume, "
                                   f"or give another --out")
            return True
        if self.out_dir.exists() and (not self.out_dir.is_dir() or any(self.out_dir.iterdir())):
            raise TinyevoError(f"{self.out_dir} is not an empty folder and holds no TinyNAS run; "
                               f"give a new --out")
        return False

    def start_folder(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if not (self.out_dir / SETTINGS_FILE).is_file():
            atomic_write(self.out_dir / SETTINGS_FILE, json.dumps(self.settings.to_dict(), indent=1).encode())

    def remove_new_folder(self) -> None:
        """Undo ``start_folder`` of a run that stopped at its first step: a refusal leaves nothing."""
        for name in (SETTINGS_FILE, STAGE1_PARTIAL):
            (self.out_dir / name).unlink(missing_ok=True)
        try:
            self.out_dir.rmdir()
        except OSError:
            pass  # not empty: keep it

    def stage1(self):
        """The stage-1 result: read from ``stage1.json`` when there, else computed and saved."""
        from tinyevo.tinynas.stage1 import (SpaceOptimization, mbv2_sub_spaces, model_cost,
                                            optimize_search_space, plot_cdfs)

        path = self.out_dir / STAGE1_FILE
        if path.is_file():
            self.log(f"stage 1: read {path}")
            return SpaceOptimization.from_json(json.loads(path.read_text()))
        s, start = self.settings, time.perf_counter()
        candidates = mbv2_sub_spaces(self.space, self.widths, self.resolutions)
        partial_path = self.out_dir / STAGE1_PARTIAL
        partial = json.loads(partial_path.read_text()) if partial_path.is_file() else {}
        done = sum(int(p.get("drawn", 0)) for p in partial.values())
        self.log(f"stage 1: {len(candidates)} sub-spaces x {s.samples} random models"
                 + (f", going on after the {done} sampled before" if done else "")
                 + " (kept as it goes; --samples fewer to make it shorter)")
        result = optimize_search_space(
            candidates, self.constraints, model_cost(self.board), s.samples, s.seed, self.progress,
            partial=partial, checkpoint=lambda now: atomic_write(partial_path, json.dumps(now).encode()))
        plot_cdfs(result, self.out_dir / CDF_FILE, title=f"TinyNAS stage 1 on {self.data.name}, "
                  f"{self.board.name}\n{self.constraints.summary()}")
        result.save(path)
        partial_path.unlink(missing_ok=True)
        self.seconds["stage1"] = time.perf_counter() - start
        chosen = result.chosen_stats()
        self.log(f"stage 1: chose {result.chosen} (mean {chosen.mean_macs / 1e6:.3f}M MACs over "
                 f"{chosen.satisfying}/{chosen.sampled} fitting models); CDFs in {self.out_dir / CDF_FILE}")
        return result

    def sub_space(self, stage1):
        from tinyevo.spaces.mbv2 import MobileNetV2Space

        chosen = stage1.chosen_stats().options
        return MobileNetV2Space(**{**self.space.options(), "widths": [chosen["width"]],
                                   "resolutions": [chosen["resolution"]]})

    def supernet(self, space):
        from tinyevo.estimate.supernet import SupernetTraining
        from tinyevo.tinynas.stage2 import supernet_for

        s, path = self.settings, self.out_dir / SUPERNET_FILE
        trains = not path.is_file()
        if trains:
            self.log(f"stage 2: training the supernet of the chosen sub-space ({s.supernet_epochs} epochs)")
        start = time.perf_counter()
        training = SupernetTraining(epochs=s.supernet_epochs, batch_size=s.batch_size, lr=s.supernet_lr,
                                    data_fraction=s.data_fraction, seed=s.seed, device=self.device())
        net = supernet_for(space, path, self.data, training, self.progress)
        if trains:
            self.seconds["supernet"] = time.perf_counter() - start
        return net

    def estimator(self):
        from tinyevo.estimate.supernet import SupernetEstimator

        s = self.settings
        return SupernetEstimator(supernet_path=str((self.out_dir / SUPERNET_FILE).resolve()),
                                 dataset=s.dataset, data_dir=s.data_dir, dataset_seed=s.seed,
                                 dataset_options=dict(s.dataset_options),
                                 calibration_batches=s.calibration_batches, batch_size=s.batch_size,
                                 val_rows=s.val_rows, seed=s.seed, device=self.device())

    def search_config(self, space):
        """The run's settings as ``tinyevo show`` / ``tinyevo export`` read them."""
        from tinyevo.config import ConstraintSettings, SearchConfig
        from tinyevo.tinynas.stage2 import evolution_budget

        s = self.settings
        return SearchConfig(space="mbv2", space_options=space.options(), dataset=s.dataset,
                            data_dir=s.data_dir, board=self.board.name, execution=DEPLOYED.execution,
                            strategy="mcunet",
                            strategy_options={"population": s.population, "generations": s.generations},
                            estimator="supernet",
                            estimator_options={"dataset_options": dict(s.dataset_options)},
                            objectives=["accuracy"], budget=evolution_budget(s.population, s.generations),
                            max_seconds=s.max_seconds, seed=s.seed, final_epochs=s.finetune_epochs,
                            final_models=s.finetune_models,
                            constraints=ConstraintSettings(**limit_settings(s)))

    def evolve(self, space, store):
        from tinyevo.tinynas.stage2 import evolve

        s, start = self.settings, time.perf_counter()
        self.log(f"stage 2: mcunet evolution, population {s.population}, {s.generations} generations")
        trials = evolve(space, self.estimator(), self.constraints, self.board, store, s.population,
                        s.generations, s.seed, s.max_seconds, self.out_dir, self.progress)
        self.seconds["evolution"] = time.perf_counter() - start
        return trials

    def finetune(self, space, trials, store) -> dict:
        """Fine-tune the best trials from inherited weights; float and int8 test accuracy, weights kept."""
        from tinyevo.estimate import EstimationFailed, EvalContext
        from tinyevo.runs.final import final_record
        from tinyevo.tinynas.stage2 import InheritedTraining, best_trials

        s, final, start = self.settings, dict(store.get("final", {}) or {}), time.perf_counter()
        trainer = InheritedTraining(dataset=s.dataset, data_dir=s.data_dir, dataset_seed=s.seed,
                                    dataset_options=dict(s.dataset_options), epochs=s.finetune_epochs,
                                    batch_size=s.batch_size, lr=s.finetune_lr, seed=s.seed, device=self.device(),
                                    supernet_path=str((self.out_dir / SUPERNET_FILE).resolve()),
                                    calibration_batches=s.calibration_batches)
        for trial in best_trials(trials, s.finetune_models):
            if str(trial.id) in final:
                continue
            self.log(f"fine-tuning trial {trial.id} (supernet accuracy {trial.metrics['accuracy']:.4f}) "
                     f"for {s.finetune_epochs} epochs from inherited weights")
            context = EvalContext(genome=trial.genome, space=None, trial_id=trial.id, seed=s.seed)
            try:
                trained = trainer.fit(space.decode(trial.genome), context)
            except EstimationFailed as error:
                final[str(trial.id)] = {"status": "failed", "error": str(error)}
            else:
                final[str(trial.id)] = {**final_record(self.out_dir, trial.id, trainer, trained, s.seed),
                                        "supernet_accuracy": trial.metrics["accuracy"]}
            store.set("final", final)
        self.seconds["finetune"] = time.perf_counter() - start
        return final

    # --- the whole run -------------------------------------------------------------------------
    def run(self) -> dict:
        """Both stages; returns the summary also written to ``results.json`` (see ``summary``)."""
        self.prepare()
        new = not self.check_folder()
        self.start_folder()
        try:
            with RunLock(self.out_dir):
                return self._run()
        except RunInUse:
            raise
        except TinyevoError:
            if new and not (self.out_dir / STAGE1_FILE).is_file():
                self.remove_new_folder()  # e.g. limits nothing fits: no folder left behind
            raise

    def _run(self) -> dict:
        from tinyevo.runs.layout import STORE_FILE
        from tinyevo.runs.results import write_results
        from tinyevo.store import Store

        stage1 = self.stage1()
        space = self.sub_space(stage1)
        self.supernet(space)
        with Store(self.out_dir / STORE_FILE) as store:
            store.set("search_config", self.search_config(space).to_dict())
            store.set(FINISHED_KEY, False)
            trials = self.evolve(space, store)
            final = self.finetune(space, trials, store)
            self.seconds = merged_seconds((store.get("tinynas") or {}).get("seconds", {}), self.seconds)
            store.set("tinynas", {"stage1": stage1.chosen, "seconds": self.seconds})
            store.set(FINISHED_KEY, True)
        results = write_results(self.out_dir)
        return self.summary(stage1, trials, final, results)

    def summary(self, stage1, trials, final: dict, results: dict) -> dict:
        chosen = stage1.chosen_stats()
        best = results.get("best") or {}
        record = final.get(str(best.get("trial")), {})
        return {"run": str(self.out_dir), "sub_space": stage1.chosen, **chosen.options,
                "stage1_mean_macs": chosen.mean_macs, "cdf_plot": str(self.out_dir / CDF_FILE),
                "evaluated": results["evaluated"], "infeasible": results["infeasible"],
                "best": best, "supernet_accuracy": record.get("supernet_accuracy"),
                "test_accuracy": record.get("test_accuracy"),
                "int8_test_accuracy": record.get("int8_test_accuracy"),
                "limits": self.constraints.to_dict(), "seconds": self.seconds}


def merged_seconds(before: dict, now: dict) -> dict:
    """Wall time per stage over the sessions of a run: a stage done again (stage 1, the supernet)
    replaces its time, the evolution and fine-tuning add theirs."""
    merged = dict(before)
    for stage, seconds in now.items():
        merged[stage] = merged.get(stage, 0.0) + seconds if stage in ("evolution", "finetune") else seconds
    return merged


def _check_settings(s: TinyNASSettings) -> None:
    check_seed(s.seed)
    positive = {"samples": s.samples, "supernet_epochs": s.supernet_epochs, "batch_size": s.batch_size,
                "population": s.population, "calibration_batches": s.calibration_batches,
                "finetune_epochs": s.finetune_epochs, "finetune_models": s.finetune_models}
    for name, value in positive.items():
        if int(value) < 1:
            raise TinyevoError(f"{name.replace('_', '-')} must be at least 1, got {value}")
    if s.generations < 0:
        raise TinyevoError(f"generations must be 0 or more, got {s.generations}")
    if not 0 < s.data_fraction <= 1:
        raise TinyevoError(f"data-fraction must be in (0, 1], got {s.data_fraction}")


def limit_settings(s: TinyNASSettings) -> dict:
    """The run's limits as set: ``{TOML key: "64KB" | number | None}`` (``LIMIT_KEYS``)."""
    return {key: getattr(s, key) for key in LIMIT_KEYS}
