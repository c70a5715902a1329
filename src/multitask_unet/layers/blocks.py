"""Convolution blocks shared by encoders and decoders, for any number of spatial dims.

Parameter names inside a block (``conv``, ``norm``, ``conv1``, ``skip``, ...) follow
dynamic-network-architectures, so nnU-Net weights map onto them one to one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from multitask_unet.layers.specs import (
    LayerSpec,
    conv_type,
    make_act,
    make_dropout,
    make_norm,
    pool_type,
)

__all__ = ["BasicResidualBlock", "BottleneckResidualBlock", "ConvNormAct", "stack_conv_blocks"]

Size = Sequence[int]


def _same_padding(kernel_size: Size) -> list[int]:
    return [(k - 1) // 2 for k in kernel_size]


class ConvNormAct(nn.Sequential):
    """Convolution -> (dropout) -> normalisation -> activation, with "same" padding.

    Args:
        in_channels: Input channels.
        out_channels: Output channels.
        kernel_size: Kernel size per spatial axis.
        stride: Stride per spatial axis.
        spatial_dims: 1, 2 or 3.
        norm: Normalisation spec (``None`` for none).
        act: Activation spec (``None`` for none).
        dropout: Channel dropout probability after the convolution.
        bias: Whether the convolution has a bias.

    Shapes:
        ``(B, in_channels, *S)`` -> ``(B, out_channels, *ceil(S / stride))``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Size,
        stride: Size,
        *,
        spatial_dims: int,
        norm: LayerSpec = "instance",
        act: LayerSpec = "leaky_relu",
        dropout: float = 0.0,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.conv = conv_type(spatial_dims)(
            in_channels,
            out_channels,
            tuple(kernel_size),
            tuple(stride),
            padding=_same_padding(kernel_size),
            bias=bias,
        )
        for name, layer in (
            ("dropout", make_dropout(dropout, spatial_dims=spatial_dims)),
            ("norm", make_norm(norm, out_channels, spatial_dims=spatial_dims)),
            ("act", make_act(act)),
        ):
            if layer is not None:
                self.add_module(name, layer)


def stack_conv_blocks(
    num_convs: int,
    in_channels: int,
    out_channels: int,
    kernel_size: Size,
    first_stride: Size,
    *,
    spatial_dims: int,
    norm: LayerSpec,
    act: LayerSpec,
    dropout: float = 0.0,
    bias: bool = False,
) -> nn.Sequential:
    """``num_convs`` :class:`ConvNormAct` in a row; only the first one strides."""
    ones = [1] * spatial_dims
    return nn.Sequential(
        *(
            ConvNormAct(
                in_channels if i == 0 else out_channels,
                out_channels,
                kernel_size,
                first_stride if i == 0 else ones,
                spatial_dims=spatial_dims,
                norm=norm,
                act=act,
                dropout=dropout,
                bias=bias,
            )
            for i in range(num_convs)
        )
    )


def _residual_skip(
    in_channels: int, out_channels: int, stride: Size, *, spatial_dims: int, norm: LayerSpec
) -> nn.Module:
    """ResNet-D shortcut: average pooling for the stride, then a 1x1 projection if needed."""
    ops: list[nn.Module] = []
    if any(s != 1 for s in stride):
        ops.append(pool_type(spatial_dims, "avg")(tuple(stride), tuple(stride)))
    if in_channels != out_channels:
        ones = [1] * spatial_dims
        ops.append(
            ConvNormAct(
                in_channels,
                out_channels,
                ones,
                ones,
                spatial_dims=spatial_dims,
                norm=norm,
                act=None,
            )
        )
    return nn.Sequential(*ops) if ops else nn.Identity()


class _ResidualBlock(nn.Module):
    """What the residual blocks share: the ResNet-D shortcut, the addition and the activation.

    A subclass registers its convolutions first (``conv1``, ``conv2``, ...), then calls
    ``_add_shortcut``, so parameter names and order stay those of
    dynamic-network-architectures; it defines the convolution path in ``_residual``.
    """

    def _add_shortcut(
        self,
        in_channels: int,
        out_channels: int,
        stride: Size,
        *,
        spatial_dims: int,
        norm: LayerSpec,
        act: LayerSpec,
    ) -> None:
        self.skip = _residual_skip(
            in_channels, out_channels, stride, spatial_dims=spatial_dims, norm=norm
        )
        self.act = make_act(act) or nn.Identity()

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self._residual(x)
        out += self.skip(x)  # in place, as nnU-Net: one feature map less to keep
        return self.act(out)


class BasicResidualBlock(_ResidualBlock):
    """ResNet-D basic block: two convolutions plus a pooled, projected shortcut.

    The second normalisation is the last op before the addition; :func:`zero_init_residuals`
    sets it to zero as nnU-Net does, so each block starts as the identity.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Size,
        stride: Size,
        *,
        spatial_dims: int,
        norm: LayerSpec = "instance",
        act: LayerSpec = "leaky_relu",
        dropout: float = 0.0,
        bias: bool = False,
    ) -> None:
        super().__init__()
        common = {"spatial_dims": spatial_dims, "norm": norm, "bias": bias}
        ones = [1] * spatial_dims
        self.conv1 = ConvNormAct(
            in_channels, out_channels, kernel_size, stride, act=act, dropout=dropout, **common
        )
        self.conv2 = ConvNormAct(out_channels, out_channels, kernel_size, ones, act=None, **common)
        self._add_shortcut(
            in_channels, out_channels, stride, spatial_dims=spatial_dims, norm=norm, act=act
        )

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.conv1(x))

    @property
    def last_norm(self) -> nn.Module | None:
        return getattr(self.conv2, "norm", None)


class BottleneckResidualBlock(_ResidualBlock):
    """ResNet-D bottleneck block: 1x1 reduce, kxk (strided), 1x1 expand, plus the shortcut."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Size,
        stride: Size,
        *,
        bottleneck_channels: int,
        spatial_dims: int,
        norm: LayerSpec = "instance",
        act: LayerSpec = "leaky_relu",
        dropout: float = 0.0,
        bias: bool = False,
    ) -> None:
        super().__init__()
        common = {"spatial_dims": spatial_dims, "norm": norm, "bias": bias}
        ones = [1] * spatial_dims
        self.conv1 = ConvNormAct(in_channels, bottleneck_channels, ones, ones, act=act, **common)
        self.conv2 = ConvNormAct(
            bottleneck_channels,
            bottleneck_channels,
            kernel_size,
            stride,
            act=act,
            dropout=dropout,
            **common,
        )
        self.conv3 = ConvNormAct(bottleneck_channels, out_channels, ones, ones, act=None, **common)
        self._add_shortcut(
            in_channels, out_channels, stride, spatial_dims=spatial_dims, norm=norm, act=act
        )

    def _residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.conv2(self.conv1(x)))

    @property
    def last_norm(self) -> nn.Module | None:
        return getattr(self.conv3, "norm", None)
