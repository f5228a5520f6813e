"""Argument types of the CLI's flags that take numbers with a range: one place per kind, each the
check the config and the Python API make (``tinyevo.units``), so a flag and a TOML key refuse a bad
value with the same line."""
from __future__ import annotations

import argparse

from tinyevo.errors import TinyevoError
from tinyevo.units import check_count, check_seed


def seed(text: str) -> int:
    """``--seed``: a whole number from 0 to ``MAX_SEED``."""
    try:
        return check_seed(text)
    except TinyevoError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def count(text: str) -> int:
    """A positive whole number (``--count``)."""
    try:
        return check_count(text, "it")
    except TinyevoError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
