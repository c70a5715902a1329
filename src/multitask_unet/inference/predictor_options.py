"""The arguments of the :class:`~multitask_unet.inference.Predictor`, checked when it is built.

A predictor whose model cannot take the plan's images, or whose sliding window the network
cannot take, fails here with the values and the fix, before any case is read (rather than
with a torch error at the first window): :func:`check_model_fits_plan`. The other functions
resolve the defaults of :class:`~multitask_unet.inference.Predictor`'s keywords.

Example:
    >>> import multitask_unet as mtu
    >>> model = mtu.create_model("tiny_plain")
    >>> model.size_divisor
    (4, 4, 4)
    >>> check_window_size((21, 24, 24), model.size_divisor)
    Traceback (most recent call last):
    ...
    multitask_unet.errors.ConfigError: window_size (21, 24, 24) ... give window_size=(20, 24, 24) ...
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch

from multitask_unet.data.planning import Plan, PreprocessingConfig
from multitask_unet.errors import ConfigError
from multitask_unet.inference.calibration import Calibration
from multitask_unet.models import MultiTaskUNet

__all__ = [
    "check_model_fits_plan",
    "check_window_size",
    "class_names_for",
    "default_window_batch_size",
    "per_model_calibrations",
    "resolve_plan",
]


def resolve_plan(
    plan: Plan | PreprocessingConfig | str | os.PathLike[str], window_size: Sequence[int] | None
) -> tuple[PreprocessingConfig, tuple[int, ...], bool]:
    """The preprocessing, the window and whether the window is the plan's ``patch_size``.

    Args:
        plan: A :class:`~multitask_unet.data.planning.Plan`, its ``plan.json`` file, or a
            preprocessing config (then ``window_size`` is needed).
        window_size: The sliding window, or ``None`` for the plan's ``patch_size``.

    Raises:
        ConfigError: No ``window_size`` and no plan to take it from.
    """
    plan = Plan.load(plan) if isinstance(plan, (str, os.PathLike)) else plan  # a plan.json
    preprocessing = plan.preprocessing if isinstance(plan, Plan) else plan
    from_plan = window_size is None
    if window_size is None:
        if not isinstance(plan, Plan):
            raise ConfigError("give window_size, or a Plan whose patch_size sets it")
        window_size = plan.patch_size
    return preprocessing, tuple(int(k) for k in window_size), from_plan


def check_window_size(
    window_size: Sequence[int], divisor: Sequence[int], *, from_plan: bool = False
) -> None:
    """Refuse a sliding window the network cannot take.

    Args:
        window_size: The window, one size per spatial axis.
        divisor: The network's ``size_divisor``.
        from_plan: The window is the plan's ``patch_size`` (said in the message).

    Raises:
        ConfigError: A window of another number of axes, a size below 1, or a size that is not
            a multiple of the divisor (the message gives the nearest window that fits).
    """
    window, divisor = tuple(window_size), tuple(divisor)
    what = f"the plan's patch_size {window}" if from_plan else f"window_size {window}"
    if len(window) != len(divisor) or min(window) < 1:
        raise ConfigError(f"{what} must be {len(divisor)} positive sizes, one per spatial axis")
    if any(k % d for k, d in zip(window, divisor, strict=True)):
        nearest = tuple(max(d, round(k / d) * d) for k, d in zip(window, divisor, strict=True))
        fix = (
            "the plan was made for another network; predict with the plan the model was "
            f"trained with, or give window_size={nearest}"
            if from_plan
            else f"give window_size={nearest} (the plan's patch_size fits the network it was "
            "planned for)"
        )
        raise ConfigError(f"{what} is not divisible by the model's size_divisor {divisor}; {fix}")


def check_model_fits_plan(
    models: Sequence[MultiTaskUNet],
    preprocessing: PreprocessingConfig,
    window_size: Sequence[int],
    *,
    from_plan: bool = False,
) -> None:
    """Refuse models that cannot take the plan's images or the sliding window.

    Args:
        models: The model, or the models of an ensemble (they agree on their input channels).
        preprocessing: The plan's preprocessing (one normalization per image channel).
        window_size: The sliding window.
        from_plan: The window is the plan's ``patch_size``.

    Raises:
        ConfigError: The models take another number of input channels than the plan's images
            have, or the window does not fit their ``size_divisor`` (see
            :func:`check_window_size`).
    """
    channels = len(preprocessing.normalization)
    in_channels = models[0].config.in_channels
    if in_channels != channels:
        raise ConfigError(
            f"the model takes {in_channels} input channel(s) (in_channels={in_channels}) but "
            f"the plan's images have {channels} (one normalization per channel); predict with "
            "the plan the model was trained with (its checkpoint holds it), or a model built "
            f"with in_channels={channels}"
        )
    divisors = [tuple(m.size_divisor) for m in models]
    divisor = tuple(math.lcm(*axis) for axis in zip(*divisors, strict=True))
    check_window_size(window_size, divisor, from_plan=from_plan)


def class_names_for(
    model: MultiTaskUNet, cls_head: str | None, class_names: Sequence[str]
) -> tuple[str, ...]:
    """The names of ``cls_head``'s classes: ``class_names``, or ``class0, class1, ...``.

    Raises:
        ConfigError: Not one name per class of the head.
    """
    num = model.heads[cls_head].num_classes if cls_head else 0
    names = tuple(class_names) or tuple(f"class{k}" for k in range(num))
    if cls_head and len(names) != num:
        raise ConfigError(
            f"{len(names)} class names {names} for the {num} classes of head "
            f"{cls_head!r}; give one name per class"
        )
    return names


def per_model_calibrations(
    calibration: Calibration | Sequence[Calibration | None] | None, num_models: int
) -> tuple[Calibration | None, ...]:
    """One calibration (or ``None``) per model: ``calibration`` for each, or the ones given.

    Raises:
        ConfigError: A sequence of another length than the models.
    """
    if calibration is None or isinstance(calibration, Calibration):
        calibration = [calibration] * num_models  # one for every model
    calibrations = tuple(calibration)
    if len(calibrations) != num_models:
        raise ConfigError(f"{len(calibrations)} calibrations for {num_models} models")
    return calibrations


def default_window_batch_size(model: torch.nn.Module, mirror_axes: Sequence[int]) -> int:
    """On the CPU the mirrored copies of one window in one call; elsewhere one per call."""
    on_cpu = all(p.device.type == "cpu" for p in model.parameters())
    return 2 ** len(tuple(mirror_axes)) if on_cpu else 1
