"""keep_largest_component (nnU-Net's largest-component step), in the Predictor; Postprocessing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from _references import require
from multitask_unet.errors import ConfigError, ShapeError
from multitask_unet.inference import Predictor, keep_largest_component


def _random_map(seed: int) -> np.ndarray:
    """Smoothed noise thresholded into several islands of labels 1 and 2, with one largest."""
    rng = np.random.default_rng(seed)
    while True:
        field = ndimage.gaussian_filter(rng.normal(size=(12, 20, 20)), 1.5)
        seg = np.where(field > 0.15, 1, 0).astype(np.uint8)
        seg[field > 0.3] = 2
        components, count = ndimage.label(seg > 0, structure=np.ones((3, 3, 3)))
        sizes = np.bincount(components.ravel())[1:]
        if count >= 3 and (sizes == sizes.max()).sum() == 1:
            return seg


@pytest.mark.parametrize("seed", range(5))
def test_equals_nnunet(seed: int) -> None:
    pp = require("nnunetv2.postprocessing.remove_connected_components")
    seg = _random_map(seed)
    expected = pp.remove_all_but_largest_component_from_segmentation(seg, [1, 2])
    np.testing.assert_array_equal(keep_largest_component(seg), expected)
    np.testing.assert_array_equal(keep_largest_component(seg, labels=[1]),
                                  pp.remove_all_but_largest_component_from_segmentation(seg, 1))  # fmt: skip


def test_keeps_the_lesion_inside_the_organ_and_diagonal_neighbours() -> None:
    seg = np.zeros((5, 8, 8), dtype=np.uint8)
    seg[1:4, 1:5, 1:5] = 1
    seg[2, 2, 2] = 2  # lesion inside the organ: part of the same structure
    seg[4, 5, 5] = 1  # touches the organ only at a corner: 26-connected, kept
    seg[0, 7, 7] = 2  # an island far away: removed
    out = keep_largest_component(seg)
    assert out[2, 2, 2] == 2 and out[4, 5, 5] == 1 and out[0, 7, 7] == 0
    assert out.dtype == seg.dtype and int((out != seg).sum()) == 1


def test_empty_and_single_component_maps_are_unchanged_copies() -> None:
    empty = np.zeros((3, 4, 4), dtype=np.int16)
    out = keep_largest_component(empty)
    assert out is not empty and (out == 0).all()
    one = empty.copy()
    one[1, 1:3, 1:3] = 1
    np.testing.assert_array_equal(keep_largest_component(one), one)


def test_float_maps_are_refused_with_the_fix() -> None:
    with pytest.raises(ShapeError, match="round and cast"):
        keep_largest_component(np.zeros((3, 3, 3), dtype=np.float32))


def test_predictor_option_removes_islands(phantom_root, tiny_checkpoint) -> None:
    record = sorted((phantom_root / "test").rglob("*_0000.nii.gz"))[0]
    plain = Predictor.from_checkpoint(tiny_checkpoint).predict_case(record).segmentation
    kept = Predictor.from_checkpoint(tiny_checkpoint, largest_component=True).predict_case(record)
    np.testing.assert_array_equal(kept.segmentation, keep_largest_component(plain))


def test_cli_predict_largest_component(phantom_root, tiny_checkpoint, tmp_path) -> None:
    from multitask_unet.cli import main
    from multitask_unet.data.io import read_image

    images = sorted((phantom_root / "test").rglob("*_0000.nii.gz"))
    out = tmp_path / "cli"
    args = ["predict", "--checkpoint", str(tiny_checkpoint), str(images[0]), "-o", str(out)]
    assert main([*args, "--largest-component", "--no-progress"]) == 0
    written = np.asarray(read_image(out / images[0].name.replace("_0000", "")).array)
    direct = Predictor.from_checkpoint(tiny_checkpoint, largest_component=True)
    np.testing.assert_array_equal(written, direct.predict_case(images[0]).segmentation)


# -- Postprocessing: the choice kept as RUN/postprocessing.json ----------------------------------


def test_postprocessing_round_trips_through_its_file(tmp_path) -> None:
    from multitask_unet.inference import Postprocessing

    chosen = Postprocessing((1, 1, 16), largest_component=True, details={"folds": [0, 1]})
    path = tmp_path / "postprocessing.json"
    chosen.save(path)
    assert Postprocessing.load(path) == chosen
    assert json.loads(path.read_text())["label_weights"] == [1.0, 1.0, 16.0]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # written atomically
    assert Postprocessing.from_dict({}) == Postprocessing() and Postprocessing().is_identity
    assert Postprocessing((2, 2, 2)).is_identity and not chosen.is_identity
    assert chosen.describe() == "label weights (1, 1, 16), largest component"
    assert Postprocessing().describe() == "none (plain argmax)"


def test_postprocessing_labels_are_weighted_argmax_then_largest_component() -> None:
    from multitask_unet.inference import Postprocessing, weighted_argmax

    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet((1, 1, 1), size=(6, 8, 8)).transpose(3, 0, 1, 2)
    plain = Postprocessing().labels(probabilities)
    assert plain.dtype == np.uint8
    np.testing.assert_array_equal(plain, probabilities.argmax(0))
    weights = (1.0, 1.0, 4.0)
    both = Postprocessing(weights, largest_component=True).labels(probabilities)
    expected = keep_largest_component(weighted_argmax(probabilities, weights))
    np.testing.assert_array_equal(both, expected)
    with pytest.raises(ConfigError, match="one weight per label"):
        Postprocessing((1, 2)).labels(probabilities)
    with pytest.raises(ShapeError, match=r"\(labels, \.\.\.spatial\)"):
        Postprocessing().labels(np.zeros(3))


def test_postprocessing_files_are_checked_and_named(tmp_path) -> None:
    from multitask_unet.inference.postprocessing import Postprocessing  # importable here too

    path = tmp_path / "postprocessing.json"
    path.write_text("{label_weights: [1, 2]")
    with pytest.raises(ConfigError, match=rf"{path.name} is not valid JSON"):
        Postprocessing.load(path)
    path.write_text('{"label_weight": [1, 1, 4]}')
    with pytest.raises(
        ConfigError, match=rf"{path.name} is not a valid .* Did you mean 'label_weights'"
    ):
        Postprocessing.load(path)
    path.write_text('{"label_weights": [1, -1, 4]}')
    with pytest.raises(ConfigError, match=rf"{path.name} .* finite and > 0"):
        Postprocessing.load(path)
    path.write_text("[1, 1, 4]")
    with pytest.raises(ConfigError, match="must be built from a mapping"):
        Postprocessing.load(path)
    with pytest.raises(ConfigError, match="does not exist"):
        Postprocessing.load(tmp_path / "missing.json")
    with pytest.raises(ConfigError, match="at least 2"):
        Postprocessing((4,))
