"""Label maps from probabilities with per-label weights, and the scores that choose them."""

from __future__ import annotations

import numpy as np
import pytest

from multitask_unet.errors import ConfigError, ShapeError
from multitask_unet.inference import label_weight_dice, weighted_argmax


def _under_called_lesion() -> tuple[np.ndarray, np.ndarray]:
    """A 1 x 4 x 4 case whose 4 lesion voxels get p(lesion) = 0.3 < p(pancreas) = 0.6."""
    reference = np.zeros((1, 4, 4), dtype=np.uint8)
    reference[0, :2] = 1
    reference[0, :2, :2] = 2
    p = np.zeros((3, 1, 4, 4), dtype=np.float32)
    p[0] = 0.9
    p[1][reference > 0], p[0][reference > 0] = 0.8, 0.1
    p[1][reference == 2], p[2][reference == 2] = 0.6, 0.3
    p[2][reference < 2] = 1 - p[0][reference < 2] - p[1][reference < 2]
    return p, reference


def test_without_weights_it_is_the_argmax() -> None:
    p = np.random.default_rng(0).dirichlet((1, 1, 1), size=(5, 6)).transpose(2, 0, 1)
    labels = weighted_argmax(p)
    assert labels.dtype == np.uint8 and labels.shape == (5, 6)
    np.testing.assert_array_equal(labels, p.argmax(0))
    np.testing.assert_array_equal(weighted_argmax(p, (2, 2, 2)), labels)  # only ratios matter


def test_a_lesion_weight_calls_the_under_called_lesion() -> None:
    p, reference = _under_called_lesion()
    assert not (weighted_argmax(p) == 2).any()
    np.testing.assert_array_equal(weighted_argmax(p, (1, 1, 4)), reference)
    scores = label_weight_dice(p, reference, label=2, candidates=(1.0, 4.0, 100.0))
    assert scores[0] == 0.0 and scores[1] == 1.0
    assert scores[2] < 1.0  # a weight too large takes pancreas voxels too (p(lesion) = 0.1 > 0)
    lcc = label_weight_dice(p, reference, label=2, candidates=(4.0,), largest_component=True)
    assert lcc == [1.0]


def test_bad_weights_and_shapes_are_refused() -> None:
    p, reference = _under_called_lesion()
    with pytest.raises(ConfigError, match="one weight per label"):
        weighted_argmax(p, (1, 4))
    with pytest.raises(ConfigError, match="finite and > 0"):
        weighted_argmax(p, (1, 0, 4))
    with pytest.raises(ShapeError, match=r"\(labels, \.\.\.spatial\)"):
        weighted_argmax(np.ones(3))
    with pytest.raises(ShapeError, match="reference grid"):
        label_weight_dice(p, reference[:, :2], label=2, candidates=(1.0,))
    with pytest.raises(ConfigError, match="label 3"):
        label_weight_dice(p, reference, label=3, candidates=(1.0,))
