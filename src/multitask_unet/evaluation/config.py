"""What an evaluation measures: regions, labels, tolerances and the bootstrap.

By default the regions come from the dataset: one region per foreground label, named after it,
and their union (``foreground``) when there are several (:meth:`EvaluationConfig.for_labels`);
those regions already score every label, so no ``dice_label_<k>`` columns are added. A study
names its own regions, e.g. the pancreas study's :data:`PANCREAS_REGIONS` (``whole_pancreas`` =
labels 1 and 2, ``lesion`` = label 2), and then also gets a ``dice_label_<k>`` column per
foreground label unless it names ``labels`` itself. A region or label the dataset does not have
is refused (:meth:`EvaluationConfig.check_labels`), not scored as empty everywhere.

Example:
    >>> cfg = EvaluationConfig().for_labels({"background": 0, "liver": 1, "tumour": 2})
    >>> [(r.key, r.labels) for r in cfg.regions], cfg.labels
    ([('liver', (1,)), ('tumour', (2,)), ('foreground', (1, 2))], ())
    >>> EvaluationConfig(regions=("organ=1,2",)).for_labels({"organ": 1, "tumour": 2}).labels
    (1, 2)
    >>> EvaluationConfig.from_dict({"nsd_tolerance_mm": 1.0, "regions": [{"key": "organ", "labels": [1]}]}).regions
    (Region(key='organ', labels=(1,)),)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from multitask_unet.config import Config, check_seed
from multitask_unet.errors import ConfigError

__all__ = ["PANCREAS_REGIONS", "EvaluationConfig", "Region"]

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Region(Config):
    """A named foreground region: the union of some labels of a label map.

    Args:
        key: Identifier used in column and metric names (``dice_<key>``), e.g.
            ``"whole_pancreas"``.
        labels: The label values that together form the region, e.g. ``(1, 2)``.
    """

    key: str
    labels: tuple[int, ...]

    def __post_init__(self) -> None:
        if not _NAME.match(self.key):
            raise ConfigError(
                f"region name {self.key!r} must start with a letter and hold only letters, "
                "digits and '_' (it becomes a column name)"
            )
        if not self.labels or any(label <= 0 for label in self.labels):
            raise ConfigError(
                f"region {self.key!r} needs one or more foreground labels > 0, got {self.labels}"
            )
        if len(set(self.labels)) != len(self.labels):
            raise ConfigError(f"region {self.key!r} lists a label twice: {self.labels}")

    @classmethod
    def parse(cls, text: str) -> Region:
        """Build a region from ``"NAME=L1,L2"``, e.g. ``"whole_pancreas=1,2"``."""
        name, sep, labels = text.partition("=")
        try:
            values = tuple(int(v) for v in labels.split(",") if v.strip())
        except ValueError:
            values = ()
        if not sep or not values:
            raise ConfigError(f"region {text!r} must look like NAME=L1,L2 (e.g. lesion=2)")
        return cls(key=name.strip(), labels=values)


PANCREAS_REGIONS: tuple[Region, ...] = (
    Region("whole_pancreas", (1, 2)),
    Region("lesion", (2,)),
)
"""The pancreas study's regions: pancreas and lesion together (labels 1, 2), and the lesion."""


@dataclass(frozen=True)
class EvaluationConfig(Config):
    """Options of :func:`multitask_unet.evaluation.evaluate`.

    Args:
        regions: Regions scored with Dice, NSD and HD95, each a :class:`Region`, a mapping
            ``{"key": NAME, "labels": [L1, ...]}`` or a string ``"NAME=L1,L2"``; None (the
            default): one per foreground label of the dataset and their union
            (:meth:`for_labels`).
        labels: Single labels scored with Dice (columns ``dice_label_<k>``); None (the
            default): every foreground label of the dataset when ``regions`` are given, none
            when the regions are the dataset's (they hold one region per label already).
        nsd_tolerance_mm: Tolerance of the normalised surface distance, in mm.
        hd_percentile: Percentile of the robust Hausdorff distance (95 for HD95; the columns
            keep the name ``hd95_<region>``).
        both_empty: Dice and NSD of a region that is empty in both reference and prediction:
            ``"one"`` (1.0, the Metrics Reloaded convention) or ``"nan"`` (left out of means).
        n_bootstrap: Bootstrap resamples of the cases for the confidence intervals.
        confidence: Level of the percentile bootstrap intervals.
        seed: Seed of the bootstrap, from 0 to ``2**32 - 1``; equal seeds give equal intervals.
    """

    regions: tuple[Region, ...] | None = None
    labels: tuple[int, ...] | None = None
    nsd_tolerance_mm: float = 2.0
    hd_percentile: float = 95.0
    both_empty: Literal["one", "nan"] = "one"
    n_bootstrap: int = 1000
    confidence: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if self.regions is not None:
            regions = (self.regions,) if isinstance(self.regions, (str, Region)) else self.regions
            object.__setattr__(self, "regions", tuple(_as_region(r) for r in regions))
        if self.labels is not None:
            labels = (self.labels,) if isinstance(self.labels, int) else self.labels
            object.__setattr__(self, "labels", tuple(int(v) for v in labels))
        names = [r.key for r in self.regions or ()]
        if len(set(names)) != len(names):
            raise ConfigError(f"region names must be unique, got {names}")
        if any(label <= 0 for label in self.labels or ()):
            raise ConfigError(f"labels must be foreground values > 0, got {self.labels}")
        if not self.nsd_tolerance_mm >= 0:
            raise ConfigError(f"nsd_tolerance_mm must be >= 0, got {self.nsd_tolerance_mm}")
        if not 0 <= self.hd_percentile <= 100:
            raise ConfigError(f"hd_percentile must be in [0, 100], got {self.hd_percentile}")
        if self.n_bootstrap < 0:
            raise ConfigError(
                f"n_bootstrap must be >= 0 (0 skips intervals), got {self.n_bootstrap}"
            )
        if not 0 < self.confidence < 1:
            raise ConfigError(f"confidence must be in (0, 1), e.g. 0.95, got {self.confidence}")
        check_seed(self.seed, "EvaluationConfig.seed (the bootstrap seed)")

    def for_labels(self, label_names: Mapping[str, int]) -> EvaluationConfig:
        """This config with ``regions`` and ``labels`` that are None filled from a dataset's
        labels ``{name: value}`` (background, value 0, left out): regions one per foreground
        label and their union; labels none when the regions were filled so (they score every
        label already), else every foreground label.

        Raises:
            ConfigError: The dataset has no foreground label and none were given.
        """
        foreground = sorted((int(v), str(k)) for k, v in label_names.items() if int(v) > 0)
        if not foreground and (self.regions is None or self.labels is None):
            raise ConfigError(
                f"the dataset declares no foreground label ({dict(label_names)}); give its "
                "labels in dataset.json or name the regions to score (--region NAME=L1,L2)"
            )
        regions = self.regions
        if regions is None:
            keys: list[str] = []
            for value, name in foreground:
                key = _region_name(name, value)
                keys.append(f"{key}_{value}" if key in keys else key)
            regions = tuple(Region(k, (v,)) for k, (v, _) in zip(keys, foreground))
            if len(foreground) > 1:
                union = "foreground" if "foreground" not in keys else "all_foreground"
                regions += (Region(union, tuple(v for v, _ in foreground)),)
        labels = self.labels
        if labels is None:  # the dataset's regions hold one per label: no column twice
            labels = () if self.regions is None else tuple(v for v, _ in foreground)
        return replace(self, regions=regions, labels=labels)

    def check_labels(self, label_names: Mapping[str, int], *, source: str, fix: str = "") -> None:
        """Refuse regions and labels that name a value the dataset does not have.

        Such a region would be empty in every reference and prediction and score as perfect
        agreement (Dice 1, NSD 1, HD95 0).

        Args:
            label_names: The dataset's labels ``{name: value}``; empty: unknown, nothing is
                checked.
            source: Where the labels come from, for the message, e.g. ``"DATA/dataset.json"``.
            fix: Added to the message, e.g. how to declare labels that exist elsewhere.

        Raises:
            ConfigError: A region or label value is not among ``label_names``; the message
                names the region, the unknown values and the dataset's labels.

        Example:
            >>> EvaluationConfig(regions=("a=9",)).check_labels({"organ": 1}, source="x")
            Traceback (most recent call last):
            ...
            multitask_unet.errors.ConfigError: region 'a' names label 9, which x does not have (its labels: 1 organ); use those labels, e.g. --region NAME=1
        """
        if not label_names:
            return
        known = {int(v) for v in label_names.values()}
        listing = ", ".join(f"{v} {k}" for k, v in sorted(label_names.items(), key=_value))
        foreground = [v for v in sorted(known) if v > 0] or [1]
        wanted = [
            (f"region {r.key!r} names", r.labels, f"--region NAME={','.join(map(str, foreground))}")
            for r in self.regions or ()
        ]
        wanted.append(("labels lists", self.labels or (), f"labels: {foreground}"))
        for what, values, example in wanted:
            unknown = [v for v in values if v not in known]
            if unknown:
                many = "s" if len(unknown) > 1 else ""
                raise ConfigError(
                    f"{what} label{many} {', '.join(map(str, unknown))}, which {source} does not "
                    f"have (its labels: {listing}); use those labels, e.g. {example}{fix}"
                )

    @property
    def both_empty_value(self) -> float:
        """The numeric value that ``both_empty`` stands for."""
        return 1.0 if self.both_empty == "one" else float("nan")


def _as_region(value: Region | Mapping[str, object] | str) -> Region:
    """A region given as a :class:`Region`, ``{"key": ..., "labels": [...]}`` or ``"NAME=L1,L2"``."""
    if isinstance(value, Region):
        return value
    if isinstance(value, str):
        return Region.parse(value)
    if isinstance(value, Mapping):
        return Region.from_dict(value)
    raise ConfigError(
        f"a region must be a Region, a mapping {{'key': NAME, 'labels': [L1, ...]}} or a string "
        f"'NAME=L1,L2', got {value!r}"
    )


def _value(item: tuple[str, int]) -> int:
    return int(item[1])


def _region_name(name: str, value: int) -> str:
    """A label name as a region name (letters, digits and ``_``, starting with a letter)."""
    text = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_")
    return text if _NAME.match(text) else f"label_{value}"
