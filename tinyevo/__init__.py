"""tinyevo: hardware-aware evolutionary neural architecture search for microcontrollers.

``tinyevo.search(...)`` runs a search from Python (``tinyevo.api``); ``tinyevo.load(RUN)`` reads
a run folder; ``tinyevo.TinyevoError`` is the error every bad input raises. The ``tinyevo``
command is ``tinyevo.cli``.
"""
from tinyevo.errors import TinyevoError

__version__ = "0.1.0"
__all__ = ["TinyevoError", "__version__", "load", "search"]


def __getattr__(name: str):
    """``search`` and ``load`` load the API (and PyTorch) on first use, so ``import tinyevo`` and
    the CLI's quick commands stay light."""
    if name in ("search", "load"):
        from tinyevo import api
        return getattr(api, name)
    raise AttributeError(f"module 'tinyevo' has no attribute {name!r}")
