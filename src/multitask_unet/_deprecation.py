"""Renamed keyword arguments: the former name still works for one release, with a warning.

Example:
    >>> @renamed_kwargs(num_workers="workers")
    ... def load(*, workers: int = 2) -> int:
    ...     return workers
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     load(num_workers=4)
    4
    >>> print(caught[0].message)
    load(num_workers=...) is deprecated; use workers=... (the old name will be removed in the next release)
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import ParamSpec, TypeVar

__all__ = ["renamed_kwargs"]

P = ParamSpec("P")
R = TypeVar("R")


def renamed_kwargs(**renames: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: each ``old=new`` keyword is accepted under its old name with a ``FutureWarning``.

    A call with the old name gets the value under the new name (so results are identical) and
    a ``FutureWarning`` naming the function and the new argument, pointing at the caller's line
    (``FutureWarning`` rather than ``DeprecationWarning`` so that users of scripts and notebooks
    see it). Giving both names is a ``TypeError``, as for any argument given twice. The
    decorated function keeps its signature (only the new names), docstring and name.

    Args:
        **renames: Former keyword name -> current keyword name.

    Returns:
        The decorator.
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        name = fn.__qualname__.removesuffix(".__init__")

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            for old, new in renames.items():
                if old not in kwargs:
                    continue
                if new in kwargs:
                    raise TypeError(
                        f"{name}() got both {old}= and {new}=; {old} is the former name of "
                        f"{new}: pass only {new}=..."
                    )
                warnings.warn(
                    f"{name}({old}=...) is deprecated; use {new}=... (the old name will be "
                    "removed in the next release)",
                    FutureWarning,
                    stacklevel=2,
                )
                kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return wrapper

    return decorate
