"""What keeps attention pooling cheap on a GPU, checked on the CPU.

Voxel reductions split in chunks (:func:`~multitask_unet.heads.attention_ops.voxel_products`)
must give the numbers of one batched GEMM, keep pooling window-exact and really run split;
and a training step of the heads must not read a tensor value on the host (each such read
waits for the GPU to finish everything queued before it).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from multitask_unet.heads import attention_ops
from multitask_unet.heads.attention_ops import (
    voxel_products,
)

TOL = 1e-5
_HOST_READS = {
    torch.ops.aten._local_scalar_dense,  # .item(), bool(t), int(t), float(t)
    torch.ops.aten.nonzero,
    torch.ops.aten.masked_select,
    torch.ops.aten.unique_consecutive,
    torch.ops.aten._unique2,
}


class OpWatch(TorchDispatchMode):
    """Counts aten ops by name and, with ``strict``, fails on ops that read values on the host."""

    def __init__(self, *, strict: bool = False) -> None:
        super().__init__()
        self.strict, self.calls = strict, Counter[str]()

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.calls[func.overloadpacket.__name__] += 1
        if self.strict and func.overloadpacket in _HOST_READS:
            raise AssertionError(f"{func} reads a tensor value on the host")
        return func(*args, **(kwargs or {}))


@pytest.fixture
def chunk(monkeypatch: pytest.MonkeyPatch):
    """Set ``VOXEL_CHUNK`` for one test: ``chunk(7)``."""
    return lambda value: monkeypatch.setattr(attention_ops, "VOXEL_CHUNK", value)


@pytest.mark.parametrize("n", [28, 30, 13])  # split with no tail, split with a tail, one GEMM
@pytest.mark.parametrize("layout", ["contiguous", "row_slice", "expanded"])
def test_voxel_products_equal_one_gemm(n: int, layout: str, chunk) -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 4, n, generator=g, dtype=torch.float64)
    b = torch.randn(3, 5, n, generator=g, dtype=torch.float64)
    if layout == "row_slice":  # rows of a larger map, as the gate gradient is
        a = torch.randn(3, 9, n, generator=g, dtype=torch.float64)[:, 2:6]
    elif layout == "expanded":  # one weight map shared by the batch
        b = b[:1].expand(3, -1, -1)
    chunk(7)
    with OpWatch() as watch:
        got = voxel_products(a, b)
    assert torch.allclose(got, torch.bmm(a, b.transpose(1, 2)), atol=1e-12)
    split = n >= 14
    assert watch.calls["bmm"] == (3 + (n % 7 > 0) if split else 1)  # one per sample, + the tail


@pytest.mark.parametrize("mode", ["query", "gated"])
@pytest.mark.parametrize("weighting", [None, "soft"])
def test_split_pooling_equals_one_gemm(mode: str, weighting: str | None, chunk, kit) -> None:
    """Forward and every gradient with the voxels split in chunks equal the single-GEMM path."""
    results, bmm_calls = [], []
    for value in (0, 16):  # 200 voxels: 12 chunks and a tail of 8
        chunk(value)
        x, weights, p = kit.attention_inputs(weighting, n=200, seed=1)
        leaves = [
            x.requires_grad_(),
            *(p[k].requires_grad_() for k in kit.attention_param_names(mode)),
        ]
        with OpWatch() as watch:
            top, norm, value_ = kit.attention_pool(mode, x, weights, p)
            pooled = value_ / norm[..., None]
            (pooled * torch.linspace(-1, 1, pooled.numel()).view_as(pooled)).sum().backward()
        results.append([top, norm, value_, *(t.grad for t in leaves)])
        bmm_calls.append(watch.calls["bmm"])
    for got, expected in zip(*results):
        assert torch.allclose(got, expected, atol=TOL, rtol=TOL)
    assert bmm_calls[1] > bmm_calls[0]  # the split really ran


@pytest.mark.parametrize("mode", ["query", "gated"])
def test_split_pooling_gradcheck(mode: str, chunk, kit) -> None:
    chunk(7)  # 30 voxels: 4 chunks and a tail of 2
    x, weights, p = kit.attention_inputs("soft", n=30, dtype=torch.float64, seed=1)
    names = kit.attention_param_names(mode)

    def pooled(x, *params):
        _, norm, value = kit.attention_pool(mode, x, weights, dict(zip(names, params)))
        return value / norm[..., None]

    inputs = [x.requires_grad_(), *(p[k].requires_grad_() for k in names)]
    assert torch.autograd.gradcheck(pooled, inputs, eps=1e-6, atol=1e-6)


ATTENTION = ["attention_gated", "attention_query"]


@pytest.mark.parametrize("weighting", [None, "soft"])
def test_split_pooling_stays_window_exact(weighting: str | None, kit, chunk) -> None:
    """Whole volume and merged windows agree with the split on, and match the unsplit logits."""
    model = kit.model_with_all_heads("tiny_plain")
    size = kit.odd_size(model.size_divisor)
    d = model.size_divisor
    windows = kit.tile_windows(size, [[d[0]], [d[1], 3 * d[1]], [3 * d[2]]])
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 1, *size, generator=g)
    weights = None if weighting is None else torch.rand(2, 1, *size, generator=g)
    with torch.no_grad():
        features = model.features(x)
        for name in ATTENTION:
            head = model.heads[name]
            chunk(0)
            unsplit = head(features, weights)
            chunk(5)
            whole = head(features, weights)
            merged = kit.merged_window_logits(model, head, features, weights, windows)
            assert (whole - unsplit).abs().max() <= TOL, name
            assert (merged - whole).abs().max() <= TOL, name


def test_host_read_watch_can_fail() -> None:
    """Control: the watch used below does catch a host read, also inside a backward."""
    x = torch.randn(4, requires_grad=True)
    with pytest.raises(AssertionError, match="host"), OpWatch(strict=True):
        bool((x > 0).any())
    y = x * 2
    y.register_hook(lambda grad: grad * float(grad.sum()))
    with pytest.raises(AssertionError, match="host"), OpWatch(strict=True):
        y.sum().backward()


@pytest.mark.parametrize("split", [0, 5])
def test_training_step_of_the_heads_reads_nothing_on_the_host(split: int, kit, chunk) -> None:
    """Every head variant's forward + loss + backward runs without a host read of a value."""
    chunk(split)
    model = kit.build_model("tiny_plain", dict(kit.variants)).train()
    size = kit.odd_size(model.size_divisor)
    with torch.no_grad():
        features = model.features(torch.randn(2, 1, *size))
    for maps in (features.encoder, features.decoder):
        for t in maps:
            t.requires_grad_()
    target = torch.tensor([0, 1])
    onehot = {h.num_classes: F.one_hot(target, h.num_classes).float() for h in model.heads.values()}
    with OpWatch(strict=True) as watch:  # (one_hot checks its input's range on the host)
        for head in model.heads.values():
            logits = head(features)
            if head.loss_kind == "bce_ovr":
                loss = F.binary_cross_entropy_with_logits(logits, onehot[head.num_classes])
            else:
                loss = F.cross_entropy(logits, target)
            loss.backward()
    assert watch.calls["bmm"] > 0  # the attention heads ran under the watch
