"""The run side of ``tinyevo export RUN``: the best final-trained model under the run's constraints (or
``trial``), rebuilt from the files the run kept (nothing is retrained), with a seeded sample of the
run's training split to calibrate on, as a ``tinyevo.deploy.export.ModelToExport``."""
from __future__ import annotations

from pathlib import Path

from tinyevo.audio.features import dataset_frontend, frontend_of
from tinyevo.audio.frontend import FrontEnd
from tinyevo.data.featurized import featurized
from tinyevo.deploy.export import ModelToExport
from tinyevo.deploy.quantized_model import QuantizedModel
from tinyevo.errors import TinyevoError
from tinyevo.model_file import load_architecture
from tinyevo.nn import build
from tinyevo.runs.config import stored_config, stored_final
from tinyevo.runs.estimators import run_estimator
from tinyevo.runs.int8 import calibration_inputs, int8_accuracy
from tinyevo.runs.layout import STORE_FILE
from tinyevo.runs.models import load_weights
from tinyevo.runs.results import best_row, load_results
from tinyevo.store import Store


def load_run_model(run_dir: Path, trial: int | None = None) -> ModelToExport:
    """The best final-trained model of a run (or ``trial``), its weights and its calibration data."""
    results = load_results(run_dir)  # one clear line when the folder holds no run
    with Store(run_dir / STORE_FILE, read_only=True) as store:  # export never writes to the run
        config = stored_config(store)
        final = stored_final(store)
        searched = {record.trial.id: network_peak_sram(record.trial.metrics) for record in store.records()}
    trial_ids = set(searched)
    chosen = trial if trial is not None else best_trained_trial(results, run_dir)
    record = trained_record(run_dir, chosen, final, trial_ids)
    architecture = load_architecture(run_dir / Path(record["weights"]).with_suffix(".json"))
    module = build(architecture)
    load_weights(module, run_dir / record["weights"])
    data = run_dataset(config)
    frontend = frontend_of(architecture) or data_frontend(data)
    if architecture.frontend is not None:  # the candidate's own front-end: its features of the clips
        data = featurized(data, architecture.frontend)
    calibration = calibration_inputs(data, architecture, config.seed)

    def measure_int8(qmodel: QuantizedModel) -> float:  # a run finalized before int8 was recorded
        return int8_accuracy(qmodel, data, architecture, "test")
    return ModelToExport(architecture, module, calibration, str(run_dir), chosen,
                         record.get("test_accuracy"), record.get("int8_test_accuracy"),
                         measure_int8=measure_int8, searched_runtime=config.runtime,
                         searched_peak_sram_bytes=searched.get(chosen), frontend=frontend)


def network_peak_sram(metrics: dict) -> int | None:
    """The searched peak SRAM of the network alone (a front-end's RAM, ``frontend_ram_bytes``, is
    counted in a trial's ``peak_sram_bytes`` but lies outside the network's arena)."""
    total = metrics.get("peak_sram_bytes")
    return None if total is None else total - metrics.get("frontend_ram_bytes", 0)


def best_trained_trial(results: dict, run_dir: Path) -> int:
    """The best model under the run's constraints among those with kept weights (``best_row``)."""
    if not results["front"]:
        raise TinyevoError(f"{run_dir}: no finished trial fits the run's constraints, so there is no "
                           f"model to export; search longer or loosen the constraints")
    trained = [row for row in results["front"] if row.get("weights")]
    if not trained:
        raise TinyevoError(f"{run_dir}: no model has trained weights yet (the final training did not "
                           f"run or failed); rerun the search command to finish it")
    return best_row(trained)["trial"]


def trained_record(run_dir: Path, trial: int, final: dict, trial_ids: set[int]) -> dict:
    """The ``final`` record of ``trial``; one clear line when it has no kept weights."""
    trained = sorted(int(key) for key, value in final.items() if value.get("status") == "ok")
    choices = ", ".join(map(str, trained)) or "none"
    if trial not in trial_ids:
        raise TinyevoError(f"{run_dir}: no trial {trial} in this run; trials with trained models: {choices}")
    record = final.get(str(trial)) or {}
    if record.get("status") != "ok":
        raise TinyevoError(f"{run_dir}: trial {trial} has no trained weights (only the final-trained "
                           f"Pareto-front models keep them); trials with trained models: {choices}")
    return record


def data_frontend(data) -> FrontEnd | None:
    """The audio front-end that made the dataset's features (``wavfolder``), or None."""
    return dataset_frontend(data.meta)


def run_dataset(config):
    """The dataset of a run, loaded as its final training loaded it."""
    return run_estimator(config, final=True).data()
