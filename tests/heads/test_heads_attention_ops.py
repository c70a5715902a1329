"""The fused attention-pooling functions against plain autograd and finite differences."""

from __future__ import annotations

import pytest
import torch

from multitask_unet.heads.attention_ops import (
    softmax_pool,
)


def _reference(mode: str, x, weights, p):
    if mode == "query":
        scores = torch.einsum("hc,bcn->bhn", p["query"], x)
    else:
        h = torch.einsum("lc,bcn->bln", p["gate_weight"], x) + p["gate_bias"][:, None]
        v, u = h.chunk(2, dim=1)
        scores = torch.einsum("hl,bln->bhn", p["score_weight"], torch.tanh(v) * torch.sigmoid(u))
    return softmax_pool(scores, x, weights)


@pytest.mark.parametrize("mode", ["query", "gated"])
@pytest.mark.parametrize("weighting", [None, "soft", "shared"])
def test_gradcheck(mode: str, weighting: str | None, kit) -> None:
    x, weights, p = kit.attention_inputs(weighting, n=30, dtype=torch.float64)
    names = kit.attention_param_names(mode)

    def pooled(x, *params):  # v / s: what heads read, independent of m
        _, norm, value = kit.attention_pool(mode, x, weights, dict(zip(names, params)))
        return value / norm[..., None]

    inputs = [x.requires_grad_(), *(p[k].requires_grad_() for k in names)]
    assert torch.autograd.gradcheck(pooled, inputs, eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", ["query", "gated"])
@pytest.mark.parametrize("weighting", [None, "soft"])
def test_fused_equals_plain_autograd(mode: str, weighting: str | None, kit) -> None:
    results = []
    for fn in (kit.attention_pool, _reference):
        x, weights, p = kit.attention_inputs(weighting, n=200)
        leaves = [
            x.requires_grad_(),
            *(p[k].requires_grad_() for k in kit.attention_param_names(mode)),
        ]
        top, norm, value = fn(mode, x, weights, p)
        pooled = value / norm[..., None]
        (pooled * torch.linspace(-1, 1, pooled.numel()).view_as(pooled)).sum().backward()
        results.append([top, norm, value, *(t.grad for t in leaves)])
    for got, expected in zip(*results):
        assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)


def test_empty_windows_pool_to_zero_without_nans(kit) -> None:
    x, _, p = kit.attention_inputs(None, n=30)
    for mode in ("query", "gated"):
        top, norm, value = kit.attention_pool(mode, x, torch.zeros(2, 1, x.shape[-1]), p)
        assert torch.isneginf(top).all() and (norm == 0).all() and (value == 0).all()
