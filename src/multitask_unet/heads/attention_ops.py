"""Attention pooling kernels: a reference ``softmax_pool`` and two fused autograd functions.

All three return the log-sum-exp state of ``sum_n softmax_n(score_n + log w_n) x_n`` for
``H`` attention heads: ``m = max_n score_n`` (``-inf`` where no voxel counts), ``s = sum_n w_n
exp(score_n - m)`` and ``v = sum_n w_n exp(score_n - m) x_n``. ``m`` carries no gradient:
``v / s``, the only thing a head reads, does not depend on it.

The fused functions compute the scores and the pooling in one autograd node with a
hand-written backward. Autograd's generic graph for the same computation keeps more
intermediate maps, makes several passes over full-resolution tensors and adds the gradient
of ``x`` from each path separately; at the finest decoder stage that costs more than all the
rest of a head. The backward here forms the gradient of ``x`` with a single batched GEMM.
``tests/heads`` check both against :func:`softmax_pool` with ``torch.autograd.gradcheck``.

The sums over voxels into small outputs (the pooled value and the parameter gradients) go
through :func:`voxel_products`, which splits the voxels into chunks: one batched GEMM with a
long reduction and a small output can keep as few as one GPU thread block per sample busy.

Shapes: ``x`` ``(B, C, N)``, ``weights`` ``(B or 1, 1, N)`` or ``None``, ``m, s`` ``(B, H)``,
``v`` ``(B, H, C)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.autograd.function import FunctionCtx, once_differentiable

__all__ = [
    "VOXEL_CHUNK",
    "gated_attention_pool",
    "query_attention_pool",
    "softmax_pool",
    "voxel_products",
]

Triple = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


VOXEL_CHUNK = 16384
"""Voxels per partial product in :func:`voxel_products`; 0 turns the split off."""


def voxel_products(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(B, I, J)`` sums over voxels, ``sum_n a[:, i, n] b[:, j, n]``, of ``a`` ``(B, I, N)``
    and ``b`` ``(B, J, N)``: ``torch.bmm(a, b.transpose(1, 2))`` up to float rounding.

    Batched GEMM kernels are generally not split along the reduction, so one with a long
    ``N`` and a small ``I x J`` output can run on as few as one GPU thread block per sample
    and leave the rest of the GPU idle (a CPU does not mind). Here each sample's voxels are
    cut into chunks of :data:`VOXEL_CHUNK` that form the batch of one GEMM (strided views of
    ``a`` and ``b``, no copy), and the partial products are summed. Short ``N`` (under two
    chunks) and inputs whose voxels are not contiguous take the single GEMM. Use it without
    autograd (inside a ``Function``): the backward of the per-sample views would allocate a
    full-size gradient per sample.
    """
    n, chunk = a.shape[-1], VOXEL_CHUNK
    if chunk <= 0 or n < 2 * chunk or a.stride(-1) != 1 or b.stride(-1) != 1:
        return torch.bmm(a, b.transpose(1, 2))
    k = n // chunk
    split = k * chunk
    parts = []
    for i in range(a.shape[0]):  # one sample's chunks lie at one stride: a valid GEMM batch
        a_i = a[i, :, :split].unflatten(-1, (k, chunk)).transpose(0, 1)  # (k, I, chunk)
        b_i = b[i, :, :split].unflatten(-1, (k, chunk)).transpose(0, 1)  # (k, J, chunk)
        parts.append(torch.bmm(a_i, b_i.transpose(1, 2)).sum(dim=0))
    out = torch.stack(parts)
    if split < n:
        out += torch.bmm(a[..., split:], b[..., split:].transpose(1, 2))
    return out


def _lse(
    scores: torch.Tensor,
    x: torch.Tensor,
    weights: torch.Tensor | None,
    products: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(m, s, v, e)`` from scores ``(B, H, N)``, with ``e = w exp(score - m)``."""
    if weights is not None:
        scores = scores.masked_fill(weights <= 0, float("-inf"))
    top = scores.detach().max(dim=-1).values
    safe_top = torch.where(torch.isneginf(top), torch.zeros_like(top), top)
    e = torch.exp(scores - safe_top[..., None])
    if weights is not None:
        e = e * weights
    return top, e.sum(dim=-1), products(e, x), e


def _bmm_products(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.bmm(a, b.transpose(1, 2))


def softmax_pool(
    scores: torch.Tensor, x: torch.Tensor, weights: torch.Tensor | None = None
) -> Triple:
    """Reference attention pooling of given scores ``(B, H, N)`` (plain autograd)."""
    top, norm, value, _ = _lse(scores, x, weights, _bmm_products)
    return top, norm, value


def _score_gradient(
    g_norm: torch.Tensor, g_value: torch.Tensor, x: torch.Tensor, e: torch.Tensor
) -> torch.Tensor:
    """``dL/dscore_n = e_n (g_s + g_v . x_n)``, ``(B, H, N)``."""
    return torch.baddbmm(g_norm[..., None], g_value, x).mul_(e)


class _QueryPool(torch.autograd.Function):
    """Scores ``W x`` for ``W`` ``(H, C)``, then attention pooling of ``x``."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx, x: torch.Tensor, weight: torch.Tensor, weights: torch.Tensor | None
    ) -> Triple:
        scores = torch.bmm(weight.expand(x.shape[0], -1, -1), x)
        top, norm, value, e = _lse(scores, x, weights, voxel_products)
        ctx.save_for_backward(x, weight, e)
        ctx.mark_non_differentiable(top)
        return top, norm, value

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, _: torch.Tensor, g_norm: torch.Tensor, g_value: torch.Tensor) -> Any:
        x, weight, e = ctx.saved_tensors
        g_scores = _score_gradient(g_norm, g_value, x, e)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:  # W^T g_scores + g_v^T e in one GEMM
            lhs = torch.cat((weight.t().expand(x.shape[0], -1, -1), g_value.transpose(1, 2)), 2)
            grad_x = torch.bmm(lhs, torch.cat((g_scores, e), dim=1))
        if ctx.needs_input_grad[1]:
            grad_w = voxel_products(g_scores, x).sum(dim=0)
        return grad_x, grad_w, None


class _GatedPool(torch.autograd.Function):
    """Scores ``w^T (tanh(V x + b_V) * sigmoid(U x + b_U))``, then attention pooling of ``x``."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: FunctionCtx,
        x: torch.Tensor,
        gate_weight: torch.Tensor,
        gate_bias: torch.Tensor,
        score_weight: torch.Tensor,
        weights: torch.Tensor | None,
    ) -> Triple:
        batch, dim = x.shape[0], score_weight.shape[1]
        h = torch.baddbmm(gate_bias[None, :, None], gate_weight.expand(batch, -1, -1), x)
        t, sg = torch.tanh(h[:, :dim]), torch.sigmoid(h[:, dim:])
        del h
        a = t * sg
        scores = torch.bmm(score_weight.expand(batch, -1, -1), a)
        top, norm, value, e = _lse(scores, x, weights, voxel_products)
        ctx.save_for_backward(x, gate_weight, score_weight, t, sg, a, e)
        ctx.mark_non_differentiable(top)
        return top, norm, value

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, _: torch.Tensor, g_norm: torch.Tensor, g_value: torch.Tensor) -> Any:
        x, gate_weight, score_weight, t, sg, a, e = ctx.saved_tensors
        batch, dim = x.shape[0], score_weight.shape[1]
        g_scores = _score_gradient(g_norm, g_value, x, e)
        g_a = torch.bmm(score_weight.t().expand(batch, -1, -1), g_scores)  # (B, L, N)
        # rows [0, 2L): gradient of the gate pre-activations; rows [2L, 2L + H): e (value path)
        g = x.new_empty(batch, 2 * dim + e.shape[1], x.shape[2])
        sg_ga = g_a.mul_(sg)
        sg_ga_t = sg_ga * t
        torch.addcmul(sg_ga, sg_ga_t, t, value=-1, out=g[:, :dim])  # (1 - t^2) sg g_a
        torch.addcmul(sg_ga_t, sg_ga_t, sg, value=-1, out=g[:, dim : 2 * dim])  # t sg (1 - sg) g_a
        g[:, 2 * dim :] = e
        g_h = g[:, : 2 * dim]
        grad_x = grad_gw = grad_gb = grad_sw = None
        if ctx.needs_input_grad[0]:  # V^T g_V + U^T g_U + g_v^T e in one GEMM
            lhs = torch.cat((gate_weight.t().expand(batch, -1, -1), g_value.transpose(1, 2)), dim=2)
            grad_x = torch.bmm(lhs, g)
        if ctx.needs_input_grad[1]:
            grad_gw = voxel_products(g_h, x).sum(dim=0)
        if ctx.needs_input_grad[2]:
            grad_gb = g_h.sum(dim=(0, 2))
        if ctx.needs_input_grad[3]:
            grad_sw = voxel_products(g_scores, a).sum(dim=0)
        return grad_x, grad_gw, grad_gb, grad_sw, None


def query_attention_pool(
    x: torch.Tensor, score_weight: torch.Tensor, weights: torch.Tensor | None = None
) -> Triple:
    """Fused pooling with linear scores ``score_weight @ x`` (``score_weight`` ``(H, C)``)."""
    return _QueryPool.apply(x, score_weight, weights)  # type: ignore[no-any-return]


def gated_attention_pool(
    x: torch.Tensor,
    gate_weight: torch.Tensor,
    gate_bias: torch.Tensor,
    score_weight: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> Triple:
    """Fused gated-attention pooling (Ilse et al., 2018).

    Args:
        x: ``(B, C, N)`` features.
        gate_weight: ``(2L, C)``: ``V`` (rows ``0..L-1``) stacked over ``U``.
        gate_bias: ``(2L,)`` biases of ``V`` and ``U``.
        score_weight: ``(H, L)``: one ``w`` per attention branch.
        weights: Optional voxel weights ``(B or 1, 1, N)``.
    """
    return _GatedPool.apply(x, gate_weight, gate_bias, score_weight, weights)  # type: ignore[no-any-return]
