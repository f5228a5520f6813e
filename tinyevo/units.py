"""Human sizes and times: ``64KB`` -> 65536 bytes, ``50ms`` -> 50.0 ms, an ``eval_timeout`` of ``15min`` -> 900.0 s.

Memory units follow the microcontroller datasheet convention: 1 KB = 1024 bytes, 1 MB = 1024 KB.
"""
from __future__ import annotations

import re

from tinyevo.errors import TinyevoError

_BYTES = {"": 1, "b": 1, "kb": 1024, "kib": 1024, "k": 1024, "mb": 1024**2, "mib": 1024**2, "m": 1024**2}
_MS = {"": 1.0, "ms": 1.0, "s": 1000.0, "us": 0.001}
_MACS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}
_SECONDS = {"": 1.0, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0}
AUTO = "auto"  # the eval_timeout that follows the run's median evaluation time (``tinyevo.run.limits``)


def align4(n: int) -> int:
    """``n`` bytes rounded up to whole 32-bit words, as the generated C lays out its arrays and buffers."""
    return (int(n) + 3) // 4 * 4


def _parse(text: str, units: dict, what: str, example: str) -> float:
    if str(text).strip().startswith("-"):
        raise TinyevoError(f"{what} cannot be negative, got {text!r}; write it like {example}")
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if not match or match.group(2).lower() not in units:
        raise TinyevoError(f"cannot read {what} {text!r}; write it like {example}")
    return float(match.group(1)) * units[match.group(2).lower()]


def parse_bytes(text: str | int) -> int:
    return int(_parse(str(text), _BYTES, "a size", "64KB, 1MB or 20000"))


def parse_ms(text: str | float) -> float:
    return _parse(str(text), _MS, "a time", "50ms or 0.2s")


def parse_count(text: str | int) -> int:
    return int(_parse(str(text), _MACS, "a count", "5M or 200000"))


#: Seeds are whole numbers in [0, MAX_SEED]: every generator (numpy, torch) takes them as they are.
MAX_SEED = 2**31 - 1


def check_seed(value, where: str = "seed") -> int:
    """``value`` as a seed, or a one-line TinyevoError naming ``where``."""
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise TinyevoError(f"{where} must be a whole number from 0 to {MAX_SEED}, got {value!r}")
    return value


def check_count(value, where: str, minimum: int = 1) -> int:
    """``value`` as a whole number of at least ``minimum``, or a one-line TinyevoError."""
    if isinstance(value, str) and re.fullmatch(r"\s*-?[0-9]+\s*", value):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TinyevoError(f"{where} must be a whole number of at least {minimum}, got {value!r}")
    return value


def format_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    if n >= 1024**2:
        return f"{n / 1024**2:.2f} MB"
    if n >= 1024:
        return f"{n / 1024:.1f} KB"
    return f"{int(n)} B"


def check_eval_timeout(value, where: str = "eval_timeout") -> str | float | None:
    """``"auto"``, None (no limit) or positive seconds; a one-line TinyevoError for anything else."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "off")):
        return None
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    seconds = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*", value)
        if match and match.group(2).lower() in _SECONDS:
            seconds = float(match.group(1)) * _SECONDS[match.group(2).lower()]
    if seconds is None or not seconds > 0 or seconds == float("inf"):
        raise TinyevoError(f"{where} must be 'auto', 'none' or a positive number of seconds "
                           f"(e.g. 600, 90s, 15min), got {value!r}")
    return seconds
