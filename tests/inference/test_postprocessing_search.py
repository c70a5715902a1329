"""The post-processing search: label weights and the largest component, chosen on given cases."""

from __future__ import annotations

import numpy as np
import pytest

from multitask_unet.errors import ConfigError
from multitask_unet.evaluation.segmentation import dice
from multitask_unet.inference.postprocessing_search import PostprocessingSearch


def _case(lesion_p: float, island: bool = False, seed: int = 0):
    """A pancreas (1) with a lesion (2) the network under-calls by ``lesion_p``."""
    reference = np.zeros((12, 12, 12), np.uint8)
    reference[2:9, 2:9, 2:9] = 1
    reference[4:7, 4:7, 4:7] = 2
    p = np.zeros((3, *reference.shape), np.float32)
    p[0] = 0.9
    p[1][reference > 0], p[0][reference > 0] = 0.7, 0.05
    p[2][reference == 2] = lesion_p
    if island:  # a false-positive island of pancreas, far from the organ
        p[1][10:12, 10:12, 10:12], p[0][10:12, 10:12, 10:12] = 0.8, 0.1
    noise = np.random.default_rng(seed).uniform(0, 1e-3, p.shape).astype(np.float32)
    return lambda: (p + noise, reference)


def test_an_under_called_lesion_gets_a_weight_and_islands_the_largest_component() -> None:
    cases = {f"c{i}": _case(0.3, island=True, seed=i) for i in range(3)}
    search = PostprocessingSearch(cases, labels=(1, 2))
    choice = search.choose(list(cases))
    assert choice.label_weights[0] == choice.label_weights[1] == 1.0
    assert choice.label_weights[2] >= 4.0  # 0.3 w > 0.7 needs w > 2.33
    assert choice.largest_component
    assert choice.criterion > choice.baseline
    # The criterion, recomputed independently: mean over labels of the mean per-case Dice.
    from multitask_unet.inference import keep_largest_component, weighted_argmax

    per_label = []
    for label in (1, 2):
        scores = []
        for load in cases.values():
            p, ref = load()
            pred = keep_largest_component(weighted_argmax(p, choice.label_weights))
            scores.append(dice(pred == label, ref == label))
        per_label.append(np.mean(scores))
    assert choice.criterion == pytest.approx(np.mean(per_label))


def test_a_well_called_dataset_keeps_the_plain_argmax() -> None:
    cases = {f"c{i}": _case(0.9, seed=i) for i in range(2)}
    choice = PostprocessingSearch(cases, labels=(1, 2)).choose(list(cases))
    assert choice.label_weights == (1.0, 1.0, 1.0) and not choice.largest_component
    assert choice.criterion == choice.baseline


def test_the_choice_depends_only_on_the_cases_it_is_made_on() -> None:
    cases = {"under": _case(0.3), "fine": _case(0.9), "fine2": _case(0.95)}
    search = PostprocessingSearch(cases, labels=(1, 2))
    assert search.choose(["fine", "fine2"]).label_weights == (1.0, 1.0, 1.0)
    assert search.choose(["under"]).label_weights[2] > 1.0


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ConfigError, match="at least one case"):
        PostprocessingSearch({}, labels=(1,))
    with pytest.raises(ConfigError, match="include 1"):
        PostprocessingSearch({"a": _case(0.3)}, labels=(1, 2), candidates=(2.0, 4.0))
    search = PostprocessingSearch({"a": _case(0.3)}, labels=(1, 2))
    with pytest.raises(ConfigError, match="not in the search"):
        search.choose(["b"])
    wrong = PostprocessingSearch({"a": lambda: (np.zeros((2, 4, 4, 4)), np.zeros((4, 4, 4)))},
                                 labels=(1, 2))  # fmt: skip
    with pytest.raises(ConfigError, match="case a: probabilities"):
        wrong.choose(["a"])
