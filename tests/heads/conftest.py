"""Shared fixtures of the classification-head tests: head variants, encoders and tilings.

Tests that take an ``encoder`` argument run for every encoder in :func:`encoder_params`, and
tests that take a ``variant`` argument for every head variant in :data:`VARIANTS`, unless they
parametrize the argument themselves. Helpers reach tests through the ``kit`` fixture.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from typing import Any

import pytest
import torch

import multitask_unet as mtu
from multitask_unet.encoders import ENCODERS
from multitask_unet.heads import ClassificationHead
from multitask_unet.heads.attention_ops import gated_attention_pool, query_attention_pool

# Every registered head at least once (test_heads_contract checks that), with options that
# exercise encoder levels, mean pooling, hidden layers, several attention heads and dropout.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "last_stage": ("last_stage", {"num_classes": 3}),
    "last_stage_mean_enc": (
        "last_stage",
        {"num_classes": 4, "pooling": "mean", "encoder_levels": (0, -1), "hidden": 8},
    ),
    "panda": ("panda", {"num_classes": 3, "dropout": 0.3}),
    "panda_mixed": ("panda", {"num_classes": 2, "encoder_levels": "all", "hidden": 4}),
    "ovr": ("ovr", {"num_classes": 3}),
    "ovr_hidden_mean": ("ovr", {"num_classes": 3, "hidden": 6, "pooling": "mean"}),
    "attention_gated": (
        "attention",
        {"num_classes": 3, "num_heads": 2, "attention_dim": 8, "dropout": 0.2},
    ),
    "attention_query": (
        "attention",
        {
            "num_classes": 3,
            "mode": "query",
            "num_heads": 2,
            "attention_dim": 4,
            "value_dim": 4,
            "encoder_levels": (-1,),
        },
    ),
    "bottleneck": ("bottleneck", {"num_classes": 3}),
    "bottleneck_max": ("bottleneck", {"num_classes": 5, "pooling": "max", "hidden": 8}),
}

ENCODER_PRESETS = ["tiny_plain", "tiny_residual", "tiny_anisotropic"]


def _timm3d_options() -> dict[str, Any] | None:
    """Options of a tiny timm-3d encoder, or ``None`` while the encoder is not registered."""
    if "timm3d" not in ENCODERS:
        return None
    try:
        with warnings.catch_warnings():  # torch.jit deprecations raised inside timm
            warnings.simplefilter("ignore", FutureWarning)
            import timm_3d  # noqa: F401
    except ImportError:
        return None
    return {"name": "timm3d", "model_name": "tinynet_e", "out_indices": (0, 1, 2)}


def build_model(encoder: str, heads: dict[str, Any], *, seed: int = 0) -> mtu.MultiTaskUNet:
    """A tiny model (``encoder`` is a preset name or ``"timm3d"``) with ``heads``."""
    torch.manual_seed(seed)
    if encoder == "timm3d":
        options = _timm3d_options()
        if options is None:
            pytest.skip("the timm3d encoder is not available in this checkout")
        with warnings.catch_warnings():  # torch.jit deprecations raised inside timm
            warnings.simplefilter("ignore", FutureWarning)
            return mtu.create_model("tiny_plain", encoder=options, heads=heads)
    return mtu.create_model(encoder, heads=heads)


def encoder_params() -> list[str]:
    """The encoders every head is tested with (timm3d skips until it is registered)."""
    return [*ENCODER_PRESETS, "timm3d"]


_MODELS: dict[str, mtu.MultiTaskUNet] = {}


def model_with_all_heads(encoder: str) -> mtu.MultiTaskUNet:
    """One eval-mode model per encoder carrying every variant of :data:`VARIANTS` (cached)."""
    if encoder not in _MODELS:
        _MODELS[encoder] = build_model(encoder, dict(VARIANTS)).eval()
    return _MODELS[encoder]


def odd_size(divisor: Sequence[int], factors: Sequence[int] = (3, 5, 4)) -> tuple[int, ...]:
    """An uneven spatial size that the network accepts."""
    return tuple(d * f for d, f in zip(divisor, factors))


def tile_windows(size: Sequence[int], cuts: Sequence[Sequence[int]]) -> list[tuple[slice, ...]]:
    """Non-overlapping windows covering ``size``, cut at the given input positions per axis."""
    per_axis = []
    for n, axis_cuts in zip(size, cuts):
        edges = [0, *axis_cuts, n]
        per_axis.append([slice(a, b) for a, b in itertools.pairwise(edges)])
    return list(itertools.product(*per_axis))


def cut_level(x: torch.Tensor, window: tuple[slice, ...], stride: Sequence[int]) -> torch.Tensor:
    """The part of a level's map ``(B, C, *S / stride)`` under an input window."""
    for s, k in zip(window, stride):
        if s.start % k or s.stop % k:
            raise ValueError(f"window {window} is not aligned to stride {stride}")
    index = tuple(slice(s.start // k, s.stop // k) for s, k in zip(window, stride))
    return x[(..., *index)]


def window_features(
    model: mtu.MultiTaskUNet, features: mtu.Features, window: tuple[slice, ...]
) -> mtu.Features:
    """The features of one input window, cut from whole-volume features level by level."""
    enc = [i.stride for i in model.encoder.feature_info]
    dec = [i.stride for i in model.decoder.stage_info]
    return mtu.Features(
        encoder=[cut_level(x, window, s) for x, s in zip(features.encoder, enc)],
        decoder=[cut_level(x, window, s) for x, s in zip(features.decoder, dec)],
    )


def merged_window_logits(
    model: mtu.MultiTaskUNet,
    head: ClassificationHead,
    features: mtu.Features,
    weights: torch.Tensor | None,
    windows: Sequence[tuple[slice, ...]],
) -> torch.Tensor:
    """``head``'s logits from the merged pool states of ``windows`` (and their voxel weights)."""
    states = [
        head.pool(
            window_features(model, features, w),
            None if weights is None else weights[(..., *w)],
        )
        for w in windows
    ]
    return head.project(head.merge(states))


def attention_inputs(
    weighting: str | None,
    *,
    n: int,
    dtype: torch.dtype = torch.float32,
    batch: int = 2,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]:
    """Random ``x`` ``(batch, 5, n)``, voxel weights and the parameters of both attention pools.

    ``weighting``: ``None``; ``"soft"``, per-sample weights in ``[0, 1)`` with every third voxel
    0; ``"shared"``, one 0/1 mask ``(1, 1, n)`` for the whole batch (its first voxel counted).
    """
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 5, n, generator=g, dtype=dtype)
    weights = None
    if weighting == "soft":
        weights = torch.rand(batch, 1, n, generator=g, dtype=dtype)
        weights[..., ::3] = 0.0
    elif weighting == "shared":
        weights = (torch.rand(1, 1, n, generator=g, dtype=dtype) > 0.5).to(dtype)
        weights[..., 0] = 1.0
    params = {
        "query": torch.randn(3, 5, generator=g, dtype=dtype),
        "gate_weight": torch.randn(8, 5, generator=g, dtype=dtype),
        "gate_bias": torch.randn(8, generator=g, dtype=dtype),
        "score_weight": torch.randn(2, 4, generator=g, dtype=dtype),
    }
    return x, weights, params


def attention_pool(
    mode: str, x: torch.Tensor, weights: torch.Tensor | None, params: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fused ``"query"`` or ``"gated"`` attention pool of ``x`` with ``params``."""
    if mode == "query":
        return query_attention_pool(x, params["query"], weights)
    return gated_attention_pool(
        x, params["gate_weight"], params["gate_bias"], params["score_weight"], weights
    )


def attention_param_names(mode: str) -> list[str]:
    """The parameter names :func:`attention_pool` reads in ``mode``."""
    return ["query"] if mode == "query" else ["gate_weight", "gate_bias", "score_weight"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    explicit: set[str] = set()
    for mark in metafunc.definition.iter_markers("parametrize"):
        names = mark.args[0]
        explicit.update(names.split(",") if isinstance(names, str) else names)
    if "encoder" in metafunc.fixturenames and "encoder" not in explicit:
        metafunc.parametrize("encoder", encoder_params())
    if "variant" in metafunc.fixturenames and "variant" not in explicit:
        metafunc.parametrize("variant", list(VARIANTS))


class HeadsKit:
    """The helpers above, handed to tests by the ``kit`` fixture."""

    variants = VARIANTS
    build_model = staticmethod(build_model)
    model_with_all_heads = staticmethod(model_with_all_heads)
    odd_size = staticmethod(odd_size)
    tile_windows = staticmethod(tile_windows)
    window_features = staticmethod(window_features)
    merged_window_logits = staticmethod(merged_window_logits)
    attention_inputs = staticmethod(attention_inputs)
    attention_pool = staticmethod(attention_pool)
    attention_param_names = staticmethod(attention_param_names)


@pytest.fixture
def kit() -> type[HeadsKit]:
    return HeadsKit
