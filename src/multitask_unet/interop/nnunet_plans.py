"""Take over an nnU-Net plans configuration's preprocessing as our :class:`Plan`.

:func:`preprocessing_from_nnunet` turns one configuration of an nnU-Net v2 ``plans.json``
(with the ``dataset.json`` that lies next to it) into the
:class:`~multitask_unet.data.planning.PreprocessingConfig` that gives the arrays nnU-Net's
``DefaultPreprocessor`` gives; :func:`plan_from_nnunet` adds the configuration's patch and batch
size and the network's ``size_divisor``, so that a model built by
:func:`~multitask_unet.interop.nnunet.model_from_plans` trains and predicts as nnU-Net did.

What is taken over:

* ``spacing`` -> ``target_spacing``; ``patch_size``, ``batch_size``,
  ``median_image_size_in_voxels`` -> the plan's ``patch_size``, ``batch_size``, ``median_shape``;
* ``normalization_schemes`` per channel: ``CTNormalization`` -> ``"ct"`` with the plans'
  ``foreground_intensity_properties_per_channel`` (``percentile_00_5`` / ``percentile_99_5``
  as ``lower`` / ``upper``, ``mean``, ``std``), ``ZScoreNormalization`` -> ``"zscore"``,
  ``NoNormalization`` -> ``"none"``; other schemes, and z-scoring inside a mask
  (``use_mask_for_norm``), are refused;
* the resampling orders (``resampling_fn_data_kwargs`` / ``resampling_fn_seg_kwargs``:
  ``order``, ``order_z``); nnU-Net's automatic choice of the separate axis
  (``force_separate_z: null``) is ours (threshold 3), a forced one is refused;
* ``dataset.json``'s ``labels`` (background included); region-based labels and an ``ignore``
  label are refused.

Axes: nnU-Net stores ``spacing`` and ``patch_size`` in its array order, the SimpleITK array
``(z, y, x)`` permuted by ``transpose_forward``. Our ``(D, H, W)`` arrays of an LPS file are that
SimpleITK array (:mod:`multitask_unet.data.orientation`), so with ``transpose_forward``
``[0, 1, 2]`` (nnU-Net's choice whenever the coarsest axis comes first, e.g. axial CT) the
values are taken over as they are. Plans with another ``transpose_forward`` are refused: their
network and weights see the axes in another order.

Example:
    >>> plans = {"transpose_forward": [0, 1, 2],
    ...     "foreground_intensity_properties_per_channel": {"0": {"mean": 90.0, "std": 40.0,
    ...         "percentile_00_5": -100.0, "percentile_99_5": 200.0}},
    ...     "configurations": {"3d_fullres": {"spacing": [3.0, 0.8, 0.8],
    ...         "patch_size": [40, 128, 128], "batch_size": 2,
    ...         "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False]}}}
    >>> config = preprocessing_from_nnunet(plans, dataset_json={"labels": {"background": 0,
    ...     "organ": 1, "tumour": 2}})
    >>> config.target_spacing, config.normalization[0].upper, config.labels
    ((3.0, 0.8, 0.8), 200.0, (0, 1, 2))
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from multitask_unet.data.planning import (
    ChannelNormalization,
    DatasetFingerprint,
    Plan,
    PreprocessingConfig,
)
from multitask_unet.errors import ConfigError
from multitask_unet.interop.nnunet import _load_plans, _resolve_configuration, config_from_plans

__all__ = ["nnunet_labels", "plan_from_nnunet", "preprocessing_from_nnunet"]

_SCHEMES = {
    "CTNormalization": "ct",
    "ZScoreNormalization": "zscore",
    "NoNormalization": "none",
}
_RESAMPLING = "resample_data_or_seg_to_shape"
_IDENTITY = [0, 1, 2]

PlansSource = str | os.PathLike[str] | Mapping[str, Any]


def nnunet_labels(
    dataset_json: str | os.PathLike[str] | Mapping[str, Any],
) -> dict[str, int]:
    """The segmentation labels (name -> value) of an nnU-Net ``dataset.json``.

    Raises:
        ConfigError: No ``labels``, region-based labels (lists of values), an ``ignore`` label,
            no background 0, or values that are not 0, 1, ..., N-1.
    """
    where = "dataset.json" if isinstance(dataset_json, Mapping) else str(dataset_json)
    data = _read_json(dataset_json, "nnU-Net dataset.json")
    labels = data.get("labels")
    if not isinstance(labels, Mapping) or not labels:
        raise ConfigError(f"{where} has no 'labels' mapping, e.g. {{'background': 0, 'organ': 1}}")
    regions = [k for k, v in labels.items() if isinstance(v, (list, tuple))]
    if regions or "regions_class_order" in data:
        raise ConfigError(
            f"{where} declares region-based labels ({regions or 'regions_class_order'}); "
            "multitask_unet trains one softmax over labels: use a dataset.json with one value "
            "per label"
        )
    if "ignore" in labels:
        raise ConfigError(
            f"{where} declares an 'ignore' label ({labels['ignore']}); it is not supported: "
            "remove it from the labels (and the masks) to take these plans over"
        )
    out = {str(k): int(v) for k, v in labels.items()}
    if sorted(out.values()) != list(range(len(out))):
        raise ConfigError(
            f"{where} labels {out} must be 0 (background), 1, ..., N-1 as nnU-Net requires"
        )
    return out


def preprocessing_from_nnunet(
    plans: PlansSource,
    configuration: str = "3d_fullres",
    *,
    dataset_json: str | os.PathLike[str] | Mapping[str, Any] | None = None,
) -> PreprocessingConfig:
    """The :class:`PreprocessingConfig` of an nnU-Net plans configuration (module docstring).

    Args:
        plans: Path of ``nnUNetPlans.json`` / ``plans.json`` (or a ResEnc plans file), or its
            parsed dict.
        configuration: A 3D configuration, e.g. ``"3d_fullres"``; ``inherits_from`` is resolved.
        dataset_json: nnU-Net's ``dataset.json`` (path or dict) for the labels; default: the
            ``dataset.json`` next to the plans file (nnU-Net writes one into both
            ``nnUNet_preprocessed/DatasetXXX/`` and each trained model's folder).

    Raises:
        ConfigError: A missing or malformed file, an unknown configuration (the available ones
            are listed), a 2D or cascade configuration, transposed axes, or a preprocessing
            option that has no equivalent here.
    """
    plans_dict = _load_plans(plans)
    config = _configuration(plans_dict, configuration)
    schemes = list(config.get("normalization_schemes") or [])
    if not schemes:
        raise ConfigError(f"configuration {configuration!r} has no 'normalization_schemes'")
    masks = list(config.get("use_mask_for_norm") or [])
    masks += [False] * (len(schemes) - len(masks))  # one per channel; absent: no mask
    properties = plans_dict.get("foreground_intensity_properties_per_channel") or {}
    normalization = tuple(
        _normalization(i, scheme, bool(mask), properties, configuration)
        for i, (scheme, mask) in enumerate(zip(schemes, masks))
    )
    image_order, image_order_z = _orders(config, "data", (3, 0))
    seg_order, seg_order_z = _orders(config, "seg", (1, 0))
    labels = nnunet_labels(_dataset_json(plans, dataset_json))
    return PreprocessingConfig(
        target_spacing=_triple(config, "spacing", float, configuration),  # type: ignore[arg-type]
        normalization=normalization,
        labels=tuple(sorted(labels.values())),
        orientation="LPS",  # our (D, H, W) of an LPS file is SimpleITK's (z, y, x) array
        crop_to_nonzero=True,  # nnU-Net always crops to the non-zero region
        image_order=image_order,
        image_order_z=image_order_z,
        seg_order=seg_order,
        seg_order_z=seg_order_z,
        anisotropy_threshold=3.0,  # nnU-Net's ANISO_THRESHOLD
    )


def plan_from_nnunet(
    plans: PlansSource,
    configuration: str = "3d_fullres",
    *,
    fingerprint: DatasetFingerprint,
    dataset_json: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    gpu_memory_gb: float = 8.0,
) -> Plan:
    """Our :class:`Plan` for an nnU-Net plans configuration and the dataset to train on.

    The preprocessing is :func:`preprocessing_from_nnunet`'s; ``patch_size``, ``batch_size``
    and ``median_shape`` are the configuration's, ``size_divisor`` is its network's (as
    :func:`~multitask_unet.interop.nnunet.model_from_plans` builds it) and ``fingerprint`` is
    recorded as the plan's (its intensities are not used: normalisation is nnU-Net's).

    Args:
        plans: Path of the plans file or its dict.
        configuration: The configuration to take over.
        fingerprint: The fingerprint of the dataset to train on
            (:func:`~multitask_unet.data.planning.fingerprint.compute_fingerprint`).
        dataset_json: As in :func:`preprocessing_from_nnunet`.
        gpu_memory_gb: Recorded as the plan's memory budget (plans files do not store it;
            nnU-Net's default planner plans for 8 GB).

    Raises:
        ConfigError: As :func:`preprocessing_from_nnunet`; or the dataset has another number
            of channels than the plans normalise, or labels the plans do not have.
    """
    plans_dict = _load_plans(plans)
    preprocessing = preprocessing_from_nnunet(
        plans_dict, configuration, dataset_json=_dataset_json(plans, dataset_json)
    )
    config = _configuration(plans_dict, configuration)
    name = "the plans" if isinstance(plans, Mapping) else Path(plans).name
    channels = len(preprocessing.normalization)
    if fingerprint.num_channels != channels:
        raise ConfigError(
            f"the dataset has {fingerprint.num_channels} image channel(s) but configuration "
            f"{configuration!r} of {name} normalises {channels}; take over plans made for data "
            "with the same channels"
        )
    unknown = sorted(set(fingerprint.labels) - set(preprocessing.labels))
    if unknown:
        raise ConfigError(
            f"the dataset's masks hold label(s) {unknown} that the plans' dataset.json does not "
            f"declare (labels {list(preprocessing.labels)}); take over plans made for these labels"
        )
    _warn_if_axes_differ(fingerprint, preprocessing.target_spacing)
    network = config_from_plans(
        plans_dict, configuration, in_channels=channels, num_classes=len(preprocessing.labels)
    )
    median = config.get("median_image_size_in_voxels")
    return Plan(
        preprocessing=preprocessing,
        patch_size=_triple(config, "patch_size", int, configuration),  # type: ignore[arg-type]
        batch_size=int(config.get("batch_size", 2)),
        size_divisor=tuple(network.size_divisor),  # type: ignore[arg-type]
        median_shape=(
            tuple(round(float(x)) for x in median)  # type: ignore[arg-type]
            if median is not None and len(median) == 3
            else tuple(round(float(x)) for x in fingerprint.median_shape_after_crop)
        ),
        gpu_memory_gb=float(gpu_memory_gb),
        anisotropic_axis=None,
        fingerprint=fingerprint,
    )


def _read_json(source: str | os.PathLike[str] | Mapping[str, Any], what: str) -> dict[str, Any]:
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} holds a JSON {type(data).__name__}, not an object")
    return data


def _dataset_json(
    plans: PlansSource, dataset_json: str | os.PathLike[str] | Mapping[str, Any] | None
) -> str | os.PathLike[str] | Mapping[str, Any]:
    if dataset_json is not None:
        return dataset_json
    if not isinstance(plans, Mapping):
        sibling = Path(plans).parent / "dataset.json"
        if sibling.is_file():
            return sibling
        raise ConfigError(
            f"no dataset.json next to {plans} for the labels; pass dataset_json (nnU-Net's "
            "dataset.json of the dataset the plans were made for)"
        )
    raise ConfigError("plans given as a dict need dataset_json (nnU-Net's dataset.json) too")


def _configuration(plans: Mapping[str, Any], name: str) -> dict[str, Any]:
    transpose = list(plans.get("transpose_forward", _IDENTITY))
    if transpose != _IDENTITY:
        raise ConfigError(
            f"these plans transpose the arrays (transpose_forward {transpose}): nnU-Net trained "
            "their network on axes in another order than our (D, H, W) = SimpleITK's "
            "(z, y, x). Only plans with transpose_forward [0, 1, 2] can be taken over; plan "
            "this dataset with `multitask-unet plan` instead"
        )
    config = _resolve_configuration(plans, name)
    if "previous_stage" in config:
        raise ConfigError(
            f"configuration {name!r} is a cascade stage (previous_stage "
            f"{config['previous_stage']!r}) whose input includes another network's "
            "segmentation; take over a 3d_fullres or 3d_lowres configuration"
        )
    spacing = config.get("spacing")
    if not isinstance(spacing, (list, tuple)) or len(spacing) != 3:
        raise ConfigError(
            f"configuration {name!r} is not 3D (spacing {spacing}); multitask_unet trains 3D "
            f"networks: take over one of {_three_d(plans)}"
        )
    preprocessor = config.get("preprocessor_name", "DefaultPreprocessor")
    if preprocessor != "DefaultPreprocessor":
        raise ConfigError(
            f"configuration {name!r} uses preprocessor {preprocessor!r}; only nnU-Net's "
            "DefaultPreprocessor is reproduced here"
        )
    return config


def _three_d(plans: Mapping[str, Any]) -> list[str]:
    names = []
    for key in sorted(plans.get("configurations") or {}):
        try:
            spacing = _resolve_configuration(plans, key).get("spacing")
        except ConfigError:
            continue
        if isinstance(spacing, (list, tuple)) and len(spacing) == 3:
            names.append(key)
    return names


def _normalization(
    channel: int, scheme: str, mask: bool, properties: Mapping[str, Any], configuration: str
) -> ChannelNormalization:
    short = str(scheme).rsplit(".", 1)[-1]
    if short not in _SCHEMES:
        raise ConfigError(
            f"channel {channel}: normalization scheme {scheme!r} of configuration "
            f"{configuration!r} has no equivalent here; supported: {sorted(_SCHEMES)}"
        )
    ours = _SCHEMES[short]
    if ours == "zscore" and mask:
        raise ConfigError(
            f"channel {channel}: z-scoring inside the non-zero mask (use_mask_for_norm true) "
            "is not supported; only whole-image ZScoreNormalization is"
        )
    if ours != "ct":
        return ChannelNormalization(ours)  # type: ignore[arg-type]
    stats = properties.get(str(channel))
    keys = ("percentile_00_5", "percentile_99_5", "mean", "std")
    if not isinstance(stats, Mapping) or any(k not in stats for k in keys):
        raise ConfigError(
            f"channel {channel} uses CTNormalization but the plans' "
            f"foreground_intensity_properties_per_channel[{str(channel)!r}] lacks "
            f"{', '.join(keys)}"
        )
    lower, upper, mean, std = (float(stats[k]) for k in keys)
    return ChannelNormalization("ct", lower, upper, mean, std)


def _orders(config: Mapping[str, Any], kind: str, default: tuple[int, int]) -> tuple[int, int]:
    function = str(config.get(f"resampling_fn_{kind}", _RESAMPLING))
    if function != _RESAMPLING:
        raise ConfigError(
            f"resampling_fn_{kind} {function!r} is not reproduced here; only nnU-Net's "
            f"{_RESAMPLING!r} is"
        )
    kwargs = config.get(f"resampling_fn_{kind}_kwargs") or {}
    if kwargs.get("force_separate_z") is not None:
        raise ConfigError(
            f"resampling_fn_{kind}_kwargs force_separate_z={kwargs['force_separate_z']} is not "
            "supported; the separate axis is chosen automatically here (force_separate_z null)"
        )
    return int(kwargs.get("order", default[0])), int(kwargs.get("order_z", default[1]))


def _triple(config: Mapping[str, Any], key: str, kind: type, configuration: str) -> tuple:
    value = config.get(key)
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ConfigError(f"configuration {configuration!r} needs a 3D {key!r}, got {value!r}")
    return tuple(kind(v) for v in value)


def _warn_if_axes_differ(fingerprint: DatasetFingerprint, spacing: tuple[float, ...]) -> None:
    """Warn when the data's coarsest axis is not the plans' (axes read in another order)."""
    ours, theirs = np.asarray(fingerprint.median_spacing), np.asarray(spacing)
    both_anisotropic = ours.max() > 2 * ours.min() and theirs.max() > 2 * theirs.min()
    if both_anisotropic and int(np.argmax(ours)) != int(np.argmax(theirs)):
        warnings.warn(
            f"the dataset's coarsest axis is {int(np.argmax(ours))} (median spacing "
            f"{tuple(round(float(s), 3) for s in ours)}) but the plans' is "
            f"{int(np.argmax(theirs))} (spacing {tuple(round(float(s), 3) for s in theirs)}): "
            "are the files stored in another axis order than the ones nnU-Net planned on?",
            stacklevel=3,
        )
