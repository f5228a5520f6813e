"""Non-negative least squares on relative errors, the fit of the measured cost models
(``tinyevo.hardware.calibration``'s instructions per op kind, ``tinyevo.hardware.deployed_flash``'s
code bytes): each measurement weighs the same whatever its size."""
from __future__ import annotations

import numpy as np
from scipy.optimize import nnls


def relative_nnls(features: np.ndarray, measured: np.ndarray, what: str) -> np.ndarray:
    """Non-negative coefficients ``c`` minimizing the squared relative error of ``features @ c``
    against ``measured`` (columns scaled first, so no feature's unit dominates; an all-zero column
    gets 0). ``what`` names the caller in the error for no or non-positive measurements."""
    x = np.asarray(features, dtype=float)
    y = np.asarray(measured, dtype=float)
    if len(y) == 0 or np.any(y <= 0):
        raise ValueError(f"{what} needs at least one measurement, all positive")
    weighted = x / y[:, None]
    scale = np.abs(weighted).max(axis=0)
    scale[scale == 0] = 1.0
    solution, _ = nnls(weighted / scale, np.ones(len(y)), maxiter=50 * x.shape[1])
    return solution / scale
