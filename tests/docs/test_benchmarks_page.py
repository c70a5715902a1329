"""The benchmarks page: the summary of speed-ups, its chart, and readable per-file details."""

from __future__ import annotations

import importlib
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXT = ROOT / "docs" / "_ext"
RESULTS = ROOT / "benchmarks" / "results"
SVG = "{http://www.w3.org/2000/svg}"


def _load(name: str) -> ModuleType:
    """A docs/_ext module, imported with its folder on the path (as MkDocs loads hooks)."""
    if str(EXT) not in sys.path:
        sys.path.insert(0, str(EXT))
    return importlib.import_module(name)


def _env(device_name: str = "Test CPU (2 cores)", **extra: object) -> dict[str, object]:
    return {"device": "cpu", "device_name": device_name, "dtype": "float32", **extra}


def _write(folder: Path, name: str, data: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(data))
    return path


def _svg(markdown: str) -> ET.Element:
    match = re.search(r"<svg.*?</svg>", markdown, re.DOTALL)
    assert match is not None, "no chart in the summary"
    return ET.fromstring(match.group(0))


def _bars(svg: ET.Element) -> list[ET.Element]:
    return [r for r in svg.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]


def test_summary_computes_speedups_from_the_files(tmp_path: Path) -> None:
    summary = _load("results_summary")
    results = tmp_path / "benchmarks" / "results"
    network = {
        "environment": _env(date="2031-02-03T04:05:06+00:00", dynamic_network_architectures="9"),
        "arch": "toy",
        "patch": [8, 16, 16],
        "batch": 1,
        "dna": {"median_s": 3.0, "min_s": 2.0, "n": 5},
        "ours": {"median_s": 2.0, "min_s": 1.5, "n": 5},
    }
    _write(results, "network-toy-cpu.json", network)
    data = {
        "environment": _env(),  # no date recorded
        "settings": {"workers": 2},
        "results": [
            {"patch_size": [8, 8, 8], "workers": {"patches_per_s": {"nnunet": 4.0, "ours": 10.0}}}
        ],
    }
    _write(results, "bench_data-cpu.json", data)
    _write(results, "heads-cpu.json", {"device": "cpu", "results": {"seg_only": {"n": 1}}})

    rows = summary.summary_rows(sorted(results.glob("*.json")), root=tmp_path)
    assert [(r.benchmark, r.pair.speedup) for r in rows] == [
        ("Network forward + backward", pytest.approx(1.5)),  # time: 3.0 s / 2.0 s
        ("Training input pipeline", pytest.approx(2.5)),  # rate: 10 / 4 patches per second
    ]
    assert rows[0].date == "2031-02-03" and rows[1].date == "unknown"
    assert rows[0].device == "Test CPU (2 cores)"
    assert rows[0].pair.against == "dynamic-network-architectures 9"

    text = summary.render_summary("benchmarks/results/*.json", root=tmp_path)
    assert "| 2 s | 3 s | **1.5×** |" in text
    assert "| 10 patches/s | 4 patches/s | **2.5×** |" in text
    assert "| Test CPU (2 cores) | float32 | unknown |" in text
    assert "heads" not in text.lower()  # no reference: only in the details
    assert len(_bars(_svg(text))) == 2


def test_summary_reads_a_training_loop_file_by_worker_count(tmp_path: Path) -> None:
    """The shape ``benchmarks/bench_train_loop.py`` writes: ``rows`` of (plan, k, variant)."""
    summary = _load("results_summary")
    dtype = "ours: autocast bf16 (the Trainer's amp='auto'); nnU-Net: autocast fp16"
    data = {
        "benchmark": "train_loop",
        "environment": {"device": "cuda", "dtype": dtype, "date": "2031-01-01", "nnunetv2": "9"},
        "machine": {"gpu_name": "Test GPU", "cpu_model": "Test CPU"},
        "rows": [
            {
                "plan": "toy",
                "k": 1,
                "variant": "ours",
                "ours_it_per_s": 3.0,
                "nnunet_it_per_s": 2.0,
            },
            {"k": 4, "variant": "ours_device", "ours_it_per_s": 6.0, "nnunet_it_per_s": 8.0},
            {"k": 8, "ours_it_per_s": None, "nnunet_it_per_s": 8.0},  # not measured: skipped
        ],
    }
    path = _write(tmp_path, "train_loop-cuda.json", data)
    rows = summary.summary_rows([path], root=tmp_path)
    assert [(r.pair.case, r.pair.speedup) for r in rows] == [
        ("plan toy, 1 data-loading workers", pytest.approx(1.5)),
        ("4 data-loading workers, augmentation on the device", pytest.approx(0.75)),
    ]
    assert {(r.device, r.pair.dtype, r.pair.unit) for r in rows} == {
        ("Test GPU", "autocast bf16", "it/s")
    }
    assert rows[0].pair.against == "nnU-Net 9 nnUNetTrainer loop"
    assert not summary.summary_rows([], root=tmp_path)  # no file: nothing, silently


def test_summary_without_comparisons_says_not_yet_measured(tmp_path: Path) -> None:
    summary = _load("results_summary")
    _write(tmp_path, "network-a-cpu.json", {"ours": {"median_s": 1.0}})  # no reference side
    text = summary.render_summary("*.json", root=tmp_path)
    assert text.startswith("*Not yet measured")


def test_summary_names_a_broken_result_file(tmp_path: Path) -> None:
    summary = _load("results_summary")
    (tmp_path / "predict-x-cpu.json").write_text("{oops")
    with pytest.raises(ValueError, match=r"predict-x-cpu\.json is not valid JSON"):
        summary.render_summary("*.json", root=tmp_path)


def test_chart_draws_one_bar_per_speedup_around_the_line_at_one() -> None:
    chart = _load("results_chart")
    svg = ET.fromstring(chart.speedup_chart(["faster", "slower <&>"], [4.0, 0.5]))
    bars = _bars(svg)
    assert [b.get("fill") for b in bars] == [chart.FASTER, chart.SLOWER]
    one = [ln for ln in svg.iter(f"{SVG}line") if ln.get("stroke-width") == "2"]
    assert len(one) == 1
    x_one = float(one[0].get("x1"))
    fast, slow = (float(b.get("x")) for b in bars)
    width_fast, width_slow = (float(b.get("width")) for b in bars)
    assert fast == pytest.approx(x_one, abs=0.1)  # faster: from the line to the right
    assert slow + width_slow == pytest.approx(x_one, abs=0.1)  # slower: to the left
    assert width_fast == pytest.approx(2 * width_slow, abs=0.2)  # log scale: 4× vs 1/2×
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert "slower <&>" in texts and "4×" in texts and "0.5×" in texts


@pytest.mark.parametrize(
    ("labels", "speedups"), [([], []), (["a"], [1.0, 2.0]), (["a"], [0.0]), (["a"], [float("nan")])]
)
def test_chart_rejects_what_it_cannot_draw(labels: list[str], speedups: list[float]) -> None:
    with pytest.raises(ValueError, match="speed-up"):
        _load("results_chart").speedup_chart(labels, speedups)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("median_s", "median time (s)"),
        ("min_s", "fastest (s)"),
        ("n", "repeats"),
        ("samples_per_s", "samples per second"),
        ("peak_memory_mib", "peak memory (MiB)"),
        ("train_s", "train (s)"),
        ("peak_rss_gib", "peak rss (GiB)"),
        ("file_size_mb", "file size (MB)"),
        ("tokens_per_s", "tokens per second"),
        ("plain_key", "plain key"),
    ],
)
def test_keys_are_shown_by_readable_names(key: str, expected: str) -> None:
    assert _load("results_labels").label(key) == expected


def test_a_file_section_has_a_readable_title_and_its_path_as_source(tmp_path: Path) -> None:
    hook = _load("results_hook")
    data = {
        "environment": _env(date="2031-01-01T00:00:00"),
        "nnunet": {"median_s": 2.0, "min_s": 1.0, "n": 3},
        "ours": {"median_s": 1.0, "min_s": 0.5, "n": 3},
    }
    path = _write(tmp_path / "benchmarks" / "results", "predict-toy_plain-cpu.json", data)
    text = hook.render_file(path, root=tmp_path)
    assert text.startswith("### Sliding-window prediction (toy plain, cpu)\n")
    assert "<small>Source: `benchmarks/results/predict-toy_plain-cpu.json`</small>" in text
    assert "|  | median time (s) | fastest (s) | repeats |" in text  # one table for both sides
    assert "| nnU-Net | 2 | 1 | 3 |" in text and "| ours | 1 | 0.5 | 3 |" in text
    assert "median_s" not in text and "min_s" not in text
    assert "date 2031-01-01" in text


def test_summary_marker_is_expanded_and_links_to_the_details(tmp_path: Path) -> None:
    markdown = pytest.importorskip("markdown")
    hook = _load("results_hook")
    results = tmp_path / "benchmarks" / "results"
    data = {
        "environment": _env(),
        "resamples": 10,
        "seconds": {"ours_numpy": 1.0, "sklearn": 4.0},
    }
    _write(results, "classification_metrics-cpu.json", data)
    page = (
        "# B\n\n<!-- results-summary: benchmarks/results/*.json -->\n\n## Details\n\n"
        "<!-- results: benchmarks/results/classification_metrics-*.json -->\n"
    )
    config = {"config_file_path": str(tmp_path / "mkdocs.yml")}
    out = hook.on_page_markdown(page, page=None, config=config, files=None)
    assert "<!--" not in out and "**4×**" in out
    html = markdown.markdown(out, extensions=["tables", "toc"])
    links = set(re.findall(r'href="#([^"]+)"', html))
    ids = set(re.findall(r'id="([^"]+)"', html))
    assert links and links <= ids, f"links to missing headings: {links - ids}"
    assert "<svg" in html  # the chart survives Markdown as raw HTML


def test_committed_speedups_agree_with_the_ratios_the_benchmarks_recorded() -> None:
    """Each summary row's speed-up against the ratio the benchmark itself wrote in its file."""
    summary = _load("results_summary")
    rows = summary.summary_rows(sorted(RESULTS.glob("*.json")), root=ROOT)
    assert rows, "no comparison found in benchmarks/results"
    checked = 0
    for row in rows:
        data = json.loads((ROOT / row.source).read_text(encoding="utf-8"))
        recorded = None
        if row.benchmark == "Network forward + backward":
            recorded = 1 / data["time_ratio"]
        elif row.benchmark == "Sliding-window prediction":
            label = _load("results_labels").variant_label  # fp32_b1: "float32, b1"
            variant = next(v for v in data["ours"] if row.pair.case.endswith(f", {label(v)}"))
            recorded = 1 / data["ours"][variant]["ratio_to_nnunet"]
        elif row.benchmark == "Classification metrics":
            recorded = data["median_ratio_sklearn_to_ours"]
        elif row.benchmark == "Dataset validation":
            recorded = 1 / data["clean"]["median_ratio_ours_to_nnunet"]
        if recorded is not None:
            assert row.pair.speedup == pytest.approx(recorded, rel=1e-6), row
            checked += 1
    assert checked >= 4


def test_every_summarised_file_has_its_details_on_the_benchmarks_page() -> None:
    """The summary's links lead to sections that the page's ``results`` markers render."""
    summary = _load("results_summary")
    page = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    globs = re.findall(r"<!--\s*results:\s*(\S+)\s*-->", page)
    shown = {p for g in globs for p in ROOT.glob(g)}
    assert "<!-- results-summary:" in page.split("\n## ", 2)[1], "the summary leads the page"
    for row in summary.summary_rows(sorted(RESULTS.glob("*.json")), root=ROOT):
        assert ROOT / row.source in shown, f"{row.source} is summarised but has no section"
