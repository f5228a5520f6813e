"""The ``Estimator`` interface (survey section I-C): how good is a candidate architecture?

An estimator returns metrics such as ``accuracy`` (validation accuracy in [0, 1]) for one
architecture. It declares what it provides, what it needs from the ``EvalContext`` and its
``capabilities`` (what the runner and the search job give it, whether it trains a model of its
own), and ``settings()``: the options that identify it in a run's config (``tinyevo.run.resume``).
An estimator that trains (``capabilities.trains``) is a ``Trainer``: the run's final models are
trained by one (``as_trainer``).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from tinyevo.arch import Architecture
from tinyevo.errors import TinyevoError
from tinyevo.registry import Registry

ESTIMATORS: Registry["Estimator"] = Registry("estimator")

#: ``EvalContext.extra`` key the runner fills for estimators with ``capabilities.competitors``: what
#: the candidate competes with, ``{"directions": {metric: "max" | "min"}, "costs": {metric: value},
#: "trials": [{metric: value}, ...]}`` (the objectives of the trials finished before its batch).
COMPETITORS_KEY = "competitors"
_SCALARS = (int, float, str, bool, type(None))


class EstimationFailed(Exception):
    """A candidate could not be evaluated (NaN loss, out of memory...): recorded as failed."""


@dataclass
class EvalContext:
    """What an estimator may use besides the architecture."""

    genome: Any = None
    space: Any = None
    trial_id: int = -1
    seed: int = 0
    parents: tuple[int, ...] = ()
    #: Folder of the run (weights of trials are kept under it), or None for in-memory use.
    run_dir: Path | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Capabilities:
    """What an estimator needs from a run besides ``EvalContext`` fields (``Estimator.needs``), and
    whether it trains."""

    #: Wants ``context.extra[COMPETITORS_KEY]`` (learning-curve early stopping).
    competitors: bool = False
    #: May keep trial weights under ``run_dir`` (weight inheritance): the runner prunes them to what
    #: can still be inherited after every batch.
    kept_weights: bool = False
    #: Is given the run's dataset and fidelity settings by the search job (``SearchJob.estimator``).
    training_data: bool = False
    #: Trains a model of its own: a ``Trainer`` (``fit``, ``accuracy``, ``data``), which is what
    #: trains a run's final models.
    trains: bool = False


class Estimator(ABC):
    name: str = ""
    #: What it needs from the run and whether it trains (read from the class).
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: Metrics ``evaluate`` returns, ``accuracy`` at least.
    provides: tuple[str, ...] = ("accuracy",)
    #: Fields of ``EvalContext`` it cannot work without, e.g. ("genome",) or ("run_dir",).
    needs: tuple[str, ...] = ()
    #: Metrics among ``provides`` that are measured times: the only ones a seed does not fix.
    timings: tuple[str, ...] = ()

    @abstractmethod
    def evaluate(self, architecture: Architecture, context: EvalContext) -> dict[str, float]:
        """Metrics of one architecture; raises EstimationFailed when it cannot be evaluated."""

    def settings(self) -> dict:
        """The declared options that identify this estimator in a run's config: its dataclass
        fields holding JSON data (a field holding an object, such as a ``Dataset`` given in memory,
        is left out). An estimator that is not a dataclass declares none unless it overrides this."""
        if not dataclasses.is_dataclass(self):
            return {}
        values = {f.name: json_data(getattr(self, f.name)) for f in dataclasses.fields(self)
                  if not f.name.startswith("_")}
        return {name: value for name, value in values.items() if value is not NOT_JSON}


class Trainer(Estimator):
    """An estimator that trains (``capabilities.trains``): what ``finalize`` needs to train, score
    and keep a run's final models."""

    capabilities: ClassVar[Capabilities] = Capabilities(training_data=True, trains=True)

    @abstractmethod
    def fit(self, architecture: Architecture, context: EvalContext | None = None) -> Any:
        """The trained model (``module``, ``architecture``, ``metrics``); raises EstimationFailed."""

    @abstractmethod
    def accuracy(self, trained: Any, part: str = "val") -> float:
        """Accuracy of a trained model on one split of the data (``"val"`` or ``"test"``)."""

    @abstractmethod
    def data(self) -> Any:
        """The dataset it trains on (``tinyevo.data.Dataset``)."""


def as_trainer(estimator: Estimator) -> Trainer:
    """``estimator`` as a ``Trainer``; a clear error for one that cannot train a model."""
    if not (estimator.capabilities.trains and isinstance(estimator, Trainer)):
        raise TinyevoError(f"estimator {estimator.name!r} does not train models, so it cannot train "
                           f"the final models of a run; use 'training', 'inheritance' or "
                           f"'learning_curve'")
    return estimator


NOT_JSON = object()


def json_data(value: Any) -> Any:
    """``value`` as JSON data (a dataclass as a dict of its fields), or ``NOT_JSON``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        items = {str(k): json_data(v) for k, v in value.items()}
        return NOT_JSON if NOT_JSON in items.values() else items
    if isinstance(value, (list, tuple)):
        items = [json_data(v) for v in value]
        return NOT_JSON if any(v is NOT_JSON for v in items) else items
    return value if isinstance(value, _SCALARS) else NOT_JSON
