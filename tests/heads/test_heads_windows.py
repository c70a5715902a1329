"""Window-exact pooling: merged states of non-overlapping tiles give the whole volume's logits."""

from __future__ import annotations

import pytest
import torch

TOL = 1e-5


def _weights(kind: str, shape: tuple[int, ...], windows: list[tuple[slice, ...]]) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    if kind == "soft":  # e.g. a foreground probability, with exact zeros and one empty tile
        w = torch.rand(shape, generator=g)
        w[w < 0.3] = 0.0
        w[(..., *windows[-1])] = 0.0
        return w
    if kind == "mask":  # a sparse 0/1 mask: most tiles hold no counted voxel at all
        w = torch.zeros(shape)
        center = tuple(n // 3 for n in shape[2:])
        w[(..., *(slice(c, c + 3) for c in center))] = 1.0
        return w
    return torch.zeros(shape)  # "empty": nothing counts anywhere


def _cuts(size: tuple[int, ...], divisor: tuple[int, ...]) -> list[list[int]]:
    """Uneven cut positions at multiples of the coarsest stride: 2 x 3 x 2 tiles."""
    d0, d1, d2 = divisor
    return [[d0], [d1, 3 * d1], [3 * d2]]


@pytest.mark.parametrize("weighting", [None, "soft", "mask", "empty"])
def test_merged_tiles_equal_whole_volume(encoder: str, weighting: str | None, kit) -> None:
    model = kit.model_with_all_heads(encoder)
    size = kit.odd_size(model.size_divisor)
    x = torch.randn(2, 1, *size, generator=torch.Generator().manual_seed(1))
    windows = kit.tile_windows(size, _cuts(size, model.size_divisor))
    weights = None if weighting is None else _weights(weighting, (2, 1, *size), windows)
    with torch.no_grad():
        features = model.features(x)
        for name in kit.variants:
            head = model.heads[name]
            whole = head.project(head.pool(features, weights))
            merged = kit.merged_window_logits(model, head, features, weights, windows)
            assert whole.shape == (2, head.num_classes)
            assert torch.isfinite(whole).all(), name
            diff = (merged - whole).abs().max().item()
            assert diff <= TOL, f"{name}: merged windows differ from the whole volume by {diff}"
            assert torch.equal(head(features, weights), whole), name


@pytest.mark.parametrize("encoder", ["tiny_anisotropic"])
def test_per_window_logits_are_not_the_whole_volume_logits(encoder: str, kit) -> None:
    """Control: averaging each tile's logits (no state merging) is measurably wrong."""
    model = kit.model_with_all_heads(encoder)
    size = kit.odd_size(model.size_divisor)
    x = torch.randn(2, 1, *size, generator=torch.Generator().manual_seed(3))
    windows = kit.tile_windows(size, _cuts(size, model.size_divisor))
    with torch.no_grad():
        features = model.features(x)
        for name in kit.variants:
            head = model.heads[name]
            whole = head(features)
            naive = torch.stack([head(kit.window_features(model, features, w)) for w in windows])
            assert (naive.mean(0) - whole).abs().max() > 100 * TOL, name


@pytest.mark.parametrize("name", ["panda", "attention_gated", "attention_query", "ovr_hidden_mean"])
def test_merge_is_order_and_grouping_free(name: str, kit) -> None:
    model = kit.model_with_all_heads("tiny_plain")
    size = kit.odd_size(model.size_divisor)
    x = torch.randn(1, 1, *size, generator=torch.Generator().manual_seed(5))
    windows = kit.tile_windows(size, _cuts(size, model.size_divisor))
    head = model.heads[name]
    with torch.no_grad():
        features = model.features(x)
        states = [head.pool(kit.window_features(model, features, w)) for w in windows]
        flat = head.project(head.merge(states))
        running = states[-1]  # incremental, in reverse order, as a predictor accumulates
        for state in reversed(states[:-1]):
            running = head.merge([state, running.detach()])
        nested = head.merge([head.merge(states[:3]), head.merge(states[3:])])
    assert (head.project(running) - flat).abs().max() <= TOL
    assert (head.project(nested) - flat).abs().max() <= TOL
    assert (head.project(head.merge([flat_state := head.merge(states)])) - flat).abs().max() == 0
    assert flat_state.device == x.device


def test_soft_weights_change_the_pooled_result(kit) -> None:
    """Weights are not ignored: a soft weight map changes every head's logits."""
    model = kit.model_with_all_heads("tiny_residual")
    size = kit.odd_size(model.size_divisor)
    g = torch.Generator().manual_seed(11)
    x = torch.randn(1, 1, *size, generator=g)
    weights = torch.zeros(1, 1, *size)
    weights[..., : size[0] // 2, :, :] = torch.rand(1, 1, size[0] // 2, *size[1:], generator=g)
    with torch.no_grad():
        features = model.features(x)
        for name in kit.variants:
            head = model.heads[name]
            assert (head(features, weights) - head(features)).abs().max() > 100 * TOL, name
