"""Registries of named components (pruning engines, ...), with checks.

Registering a name twice or a class that is not a subclass of the family's base is an error, so
a typo or an accidental shadowing fails at import time, not at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

__all__ = ["Registry"]


class Registry(Generic[T]):
    def __init__(self, family: str, base: type[T]) -> None:
        self.family = family
        self.base = base
        self._items: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def deco(cls: type[T]) -> type[T]:
            if not isinstance(cls, type) or not issubclass(cls, self.base):
                raise TypeError(
                    f"{cls!r} is not a subclass of {self.base.__name__}; cannot register "
                    f"it as a {self.family}"
                )
            if name in self._items:
                raise ValueError(
                    f"{self.family} {name!r} is already registered "
                    f"({self._items[name].__qualname__})"
                )
            cls.name = name  # type: ignore[attr-defined]
            self._items[name] = cls
            return cls

        return deco

    def get(self, name: str) -> type[T]:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.family} {name!r}; choose one of: {', '.join(sorted(self._items))}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)
