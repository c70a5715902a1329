"""Old flat training configs into today's sections, with one ``DeprecationWarning``.

Before the sections, every option of a ``TrainConfig`` sat at the top level (``epochs: 100``,
``amp: bf16``), and there were two time limits: ``time_budget_minutes`` (fit the schedule into
it) and ``time_limit_minutes`` (stop after the epoch in which it passed). Files, dicts,
checkpoints and plan recipes written that way still load: each old key moves to its section,
the two limits to ``runtime.time_limit_minutes`` with ``runtime.on_time_limit`` ``"fit"`` or
``"stop"``.

Example:
    >>> data, moved = migrate_train_dict({"epochs": 5, "time_budget_minutes": 30})
    >>> data
    {'optimization': {'epochs': 5}, 'runtime': {'time_limit_minutes': 30, 'on_time_limit': 'fit'}}
    >>> moved[0]
    "'epochs' moved to 'optimization.epochs'"
"""

from __future__ import annotations

import dataclasses
import difflib
import sys
import warnings
from collections.abc import Mapping
from typing import Any

from multitask_unet.config import Config
from multitask_unet.errors import ConfigError
from multitask_unet.training.config_sections import DataConfig, OptimizationConfig, RuntimeConfig
from multitask_unet.training.model_spec import ModelSpec

__all__ = [
    "MOVED",
    "RENAMED",
    "SECTIONS",
    "migrate_train_dict",
    "new_place",
    "old_value",
    "warn_moved",
]

#: The sections of a TrainConfig, in order.
SECTIONS: dict[str, type[Config]] = {
    "model": ModelSpec,
    "data": DataConfig,
    "optimization": OptimizationConfig,
    "runtime": RuntimeConfig,
}
_OLD_KEYS = {
    "optimization": ("optimizer", "loss", "epochs", "iterations_per_epoch"),
    "data": (
        "patch_size", "batch_size", "foreground_probability", "lesion_probability",
        "lesion_label", "weights_mode", "max_oversampling", "augment", "augmentation",
        "num_workers",
    ),
    "runtime": (
        "device", "amp", "compile", "seed", "deterministic", "progress", "val_every",
        "val_overlap", "time_limit_minutes", "time_budget_minutes",
    ),
}  # fmt: skip
#: Every top-level key of the old flat layout -> its section.
MOVED: dict[str, str] = {key: section for section, keys in _OLD_KEYS.items() for key in keys}
# The two old time limits -> the runtime.on_time_limit they mean.
_LIMITS = {"time_budget_minutes": "fit", "time_limit_minutes": "stop"}
RENAMED: dict[str, str] = {"weights_mode": "class_weights"}
"""Options renamed within their section: the case draws and the loss say ``class_weights``."""
_DOCS = "docs/concepts/training.md"


def new_place(key: str) -> str:
    """Where an old top-level key lives now, e.g. ``"optimization.epochs"``."""
    if key in _LIMITS:
        return "runtime.time_limit_minutes"
    return f"{MOVED[key]}.{RENAMED.get(key, key)}"


def migrate_train_dict(data: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``data`` in the sectioned layout, and a note per moved key (empty when none moved).

    Raises:
        ConfigError: An unknown key (with the closest valid one), a key in the wrong
            section, an old key given together with its new place, or both old time limits.
    """
    data = {k: v for k, v in data.items() if not (k in SECTIONS and v is None)}
    moved = _rename_in_sections(data)
    _check_keys(data)
    flat = {k: data.pop(k) for k in list(data) if k in MOVED}
    limits = {k: flat.pop(k) for k in _LIMITS if k in flat}
    for key, value in flat.items():
        _put(data, MOVED[key], RENAMED.get(key, key), value, old=key)
        moved.append(f"'{key}' moved to '{new_place(key)}'")
    given = {k: v for k, v in limits.items() if v is not None}
    if len(given) == 2:
        raise ConfigError(
            "'time_budget_minutes' and 'time_limit_minutes' are both set, but a config has one "
            "time limit now: runtime.time_limit_minutes, with runtime.on_time_limit 'fit' "
            "(shorten the schedule to finish within it: the old time_budget_minutes) or "
            "'stop' (stop after the epoch in which it passed, resumable: the old "
            "time_limit_minutes); keep one of them"
        )
    if limits:  # the set one, else any: an unset limit beside a set one says nothing
        key, value = next(iter(given.items() or limits.items()))
        _put(data, "runtime", "time_limit_minutes", value, old=key)
        if value is not None:
            _put(data, "runtime", "on_time_limit", _LIMITS[key], old=key)
    for key in limits:
        note = f"'{key}' moved to 'runtime.time_limit_minutes'"
        if key in given:
            note += f" with 'runtime.on_time_limit: {_LIMITS[key]}'"
        moved.append(note)
    return data, moved


def warn_moved(moved: list[str]) -> None:
    """One ``DeprecationWarning`` listing every moved key, pointing at the caller's code."""
    warnings.warn(
        f"TrainConfig: the flat layout is deprecated; {'; '.join(moved)} (see {_DOCS})",
        DeprecationWarning,
        stacklevel=_caller_level(),
    )


def old_value(config: Any, key: str) -> Any:
    """The value an old flat attribute (``config.epochs``) had, read from the sections."""
    runtime = config.runtime
    if key == "time_budget_minutes":
        return runtime.fit_minutes
    if key == "time_limit_minutes":
        return runtime.stop_minutes
    return getattr(getattr(config, MOVED[key]), RENAMED.get(key, key))


def _rename_in_sections(data: dict[str, Any]) -> list[str]:
    """Rename the options of :data:`RENAMED` inside their sections; a note for each."""
    notes = []
    for old, new in RENAMED.items():
        section = data.get(MOVED[old])
        if isinstance(section, Mapping) and old in section:
            if new in section:
                raise ConfigError(
                    f"'{MOVED[old]}.{old}' and '{MOVED[old]}.{new}' are both given; "
                    f"'{old}' is the old name: keep '{new}' only"
                )
            section = {(new if k == old else k): v for k, v in section.items()}
            data[MOVED[old]] = section
            notes.append(f"'{MOVED[old]}.{old}' is now '{MOVED[old]}.{new}'")
    return notes


def _put(data: dict[str, Any], section: str, key: str, value: Any, *, old: str) -> None:
    current = data.get(section)
    current = {} if current is None else current
    if isinstance(current, Config):
        current = current.to_dict()
    if not isinstance(current, Mapping):
        raise ConfigError(f"TrainConfig.{section} must be a mapping, got {current!r}")
    current = dict(current)
    if key in current and not (key == "on_time_limit" and current[key] == value):
        raise ConfigError(
            f"'{old}' (the old flat layout) and '{section}.{key}' are both given; keep "
            f"'{section}.{key}' only"
        )
    current[key] = value
    data[section] = current


def _section_of(key: str) -> str | None:
    return next((s for s, cls in SECTIONS.items() if key in _fields(cls)), None)


def _fields(cls: type[Config]) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]


def _check_keys(data: Mapping[str, Any]) -> None:
    for key in data:
        if key in SECTIONS or key in MOVED:
            continue
        leaves = {k: f"{s}.{k}" for s, cls in SECTIONS.items() for k in _fields(cls)}
        places = {**leaves, **{k: new_place(k) for k in MOVED}, **{s: s for s in SECTIONS}}
        close = difflib.get_close_matches(str(key), places, n=1)
        hint = f" Did you mean {places[close[0]]!r}?" if close else ""
        raise ConfigError(
            f"TrainConfig has no option {key!r}.{hint} Valid options: "
            f"{', '.join(SECTIONS)} (sections; {_DOCS} lists their keys)."
        )
    for section, cls in SECTIONS.items():
        value = data.get(section)
        if not isinstance(value, Mapping):
            continue
        for key in value:
            home = _section_of(str(key))
            if key not in _fields(cls) and home is not None:
                raise ConfigError(f"'{section}.{key}': {key} belongs in '{home}.{key}'")


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside this package (the user's code)."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith("multitask_unet"):
        frame, level = frame.f_back, level + 1
    return level
