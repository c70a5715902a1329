"""Fold ensembles: the checkpoints of a run folder, and the checks that their models agree.

:meth:`Predictor.from_run <multitask_unet.inference.Predictor.from_run>` reads either kind of
run folder::

    RUN/checkpoints/last.pt                  a training run (multitask-unet train DATA -o RUN)
    RUN/fold_<k>/checkpoints/last.pt         a cross-validation folder (multitask-unet crossval)
    RUN/splits.json                          (cross-validation) the folds there should be
    RUN/postprocessing.json                  optional: the post-processing chosen for RUN

:func:`find_run` finds the checkpoints and refuses, before anything is loaded, a folder that is
neither kind, unfinished folds and folds that do not exist. The models of an ensemble must
agree on their inputs and outputs (:func:`check_models`) and were trained with one plan
(:func:`common_plan`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multitask_unet.checkpoints import Checkpoint
from multitask_unet.data.planning import Plan
from multitask_unet.devices import resolve_device
from multitask_unet.errors import ConfigError
from multitask_unet.inference.calibration import Calibration
from multitask_unet.inference.decision import Postprocessing
from multitask_unet.models import MultiTaskUNet

__all__ = [
    "POSTPROCESSING_FILE",
    "RunSource",
    "check_models",
    "checkpoint_calibrations",
    "common_class_names",
    "common_plan",
    "ensemble_classify",
    "ensemble_options",
    "find_run",
    "pick_head",
    "trained_mirror_axes",
]

POSTPROCESSING_FILE = "postprocessing.json"
"""Name of the post-processing file in a run folder."""

_LAST = Path("checkpoints") / "last.pt"
_FOLD = re.compile(r"fold_(\d+)")


@dataclass(frozen=True)
class RunSource:
    """Where the models of a :class:`~multitask_unet.inference.Predictor` came from.

    Attributes:
        run_dir: The run or cross-validation folder.
        folds: The folds of the ensemble, or ``None`` for a single training run.
        checkpoints: The checkpoint files, one per model.
        postprocessing_file: The ``postprocessing.json`` to apply, or ``None``.
        postprocessing: What that file holds, or ``None``.
    """

    run_dir: Path
    folds: tuple[int, ...] | None
    checkpoints: tuple[Path, ...]
    postprocessing_file: Path | None = None
    postprocessing: Postprocessing | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """``fold_<k>`` per model of a cross-validation folder, else the run folder's name."""
        if self.folds is None:
            return (self.run_dir.name or str(self.run_dir),)
        return tuple(f"fold_{k}" for k in self.folds)

    def describe(self) -> str:
        """One line for logs."""
        if self.folds is None:
            return f"the training run {self.run_dir}"
        listed = ", ".join(map(str, self.folds))
        return f"an ensemble of {len(self.folds)} fold(s) ({listed}) of {self.run_dir}"


def _expected_folds(run: Path) -> list[int]:
    """Folds of ``run``: those of ``splits.json`` when present, else the ``fold_<k>`` folders."""
    found = {
        int(m.group(1)) for p in run.iterdir() if (m := _FOLD.fullmatch(p.name)) and p.is_dir()
    }
    splits = run / "splits.json"
    if not splits.is_file():
        return sorted(found)
    try:
        data = json.loads(splits.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{splits} is not valid JSON ({exc})") from None
    if not isinstance(data, list) or not data:
        raise ConfigError(f"{splits} must hold a list of folds ({{'train': [...], 'val': [...]}})")
    return sorted(found | set(range(len(data))))


def find_run(
    run_dir: str | os.PathLike[str],
    folds: Sequence[int] | None = None,
    *,
    postprocessing: bool = True,
) -> RunSource:
    """The checkpoints of a training run or cross-validation folder (none is loaded).

    Args:
        run_dir: ``RUN`` of ``multitask-unet train -o RUN`` or a cross-validation folder.
        folds: Folds to use (default: every fold); only for a cross-validation folder.
        postprocessing: Read ``RUN/postprocessing.json`` when present.

    Raises:
        ConfigError: ``run_dir`` is neither kind of folder, a fold has no
            ``checkpoints/last.pt`` (unfinished), a fold in ``folds`` does not exist, or
            ``postprocessing.json`` is broken.
    """
    source = _find_checkpoints(Path(run_dir), folds)
    path = source.run_dir / POSTPROCESSING_FILE
    if not postprocessing or not path.is_file():
        return source
    return dataclasses.replace(
        source, postprocessing_file=path, postprocessing=Postprocessing.load(path)
    )


def _find_checkpoints(run: Path, folds: Sequence[int] | None) -> RunSource:
    if not run.is_dir():
        hint = (
            "; for a checkpoint file use --checkpoint FILE (Predictor.from_checkpoint)"
            if run.is_file()
            else ""
        )
        raise ConfigError(f"run folder {run} does not exist or is not a folder{hint}")
    expected = _expected_folds(run)
    if not expected:
        if not (run / _LAST).is_file():
            raise ConfigError(
                f"{run} is neither a training run (no {_LAST}) nor a cross-validation folder (no "
                f"fold_<k>/{_LAST}); give the RUN of 'multitask-unet train DATA -o RUN' or of "
                "'multitask-unet crossval DATA -o RUN', or a checkpoint file with --checkpoint"
            )
        if folds is not None:
            raise ConfigError(
                f"{run} is a single training run, not a cross-validation folder; drop folds "
                "(--folds)"
            )
        return RunSource(run, None, (run / _LAST,))
    if folds is None:
        chosen = expected
    else:
        chosen = sorted({int(k) for k in folds})
        missing = [k for k in chosen if k not in expected]
        if not chosen or missing:
            what = f"fold(s) {missing} not in" if missing else "no fold chosen of"
            raise ConfigError(
                f"{what} the cross-validation folder {run}; its folds: "
                f"{', '.join(map(str, expected))}"
            )
    paths = {k: run / f"fold_{k}" / _LAST for k in chosen}
    unfinished = [k for k, path in paths.items() if not path.is_file()]
    if unfinished:
        finished = [k for k in chosen if k not in unfinished]
        names = ", ".join(f"fold_{k}" for k in unfinished)
        subset = (
            f", or predict with the finished ones: folds={finished} "
            f"(--folds {' '.join(map(str, finished))})"
            if finished
            else ""
        )
        raise ConfigError(
            f"{names} of {run} have no {_LAST} (unfinished); finish them with "
            f"'multitask-unet crossval DATA -o {run} --only {' '.join(map(str, unfinished))}' "
            f"(cross_validate){subset}"
        )
    return RunSource(run, tuple(chosen), tuple(paths.values()))


def _signature(model: MultiTaskUNet) -> dict[str, Any]:
    heads = {name: head.num_classes for name, head in model.heads.items()}
    return {
        "in_channels": model.config.in_channels,
        "segmentation classes": model.config.num_classes,
        "heads (classes)": heads,
    }


def check_models(models: Sequence[MultiTaskUNet], names: Sequence[str] | None = None) -> None:
    """Refuse an ensemble whose models take other inputs or give other outputs.

    Raises:
        ConfigError: No model, or models that differ in ``in_channels``, segmentation classes,
            or classification heads and their classes (named with ``names``).
    """
    if not models:
        raise ConfigError("an ensemble needs at least one model")
    names = list(names) if names is not None else [f"model {i}" for i in range(len(models))]
    first = _signature(models[0])
    for name, model in zip(names[1:], models[1:], strict=True):
        for key, value in _signature(model).items():
            if value != first[key]:
                raise ConfigError(
                    f"the models of an ensemble must agree: {name} has {key} {value}, "
                    f"{names[0]} has {first[key]}; ensemble only folds of one cross-validation"
                )


def common_plan(checkpoints: Sequence[Checkpoint], names: Sequence[str]) -> Plan:
    """The plan every checkpoint holds (same preprocessing and patch size).

    Raises:
        ConfigError: A checkpoint has no plan, or the plans differ (the folds are named).
    """
    plans = []
    for name, ckpt in zip(names, checkpoints, strict=True):
        try:
            plans.append(ckpt.load_plan())
        except ConfigError as exc:
            raise ConfigError(f"{name}: {exc}") from None
    keys = [(p.cache_key(), p.patch_size) for p in plans]
    differ = [name for name, key in zip(names, keys, strict=True) if key != keys[0]]
    if differ:
        raise ConfigError(
            f"{', '.join(differ)} hold another plan (preprocessing or patch size) than "
            f"{names[0]}; the models of an ensemble must share one plan"
        )
    return plans[0]


def trained_mirror_axes(training: Mapping[str, Any] | None) -> tuple[int, ...] | None:
    """Axes the training augmentation mirrored, read from a checkpoint's ``training`` slot.

    ``None`` when the checkpoint does not record a training config (e.g. converted weights).
    Reads the config's ``data`` section, or the top level of configs saved before the sections.

    Example:
        >>> trained_mirror_axes({"config": {"data": {"augmentation": {"mirror_axes": [1, 2]}}}})
        (1, 2)
        >>> trained_mirror_axes({"config": {"augment": False}})  # the old flat layout
        ()
    """
    config = (training or {}).get("config")
    if not isinstance(config, Mapping):
        return None
    data = config.get("data")
    if isinstance(data, Mapping):
        config = data
    if not config.get("augment", True):
        return ()
    augmentation = config.get("augmentation")
    if not isinstance(augmentation, Mapping):  # None: nnU-Net's recipe mirrors every axis
        return (0, 1, 2)
    if float(augmentation.get("p_mirror", 0.5)) <= 0:
        return ()
    return tuple(int(a) for a in augmentation.get("mirror_axes", (0, 1, 2)))


def ensemble_mirror_axes(checkpoints: Sequence[Checkpoint]) -> tuple[int, ...] | None:
    """The axes every model of the ensemble was trained mirrored on (``None``: none recorded)."""
    known = [a for a in (trained_mirror_axes(c.training) for c in checkpoints) if a is not None]
    if not known:
        return None
    return tuple(axis for axis in known[0] if all(axis in axes for axes in known))


def common_class_names(checkpoints: Sequence[Checkpoint], names: Sequence[str]) -> tuple[str, ...]:
    """The class names every checkpoint holds.

    Raises:
        ConfigError: The checkpoints name the classes differently (named).
    """
    first = checkpoints[0].class_names
    other = [n for n, c in zip(names, checkpoints, strict=True) if c.class_names != first]
    if other:
        raise ConfigError(
            f"{', '.join(other)} name the classes otherwise than {names[0]} {first}; pass "
            "class_names=... to choose"
        )
    return first


def checkpoint_calibrations(
    checkpoints: Sequence[Checkpoint], head: str | None
) -> list[Calibration | None]:
    """Each checkpoint's calibration of ``head``, or ``None`` where it has none."""
    out: list[Calibration | None] = []
    for ckpt in checkpoints:
        slot = ckpt.calibration
        heads = (slot.get("heads") or {}) if isinstance(slot, Mapping) else {}
        out.append(Calibration.from_dict(heads[head]) if head and head in heads else None)
    return out


def ensemble_classify(
    models: Sequence[MultiTaskUNet],
    calibrations: Sequence[Calibration | None],
    logits: Sequence[torch.Tensor],
    head: str,
) -> tuple[np.ndarray, int, np.ndarray | None]:
    """Class probabilities, predicted class and uncalibrated probabilities of ``head``.

    ``logits`` holds each model's ``(K,)`` logits. The probabilities are the mean of each
    model's (calibrated) probabilities; the predicted class is one model's ``argmax`` of its
    logits, and an ensemble's ``argmax`` of the mean uncalibrated probabilities: calibration
    re-states how sure the models are, never what they decided (see
    :mod:`multitask_unet.inference.calibration`). The uncalibrated probabilities are given
    only when some model has a calibration.
    """
    calibrated, plain = [], []
    any_calibration = any(c is not None for c in calibrations)
    for model, calibration, z in zip(models, calibrations, logits, strict=True):
        z = z[None]
        rule = model.heads[head]
        p = calibration.probabilities(z) if calibration else rule.probabilities(z)
        calibrated.append(p[0].double().numpy())
        if any_calibration:
            plain.append(rule.probabilities(z)[0].double().numpy())
    if len(logits) == 1:
        return calibrated[0], int(logits[0].argmax(dim=-1)), plain[0] if plain else None
    mean = np.mean(calibrated, axis=0)
    uncalibrated = np.mean(plain, axis=0) if plain else None
    decision = uncalibrated if uncalibrated is not None else mean
    return mean, int(decision.argmax()), uncalibrated


def pick_head(model: MultiTaskUNet, name: str | None) -> str | None:
    """The classification head to report: ``name``, else ``"cls"`` or the only head."""
    heads = list(model.heads)
    if name is not None:
        if name not in heads:
            raise ConfigError(f"the model has no head {name!r}; its heads: {heads or 'none'}")
        return name
    if "cls" in heads:
        return "cls"
    if len(heads) > 1:
        raise ConfigError(f"the model has several heads {heads}; choose one with cls_head=...")
    return heads[0] if heads else None


def ensemble_options(
    checkpoints: Sequence[Checkpoint],
    names: Sequence[str] | None,
    *,
    device: torch.device | str,
    plan: Plan | None,
    calibrated: bool,
    options: Mapping[str, Any],
) -> tuple[list[MultiTaskUNet], Plan, dict[str, Any]]:
    """The models, the plan and the :class:`~multitask_unet.inference.Predictor` keywords of
    checkpoints (see :meth:`~multitask_unet.inference.Predictor.from_checkpoints`)."""
    names = list(names) if names is not None else [f"model {i}" for i in range(len(checkpoints))]
    plan = plan if plan is not None else common_plan(checkpoints, names)
    device = resolve_device(device)
    models = [c.build_model(device=device) for c in checkpoints]
    check_models(models, names)
    options = dict(options)
    if "class_names" not in options:
        options["class_names"] = common_class_names(checkpoints, names)
    head = options["cls_head"] = pick_head(models[0], options.get("cls_head"))
    if "mirror_axes" not in options:
        trained = ensemble_mirror_axes(checkpoints)
        if trained is not None:
            options["mirror_axes"] = trained
    if "calibration" not in options:
        calibrations = checkpoint_calibrations(checkpoints, head) if calibrated else None
        options["calibration"] = calibrations
    return models, plan, options
