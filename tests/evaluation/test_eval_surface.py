"""Surface distances, NSD and HD95 against hand-computed values and a brute-force reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from multitask_unet.errors import ConfigError, ShapeError
from multitask_unet.evaluation import (
    hd95,
    normalized_surface_distance,
    surface_distances,
    surface_metrics,
)
from multitask_unet.evaluation.surface import surface_mask


def _brute_surface(mask: np.ndarray) -> np.ndarray:
    """Surface by explicit neighbour look-up: a voxel with a background face neighbour."""
    padded = np.pad(mask, 1)
    inner = tuple(slice(1, -1) for _ in range(mask.ndim))
    out = np.zeros_like(mask)
    for axis, step in itertools.product(range(mask.ndim), (-1, 1)):
        out |= mask & ~np.roll(padded, step, axis=axis)[inner]
    return out


def _brute_distances(pred, ref, spacing):
    p = np.argwhere(_brute_surface(pred)) * np.asarray(spacing)
    r = np.argwhere(_brute_surface(ref)) * np.asarray(spacing)
    d = cdist(p, r)
    return d.min(axis=1), d.min(axis=0)


def _brute_nsd_hd(pred, ref, spacing, tau, q=95.0):
    a, b = _brute_distances(pred, ref, spacing)
    nsd = ((a <= tau).sum() + (b <= tau).sum()) / (a.size + b.size)
    return nsd, max(np.percentile(a, q), np.percentile(b, q))


def _blob(shape, rng, fill=0.35):
    """A random, roughly compact mask (smoothed noise threshold)."""
    from scipy import ndimage

    noise = ndimage.gaussian_filter(rng.standard_normal(shape), 1.2)
    return noise > np.quantile(noise, 1 - fill)


def test_plates_hand_computed():
    # One-voxel-thick plates: every voxel is surface. A covers z in 0..3, B covers z in 0..5.
    # B's voxels at z=4 are 2 mm from A (z spacing 2 mm), at z=5 4 mm; everything else 0 mm.
    a = np.zeros((5, 6, 8), bool)
    b = np.zeros_like(a)
    a[2, 1:5, 0:4] = True
    b[2, 1:5, 0:6] = True
    spacing = (3.0, 0.5, 2.0)
    # |S_A| = 16 (all at 0), |S_B| = 24 (16 at 0, 4 at 2 mm, 4 at 4 mm).
    assert normalized_surface_distance(b, a, spacing=spacing, tolerance_mm=1.0) == 32 / 40
    assert normalized_surface_distance(b, a, spacing=spacing, tolerance_mm=2.0) == 36 / 40
    assert normalized_surface_distance(b, a, spacing=spacing, tolerance_mm=4.0) == 1.0
    # Directed P95 of B->A: sorted 24 values, index 0.95 * 23 = 21.85 between two 4s.
    assert hd95(b, a, spacing=spacing) == 4.0
    assert hd95(b, a, spacing=spacing, percentile=50) == 0.0


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("side", [4, 6])
def test_cubes_offset_on_anisotropic_spacing(axis, side):
    # Cube B is cube A moved one voxel along `axis`, whose spacing is 0.5 mm; the other axes
    # have 5 mm voxels. Every surface voxel of either cube is 0 mm (shared side faces) or
    # exactly 0.5 mm (the two end faces) from the other surface.
    spacing = [5.0, 5.0, 5.0]
    spacing[axis] = 0.5
    a = np.zeros((side + 4,) * 3, bool)
    a[(slice(2, 2 + side),) * 3] = True
    b = np.roll(a, 1, axis=axis)
    surface = side**3 - (side - 2) ** 3
    ring = side**2 - (side - 2) ** 2
    zeros = (side - 1) * ring  # per cube: side-face voxels of the overlapping slices
    assert normalized_surface_distance(b, a, spacing=spacing, tolerance_mm=0.49) == pytest.approx(
        zeros / surface
    )
    assert normalized_surface_distance(b, a, spacing=spacing, tolerance_mm=0.5) == 1.0
    assert hd95(b, a, spacing=spacing) == pytest.approx(0.5)
    # With the spacing of another axis, the distances scale with that axis instead.
    other = [0.5, 0.5, 0.5]
    other[axis] = 5.0
    assert hd95(b, a, spacing=other) == pytest.approx(5.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.5, 0.7, 0.9), (0.8, 3.0, 1.3)])
def test_matches_brute_force_reference(seed, spacing):
    rng = np.random.default_rng(seed)
    shape = (11, 13, 9)
    pred, ref = _blob(shape, rng), _blob(shape, rng)
    got_a, got_b = surface_distances(pred, ref, spacing=spacing)
    want_a, want_b = _brute_distances(pred, ref, spacing)
    # Order of surface voxels is C order in both computations.
    np.testing.assert_allclose(got_a, want_a, atol=1e-9)
    np.testing.assert_allclose(got_b, want_b, atol=1e-9)
    for tau in (0.5, 1.0, 2.0):
        nsd, hd = surface_metrics(pred, ref, spacing=spacing, tolerance_mm=tau)
        want_nsd, want_hd = _brute_nsd_hd(pred, ref, spacing, tau)
        assert nsd == pytest.approx(want_nsd, abs=1e-12)
        assert hd == pytest.approx(want_hd, abs=1e-9)


def test_surface_mask_matches_neighbour_definition_at_array_border():
    rng = np.random.default_rng(3)
    mask = _blob((7, 8, 9), rng, fill=0.6)
    mask[0] = True  # touches the array border: those voxels are surface
    np.testing.assert_array_equal(surface_mask(mask), _brute_surface(mask))


def test_cropping_does_not_change_distances():
    rng = np.random.default_rng(4)
    small_p, small_r = _blob((9, 9, 9), rng), _blob((9, 9, 9), rng)
    big_p = np.zeros((30, 25, 20), bool)
    big_r = np.zeros_like(big_p)
    big_p[10:19, 5:14, 3:12] = small_p
    big_r[10:19, 5:14, 3:12] = small_r
    for x, y in zip(
        surface_distances(big_p, big_r, spacing=(1, 2, 3)),
        surface_distances(small_p, small_r, spacing=(1, 2, 3)),
    ):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize(
    ("pred_empty", "ref_empty", "nsd", "hd"),
    [(True, True, 1.0, 0.0), (True, False, 0.0, np.nan), (False, True, 0.0, np.nan)],
)
def test_empty_conventions(pred_empty, ref_empty, nsd, hd):
    full = np.zeros((5, 5, 5), bool)
    full[1:4, 1:4, 1:4] = True
    empty = np.zeros_like(full)
    pred = empty if pred_empty else full
    ref = empty if ref_empty else full
    got_nsd, got_hd = surface_metrics(pred, ref, spacing=(1, 1, 1), tolerance_mm=1.0)
    assert got_nsd == nsd
    np.testing.assert_equal(got_hd, hd)
    nan_nsd = normalized_surface_distance(
        pred, ref, spacing=(1, 1, 1), tolerance_mm=1.0, both_empty=float("nan")
    )
    assert np.isnan(nan_nsd) if (pred_empty and ref_empty) else nan_nsd == nsd


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"spacing": (1.0, 1.0)}, ShapeError),
        ({"spacing": (1.0, 0.0, 1.0)}, ShapeError),
        ({"spacing": (1.0, 1.0, 1.0), "tolerance_mm": -1.0}, ConfigError),
        ({"spacing": (1.0, 1.0, 1.0), "percentile": 101.0}, ConfigError),
    ],
)
def test_bad_arguments(kwargs, error):
    a = np.ones((3, 3, 3), bool)
    with pytest.raises(error):
        surface_metrics(a, a, **{"tolerance_mm": 1.0, **kwargs})


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ShapeError, match=r"\(3, 3, 3\).*\(3, 3, 4\)"):
        hd95(np.ones((3, 3, 3)), np.ones((3, 3, 4)), spacing=(1, 1, 1))
