"""Start training from weights users already have (``model.init_weights``, ``--init-weights``).

The file is read with ``torch.load(weights_only=True)`` (NumPy scalars allowed, so nnU-Net's
checkpoints load; no code from the file runs) and recognised by what it holds:

- a checkpoint of this library (``multitask-unet train``'s ``last.pt``, ``save_checkpoint``);
- an nnU-Net checkpoint (``checkpoint_final.pth``: its ``network_weights``, renamed as
  :func:`~multitask_unet.interop.nnunet.convert_nnunet_state_dict` does);
- a ``state_dict`` of a ``MultiTaskUNet`` (``torch.save(model.state_dict(), path)``);
- otherwise, for a ``timm3d`` encoder, a timm-3d checkpoint of its backbone
  (:func:`~multitask_unet.interop.timm3d_weights.load_timm3d_checkpoint`).

Every tensor of the network must be in the file with its shape, except the classification
heads, which may be new (initialised as usual); a missing tensor or one of another shape is an
error that names it, with both shapes, before anything is trained. Tensors of the file that the
network does not have (e.g. another head) are left out and reported.

Example:
    >>> report = initialise_from(model, "nnUNet_results/.../checkpoint_final.pth")  # doctest: +SKIP
    >>> print(report.describe())  # doctest: +SKIP
    initialised from checkpoint_final.pth (nnU-Net checkpoint): 98 tensors loaded; new: heads.cls
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from multitask_unet.checkpoints import FORMAT
from multitask_unet.errors import WeightsError
from multitask_unet.models import MultiTaskUNet

__all__ = ["InitReport", "initialise_from"]


@dataclass(frozen=True)
class InitReport:
    """What :func:`initialise_from` did.

    Attributes:
        path: The weights file.
        kind: What the file was read as.
        loaded: Names of the network's tensors taken from the file.
        new: Names of the network's tensors left newly initialised (the heads').
        unused: Names of the file's tensors the network has no place for.
    """

    path: Path
    kind: str
    loaded: tuple[str, ...]
    new: tuple[str, ...]
    unused: tuple[str, ...]

    def describe(self) -> str:
        """One line: the file, its kind, the counts, and the modules left new or unused."""
        text = f"initialised from {self.path} ({self.kind}): {len(self.loaded)} tensors loaded"
        if self.new:
            text += f"; newly initialised: {', '.join(_modules(self.new))}"
        if self.unused:
            text += f"; not used from the file: {', '.join(_modules(self.unused))}"
        return text


def initialise_from(model: MultiTaskUNet, path: str | os.PathLike[str]) -> InitReport:
    """Load the weights of ``path`` into ``model`` in place (see the module docstring).

    Raises:
        WeightsError: The file is missing or unreadable, or a tensor of the network other than
            a head's is missing from it or has another shape there.
    """
    from multitask_unet.interop.nnunet import convert_nnunet_state_dict, load_weights_file

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"init weights {path} do not exist; check the path")
    payload = load_weights_file(
        path,
        fix="Give a checkpoint of multitask-unet train, an nnU-Net checkpoint_final.pth, a "
        "state_dict or a timm-3d checkpoint",
    )
    if isinstance(payload, Mapping) and payload.get("format") == FORMAT:
        return _load(model, path, "multitask_unet checkpoint", payload["state_dict"])
    if isinstance(payload, Mapping) and "network_weights" in payload:
        weights = convert_nnunet_state_dict(payload["network_weights"])
        return _load(model, path, "nnU-Net checkpoint", weights)
    state = payload.get("state_dict", payload) if isinstance(payload, Mapping) else None
    own = model.state_dict()
    if isinstance(state, Mapping) and any(k in own for k in state):
        return _load(model, path, "state_dict", state)
    if getattr(model.encoder, "backbone", None) is not None:
        from multitask_unet.interop.timm3d_weights import load_timm3d_checkpoint

        load_timm3d_checkpoint(model.encoder.backbone, path)
        loaded = tuple(k for k in own if k.startswith("encoder."))
        new = tuple(k for k in own if not k.startswith("encoder."))
        return InitReport(path, "timm-3d encoder checkpoint", loaded, new, ())
    raise WeightsError(
        f"{path} holds no tensors of this network (its keys begin {_first_keys(state)}); give "
        "a checkpoint of multitask-unet train, an nnU-Net checkpoint_final.pth or, for a timm3d "
        "encoder, a timm-3d checkpoint"
    )


def _load(model: MultiTaskUNet, path: Path, kind: str, weights: Mapping[str, Any]) -> InitReport:
    own = model.state_dict()
    weights = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in weights.items()}
    for name, tensor in own.items():
        if name.startswith("heads."):
            continue
        if name not in weights:
            raise WeightsError(
                f"{path} ({kind}) has no tensor {name!r} of this network; build the network the "
                "file was trained with (same preset or plans, channels and labels)"
            )
        shape = tuple(getattr(weights[name], "shape", ()))
        if shape != tuple(tensor.shape):
            raise WeightsError(
                f"{path} ({kind}): tensor {name!r} has shape {shape} in the file but "
                f"{tuple(tensor.shape)} in the network; build the network the file was trained "
                "with (same preset or plans, in_channels and number of labels)"
            )
    usable = {
        k: v for k, v in weights.items() if k in own and tuple(v.shape) == tuple(own[k].shape)
    }
    model.load_state_dict(usable, strict=False)
    return InitReport(
        path,
        kind,
        loaded=tuple(k for k in own if k in usable),
        new=tuple(k for k in own if k not in usable),
        unused=tuple(k for k in weights if k not in usable),
    )


def _modules(names: tuple[str, ...]) -> list[str]:
    """``heads.cls.fc.weight`` -> ``heads.cls``; other names to their first part."""
    out: list[str] = []
    for name in names:
        parts = name.split(".")
        module = ".".join(parts[:2]) if parts[0] == "heads" else parts[0]
        if module not in out:
            out.append(module)
    return out


def _first_keys(state: Any) -> list[str]:
    return list(state)[:3] if isinstance(state, Mapping) else [type(state).__name__]
