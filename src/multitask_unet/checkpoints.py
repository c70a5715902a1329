"""The checkpoint file: weights plus everything needed to rebuild and use a model.

A checkpoint is one ``torch.save`` file holding a plain dict (format :data:`FORMAT`, version
:data:`FORMAT_VERSION`)::

    format, format_version      "multitask_unet.checkpoint", 1
    versions                    {"multitask_unet": ..., "torch": ...} that wrote it
    model_config                ModelConfig.to_dict()
    state_dict                  the model's tensors
    plan                        Plan.to_dict() (preprocessing + patch size), or None
    class_names                 case-level class names, index = class, e.g. ["subtype0", ...]
    label_names                 segmentation labels, e.g. {"background": 0, "pancreas": 1, ...}
    calibration                 optional dict (e.g. {"temperature": 1.3}), or None
    training                    optional dict of trainer state (optimizer, epoch, RNG, ...), or None
    extra                       free dict for anything else (always a dict)

It is read back with ``torch.load(weights_only=True)``: only tensors, dicts, lists, tuples,
str, int, float, bool and None may appear inside, so loading never runs pickled code. The
trainer keeps its resumable state in ``training``; users may keep notes in ``extra``.
Files are written atomically (a temporary file in the same folder, then ``os.replace``).

Example:
    >>> import tempfile, pathlib, multitask_unet as mtu
    >>> model = mtu.create_model("tiny_plain")
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.pt"
    >>> _ = save_checkpoint(path, model, class_names=["a", "b"])
    >>> ckpt = load_checkpoint(path)
    >>> ckpt.class_names, type(ckpt.build_model()).__name__
    (('a', 'b'), 'MultiTaskUNet')
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from multitask_unet._atomic import atomic_path
from multitask_unet.data.planning import Plan
from multitask_unet.data.readers import generic_label_names
from multitask_unet.errors import ConfigError, WeightsError
from multitask_unet.models import ModelConfig, MultiTaskUNet

__all__ = ["FORMAT", "FORMAT_VERSION", "Checkpoint", "load_checkpoint", "save_checkpoint"]

FORMAT = "multitask_unet.checkpoint"
"""Value of the ``"format"`` key that marks a multitask_unet checkpoint."""

FORMAT_VERSION = 1
"""Version of the file layout written by this code; files of a newer version are refused."""


@dataclass(frozen=True, eq=False)
class Checkpoint:
    """A loaded checkpoint (see the module docstring for the file layout).

    Attributes:
        state_dict: The model's tensors (on the ``map_location`` of :func:`load_checkpoint`).
        model_config: ``ModelConfig.to_dict()`` of the model.
        plan: ``Plan.to_dict()``, or ``None`` (a model not tied to a preprocessing plan).
        class_names: Case-level class names; ``class_names[k]`` is class ``k``.
        label_names: Segmentation labels by name.
        calibration: Calibration parameters, or ``None``.
        training: Trainer state for resuming, or ``None``.
        extra: Anything else the writer stored.
        versions: Library and torch versions that wrote the file.
        format_version: Layout version of the file.
    """

    state_dict: dict[str, torch.Tensor]
    model_config: dict[str, Any]
    plan: dict[str, Any] | None = None
    class_names: tuple[str, ...] = ()
    label_names: dict[str, int] = field(default_factory=dict)
    calibration: dict[str, Any] | None = None
    training: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def config(self) -> ModelConfig:
        """The :class:`~multitask_unet.models.ModelConfig` of the saved model."""
        return ModelConfig.from_dict(self.model_config)

    def build_model(
        self, *, device: torch.device | str | None = None, strict: bool = True
    ) -> MultiTaskUNet:
        """Build the model and load its weights; returned in eval mode.

        Args:
            device: Where to put the model (default: where the weights were loaded).
            strict: Require the weights to match the model exactly.

        Raises:
            WeightsError: The weights do not fit the saved config.
        """
        model = MultiTaskUNet(self.config())
        try:
            model.load_state_dict(self.state_dict, strict=strict)
        except RuntimeError as exc:
            raise WeightsError(
                f"the checkpoint's weights do not fit its model config: {exc}. "
                "The file may have been edited or written by an incompatible version."
            ) from None
        if device is not None:
            model = model.to(device)
        return model.eval()

    def load_plan(self) -> Plan:
        """The :class:`~multitask_unet.data.planning.Plan` the model was trained with.

        Raises:
            ConfigError: The checkpoint holds no plan.
        """
        if self.plan is None:
            raise ConfigError(
                "this checkpoint holds no preprocessing plan; save it with "
                "save_checkpoint(..., plan=plan) or pass the plan explicitly"
            )
        return Plan.from_dict(self.plan)


def _unwrap(model: nn.Module) -> MultiTaskUNet:
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):  # DDP, torch.compile
        model = getattr(model, "module", None) or model._orig_mod  # type: ignore[assignment]
    if not isinstance(model, MultiTaskUNet):
        raise ConfigError(
            f"save_checkpoint saves a MultiTaskUNet, got {type(model).__name__}; build the model "
            "with multitask_unet.create_model or interop.nnunet.model_from_plans"
        )
    return model


_PLAIN = (str, int, float, bool, type(None), torch.Tensor)


def _check_plain(value: Any, where: str) -> None:
    """Raise if ``value`` holds anything ``torch.load(weights_only=True)`` would refuse."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if type(key) not in (str, int):
                raise ConfigError(
                    f"{where} has a key {key!r} of type {type(key).__name__}; use str"
                )
            _check_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif type(value) not in _PLAIN and not isinstance(value, torch.Tensor):
        raise ConfigError(
            f"{where} is a {type(value).__name__} ({value!r:.60}); checkpoints hold only tensors, "
            "dicts, lists, tuples, str, int, float, bool and None (convert numpy arrays with "
            "torch.from_numpy, numpy scalars with .item())"
        )


def _versions() -> dict[str, str]:
    from multitask_unet import __version__

    return {"multitask_unet": str(__version__), "torch": str(torch.__version__)}


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    plan: Plan | Mapping[str, Any] | None = None,
    class_names: Sequence[str] = (),
    label_names: Mapping[str, int] | None = None,
    calibration: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically.

    Args:
        path: Output file (conventionally ``*.pt``); parent folders are created.
        model: A :class:`~multitask_unet.models.MultiTaskUNet` (DDP / compiled wrappers are
            unwrapped).
        plan: The preprocessing :class:`~multitask_unet.data.planning.Plan` (or its dict).
        class_names: Case-level class names in class order.
        label_names: Segmentation labels by name (default: ``background``, ``label1``, ... for
            the model's segmentation classes).
        calibration: Optional calibration parameters.
        training: Optional trainer state; must hold only tensors, dicts, lists, tuples, str,
            int, float, bool and None.
        extra: Optional free-form dict with the same restriction.

    Raises:
        ConfigError: ``model`` is not a MultiTaskUNet, or a dict holds another type (named
            with its place, e.g. ``training['rng'][1]``), which could not be loaded back.

    Returns:
        The written path.
    """
    net = _unwrap(model)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": _versions(),
        "model_config": net.config.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
        "plan": plan.to_dict() if isinstance(plan, Plan) else (dict(plan) if plan else None),
        "class_names": [str(c) for c in class_names],
        "label_names": {
            str(k): int(v)
            for k, v in (label_names or generic_label_names(range(net.config.num_classes))).items()
        },
        "calibration": dict(calibration) if calibration is not None else None,
        "training": dict(training) if training is not None else None,
        "extra": dict(extra or {}),
    }
    for key in ("plan", "calibration", "training", "extra"):
        _check_plain(payload[key], key)
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_checkpoint(
    path: str | os.PathLike[str], *, map_location: torch.device | str = "cpu"
) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (``torch.load(weights_only=True)``).

    Args:
        path: The checkpoint file.
        map_location: Device for the tensors.

    Raises:
        WeightsError: The file is missing, unreadable, not a multitask_unet checkpoint, or of a
            newer format version than this library reads.
    """
    path = Path(path)
    if path.is_dir():
        places = ("checkpoints/last.pt", "last.pt", "fold_*/checkpoints/last.pt", "*.pt")
        inside = [found for place in places for found in sorted(path.glob(place))]
        hint = f"e.g. {inside[0]}" if inside else "a .pt file"
        raise WeightsError(
            f"checkpoint {path} is a folder; give the checkpoint file ({hint}); predict takes a "
            "whole run or cross-validation folder as --model RUN"
        )
    if not path.is_file():
        raise WeightsError(f"checkpoint {path} does not exist; check the path")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # unpickling and zip errors come in many types
        raise WeightsError(
            f"{path} is not a readable multitask_unet checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); it was read with "
            "torch.load(weights_only=True), which runs no code from the file. Use a checkpoint "
            "written by multitask-unet train or multitask_unet.checkpoints.save_checkpoint"
        ) from None
    if not isinstance(payload, Mapping) or payload.get("format") != FORMAT:
        hint = (
            " It looks like an nnU-Net checkpoint: build the network with "
            "interop.nnunet.model_from_plans and load it with load_nnunet_weights."
            if isinstance(payload, Mapping) and "network_weights" in payload
            else " Use a checkpoint written by multitask-unet train (RUN/checkpoints/last.pt) "
            "or by multitask_unet.checkpoints.save_checkpoint."
        )
        raise WeightsError(
            f"{path} is not a multitask_unet checkpoint (no format={FORMAT!r} marker).{hint}"
        )
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        written = payload.get("versions", {}).get("multitask_unet", "?")
        raise WeightsError(
            f"{path} has checkpoint format version {version!r} (written by multitask_unet "
            f"{written}); this library reads up to version {FORMAT_VERSION}. Upgrade "
            "multitask_unet (pip install -U multitask_unet)."
        )
    try:
        return Checkpoint(
            state_dict=dict(payload["state_dict"]),
            model_config=dict(payload["model_config"]),
            plan=payload.get("plan"),
            class_names=tuple(payload.get("class_names") or ()),
            label_names=dict(
                payload.get("label_names")
                or generic_label_names(range(int(payload["model_config"].get("num_classes", 1))))
            ),
            calibration=payload.get("calibration"),
            training=payload.get("training"),
            extra=dict(payload.get("extra") or {}),
            versions=dict(payload.get("versions") or {}),
            format_version=version,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(
            f"{path} is a damaged multitask_unet checkpoint: missing {exc}. Use another "
            "checkpoint of the run (checkpoints/best.pt or last.pt) or save the model again "
            "with multitask_unet.checkpoints.save_checkpoint"
        ) from None
