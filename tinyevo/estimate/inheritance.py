"""Weight inheritance (network morphism; Cai et al. 2018, Elsken et al. 2017; Net2Net, Chen et al. 2016).

A child starts from its parent's trained weights, then trains briefly (``epochs``, default 1); a
candidate with no parent weights on disk trains from scratch (``scratch_epochs``). Every trained
candidate's weights are saved under ``run_dir/weights/<trial_id>.npz`` (see ``weights_store``, which
also holds the cleanup policy and ``prune_weights``). With several parents (crossover), the child
inherits from the one that gives it the most parameters.

How the child's layers map onto the parent's, and what ``inherited_fraction`` counts: ``morphism``.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from tinyevo.arch import Architecture
from tinyevo.errors import TinyevoError
from tinyevo.estimate.base import ESTIMATORS, Capabilities, EvalContext
from tinyevo.estimate.morphism import inherit
from tinyevo.estimate.training import (TrainedModel, TrainingEstimator, check_fits, evaluate_accuracy,
                                       trial_seed)
from tinyevo.estimate.weights_store import load_weights, save_weights
from tinyevo.nn import build

PARENTS_KEY = "inheritance_parents"  # context.extra key, set and read inside one process only


@ESTIMATORS.register("inheritance")
@dataclass
class InheritanceEstimator(TrainingEstimator):
    """Training that starts from the parent's weights: ``epochs`` (brief; 0 = just evaluate the
    inherited weights) for a child with a parent on disk, ``scratch_epochs`` otherwise. Trained
    weights are saved under ``run_dir/weights`` when ``keep_weights``. Other knobs: TrainingEstimator;
    a ``context.extra["fidelity"]`` override such as ``{"epochs": 2}`` sets the brief training."""

    epochs: int = 1
    scratch_epochs: int = 5
    keep_weights: bool = True

    name = "inheritance"
    provides = TrainingEstimator.provides + ("inherited_fraction", "inherited_from")
    needs = ("run_dir",)
    capabilities = Capabilities(kept_weights=True, training_data=True, trains=True)

    def __post_init__(self):
        if self.epochs < 0 or self.scratch_epochs < 1:
            raise TinyevoError(f"inheritance needs epochs >= 0 and scratch_epochs >= 1, got "
                               f"epochs={self.epochs}, scratch_epochs={self.scratch_epochs}")
        probe = copy.copy(self)  # the training checks, on the epochs it may train for
        probe.epochs = self.scratch_epochs
        TrainingEstimator.__post_init__(probe)

    def fit(self, architecture: Architecture, context: EvalContext | None = None) -> TrainedModel:
        context = context or EvalContext()
        settings = self.with_fidelity(context)
        parents = [w for w in (load_weights(context.run_dir, i) for i in dict.fromkeys(context.parents))
                   if w is not None]
        extra = {k: v for k, v in (context.extra or {}).items() if k != "fidelity"}
        inner = dataclasses.replace(context, extra={**extra, PARENTS_KEY: parents})
        if parents and settings.epochs == 0:
            trained = settings.inherited_only(architecture, inner)
        else:
            trainer = settings if parents else dataclasses.replace(settings, epochs=settings.scratch_epochs)
            trained = TrainingEstimator.fit(trainer, architecture, inner)
        settings.keep(trained, context)
        return trained

    def init_module(self, module: nn.Module, architecture: Architecture, context: EvalContext) -> dict:
        parents = (context.extra or {}).get(PARENTS_KEY) or []
        return inherit(module, architecture, parents, np.random.default_rng(context.seed))

    def inherited_only(self, architecture: Architecture, context: EvalContext) -> TrainedModel:
        """The child with its inherited weights, not trained (``epochs=0``)."""
        data = self.data()
        check_fits(architecture, data)
        arch, device = self.low_fidelity(architecture), torch.device(self.device_name())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(trial_seed(self.seed, context.seed))
            module = build(arch).to(device)
        start = self.init_module(module, arch, context)
        x_val, y_val = (torch.from_numpy(a).to(device) for a in (data.x_val, data.y_val))
        accuracy = evaluate_accuracy(module, x_val, y_val, data.scale, arch.input_shape[:2],
                                     self.eval_batch_size)
        return TrainedModel(module, arch, {"accuracy": accuracy, "learning_curve": [], "train_seconds": 0.0,
                                           "epochs": 0, "train_rows": 0, "stopped_early": False, **start})

    def keep(self, trained: TrainedModel, context: EvalContext) -> None:
        """Save the trained weights for the children of this trial."""
        if not self.keep_weights or context.run_dir is None or context.trial_id < 0:
            return
        try:
            save_weights(context.run_dir, context.trial_id, trained.module.state_dict(), trained.architecture)
        except OSError as error:
            raise TinyevoError(f"cannot write weights under {context.run_dir}: {error}; free disk space "
                               f"or set keep_weights = false") from None
