"""Errors a user sees: one line saying what is wrong and how to fix it."""


class TinyevoError(Exception):
    """An error caused by the user's input. The CLI prints its message alone, never a traceback."""


class InvalidArchitecture(TinyevoError):
    """An architecture graph that cannot run: unknown op, missing input, shapes that do not fit."""
