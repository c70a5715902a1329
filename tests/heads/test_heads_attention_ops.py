"""The fused attention-pooling functions against plain autograd and finite differences."""

from __future__ import annotations

import pytest
import torch

from multitask_unet.heads.attention_ops import (
    gated_attention_pool,
    query_attention_pool,
    softmax_pool,
)


def _inputs(dtype: torch.dtype, weighting: str | None, *, batch: int = 2, n: int = 30):
    g = torch.Generator().manual_seed(0)
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


def _fused(mode: str, x, weights, p):
    if mode == "query":
        return query_attention_pool(x, p["query"], weights)
    return gated_attention_pool(x, p["gate_weight"], p["gate_bias"], p["score_weight"], weights)


def _reference(mode: str, x, weights, p):
    if mode == "query":
        scores = torch.einsum("hc,bcn->bhn", p["query"], x)
    else:
        h = torch.einsum("lc,bcn->bln", p["gate_weight"], x) + p["gate_bias"][:, None]
        v, u = h.chunk(2, dim=1)
        scores = torch.einsum("hl,bln->bhn", p["score_weight"], torch.tanh(v) * torch.sigmoid(u))
    return softmax_pool(scores, x, weights)


def _names(mode: str) -> list[str]:
    return ["query"] if mode == "query" else ["gate_weight", "gate_bias", "score_weight"]


@pytest.mark.parametrize("mode", ["query", "gated"])
@pytest.mark.parametrize("weighting", [None, "soft", "shared"])
def test_gradcheck(mode: str, weighting: str | None) -> None:
    x, weights, p = _inputs(torch.float64, weighting)
    names = _names(mode)

    def pooled(x, *params):  # v / s: what heads read, independent of m
        _, norm, value = _fused(mode, x, weights, dict(zip(names, params)))
        return value / norm[..., None]

    inputs = [x.requires_grad_(), *(p[k].requires_grad_() for k in names)]
    assert torch.autograd.gradcheck(pooled, inputs, eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", ["query", "gated"])
@pytest.mark.parametrize("weighting", [None, "soft"])
def test_fused_equals_plain_autograd(mode: str, weighting: str | None) -> None:
    results = []
    for fn in (_fused, _reference):
        x, weights, p = _inputs(torch.float32, weighting, n=200)
        leaves = [x.requires_grad_(), *(p[k].requires_grad_() for k in _names(mode))]
        top, norm, value = fn(mode, x, weights, p)
        pooled = value / norm[..., None]
        (pooled * torch.linspace(-1, 1, pooled.numel()).view_as(pooled)).sum().backward()
        results.append([top, norm, value, *(t.grad for t in leaves)])
    for got, expected in zip(*results):
        assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)


def test_empty_windows_pool_to_zero_without_nans() -> None:
    x, _, p = _inputs(torch.float32, None)
    for mode in ("query", "gated"):
        top, norm, value = _fused(mode, x, torch.zeros(2, 1, x.shape[-1]), p)
        assert torch.isneginf(top).all() and (norm == 0).all() and (value == 0).all()
