"""Registries: each kind of plug-in (spaces, strategies, estimators, exporters) is looked up by name."""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

from tinyevo.errors import TinyevoError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a name to a factory. ``register`` is a decorator; ``create`` gives a clear error."""

    def __init__(self, kind: str):
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable:
        def decorate(factory):
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._factories[name] = factory
            return factory
        return decorate

    def names(self) -> list[str]:
        return sorted(self._factories)

    def get(self, name: str) -> Callable[..., T]:
        try:
            return self._factories[name]
        except KeyError:
            raise TinyevoError(f"unknown {self.kind} {name!r}; choose one of: "
                               f"{', '.join(self.names())}") from None

    def create(self, name: str, **options) -> T:
        return self.get(name)(**options)

    def __contains__(self, name: str) -> bool:
        return name in self._factories
