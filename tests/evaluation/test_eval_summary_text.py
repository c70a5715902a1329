"""The printed headline of an evaluation: which metrics, in which order, and undefined values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from multitask_unet.errors import ConfigError
from multitask_unet.evaluation import (
    EvaluationConfig,
    EvaluationReport,
    format_interval,
    format_summary,
    summarize,
    write_report,
)

CONFIG = EvaluationConfig(
    regions=({"key": "organ", "labels": (1,)}, {"key": "tumour", "labels": (2,)}), n_bootstrap=50
)


def _summary() -> dict:
    rows = [
        {"dice_organ": 0.5, "nsd_organ": 0.6, "hd95_organ": 3.0, "dice_tumour": 0.2,
         "nsd_tumour": 0.1, "hd95_tumour": float("nan")},
        {"dice_organ": 1.0, "nsd_organ": 1.0, "hd95_organ": 1.0, "dice_tumour": 0.4,
         "nsd_tumour": 0.3, "hd95_tumour": float("nan")},
    ]  # fmt: skip
    scores = np.eye(2)[[0, 1, 1]] * 0.8 + 0.1
    summary = summarize(rows, y_true=np.array([0, 1, 0]), scores=scores, config=CONFIG)
    summary["config"] = CONFIG.to_dict()
    return summary


def test_default_lines_are_the_regions_scores_then_classification():
    lines = format_summary(_summary()).splitlines()
    keys = [line.split()[0] for line in lines]
    assert keys == [
        "dice_organ", "nsd_organ", "hd95_organ", "dice_tumour", "nsd_tumour", "hd95_tumour",
        "auc_ovr_macro", "macro_f1", "balanced_accuracy",
    ]  # fmt: skip
    assert lines[0].split()[1:] == ["0.750", "[95%", "CI", *lines[0].split()[4:]]
    assert lines[5].split()[1] == "n/a"  # HD95 undefined in every case


def test_labels_order_and_missing_keys():
    text = format_summary(_summary(), {"macro_f1": "macro-F1", "dice_organ": "organ", "auc_x": "x"})
    assert [line.split()[0] for line in text.splitlines()] == ["macro-F1", "organ"]
    assert format_summary({}, ["dice_organ"]) == ""


def test_the_same_text_from_memory_and_from_summary_json(tmp_path):
    summary = _summary()
    write_report(EvaluationReport([], summary), tmp_path, figures=False)
    loaded = json.loads((tmp_path / "summary.json").read_text())  # NaN became null
    assert format_summary(loaded, digits=4) == format_summary(summary, digits=4)
    assert EvaluationReport([], summary).format_summary(digits=2) == format_summary(
        summary, digits=2
    )


def test_interval_without_resamples_and_undefined_estimate():
    assert format_interval({"estimate": 0.25, "low": None, "high": None}) == "0.250"
    assert format_interval({"estimate": None}) == "n/a"
    assert format_interval({"estimate": 0.5, "low": 0.1, "high": 0.9, "confidence": 0.9},
                           digits=1) == "0.5 [90% CI 0.1, 0.9]"  # fmt: skip


def test_regions_may_be_given_as_mappings_or_strings_and_bad_ones_are_named():
    config = EvaluationConfig(regions=[{"key": "organ", "labels": [1, 2]}, "tumour=2"], labels=[2])
    assert [(r.key, r.labels) for r in config.regions] == [("organ", (1, 2)), ("tumour", (2,))]
    assert config.labels == (2,) and config == EvaluationConfig.from_dict(config.to_dict())
    assert EvaluationConfig(regions="organ=1").regions[0].key == "organ"
    with pytest.raises(ConfigError, match=r"a region must be .*got 3"):
        EvaluationConfig(regions=[3])
    with pytest.raises(ConfigError, match="Did you mean 'labels'"):
        EvaluationConfig(regions=[{"key": "organ", "label": [1]}])
