"""Our sliding-window logits equal nnU-Net's ``predict_sliding_window_return_logits``.

Both run the same weights (dynamic-network-architectures' ``PlainConvUNet`` loaded into ours
with ``load_nnunet_weights``) on the same preprocessed volume with the same step size,
Gaussian and mirroring. nnU-Net's predictor is set up by hand, without plans: the network, a
``configuration_manager`` with ``patch_size``, a ``label_manager`` with
``num_segmentation_heads`` and the mirroring axes.

nnU-Net 2.8 accumulates logits and Gaussian weights in float16. Near the volume's corners the
Gaussian weight of a window (``10 * exp(-24)`` at a 3-D window corner) underflows float16, and
nnU-Net's logits there come out rounded to whole numbers. The strict comparison therefore runs
nnU-Net's own code with its accumulation dtype set to float32 (``torch.half`` and the Gaussian
dtype patched for the call); the stock float16 run is compared where its weights are normal
float16 numbers.
"""

from __future__ import annotations

import copy
import functools
from types import SimpleNamespace

import pytest
import torch

from _nnunet_files import TINY_PLAIN_ARCH
from _references import reference, require
from multitask_unet.inference import sliding_window_predict
from multitask_unet.interop.nnunet import load_nnunet_weights, model_from_plans

pfr = reference("nnunetv2.inference.predict_from_raw_data")
nnunet_networks = reference("nnunetv2.utilities.get_network_from_plans")

ARCH = TINY_PLAIN_ARCH
PATCH = (8, 16, 24)


@pytest.fixture(scope="module")
def networks() -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    dna = nnunet_networks.get_network_from_plans(
        ARCH["network_class_name"],
        copy.deepcopy(ARCH["arch_kwargs"]),
        ARCH["_kw_requires_import"],
        1,
        3,
        deep_supervision=False,
    ).eval()
    plans = {"configurations": {"3d_fullres": {"architecture": ARCH}}}
    ours = model_from_plans(
        plans, in_channels=1, num_classes=3, heads={"cls": ("panda", {"num_classes": 2})}
    )
    load_nnunet_weights(ours, dna.state_dict())
    return dna, ours.eval()


def _nnunet_logits(
    dna: torch.nn.Module,
    image: torch.Tensor,
    *,
    step: float,
    gaussian: bool,
    mirror: tuple[int, ...],
    float32: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> torch.Tensor:
    predictor = pfr.nnUNetPredictor(
        tile_step_size=step,
        use_gaussian=gaussian,
        use_mirroring=bool(mirror),
        perform_everything_on_device=False,
        device=torch.device("cpu"),
        verbose=False,
        allow_tqdm=False,
    )
    predictor.network = dna
    predictor.configuration_manager = SimpleNamespace(patch_size=list(PATCH))
    predictor.label_manager = SimpleNamespace(num_segmentation_heads=3)
    predictor.allowed_mirroring_axes = mirror
    with monkeypatch.context() as patch:
        if float32:
            patch.setattr(torch, "half", torch.float32)
            patch.setattr(
                require("nnunetv2.inference.predict_from_raw_data"),
                "compute_gaussian",
                functools.partial(pfr.compute_gaussian.__wrapped__, dtype=torch.float32),
            )
        return predictor.predict_sliding_window_return_logits(image).float()


@pytest.mark.parametrize(
    ("shape", "step", "gaussian", "mirror"),
    [
        ((10, 24, 34), 0.5, True, (0, 1, 2)),
        ((6, 20, 50), 0.5, True, (1, 2)),  # thinner than the window along D: padded
        ((11, 16, 31), 0.7, False, ()),
    ],
)
def test_logits_equal_nnunet(networks, monkeypatch, shape, step, gaussian, mirror) -> None:
    dna, ours = networks
    image = torch.randn(1, *shape, generator=torch.Generator().manual_seed(1))
    expected = _nnunet_logits(
        dna, image, step=step, gaussian=gaussian, mirror=mirror, float32=True,
        monkeypatch=monkeypatch,
    )  # fmt: skip
    got = sliding_window_predict(
        ours, image[None], window_size=PATCH, overlap=1 - step,
        blend="gaussian" if gaussian else "constant", mirror_axes=mirror, window_batch_size=3,
    )  # fmt: skip
    assert got["seg"].shape == (1, *expected.shape)
    assert (got["seg"][0] - expected).abs().max().item() <= 1e-4
    assert got["cls"].shape == (1, 2)


def test_stock_float16_nnunet_agrees_where_its_weights_are_normal(networks, monkeypatch) -> None:
    dna, ours = networks
    image = torch.randn(1, 10, 24, 34, generator=torch.Generator().manual_seed(2))
    expected = _nnunet_logits(
        dna, image, step=0.5, gaussian=True, mirror=(0, 1, 2), float32=False,
        monkeypatch=monkeypatch,
    )  # fmt: skip
    got = sliding_window_predict(ours, image[None], window_size=PATCH, mirror_axes=(0, 1, 2))
    # nnU-Net's float16 weight sum per voxel, and where float16 represents it as a normal number
    weight = torch.zeros(image.shape[1:], dtype=torch.float16)
    gauss = pfr.compute_gaussian(PATCH, 1 / 8, 10, device=torch.device("cpu"))
    for sl in pfr.nnUNetPredictor._internal_get_sliding_window_slicers(
        SimpleNamespace(configuration_manager=SimpleNamespace(patch_size=PATCH),
                        tile_step_size=0.5, verbose=False),
        image.shape[1:],
    ):  # fmt: skip
        weight[sl[1:]] += gauss
    normal = weight.float() >= 0.1  # float16 has ~3 significant digits from 6e-5 up
    assert normal.float().mean() > 0.3  # the comparison covers a good share of the volume
    diff = (got["seg"][0] - expected).abs()
    assert diff[:, normal].max().item() <= 5e-3 * max(1.0, expected.abs().max().item())
