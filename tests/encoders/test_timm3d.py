"""The ``timm3d`` encoder: timm-3d backbones, their feature_info, options, errors and checkpoints.

The four backbones the issue names are built whole and run forward and backward once each, at
batch 1 and the smallest valid anisotropic size; the small ``tinynet_e`` and ``convnext_atto``
stand in for everything else.
"""

from __future__ import annotations

import pytest
import torch

from _references import reference, require
from multitask_unet import ShapeError, create_model
from multitask_unet.encoders import ENCODERS, EncoderConfig, Timm3dEncoder, Timm3dEncoderConfig
from multitask_unet.errors import ConfigError, WeightsError
from multitask_unet.interop.timm3d_weights import load_timm3d_checkpoint

timm_3d = reference("timm_3d")

SIZE = (32, 32, 64)  # smallest anisotropic size divisible by 32 whose deepest map has > 1 voxel

BACKBONES = [
    pytest.param("resnet18", 1, id="resnet18"),
    pytest.param("efficientnet_b0", 2, id="efficientnet_b0"),
    pytest.param("convnext_tiny", 3, id="convnext_tiny", marks=pytest.mark.slow),
    pytest.param("densenet121", 4, id="densenet121", marks=pytest.mark.slow),
]


def _encoder(model_name: str = "tinynet_e", in_channels: int = 1, **options) -> Timm3dEncoder:
    torch.manual_seed(0)
    return Timm3dEncoderConfig(model_name=model_name, **options).build(in_channels)


def _expected_shapes(encoder: Timm3dEncoder, batch: int, size: tuple[int, ...]) -> list[tuple]:
    return [
        (batch, f.channels, *(s // k for s, k in zip(size, f.stride, strict=True)))
        for f in encoder.feature_info
    ]


@pytest.mark.parametrize(("model_name", "in_channels"), BACKBONES)
def test_backbone_gives_full_resolution_logits(model_name: str, in_channels: int) -> None:
    torch.manual_seed(0)
    model = create_model(
        "tiny_plain",
        in_channels=in_channels,
        encoder=("timm3d", {"model_name": model_name}),
    ).train()
    encoder = model.encoder
    assert isinstance(encoder, Timm3dEncoder)
    # feature_info is what the weightless probe of the config says, and what forward returns.
    assert model.config.encoder.feature_info() == encoder.feature_info
    assert model.config.encoder.num_levels == len(encoder.feature_info)
    assert encoder.feature_info[0].stride in ((2, 2, 2), (4, 4, 4)), "no strided-stem case"
    assert model.size_divisor == encoder.feature_info[-1].stride

    # timm's ResNets start the last norm of each block at zero, which zeroes the gradient of
    # the convolutions before it on the first step; lift that to see every path.
    for m in model.modules():
        if isinstance(getattr(m, "weight", None), torch.Tensor) and "Norm" in type(m).__name__:
            torch.nn.init.ones_(m.weight)
    x = torch.randn(1, in_channels, *SIZE)
    features = model.features(x)
    assert [tuple(f.shape) for f in features.encoder] == _expected_shapes(encoder, 1, SIZE)
    out = model.forward_heads(features)
    assert out["seg"].shape == (1, 3, *SIZE)

    loss = out["seg"].square().mean() + sum(t.square().mean() for t in out["seg_deep"])
    loss.backward()
    without = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert without == []
    ptrs = [t.untyped_storage().data_ptr() for t in model.state_dict().values() if t.numel()]
    assert len(ptrs) == len(set(ptrs)), "a tensor appears twice in state_dict()"


@pytest.mark.parametrize(
    ("model_name", "out_indices"),
    [("tinynet_e", (0, 1, 2)), ("tinynet_e", (2,)), ("resnet18", (1, 3)), ("convnext_atto", (1,))],
)
def test_out_indices_keep_only_used_layers(model_name: str, out_indices: tuple[int, ...]) -> None:
    whole = _encoder(model_name)
    part = _encoder(model_name, out_indices=out_indices)
    assert part.feature_info == tuple(whole.feature_info[i] for i in out_indices)
    assert part.size_divisor == whole.feature_info[out_indices[-1]].stride
    assert sum(p.numel() for p in part.parameters()) < sum(p.numel() for p in whole.parameters())

    size = tuple(2 * s for s in part.size_divisor)
    features = part.train()(torch.randn(2, 1, *size))
    assert [tuple(f.shape) for f in features] == _expected_shapes(part, 2, size)
    sum(f.square().mean() for f in features).backward()
    assert [n for n, p in part.named_parameters() if p.grad is None] == []


def test_shallow_backbone_runs_on_small_odd_multiples() -> None:
    model = create_model(
        "tiny_plain", encoder=("timm3d", {"model_name": "tinynet_e", "out_indices": [0, 1, 2]})
    ).eval()
    assert model.size_divisor == (8, 8, 8)
    size = (8, 24, 40)  # 1, 3 and 5 times the divisor
    with torch.no_grad():
        assert model(torch.randn(1, 1, *size))["seg"].shape == (1, 3, *size)
    with pytest.raises(ShapeError, match=r"nearest valid size is \(8, 24, 40\)"):
        model(torch.randn(1, 1, 9, 23, 40))


def test_config_round_trips_and_passes_model_kwargs(tmp_path) -> None:
    cfg = EncoderConfig.from_dict(
        {"name": "timm3d", "model_name": "tinynet_e", "model_kwargs": {"drop_path_rate": 0.2}}
    )
    assert isinstance(cfg, Timm3dEncoderConfig) and ENCODERS.get("timm3d") is Timm3dEncoderConfig
    for suffix in (".yaml", ".json"):
        cfg.save(tmp_path / f"enc{suffix}")
        assert EncoderConfig.load(tmp_path / f"enc{suffix}") == cfg
    drop = [m.drop_prob for m in cfg.build(1).modules() if type(m).__name__ == "DropPath"]
    plain = list(Timm3dEncoderConfig(model_name="tinynet_e").build(1).modules())
    assert drop and max(drop) > 0
    assert not any(type(m).__name__ == "DropPath" for m in plain)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"pretrained": True}, r"never downloads.*checkpoint_path"),
        ({"model_kwargs": {"pretrained": True}}, r"never downloads.*checkpoint_path"),
        ({"model_kwargs": {"in_chans": 3}}, "in_channels"),
        ({"model_kwargs": {"act": object()}}, "JSON"),
        ({"model_name": "resnet181"}, "Did you mean 'resnet18'"),
        ({"model_name": "hf-hub:timm/resnet18"}, "not a timm-3d model"),
        ({"out_indices": ()}, "increasing order"),
        ({"out_indices": (2, 1)}, "increasing order"),
        ({"out_indices": (-1,)}, "increasing order"),
    ],
)
def test_bad_options_are_rejected_by_the_config(options: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        Timm3dEncoderConfig(**options)


def test_build_errors_name_the_problem() -> None:
    with pytest.raises(ConfigError, match=r"has 5 feature levels \(indices 0..4\)"):
        Timm3dEncoderConfig(model_name="tinynet_e", out_indices=(0, 5)).build(1)
    with pytest.raises(ConfigError, match="3D only"):
        Timm3dEncoderConfig(model_name="tinynet_e").build(1, spatial_dims=2)
    with pytest.raises(ConfigError, match="unexpected keyword"):  # timm-3d's own error, wrapped
        Timm3dEncoderConfig(model_name="tinynet_e", model_kwargs={"no_such": 1}).build(1)
    with pytest.raises(ConfigError, match="in_channels"):
        Timm3dEncoderConfig(model_name="tinynet_e").build(0)


def test_forward_rejects_wrong_rank_and_broken_feature_info() -> None:
    with pytest.raises(ShapeError, match=r"batch size >= 2.*\(32, 32, 64\)"):
        _encoder().train()(torch.randn(1, 1, 32, 32, 32))  # BatchNorm on 1 x 1 x 1 maps
    encoder = _encoder(out_indices=(0, 1))
    with pytest.raises(ShapeError, match=r"\(B, C, D, H, W\)"):
        encoder(torch.randn(1, 1, 8, 8))
    # A backbone whose maps disagree with the feature_info it reports must fail loudly.
    first, second = encoder.feature_info
    encoder.feature_info = (first, type(second)(second.channels, (4, 4, 2)))
    with pytest.raises(ShapeError, match="promises"):
        encoder(torch.randn(1, 1, 8, 8, 8))


# -- checkpoints ----------------------------------------------------------------------------


def _same_tensors(encoder: Timm3dEncoder, reference: dict[str, torch.Tensor]) -> bool:
    """Every backbone tensor equals the reference tensor of the same dotted/underscored name."""
    by_name = {k.replace(".", "_"): v for k, v in reference.items()}
    state = encoder.backbone.state_dict()
    return all(torch.equal(v, by_name[k.replace(".", "_")]) for k, v in state.items())


@pytest.mark.parametrize("model_name", ["tinynet_e", "convnext_atto"])
def test_checkpoint_of_the_classification_model_loads(model_name: str, tmp_path) -> None:
    torch.manual_seed(1)
    source = timm_3d.create_model(model_name, pretrained=False, in_chans=2).state_dict()
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": source}, path)
    fresh = _encoder(model_name, 2, out_indices=(0, 1))
    assert not _same_tensors(fresh, source)
    loaded = _encoder(model_name, 2, out_indices=(0, 1), checkpoint_path=str(path))
    assert _same_tensors(loaded, source)
    # the classifier and the levels after the last requested one are left over
    unused = load_timm3d_checkpoint(fresh.backbone, path)
    assert any(k.startswith("head") or k.startswith("classifier") for k in unused)


def test_checkpoint_of_an_encoder_or_model_loads(tmp_path) -> None:
    safetensors = require("safetensors.torch")
    torch.manual_seed(2)
    model = create_model("tiny_plain", encoder=("timm3d", {"model_name": "tinynet_e"}))
    reference = model.encoder.backbone.state_dict()
    files = {
        "encoder.pt": model.encoder.state_dict(),
        "model.pt": {"model": model.state_dict()},
        "ddp.pt": {f"module.{k}": v for k, v in model.state_dict().items()},
    }
    for name, obj in files.items():
        torch.save(obj, tmp_path / name)
    safetensors.save_file(dict(model.encoder.state_dict()), str(tmp_path / "enc.safetensors"))
    for name in [*files, "enc.safetensors"]:
        encoder = _encoder(checkpoint_path=str(tmp_path / name))
        assert _same_tensors(encoder, reference), name


def test_bad_checkpoints_name_the_fix(tmp_path) -> None:
    state = _encoder(in_channels=2).state_dict()
    torch.save(state, tmp_path / "two_channels.pt")
    with pytest.raises(WeightsError, match=r"wrong shape.*in_channels"):
        _encoder(in_channels=1, checkpoint_path=str(tmp_path / "two_channels.pt"))
    torch.save(_encoder("mnasnet_small").state_dict(), tmp_path / "other_model.pt")
    with pytest.raises(WeightsError, match="same timm-3d model_name"):
        _encoder(checkpoint_path=str(tmp_path / "other_model.pt"))
    torch.save({"epoch": 3}, tmp_path / "no_weights.pt")
    with pytest.raises(WeightsError, match="no state dict"):
        _encoder(checkpoint_path=str(tmp_path / "no_weights.pt"))
    (tmp_path / "garbage.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read"):
        _encoder(checkpoint_path=str(tmp_path / "garbage.pt"))
    with pytest.raises(ConfigError, match="is not a file"):
        _encoder(checkpoint_path=str(tmp_path / "missing.pt"))


def test_weights_module_docstring_example_runs() -> None:
    import doctest

    from multitask_unet.interop import timm3d_weights

    result = doctest.testmod(timm3d_weights, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
