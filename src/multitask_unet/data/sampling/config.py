"""The data section of a training config: how the loader draws and augments patches.

:class:`DataConfig` is ``TrainConfig.data``; the training loader's
:class:`~multitask_unet.data.sampling.loader.LoaderConfig` is the same options with the patch,
batch, schedule and seed resolved, so the options are defined (and checked) once.

Example:
    >>> DataConfig.from_dict({"patch_size": [32, 64, 64]}).patch_size
    (32, 64, 64)
    >>> DataConfig(augment=False).augmentation_config((32, 64, 64)) == AugmentationConfig.off()
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

from multitask_unet.config import Config
from multitask_unet.data.sampling.augmentation import AugmentationConfig
from multitask_unet.data.sampling.case_sampling import CLASS_WEIGHTS, ClassWeights
from multitask_unet.errors import ConfigError

__all__ = ["DataConfig"]


@dataclass(frozen=True)
class DataConfig(Config):
    """What the training loader draws: patches, batches, sampling and augmentation.

    Attributes:
        patch_size: Patch ``(D, H, W)`` (None: the plan's); divisible by the network's
            ``size_divisor``.
        batch_size: Patches per step over all processes (None: the plan's). Under ``torchrun``
            each of N processes takes ``batch_size / N``.
        foreground_probability: Share of patches centred on a foreground voxel (nnU-Net: 1/3).
        lesion_probability: Share of patches of labelled cases centred on the lesion label.
        lesion_label: Segmentation label of the lesion (for ``lesion_probability``); None is
            the training set's rarest foreground label by voxel count (the trainer reads it
            from the plan's fingerprint; in the pancreas study, the lesion).
        class_weights: How case draws weigh the classes: ``"balanced"`` (every class equally
            often, capped by ``max_oversampling``), ``"inverse_sqrt"`` or ``"none"``
            (uniform over cases); the same words as a loss term's ``class_weights``.
        max_oversampling: No class is drawn more than this many times its natural frequency,
            so that a class of one or two cases cannot take most draws from the others (see
            ``docs/concepts/sampling.md``); None lifts the cap.
        augment: False turns augmentation off entirely.
        augmentation: Augmentation strengths and where they run; None is nnU-Net's recipe for
            the patch size, and so is ``{backend: device}`` alone (that recipe on the device).
        num_workers: Data-loading worker processes per training process.
    """

    patch_size: tuple[int, int, int] | None = None
    batch_size: int | None = None
    foreground_probability: float = 1 / 3
    lesion_probability: float = 0.0
    lesion_label: int | None = None
    class_weights: ClassWeights = "balanced"
    max_oversampling: float | None = 3.0
    augment: bool = True
    augmentation: AugmentationConfig | None = None
    num_workers: int = 0

    _where: ClassVar[str] = "data"

    def __post_init__(self) -> None:
        where = self._where
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(
                f"{where}.batch_size must be at least 1 (or null), got {self.batch_size}"
            )
        if self.patch_size is not None:
            if len(self.patch_size) != 3 or min(self.patch_size) < 1:
                raise ConfigError(
                    f"{where}.patch_size must be three positive sizes (D, H, W), got "
                    f"{self.patch_size}"
                )
            object.__setattr__(self, "patch_size", tuple(int(s) for s in self.patch_size))
        for key in ("foreground_probability", "lesion_probability"):
            if not 0 <= getattr(self, key) <= 1:
                raise ConfigError(f"{where}.{key} must be in [0, 1], got {getattr(self, key)}")
        if self.class_weights not in CLASS_WEIGHTS:
            raise ConfigError(
                f"{where}.class_weights {self.class_weights!r} is unknown; use one of "
                f"{', '.join(CLASS_WEIGHTS)}"
            )
        if self.max_oversampling is not None and not self.max_oversampling >= 1:
            raise ConfigError(
                f"{where}.max_oversampling must be at least 1, got {self.max_oversampling!r}; "
                "pass a value >= 1 (e.g. 3) or None (null) to turn the cap off"
            )
        if self.num_workers < 0:
            raise ConfigError(f"{where}.num_workers must be >= 0, got {self.num_workers}")

    def with_lesion_label(self, rarest_label: int | None) -> DataConfig:
        """This section with ``lesion_label`` set to ``rarest_label`` where it is None."""
        if self.lesion_label is not None or rarest_label is None:
            return self
        return replace(self, lesion_label=int(rarest_label))

    def augmentation_config(self, patch_size: Sequence[int]) -> AugmentationConfig:
        """The augmentation used: off, the configured one, or nnU-Net's for ``patch_size``."""
        if not self.augment:
            return AugmentationConfig.off()
        if self.augmentation is None:
            return AugmentationConfig.nnunet(tuple(patch_size))
        if self.augmentation == AugmentationConfig(backend="device"):  # the same, on the device
            return replace(AugmentationConfig.nnunet(tuple(patch_size)), backend="device")
        return self.augmentation
