"""``MultiTaskUNet``: encoder + U-Net decoder + segmentation head + classification heads."""

from __future__ import annotations

import torch
from torch import nn

from multitask_unet.errors import ShapeError
from multitask_unet.features import Features
from multitask_unet.heads import SegmentationHead
from multitask_unet.layers.init import init_he
from multitask_unet.models.config import ModelConfig

__all__ = ["MultiTaskUNet"]


class MultiTaskUNet(nn.Module):
    """A U-Net with a segmentation head and any number of classification heads.

    ``forward`` returns a dict whose keys depend only on the config and on train/eval mode:

    - ``"seg"``: ``(B, num_classes, *S)`` logits at the input resolution;
    - ``"seg_deep"``: list of coarser logits, fine to coarse (training with deep supervision);
    - one ``(B, K)`` logits tensor per classification head, under the head's name.

    Args:
        config: The model config (see :func:`multitask_unet.create_model` for presets).

    Example:
        >>> import multitask_unet as mtu
        >>> model = mtu.create_model("tiny_plain").eval()
        >>> out = model(torch.zeros(1, 1, 16, 32, 32))
        >>> tuple(out["seg"].shape)
        (1, 3, 16, 32, 32)
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        dims = config.spatial_dims
        self.encoder = config.encoder.build(config.in_channels, spatial_dims=dims)
        stage_kernels = getattr(config.encoder, "stage_kernels", None)
        self.decoder = config.decoder.build(
            self.encoder.feature_info,
            spatial_dims=dims,
            kernel_sizes=stage_kernels(dims) if stage_kernels else None,
        )
        channels = [s.channels for s in self.decoder.stage_info]
        self.seg_head = SegmentationHead(channels, config.num_classes, spatial_dims=dims)
        init_he(self.seg_head)
        self.heads = nn.ModuleDict(
            {
                name: cfg.build(
                    self.encoder.feature_info, self.decoder.stage_info, spatial_dims=dims
                )
                for name, cfg in config.heads.items()
            }
        )

    @property
    def size_divisor(self) -> tuple[int, ...]:
        """Per-axis factor every spatial input size must be a multiple of."""
        return self.encoder.size_divisor

    def check_input(self, x: torch.Tensor) -> None:
        """Raise :class:`ShapeError` naming the fix when ``x`` cannot go through the network."""
        dims = self.config.spatial_dims
        if not isinstance(x, torch.Tensor):
            fix = "pass batch.image" if hasattr(x, "has_seg") else "convert it with torch.as_tensor"
            raise ShapeError(
                f"the model takes a (B, C, {', '.join('DHW'[-dims:])}) torch.Tensor, got a "
                f"{type(x).__name__}; {fix}"
            )
        if x.ndim != dims + 2:
            raise ShapeError(
                f"expected a (B, C, {', '.join('DHW'[-dims:])}) tensor with {dims + 2} dims, "
                f"got shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.config.in_channels:
            raise ShapeError(
                f"the model takes {self.config.in_channels} input channel(s), got {x.shape[1]} "
                f"(shape {tuple(x.shape)}); rebuild with in_channels={x.shape[1]} or fix the input"
            )
        size, div = tuple(x.shape[2:]), self.size_divisor
        if any(s % d for s, d in zip(size, div)):
            nearest = tuple(max(d, round(s / d) * d) for s, d in zip(size, div))
            raise ShapeError(
                f"input spatial size {size} is not divisible by the model's size_divisor {div}; "
                f"the nearest valid size is {nearest}. Pad or crop the input "
                "(the sliding-window predictor pads automatically)."
            )

    def features(self, x: torch.Tensor) -> Features:
        """Encoder levels (fine to coarse) and decoder stages (coarse to fine) of ``x``."""
        self.check_input(x)
        encoded = self.encoder(x)
        return Features(encoder=encoded, decoder=self.decoder(encoded))

    def forward_heads(self, features: Features) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Every output of the dict contract, computed from already extracted features."""
        out: dict[str, torch.Tensor | list[torch.Tensor]] = {
            "seg": self.seg_head(features.decoder[-1])
        }
        if self.training and self.config.deep_supervision:
            out["seg_deep"] = self.seg_head.deep(features.decoder)
        for name, head in self.heads.items():
            out[name] = head(features)
        return out

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """See the class docstring for the returned keys and shapes."""
        return self.forward_heads(self.features(x))
