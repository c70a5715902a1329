"""The exceptions multitask_unet raises.

Every error derives from :class:`MultitaskUNetError`, so ``except MultitaskUNetError`` catches
anything the library raises on purpose. Subclasses also derive from the built-in exception a
caller would expect (``ValueError``, ``KeyError``, ``TypeError``), so existing handlers keep
working.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataError",
    "DataWarning",
    "MultitaskUNetError",
    "RegistryError",
    "ShapeError",
    "TrainingError",
    "WeightsError",
]


class MultitaskUNetError(Exception):
    """Base class of every error raised by multitask_unet."""


class ConfigError(MultitaskUNetError, ValueError):
    """A configuration value or key is invalid; the message names it and the fix."""


class RegistryError(MultitaskUNetError, KeyError):
    """A name is not registered; the message lists close matches."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class ShapeError(MultitaskUNetError, ValueError):
    """A tensor or volume has a shape the component cannot take; the message names a valid one."""


class DataError(MultitaskUNetError, ValueError):
    """A data file or dataset layout is invalid; the message names the file and the fix."""


class TrainingError(MultitaskUNetError, RuntimeError):
    """Training cannot go on (e.g. its weights became NaN); the message says what still holds."""


class WeightsError(MultitaskUNetError, ValueError):
    """Weights do not fit a model (missing, unexpected or mis-shaped tensors)."""


class DataWarning(UserWarning):
    """Input data was read with a documented repair (e.g. NaN voxels); the message names the file."""
