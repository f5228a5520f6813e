"""One evaluation, as shipped to an executor: a picklable job in, a plain result dict out.

``evaluate_job`` runs wherever the executor puts it (this process, a pool worker, a Ray node). It
never raises for a candidate that cannot be evaluated: exceptions, ``EstimationFailed`` and NaN
metrics become a ``failed`` result, so the search goes on. A ``TinyevoError`` (a user error such
as a missing data file) is sent back as ``user_error`` and stops the run with its message.
"""
from __future__ import annotations

import math
import numbers
import time
from dataclasses import dataclass

from tinyevo.arch import Architecture
from tinyevo.errors import TinyevoError
from tinyevo.estimate.base import EstimationFailed, Estimator, EvalContext
from tinyevo.strategies.base import FAILED, OK


@dataclass
class Job:
    trial_id: int
    estimator: Estimator
    architecture: Architecture
    context: EvalContext


def evaluate_job(job: Job) -> dict:
    """``{"status", "metrics", "error", "started_at", "finished_at", "seconds"}`` of one job."""
    started_at, start = time.time(), time.perf_counter()
    result = {"status": OK, "metrics": {}, "error": None}
    try:
        result["metrics"] = clean_metrics(job.estimator.evaluate(job.architecture, job.context))
    except TinyevoError as error:
        result = {"status": FAILED, "metrics": {}, "error": str(error), "user_error": str(error)}
    except EstimationFailed as error:
        result = {"status": FAILED, "metrics": {}, "error": f"estimation failed: {error}"}
    except Exception as error:  # noqa: BLE001  (a broken candidate must not stop the search)
        result = {"status": FAILED, "metrics": {}, "error": f"{type(error).__name__}: {error}"}
    result.update(started_at=started_at, finished_at=time.time(),
                  seconds=time.perf_counter() - start)
    return result


def clean_metrics(metrics: dict) -> dict:
    """Plain ints, floats and lists of them (a learning curve); numpy scalars converted.

    NaN or infinity in a metric raises EstimationFailed.
    """
    if not isinstance(metrics, dict):
        raise EstimationFailed(f"the estimator returned {type(metrics).__name__}, not a dict")
    return {str(name): _clean_value(name, value) for name, value in metrics.items()}


def _clean_value(name, value):
    if isinstance(value, (list, tuple)):
        return [_clean_value(name, v) for v in value]
    if isinstance(value, numbers.Integral):
        return int(value)
    value = float(value)
    if not math.isfinite(value):
        raise EstimationFailed(f"metric {name!r} is {value}")
    return value
