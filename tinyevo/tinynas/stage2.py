"""Stage 2 of TinyNAS: train the chosen sub-space's supernet, evolve under the constraints on it,
fine-tune the winner from its inherited weights (Lin et al. 2020, MCUNet, section 3.1).

- ``supernet_for``: the weight-sharing supernet of one (width, resolution) sub-space, trained with
  the sandwich rule (``tinyevo.estimate.supernet``) or loaded when a file is already there;
- ``evolve``: the ``mcunet`` preset (generations of ``population``, the top fifth kept and bred
  from, half the children by crossover, half by per-gene mutation at p=0.1) through the ``Runner``:
  candidates that break a constraint are rejected by the cost model before evaluation, the others
  scored by ``SupernetEstimator`` (inherited weights, batch norm recalibrated) in well under a second;
- ``InheritedTraining``: the training estimator, starting from the weights the subnet inherits from
  the supernet: the fine-tuning of the winner(s).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from tinyevo.errors import TinyevoError
from tinyevo.estimate.base import EvalContext
from tinyevo.estimate.supernet import (Supernet, SupernetEstimator, SupernetTraining, cached_supernet,
                                       recalibrate_bn, train_supernet)
from tinyevo.estimate.training import TrainingEstimator, to_input
from tinyevo.run import Budget, Constraints, Runner
from tinyevo.strategies import Trial, create_strategy
from tinyevo.strategies.base import OK
from tinyevo.spaces.mbv2 import MobileNetV2Space
from tinyevo.tinynas.cost import deployed_cost

#: MCUNet's evolution: generations of 100 and 30 generations after the first.
POPULATION, GENERATIONS = 100, 30


def supernet_for(space: MobileNetV2Space, path: Path, dataset, settings: SupernetTraining,
                 progress: bool = False) -> Supernet:
    """The supernet saved at ``path`` (.npz), or a new one of ``space``'s single width, trained and
    saved there. The two files are written under temporary names and renamed, weights last, so an
    interrupted save is trained again rather than read half-written."""
    path = Path(path).with_suffix(".npz")
    if path.is_file():
        return Supernet.load(path)
    if len(space.widths) != 1:
        raise TinyevoError(f"a TinyNAS supernet is trained for one width, the space has {space.widths}")
    net = Supernet(space, width=space.widths[0], seed=settings.seed)
    train_supernet(net, dataset, settings, progress=progress)
    partial = path.with_name(path.stem + ".part.npz")
    net.save(partial)
    os.replace(partial.with_suffix(".json"), path.with_suffix(".json"))
    os.replace(partial, path)
    return net


def mcunet_strategy(space, population: int = POPULATION, seed: int = 0):
    """The ``mcunet`` preset; a population other than 100 keeps its shares (top fifth bred, elite)."""
    share = max(1, round(population / 5))
    overrides = {} if population == POPULATION else dict(
        population_size=population, offspring_size=population, truncation_size=share, elite_size=share)
    return create_strategy("mcunet", space, seed=seed, **overrides)


def evolution_budget(population: int = POPULATION, generations: int = GENERATIONS) -> int:
    """Evaluations of the first generation and ``generations`` more (duplicates and rejected
    candidates are free, as the runner counts them)."""
    return population * (generations + 1)


def evolve(space: MobileNetV2Space, estimator: SupernetEstimator, constraints: Constraints, board,
           store, population: int = POPULATION, generations: int = GENERATIONS, seed: int = 0,
           max_seconds: float | None = None, run_dir: Path | None = None,
           progress: bool = False) -> list[Trial]:
    """Run the ``mcunet`` evolution on the supernet; every trial, infeasible ones included."""
    budget = Budget(evaluations=evolution_budget(population, generations), seconds=max_seconds)
    runner = Runner(space, mcunet_strategy(space, population, seed), estimator, store, budget,
                    constraints, board, progress=progress, batch_size=population,
                    cost_model=deployed_cost, run_dir=run_dir)
    return runner.run()


def best_trials(trials: list[Trial], count: int) -> list[Trial]:
    """The ``count`` evaluated trials of best supernet accuracy (ties: the earlier trial)."""
    done = [t for t in trials if t.status == OK and "accuracy" in t.metrics]
    return sorted(done, key=lambda t: (-t.metrics["accuracy"], t.id))[:count]


@dataclass
class InheritedTraining(TrainingEstimator):
    """Training that starts from the weights a subnet inherits from the supernet at
    ``supernet_path`` (batch norm recalibrated on ``calibration_batches`` training batches first)."""

    supernet_path: str = "supernet.npz"
    calibration_batches: int = 4

    def init_module(self, module: torch.nn.Module, architecture, context: EvalContext) -> dict:
        if context.genome is None:
            raise TinyevoError("fine-tuning from a supernet needs the candidate's genome")
        net = cached_supernet(self.supernet_path, self.device_name()).set_active(context.genome)
        calibrate = SupernetEstimator(calibration_batches=self.calibration_batches,
                                      batch_size=self.batch_size, seed=self.seed,
                                      device=self.device_name())
        size = (context.genome["resolution"],) * 2
        data = self.data()
        recalibrate_bn(net, [to_input(b, data.scale, size) for b in calibrate.calibration_rows(data)])
        _, state = net.extract(context.genome)
        device = next(module.parameters()).device
        module.load_state_dict({k: v.to(device) for k, v in state.items()})
        return {}
