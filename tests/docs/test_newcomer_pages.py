"""The newcomer's pages run verbatim: their Python blocks, shell commands and config files.

``benchmarks/bench_newcomer.py`` runs a page block by block in an empty folder (the same code
records how long each step takes for the page's timing table); here every step must succeed
and leave what the page says it leaves.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import bench_newcomer  # noqa: E402


def _run(page: str, workdir: Path) -> list:
    results = bench_newcomer.run_page(page, workdir, timeout=900)
    failed = [r for r in results if r.returncode]
    assert not failed, f"{page}: `{failed[0].step}` failed:\n{failed[0].output}"
    return results


def test_getting_started_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    steps = [r.step for r in _run("docs/getting-started.md", tmp_path)]
    assert "save getting-started.yaml" in steps
    assert any(s.startswith("multitask-unet evaluate") for s in steps)
    shipped = (ROOT / "examples" / "configs" / "getting-started.yaml").read_text("utf-8")
    assert (tmp_path / "getting-started.yaml").read_text("utf-8") == shipped
    assert (tmp_path / "runs" / "first" / "train.log").is_file()
    assert len(list((tmp_path / "predictions").glob("*.nii.gz"))) == 6  # the 6 test cases
    summary = json.loads((tmp_path / "report" / "summary.json").read_text("utf-8"))
    assert summary["cases"]["classification"] == 6
    assert {"dice_pancreas", "dice_lesion", "auc_ovr_macro"} <= set(summary)  # dataset.json's


def test_own_data_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    steps = [r.step for r in _run("docs/how-to/own-data.md", tmp_path)]
    assert any("--resume" in s for s in steps)
    assert (tmp_path / "runs" / "first" / "checkpoints" / "last.pt").is_file()
    assert (tmp_path / "cache" / "plan.json").is_file()


def test_blocks_are_read_with_skip_and_file_markers() -> None:
    runner = bench_newcomer
    blocks = runner.page_blocks("docs/getting-started.md")
    assert all(b.language in ("python", "bash") or b.file_name for b in blocks)
    assert not any("pip install" in b.code for b in blocks)  # marked skip-test
    assert runner._commands("a \\\n  b\n# note\n\nc  # why\n") == ["a    b", "c  # why"]
    assert runner._argv("multitask-unet validate d  # why")[-2:] == ["validate", "d"]


def test_the_steps_table_has_a_column_per_machine(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "docs" / "_ext"))
    from results_steps import render_steps

    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    for device, gpu, train in (("cpu", None, 56.4), ("cuda", "NVIDIA H200", 9.0)):
        steps = [
            {"page": "p.md", "step": "save c.yaml", "seconds": 0.0},
            {"page": "p.md", "step": "multitask-unet train d  # why", "seconds": train},
            {"page": "q.md", "step": "multitask-unet validate d", "seconds": 1.0},
        ]
        machine = {"cpu_model": "EPYC", "cpu_count": 2, "gpu_name": gpu}
        data = {"machine": machine, "environment": {"date": "2026-12-05"}, "steps": steps}
        (results / f"newcomer-{device}.json").write_text(json.dumps(data))
    table = render_steps("p.md", root=tmp_path)
    assert "| step | EPYC, 2 cores (s), 2026-12-05 | NVIDIA H200 (s), 2026-12-05 |" in table
    assert "| `multitask-unet train d` | 56.4 | 9.0 |" in table
    assert "save" not in table and "validate" not in table
    assert "No step" in render_steps("other.md", root=tmp_path)
