"""The run folder: what ``tinyevo search --out RUN`` (and ``tinyevo tinynas``) write, and reading it back.

    RUN/trials.sqlite          every trial as it finishes, the run's settings ("search_config"),
                               the final records ("final"): the store (``tinyevo.store``)
    RUN/models/trial_N.json    architecture of a final-trained model     (``models.save_model``)
    RUN/models/trial_N.npz     its weights, a state dict without pickle
    RUN/results.json           what ``tinyevo show`` prints               (``results.write_results``)

``layout`` names the files, ``config`` reads the settings as stored, ``estimators`` builds the run's
estimators from them, ``results`` the front and best model, ``final`` trains and records the front's models, ``int8`` their
int8 accuracy, ``models`` loads a kept model for ``tinyevo export`` (which hands it to
``tinyevo.deploy``; deploy never reads a run folder).
"""
from tinyevo.runs.layout import MODELS_DIR, RESULTS_FILE, STORE_FILE
from tinyevo.runs.results import best_row, load_results, write_results

__all__ = ["MODELS_DIR", "RESULTS_FILE", "STORE_FILE", "best_row", "load_results", "write_results"]
