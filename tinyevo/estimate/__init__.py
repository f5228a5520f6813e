"""Performance estimation (survey section I-C): how good is a candidate architecture?

Importing this package registers the built-in estimators in ``ESTIMATORS``.
"""
from tinyevo.estimate.base import (COMPETITORS_KEY, ESTIMATORS, Capabilities, EstimationFailed,
                                   Estimator, EvalContext, Trainer, as_trainer)
from tinyevo.estimate import tabular, training  # noqa: F401  (register "tabular", "training")
from tinyevo.estimate import supernet  # noqa: F401
from tinyevo.estimate import learning_curve  # noqa: F401  (register "learning_curve")
from tinyevo.estimate import inheritance  # noqa: F401


def create_estimator(name: str, **options) -> Estimator:
    """``create_estimator("tabular", path=...)``; a clear TinyevoError for an unknown name."""
    return ESTIMATORS.create(name, **options)


__all__ = ["COMPETITORS_KEY", "Capabilities", "ESTIMATORS", "EstimationFailed", "Estimator", "EvalContext",
           "Trainer", "as_trainer", "create_estimator"]
