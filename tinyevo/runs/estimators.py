"""The estimators a run's settings make: the search's, and the training of the final models (which
``tinyevo export`` also reloads the run's data with)."""
from __future__ import annotations

from tinyevo.config import SearchConfig
from tinyevo.errors import TinyevoError
from tinyevo.estimate import ESTIMATORS, create_estimator
from tinyevo.runs.config import dataset_options

TRAINING_OPTIONS = {"dataset", "data_dir", "dataset_seed", "dataset_options", "epochs", "batch_size",
                    "lr", "optimizer", "weight_decay", "schedule", "data_fraction", "resolution",
                    "width_scale", "device", "seed", "augment"}


def trains(config: SearchConfig) -> bool:
    """True when the run's estimator trains (``Capabilities.trains``): it is given the dataset and
    fidelity settings, and the front's models are trained at full fidelity after the search."""
    return ESTIMATORS.get(config.estimator).capabilities.trains


def estimator_options(config: SearchConfig, final: bool = False) -> dict:
    """The options of the search's estimator, or (``final``) of the final training: all the training
    data at full resolution and width for ``final_epochs``."""
    options = dict(config.estimator_options)
    if trains(config) or final:
        f = config.fidelity
        options = {"dataset": config.dataset, "data_dir": config.data_dir, "dataset_seed": config.seed,
                   "dataset_options": dataset_options(config),
                   "epochs": f.epochs, "batch_size": f.batch_size, "lr": f.lr,
                   "data_fraction": f.data_fraction, "resolution": f.resolution,
                   "width_scale": f.width_scale, "seed": config.seed, **options}
        if final:
            options.update(epochs=config.final_epochs, data_fraction=1.0, resolution=None,
                           width_scale=1.0)
            options = {k: v for k, v in options.items() if k in TRAINING_OPTIONS}
    return options


def run_estimator(config: SearchConfig, final: bool = False):
    """The search's estimator, or (``final``) the training estimator of the final models."""
    name = "training" if final else config.estimator
    try:
        return create_estimator(name, **estimator_options(config, final))
    except TypeError as error:
        raise TinyevoError(f"bad estimator_options for {name!r}: {error}") from None
