"""The :class:`Batch` boundary type: what the model, the losses and the trainer receive.

Everything TorchIO-specific (``Subject``, ``tio.DATA``, ``tio.LOCATION``) stays inside
``multitask_unet.data``; a batch leaves it as plain tensors with fixed names, shapes and dtypes.

Example:
    >>> import torch
    >>> batch = Batch.collate([
    ...     {"image": torch.zeros(1, 4, 6, 8), "seg": torch.zeros(1, 4, 6, 8, dtype=torch.uint8),
    ...      "label": 2, "case_id": "a"},
    ...     {"image": torch.ones(1, 4, 6, 8), "seg": None, "label": None, "case_id": "b"},
    ... ])
    >>> batch.image.shape, batch.label.tolist(), batch.has_seg.tolist(), batch.case_id
    (torch.Size([2, 1, 4, 6, 8]), [2, -1], [True, False], ('a', 'b'))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from multitask_unet.errors import DataError, ShapeError

__all__ = ["MISSING_LABEL", "Batch"]

MISSING_LABEL = -1
"""Value of :attr:`Batch.label` for a case whose class is unknown (segmentation-only case)."""

_SEG_DTYPES = (torch.uint8, torch.int16, torch.int32, torch.int64)


@dataclass(frozen=True, eq=False)
class Batch:
    """A batch of patches (or whole volumes) with their targets.

    Attributes:
        image: ``(B, C, D, H, W)`` float32 intensities.
        seg: ``(B, 1, D, H, W)`` integer label map (uint8 or long); zeros where ``has_seg`` is False.
        label: ``(B,)`` long class per case, :data:`MISSING_LABEL` (-1) when unknown.
        has_seg: ``(B,)`` bool, False for cases without a segmentation.
        case_id: One identifier per sample.

    Raises:
        ShapeError: If the tensors do not have the shapes and dtypes above.
    """

    image: Tensor
    seg: Tensor
    label: Tensor
    has_seg: Tensor
    case_id: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.image.ndim != 5:
            raise ShapeError(
                f"Batch.image must be (B, C, D, H, W), got shape {tuple(self.image.shape)}"
            )
        b, spatial = self.image.shape[0], tuple(self.image.shape[2:])
        if self.image.dtype != torch.float32:
            raise ShapeError(
                f"Batch.image must be float32, got {self.image.dtype}; cast with .float()"
            )
        if self.seg.shape != (b, 1, *spatial):
            raise ShapeError(
                f"Batch.seg must have shape {(b, 1, *spatial)} to match the image, "
                f"got {tuple(self.seg.shape)}"
            )
        if self.seg.dtype not in _SEG_DTYPES:
            raise ShapeError(
                f"Batch.seg must be an integer tensor (uint8 or long), got {self.seg.dtype}"
            )
        if self.label.shape != (b,) or self.label.dtype != torch.long:
            raise ShapeError(
                f"Batch.label must be a long tensor of shape ({b},), "
                f"got {self.label.dtype} {tuple(self.label.shape)}"
            )
        if self.has_seg.shape != (b,) or self.has_seg.dtype != torch.bool:
            raise ShapeError(
                f"Batch.has_seg must be a bool tensor of shape ({b},), "
                f"got {self.has_seg.dtype} {tuple(self.has_seg.shape)}"
            )
        if len(self.case_id) != b:
            raise ShapeError(f"Batch.case_id needs {b} identifiers, got {len(self.case_id)}")

    def __len__(self) -> int:
        return int(self.image.shape[0])

    @property
    def batch_size(self) -> int:
        """Number of samples ``B``."""
        return len(self)

    @property
    def has_label(self) -> Tensor:
        """``(B,)`` bool: True where the class label is known."""
        return self.label != MISSING_LABEL

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> Batch:
        """A copy with every tensor on ``device`` (``case_id`` stays a tuple)."""
        return dataclasses.replace(
            self,
            image=self.image.to(device, non_blocking=non_blocking),
            seg=self.seg.to(device, non_blocking=non_blocking),
            label=self.label.to(device, non_blocking=non_blocking),
            has_seg=self.has_seg.to(device, non_blocking=non_blocking),
        )

    def pin_memory(self) -> Batch:
        """A copy in page-locked memory; called by ``DataLoader(pin_memory=True)``."""
        return dataclasses.replace(
            self,
            image=self.image.pin_memory(),
            seg=self.seg.pin_memory(),
            label=self.label.pin_memory(),
            has_seg=self.has_seg.pin_memory(),
        )

    @classmethod
    def collate(cls, samples: Sequence[Mapping[str, Any]]) -> Batch:
        """Stack samples into a batch; usable as a ``DataLoader`` ``collate_fn``.

        Args:
            samples: Mappings with ``"image"`` ``(C, D, H, W)``, ``"seg"`` ``(1, D, H, W)`` or
                ``None``, ``"label"`` (int, ``None`` or -1 when unknown) and ``"case_id"``.

        Returns:
            The batch; missing segmentations become zeros with ``has_seg`` False.
        """
        if not samples:
            raise DataError("Batch.collate got no samples; the loader produced an empty batch")
        images = [torch.as_tensor(s["image"]) for s in samples]
        shapes = {tuple(im.shape) for im in images}
        if len(shapes) != 1:
            raise ShapeError(
                f"All samples of a batch need the same (C, D, H, W) shape, got {sorted(shapes)}; "
                "crop or pad them to one patch size first"
            )
        image = torch.stack(images).float()
        spatial = tuple(image.shape[2:])
        segs = [s.get("seg") for s in samples]
        present = [torch.as_tensor(sg) for sg in segs if sg is not None]
        seg_dtype = (
            torch.uint8
            if present and all(sg.dtype == torch.uint8 for sg in present)
            else torch.long
        )
        seg = torch.zeros((len(samples), 1, *spatial), dtype=seg_dtype)
        for i, sg in enumerate(segs):
            if sg is not None:
                seg[i] = torch.as_tensor(sg).reshape(1, *spatial).to(seg_dtype)
        labels = [s.get("label") for s in samples]
        label = torch.tensor(
            [MISSING_LABEL if v is None or int(v) < 0 else int(v) for v in labels], dtype=torch.long
        )
        has_seg = torch.tensor([sg is not None for sg in segs], dtype=torch.bool)
        case_id = tuple(str(s.get("case_id", "")) for s in samples)
        return cls(image=image, seg=seg, label=label, has_seg=has_seg, case_id=case_id)
