"""Layer choices given as a name or ``(name, kwargs)``, resolved for any number of spatial dims.

Example:
    >>> norm = make_norm(("instance", {"eps": 1e-5}), 8, spatial_dims=3)
    >>> type(norm).__name__
    'InstanceNorm3d'
    >>> make_act("leaky_relu")
    LeakyReLU(negative_slope=0.01, inplace=True)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from torch import nn

from multitask_unet.errors import ConfigError
from multitask_unet.registry import Registry

__all__ = [
    "ACTIVATIONS",
    "NORMS",
    "LayerSpec",
    "conv_transpose_type",
    "conv_type",
    "make_act",
    "make_dropout",
    "make_norm",
    "pool_type",
    "split_spec",
]

LayerSpec: TypeAlias = "str | tuple[str, Mapping[str, Any]] | None"
"""A layer choice: ``"name"``, ``("name", {"option": value})`` or ``None`` for no layer."""

NORMS: Registry[Callable[..., nn.Module]] = Registry("normalisation")
ACTIVATIONS: Registry[Callable[..., nn.Module]] = Registry("activation")


def _by_dims(options: Mapping[int, type[nn.Module]], spatial_dims: int, what: str) -> Any:
    if spatial_dims not in options:
        raise ConfigError(f"{what} supports spatial_dims 1, 2 or 3, got {spatial_dims!r}")
    return options[spatial_dims]


def conv_type(spatial_dims: int) -> type[nn.Module]:
    return _by_dims({1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}, spatial_dims, "convolution")


def conv_transpose_type(spatial_dims: int) -> type[nn.Module]:
    options = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
    return _by_dims(options, spatial_dims, "transposed convolution")


def pool_type(spatial_dims: int, kind: str = "avg") -> type[nn.Module]:
    options = {
        "avg": {1: nn.AvgPool1d, 2: nn.AvgPool2d, 3: nn.AvgPool3d},
        "max": {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d},
    }
    if kind not in options:
        raise ConfigError(f"pooling must be 'avg' or 'max', got {kind!r}")
    return _by_dims(options[kind], spatial_dims, "pooling")


def split_spec(spec: LayerSpec, what: str) -> tuple[str, dict[str, Any]] | None:
    """Normalise a layer spec to ``(name, kwargs)``, or ``None`` for "no layer"."""
    if spec is None:
        return None
    if isinstance(spec, str):
        return spec, {}
    if (
        isinstance(spec, (tuple, list))
        and len(spec) == 2
        and isinstance(spec[0], str)
        and isinstance(spec[1], Mapping)
    ):
        return spec[0], dict(spec[1])
    raise ConfigError(f"{what} must be a name or (name, options), e.g. 'instance'; got {spec!r}")


@NORMS.register("instance")
def _instance(channels: int, spatial_dims: int, **kw: Any) -> nn.Module:
    cls = _by_dims(
        {1: nn.InstanceNorm1d, 2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}, spatial_dims, "norm"
    )
    return cls(channels, **{"eps": 1e-5, "affine": True, **kw})


@NORMS.register("batch")
def _batch(channels: int, spatial_dims: int, **kw: Any) -> nn.Module:
    cls = _by_dims({1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}, spatial_dims, "norm")
    return cls(channels, **kw)


@NORMS.register("group")
def _group(channels: int, spatial_dims: int, num_groups: int = 8, **kw: Any) -> nn.Module:
    if channels % num_groups:
        raise ConfigError(
            f"group norm needs channels divisible by num_groups: {channels} % {num_groups} != 0; "
            "set ('group', {'num_groups': N}) with N dividing every stage's channels"
        )
    return nn.GroupNorm(num_groups, channels, **kw)


ACTIVATIONS.add(
    "leaky_relu", lambda **kw: nn.LeakyReLU(**{"negative_slope": 1e-2, "inplace": True, **kw})
)
ACTIVATIONS.add("relu", lambda **kw: nn.ReLU(**{"inplace": True, **kw}))
ACTIVATIONS.add("gelu", lambda **kw: nn.GELU(**kw))
ACTIVATIONS.add("silu", lambda **kw: nn.SiLU(**{"inplace": True, **kw}))
ACTIVATIONS.add("prelu", lambda **kw: nn.PReLU(**kw))


def make_norm(spec: LayerSpec, channels: int, *, spatial_dims: int) -> nn.Module | None:
    """Build the normalisation layer ``spec`` names for ``channels`` channels (``None``: no layer)."""
    parsed = split_spec(spec, "norm")
    if parsed is None:
        return None
    name, kwargs = parsed
    return _call(NORMS.get(name), "norm", name, channels, spatial_dims, **kwargs)


def make_act(spec: LayerSpec) -> nn.Module | None:
    """Build the activation ``spec`` names (``None``: no layer)."""
    parsed = split_spec(spec, "act")
    if parsed is None:
        return None
    name, kwargs = parsed
    return _call(ACTIVATIONS.get(name), "act", name, **kwargs)


def make_dropout(p: float, *, spatial_dims: int) -> nn.Module | None:
    """Channel dropout with probability ``p`` (``None`` when ``p == 0``)."""
    if not 0.0 <= p < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {p!r}")
    if p == 0.0:
        return None
    cls = _by_dims({1: nn.Dropout1d, 2: nn.Dropout2d, 3: nn.Dropout3d}, spatial_dims, "dropout")
    return cls(p=p, inplace=True)


def _call(
    factory: Callable[..., nn.Module], what: str, name: str, *args: Any, **kw: Any
) -> nn.Module:
    try:
        return factory(*args, **kw)
    except TypeError as exc:
        raise ConfigError(f"invalid options for {what} {name!r}: {exc}") from None
