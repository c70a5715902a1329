"""What sliding-window prediction does around the network, counted (no timing).

nnU-Net's predictor sums the mirrored predictions of a window in place (``+=``), divides and
weights them in place and returns a view of its padded logits; ours must not allocate more per
window, or return tensors that callers cannot update.
"""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

import multitask_unet as mtu
from multitask_unet.inference import plan_windows, sliding_window_predict
from multitask_unet.inference.sliding_window import _cudnn_autotune

WINDOW = (16, 32, 32)


class NewTensors(TorchDispatchMode):
    """Counts, per operator, the new tensors of ``shape`` made outside the network."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape, self.in_network, self.counts = shape, 0, Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not self.in_network:
            inputs = {
                t.untyped_storage().data_ptr()
                for t in tree_flatten((args, kwargs))[0]
                if isinstance(t, torch.Tensor)
            }
            for t in tree_flatten(out)[0]:
                fresh = isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in inputs
                if fresh and tuple(t.shape) == self.shape:
                    self.counts[str(func.overloadpacket)] += 1
        return out


def _counted(model: mtu.MultiTaskUNet, counter: NewTensors) -> list:
    def enter(*_):
        counter.in_network += 1

    def leave(*_):
        counter.in_network -= 1

    modules = (model.encoder, model.decoder, model.seg_head)
    return [h for m in modules for h in (m.register_forward_pre_hook(enter),
                                         m.register_forward_hook(leave))]  # fmt: skip


@pytest.mark.parametrize("batch", [1, 3, 8])
def test_mirrored_predictions_are_summed_weighted_and_blended_in_place(batch: int) -> None:
    torch.manual_seed(0)
    model = mtu.create_model("tiny_plain").eval()
    volume = torch.randn(1, 1, 20, 40, 40)
    windows = len(plan_windows((20, 40, 40), WINDOW, overlap=0.5))
    mirrors = 8
    counter = NewTensors((model.config.num_classes, *WINDOW))
    hooks = _counted(model, counter)
    try:
        with counter:
            sliding_window_predict(
                model, volume, window_size=WINDOW, mirror_axes=(0, 1, 2), window_batch_size=batch
            )
    finally:
        for hook in hooks:
            hook.remove()
    # one flipped copy per mirrored prediction, and nothing else of a window's logits' size
    # (the code before this test made 16 per window: out-of-place sums, mean and weighting)
    assert counter.counts == Counter({"aten.flip": windows * (mirrors - 1)}), counter.counts


def test_without_mirroring_only_the_weighting_allocates() -> None:
    torch.manual_seed(0)
    model = mtu.create_model("tiny_plain").eval()
    windows = len(plan_windows((20, 40, 40), WINDOW, overlap=0.5))
    counter = NewTensors((model.config.num_classes, *WINDOW))
    hooks = _counted(model, counter)
    try:
        with counter:
            out = sliding_window_predict(model, torch.randn(1, 1, 20, 40, 40), window_size=WINDOW)
    finally:
        for hook in hooks:
            hook.remove()
    # the network's own output is never written to: weighting it makes one tensor per window
    assert counter.counts == Counter({"aten.mul": windows}), counter.counts
    assert out["seg"].isfinite().all()


@pytest.mark.parametrize("shape", [(20, 40, 40), (10, 40, 30)])  # the second is padded
def test_the_logits_are_a_normal_tensor_callers_may_update(shape) -> None:
    model = mtu.create_model("tiny_plain", heads={"cls": ("panda", {"num_classes": 2})})
    out = sliding_window_predict(model, torch.randn(1, 1, *shape), window_size=WINDOW)
    assert not out["seg"].is_inference() and not out["cls"].is_inference()
    before = out["seg"].clone()
    out["seg"].add_(1.0)  # an inference tensor would refuse this outside inference mode
    assert torch.equal(out["seg"], before + 1.0)
    assert out["seg"].shape == (1, 3, *shape)


def test_cudnn_autotuning_is_scoped_to_the_prediction() -> None:
    before = torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.benchmark = False
        with _cudnn_autotune(torch.device("cuda")):  # only a flag: no GPU needed
            assert torch.backends.cudnn.benchmark
        assert not torch.backends.cudnn.benchmark
        with _cudnn_autotune(torch.device("cpu")):
            assert not torch.backends.cudnn.benchmark
        torch.use_deterministic_algorithms(True)
        try:
            with _cudnn_autotune(torch.device("cuda")):
                assert not torch.backends.cudnn.benchmark  # deterministic runs keep their choice
        finally:
            torch.use_deterministic_algorithms(False)
    finally:
        torch.backends.cudnn.benchmark = before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("batch", [1, 8])
def test_on_the_gpu_where_the_volume_and_logits_live_changes_nothing(batch: int) -> None:
    torch.manual_seed(0)
    model = mtu.create_model("tiny_plain", heads={"cls": ("panda", {"num_classes": 2})}).eval()
    volume = torch.randn(1, 1, 20, 40, 30)  # padded along W
    options = {"window_size": WINDOW, "mirror_axes": (0, 1, 2), "window_batch_size": batch}
    reference = sliding_window_predict(model, volume, **options)  # CPU, float32
    model = model.cuda()
    outs = {
        (source, target): sliding_window_predict(
            model, volume.to(source), output_device=target, **options
        )
        for source in ("cpu", "cuda")
        for target in ("cpu", "cuda")
    }
    first = outs["cpu", "cuda"]
    for (_, target), out in outs.items():
        assert out["seg"].device.type == target
        torch.testing.assert_close(out["seg"].cpu(), first["seg"].cpu(), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(out["cls"].cpu(), first["cls"].cpu(), rtol=1e-4, atol=1e-4)
    labels = first["seg"].cpu().argmax(1)
    assert (labels == reference["seg"].argmax(1)).float().mean() > 0.99  # TF32 convolutions
