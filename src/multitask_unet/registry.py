"""A small name -> object registry with decorator registration and "did you mean" errors.

Example:
    >>> from multitask_unet.registry import Registry
    >>> ACTIVATIONS: Registry[type] = Registry("activation")
    >>> @ACTIVATIONS.register("identity")
    ... class Identity:
    ...     pass
    >>> ACTIVATIONS.get("identity") is Identity
    True
    >>> ACTIVATIONS.list("id*")
    ['identity']
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from multitask_unet.errors import RegistryError

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects (classes, factories, configs) of one kind.

    Args:
        kind: What the registry holds, used in error messages ("encoder", "head", ...).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers an object under ``name``; registering a name twice is an error."""

        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` under ``name``."""
        if not isinstance(name, str) or not name:
            raise RegistryError(f"{self.kind} names must be non-empty strings, got {name!r}")
        if name in self._items:
            raise RegistryError(f"{self.kind} {name!r} is already registered; pick another name")
        self._items[name] = obj

    def get(self, name: str) -> T:
        """Return the object registered as ``name``; unknown names list close matches."""
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise RegistryError(self._unknown_message(name)) from None

    def list(self, pattern: str | None = None) -> list[str]:
        """Sorted registered names, optionally filtered by a shell-style pattern such as ``"res*"``."""
        names = sorted(self._items)
        if pattern is None:
            return names
        return [n for n in names if fnmatch.fnmatchcase(n, pattern)]

    def _unknown_message(self, name: object) -> str:
        close = difflib.get_close_matches(str(name), self._items, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        return (
            f"Unknown {self.kind} {name!r}.{hint} Available: {', '.join(self.list()) or '(none)'}."
        )

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.list()})"
