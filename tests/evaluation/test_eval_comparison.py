"""compare_reports: several evaluation reports side by side (Markdown, JSON, PNG)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from multitask_unet.errors import ConfigError
from multitask_unet.evaluation import compare_reports, format_interval


def _entry(value: float | None, spread: float = 0.1) -> dict:
    low = None if value is None else value - spread
    high = None if value is None else value + spread / 2
    return {"estimate": value, "low": low, "high": high, "confidence": 0.95, "n": 3}


def _write(folder: Path, summary: dict) -> Path:
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def _summary(dice: float, auc: float | None, *, cases: int = 3) -> dict:
    return {
        "dice_whole": _entry(dice),
        "dice_lesion": _entry(dice / 2),
        "auc_ovr_a": {"estimate": auc, "low": None, "high": None, "n": 3},
        "macro_f1": _entry(0.5, 0.25),
        "cases": {"evaluated": cases},
        "config": {"regions": [{"key": "whole"}, {"key": "lesion"}]},
    }


METRICS = {"dice_whole": "whole Dice", "dice_lesion": "lesion Dice", "auc_ovr_a": "AUC a",
           "macro_f1": "macro-F1"}  # fmt: skip


@pytest.fixture
def reports(tmp_path: Path) -> dict[str, Path]:
    return {
        "one": _write(tmp_path / "one", _summary(0.8, 0.75)),
        "two": _write(tmp_path / "two", _summary(0.6, None, cases=4)),
    }


@pytest.mark.parametrize("figure", [True, False])
def test_every_report_is_a_row_with_its_intervals(
    reports: dict[str, Path], tmp_path: Path, figure: bool
) -> None:
    out = tmp_path / "out"
    table = compare_reports(reports, METRICS, output_dir=out, name="study", figure=figure)
    text = (out / "study.md").read_text()
    assert "| report | cases | whole Dice | lesion Dice | AUC a | macro-F1 |" in text
    one = [format_interval(_entry(0.8)), format_interval(_entry(0.4)), "0.750",
           format_interval(_entry(0.5, 0.25))]  # fmt: skip
    assert f"| one | 3 | {' | '.join(one)} |" in text
    assert "| one | 3 | 0.800 [95% CI 0.700, 0.850] | 0.400 [95% CI 0.300, 0.450] |" in text
    assert "| two | 4 | 0.600 [95% CI 0.500, 0.650] | 0.300 [95% CI 0.200, 0.350] | n/a |" in text
    assert table["two"]["auc_ovr_a"]["estimate"] is None
    assert json.loads((out / "study.json").read_text()) == table
    png = out / "study.png"
    assert png.is_file() == figure and ("![" in text) == figure
    if figure:
        assert png.read_bytes()[:4] == b"\x89PNG"


def test_a_metric_a_report_lacks_is_n_a(reports: dict[str, Path], tmp_path: Path) -> None:
    reports["three"] = _write(tmp_path / "three", {"dice_whole": _entry(0.9)})  # no cases
    table = compare_reports(reports, ["dice_whole", "hd95_whole"], output_dir=tmp_path / "o",
                            figure=False)  # fmt: skip
    text = (tmp_path / "o" / "comparison.md").read_text()
    assert "| three | n/a | 0.900 [95% CI 0.800, 0.950] | n/a |" in text
    assert table["three"]["hd95_whole"] is None
    assert "| report | cases | dice_whole | hd95_whole |" in text  # keys as labels


def test_default_metrics_are_the_headline_ones_a_report_has(
    reports: dict[str, Path], tmp_path: Path
) -> None:
    table = compare_reports(reports, output_dir=tmp_path / "o", figure=False)
    # the regions' Dice, NSD and HD95, then AUC, macro F1, balanced accuracy: only those present
    assert list(table["one"]) == ["dice_whole", "dice_lesion", "macro_f1"]


def test_a_summary_file_may_be_given_instead_of_its_folder(
    reports: dict[str, Path], tmp_path: Path
) -> None:
    files = {k: v / "summary.json" for k, v in reports.items()}
    by_file = compare_reports(files, METRICS, output_dir=tmp_path / "a", figure=False)
    assert by_file == compare_reports(reports, METRICS, output_dir=tmp_path / "b", figure=False)


def test_the_figure_leaves_the_matplotlib_backend_alone(
    reports: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib

    def switched(*args: object, **kwargs: object) -> None:
        raise AssertionError("library code must not switch the matplotlib backend")

    monkeypatch.setattr(matplotlib, "use", switched)
    reports["far"] = _write(tmp_path / "far", {"hd95_whole": _entry(12.0, 3.0)})
    metrics = {**METRICS, "hd95_whole": "HD95 (mm)"}  # values beyond [0, 1] get their own scale
    compare_reports(reports, metrics, output_dir=tmp_path / "o", title="variants")
    assert (tmp_path / "o" / "comparison.png").stat().st_size > 1000


def test_refusals_name_the_problem(reports: dict[str, Path], tmp_path: Path) -> None:
    out = {"output_dir": tmp_path / "o", "figure": False}
    with pytest.raises(ConfigError, match="at least one report"):
        compare_reports({}, METRICS, **out)
    with pytest.raises(ConfigError, match=r"missing does not exist; give the folder evaluate"):
        compare_reports({"x": tmp_path / "missing"}, METRICS, **out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"empty.summary\.json does not exist"):
        compare_reports({"x": tmp_path / "empty"}, METRICS, **out)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "summary.json").write_text("{not json")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        compare_reports({"x": tmp_path / "bad"}, METRICS, **out)
    with pytest.raises(ConfigError, match="plain file name"):
        compare_reports(reports, METRICS, name="sub/report", **out)
    with pytest.raises(ConfigError, match="the string 'dice_whole'"):
        compare_reports(reports, "dice_whole", **out)
    with pytest.raises(ConfigError, match="no metrics to compare"):
        compare_reports(reports, [], **out)
    assert not (tmp_path / "o").exists()  # nothing written before the inputs were checked
