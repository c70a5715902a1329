"""Sliding-window prediction: stitching, padding, mirroring, ownership and merged classification."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import nn

import multitask_unet as mtu
from _references import require
from multitask_unet.decoders import UNetDecoderConfig
from multitask_unet.encoders import PlainEncoderConfig
from multitask_unet.errors import ConfigError, ShapeError
from multitask_unet.inference import (
    gaussian_importance,
    mirror_combinations,
    plan_windows,
    sliding_window_predict,
    window_starts,
)
from multitask_unet.models import resolve_config

HEADS = {
    "panda": ("panda", {"num_classes": 3}),
    "mean": ("bottleneck", {"num_classes": 2}),
    "gated": ("attention", {"num_classes": 3, "mode": "gated"}),
    "query": ("attention", {"num_classes": 2, "mode": "query", "num_heads": 2}),
    "ovr": ("ovr", {"num_classes": 3}),
}


class IdentityUNet(mtu.MultiTaskUNet):
    """Segmentation 'logits' = the input copied to every class (no context, no heads)."""

    def __init__(self) -> None:
        super().__init__(resolve_config("tiny_plain"))
        self.seg_head = nn.Identity()  # type: ignore[assignment]

    def features(self, x: torch.Tensor) -> mtu.Features:
        self.check_input(x)
        return mtu.Features(
            encoder=[x], decoder=[x.expand(-1, self.config.num_classes, -1, -1, -1)]
        )


def _pointwise(heads: dict | None = None) -> mtu.MultiTaskUNet:
    """1x1x1 convolutions, no normalisation: window features equal the whole volume's when
    windows start on multiples of the size divisor (4)."""
    torch.manual_seed(0)
    config = mtu.ModelConfig(
        encoder=PlainEncoderConfig(
            channels=(4, 8, 8), strides=(1, 2, 2), kernel_sizes=1, convs_per_stage=1, norm=None
        ),
        decoder=UNetDecoderConfig(convs_per_stage=1, norm=None),
    )
    return mtu.create_model(config, heads=heads or {}).eval()


@pytest.mark.parametrize(
    ("shape", "window", "overlap", "mirror", "blend"),
    [
        ((13, 30, 41), (8, 16, 16), 0.5, (), "gaussian"),
        ((5, 17, 9), (8, 16, 16), 0.5, (0, 1, 2), "gaussian"),  # smaller than the window: padded
        ((20, 24, 24), 16, 0.25, (2,), "constant"),
        ((9, 10, 11), None, 0.5, (0, 2), "gaussian"),  # whole volume, padded to the divisor
    ],
)
def test_identity_model_stitches_back_the_input(shape, window, overlap, mirror, blend) -> None:
    x = torch.randn(2, 1, *shape)
    out = sliding_window_predict(
        IdentityUNet(), x, window_size=window, overlap=overlap, mirror_axes=mirror, blend=blend,
        window_batch_size=3,
    )  # fmt: skip
    assert set(out) == {"seg"}
    assert out["seg"].shape == (2, 3, *shape)
    torch.testing.assert_close(out["seg"], x.expand(-1, 3, -1, -1, -1), atol=1e-5, rtol=1e-5)


def test_mirroring_flips_predictions_back() -> None:
    class Shifted(IdentityUNet):  # not flip-equivariant: a forgotten flip-back would show
        def features(self, x: torch.Tensor) -> mtu.Features:
            ramp = torch.arange(x.shape[-1], dtype=x.dtype).expand_as(x)
            return super().features(x + ramp)

    x = torch.zeros(1, 1, 8, 16, 16)
    out = sliding_window_predict(Shifted(), x, window_size=None, mirror_axes=(2,))["seg"]
    ramp = torch.arange(16.0)
    torch.testing.assert_close(out[0, 0, 0, 0], (ramp + ramp.flip(0)) / 2)


@pytest.mark.parametrize("name", sorted(HEADS))
@pytest.mark.parametrize("weighting", ["ownership", "foreground"])
def test_single_window_cls_equals_whole_volume(name: str, weighting: str) -> None:
    torch.manual_seed(1)
    model = mtu.create_model("tiny_plain", heads={"cls": HEADS[name]}).eval()
    x = torch.randn(1, 1, 8, 16, 12)
    out = sliding_window_predict(model, x, window_size=(8, 16, 12), cls_weighting=weighting)
    with torch.no_grad():
        f = model.features(x)
        seg = model.seg_head(f.decoder[-1])
        weights = 1 - seg.softmax(1)[:, :1] if weighting == "foreground" else None
        whole = model.heads["cls"](f, weights)
    torch.testing.assert_close(out["seg"], seg, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["cls"], whole, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(HEADS))
def test_merged_windows_equal_whole_volume_for_a_context_free_network(name: str) -> None:
    model = _pointwise({"cls": HEADS[name]})
    x = torch.randn(1, 1, 16, 24, 32)  # windows of 8 and 16 at overlap 0.5 start on multiples of 4
    out = sliding_window_predict(model, x, window_size=(8, 16, 16), window_batch_size=4)
    with torch.no_grad():
        whole = model(x)
    torch.testing.assert_close(out["seg"], whole["seg"], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out["cls"], whole["cls"], atol=1e-5, rtol=1e-5)


def test_mirrored_cls_is_the_mean_of_mirrored_logits() -> None:
    model = _pointwise({"cls": HEADS["gated"]})
    x = torch.randn(1, 1, 16, 16, 24)
    out = sliding_window_predict(model, x, window_size=(8, 8, 16), mirror_axes=(0, 2))
    with torch.no_grad():
        expected = torch.stack(
            [model(x.flip([a + 2 for a in axes]))["cls"] for axes in mirror_combinations((0, 2))]
        ).mean(0)
    torch.testing.assert_close(out["cls"], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("shape", "window", "overlap", "divisor", "pad"),
    [
        ((110,), (64,), 0.5, (8,), 0),
        ((37, 50, 64), (16, 32, 32), 0.5, (4, 8, 8), 3),
        ((16, 33, 100), (16, 16, 24), 0.0, (16, 4, 8), 0),
        ((40, 41, 42), (8, 8, 8), 0.75, (2, 4, 8), 1),
    ],
)
def test_owned_boxes_partition_the_real_voxels(shape, window, overlap, divisor, pad) -> None:
    valid = [(pad, s - pad) for s in shape]
    windows = plan_windows(shape, window, overlap=overlap, divisor=divisor, valid=valid)
    count = torch.zeros(shape)
    for w in windows:
        count[w.slices] += w.ownership()[0]
        assert all(0 <= lo <= hi <= k for (lo, hi), k in zip(w.owned, window))
    inside = torch.zeros(shape, dtype=torch.bool)
    inside[tuple(slice(lo, hi) for lo, hi in valid)] = True
    assert bool((count[inside] == 1).all()) and bool((count[~inside] == 0).all())


def test_window_starts_cover_with_the_requested_overlap() -> None:
    for size in range(16, 90):
        starts = window_starts(size, 16, overlap=0.5)
        assert starts[0] == 0 and starts[-1] == size - 16
        assert all(0 < b - a <= 8 for a, b in itertools.pairwise(starts))


def test_gaussian_matches_nnunet() -> None:
    sw = require("nnunetv2.inference.sliding_window_prediction")
    for size in [(16, 16, 24), (7, 12, 5), (64, 128, 96)]:
        ref = sw.compute_gaussian.__wrapped__(size, 1 / 8, 1, dtype=torch.float64, device="cpu")
        torch.testing.assert_close(
            gaussian_importance(size, dtype=torch.float64), ref, atol=1e-12, rtol=1e-9
        )


def test_autocast_and_output_device() -> None:
    model = mtu.create_model("tiny_plain", heads={"cls": HEADS["panda"]})
    x = torch.randn(1, 1, 12, 20, 20)
    full = sliding_window_predict(model, x, window_size=(8, 16, 16))
    half = sliding_window_predict(
        model, x, window_size=(8, 16, 16), dtype=torch.bfloat16, output_device="cpu"
    )
    assert half["seg"].dtype == torch.float32 and half["cls"].dtype == torch.float32
    assert (half["seg"] - full["seg"]).abs().max() < 0.1
    assert model.training  # the mode is restored


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"window_size": (8, 15, 16)}, ShapeError, "size_divisor"),
        ({"window_size": (8, 16)}, ShapeError, "3 positive sizes"),
        ({"window_size": 8, "blend": "box"}, ConfigError, "blend"),
        ({"window_size": 8, "mirror_axes": (3,)}, ConfigError, "mirror_axes"),
        ({"window_size": 8, "window_batch_size": 0}, ConfigError, "window_batch_size"),
        ({"window_size": 8, "cls_weighting": "lesion"}, ConfigError, "cls_weighting"),
        ({"window_size": 8, "overlap": 1.0}, ShapeError, "overlap"),
        ({"window_size": 8, "device": "meta"}, ConfigError, "model.to"),
    ],
)
def test_bad_options_name_the_fix(kwargs, error, match) -> None:
    model = mtu.create_model("tiny_plain")
    with pytest.raises(error, match=match):
        sliding_window_predict(model, torch.zeros(1, 1, 8, 16, 16), **kwargs)
    with pytest.raises(ShapeError, match="volume must be"):
        sliding_window_predict(model, torch.zeros(1, 8, 16, 16), window_size=8)
    with pytest.raises(ShapeError, match=r"torch.Tensor, got a ndarray; convert it with"):
        sliding_window_predict(model, np.zeros((1, 1, 8, 16, 16), np.float32), window_size=8)
