"""The contract every registered encoder keeps, checked through a whole model."""

from __future__ import annotations

import itertools

import pytest
import torch

from multitask_unet import ShapeError, create_model
from multitask_unet.encoders import ENCODERS

# A tiny, fast config for every registered encoder; a new encoder must add one here.
TINY_ENCODERS: dict[str, dict] = {
    "plain": {
        "channels": (4, 8, 12),
        "strides": (1, (1, 2, 2), 2),
        "kernel_sizes": ((1, 3, 3), 3, 3),
        "convs_per_stage": (1, 2, 1),
    },
    "residual": {
        "channels": (4, 8, 12),
        "strides": (1, 2, (2, 2, 1)),
        "blocks_per_stage": (1, 2, 1),
    },
    "timm3d": {"model_name": "tinynet_e", "out_indices": (0, 1, 2)},
}
# An input size valid for each config above (odd multiples of the size divisor).
VALID_SIZES = {"plain": (6, 12, 20), "residual": (12, 12, 4), "timm3d": (24, 24, 40)}


@pytest.fixture(params=ENCODERS.list())
def encoder_name(request) -> str:
    return request.param


def _model(name: str, **overrides):
    if name not in TINY_ENCODERS:
        pytest.fail(f"encoder {name!r} is registered but has no tiny config in TINY_ENCODERS")
    torch.manual_seed(0)
    return create_model("tiny_plain", encoder={"name": name, **TINY_ENCODERS[name]}, **overrides)


def test_feature_info_matches_real_features(encoder_name: str) -> None:
    model = _model(encoder_name, in_channels=2).eval()
    size = VALID_SIZES[encoder_name]
    feats = model.encoder(torch.randn(1, 2, *size))
    info = model.encoder.feature_info
    assert len(feats) == len(info) >= 2
    for f, fi in zip(feats, info, strict=True):
        assert f.shape[1] == fi.channels
        assert tuple(f.shape[2:]) == tuple(s // st for s, st in zip(size, fi.stride, strict=True))
    assert model.size_divisor == info[-1].stride


def test_output_shapes_and_keys(encoder_name: str) -> None:
    model = _model(encoder_name, num_classes=4)
    size = VALID_SIZES[encoder_name]
    x = torch.randn(2, 1, *size)
    model.train()
    out = model(x)
    assert set(out) == {"seg", "seg_deep"}
    assert out["seg"].shape == (2, 4, *size)
    assert len(out["seg_deep"]) == len(model.decoder.stage_info) - 1
    shapes = [out["seg"].shape[2:], *(t.shape[2:] for t in out["seg_deep"])]
    assert all(
        all(a >= b for a, b in zip(fine, coarse, strict=True))
        for fine, coarse in itertools.pairwise(shapes)
    ), "seg_deep must go fine to coarse"
    model.eval()
    with torch.no_grad():
        assert set(model(x)) == {"seg"}


def test_every_parameter_gets_a_gradient(encoder_name: str) -> None:
    model = _model(encoder_name).train()
    # Residual blocks start with their last norm at zero (nnU-Net's init), which zeroes the
    # gradient of the convolutions before it on the first step; lift that to see every path.
    for m in model.modules():
        if isinstance(getattr(m, "weight", None), torch.Tensor) and "Norm" in type(m).__name__:
            torch.nn.init.ones_(m.weight)
    out = model(torch.randn(2, 1, *VALID_SIZES[encoder_name]))
    loss = out["seg"].square().mean() + sum(t.square().mean() for t in out["seg_deep"])
    loss.backward()
    without = [
        n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert without == []


def test_invalid_size_names_nearest_valid_size(encoder_name: str) -> None:
    model = _model(encoder_name)
    size = tuple(s + 1 for s in VALID_SIZES[encoder_name])
    with pytest.raises(ShapeError, match="nearest valid size"):
        model(torch.randn(1, 1, *size))


def test_wrong_channels_and_rank_are_rejected(encoder_name: str) -> None:
    model = _model(encoder_name, in_channels=1)
    with pytest.raises(ShapeError, match="input channel"):
        model(torch.randn(1, 3, *VALID_SIZES[encoder_name]))
    with pytest.raises(ShapeError, match="dims"):
        model(torch.randn(1, *VALID_SIZES[encoder_name]))


def test_no_tensor_twice_in_state_dict_and_weights_only_load(encoder_name: str, tmp_path) -> None:
    model = _model(encoder_name)
    state = model.state_dict()
    ptrs = [t.untyped_storage().data_ptr() for t in state.values() if t.numel()]
    assert len(ptrs) == len(set(ptrs)), "a tensor appears twice in state_dict()"
    path = tmp_path / "model.pt"
    torch.save({"config": model.config.to_dict(), "state_dict": state}, path)
    loaded = torch.load(path, weights_only=True)
    clone = create_model(loaded["config"])
    clone.load_state_dict(loaded["state_dict"])
    x = torch.randn(1, 1, *VALID_SIZES[encoder_name])
    with torch.no_grad():
        assert torch.equal(model.eval()(x)["seg"], clone.eval()(x)["seg"])
