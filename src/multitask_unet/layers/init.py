"""nnU-Net's weight initialisation."""

from __future__ import annotations

from torch import nn

__all__ = ["init_he", "zero_init_residuals"]

_CONVS = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
)


def init_he(module: nn.Module, neg_slope: float = 1e-2) -> None:
    """Kaiming-normal weights (``a=neg_slope``) and zero biases for every convolution, as nnU-Net."""
    for m in module.modules():
        if isinstance(m, _CONVS):
            nn.init.kaiming_normal_(m.weight, a=neg_slope)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def zero_init_residuals(module: nn.Module) -> None:
    """Zero the last normalisation of every residual block so each starts as the identity."""
    for m in module.modules():
        norm = getattr(m, "last_norm", None)
        if isinstance(norm, nn.Module):
            if getattr(norm, "weight", None) is not None:
                nn.init.zeros_(norm.weight)
            if getattr(norm, "bias", None) is not None:
                nn.init.zeros_(norm.bias)
