"""The training-loop benchmark's bookkeeping on fake clocks: no timing is asserted.

``benchmarks/bench_train_loop.py`` times our Trainer's loop against nnU-Net's; these tests check
what turns its clock readings into results (warm-up and drain, waits, rows, ratios, targets)
and that both sides of a plan build the same network.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_train_loop import assemble_row, shared_note, targets  # noqa: E402
from benchmarks.train_loop_sides import (  # noqa: E402
    PLANS,
    FixedBatches,
    LoopTimer,
    TimedBatches,
    depth,
)


class FakeLoop:
    """A loop whose batches arrive after given waits and whose steps take ``step_s``."""

    def __init__(self, waits: list[float], step_s: float) -> None:
        self.now, self.waits, self.step_s = 0.0, list(waits), step_s

    def clock(self) -> float:
        return self.now

    def next_batch(self) -> int:
        self.now += self.waits.pop(0)
        return len(self.waits)

    def run(self, timer: LoopTimer) -> dict:
        while not timer.finished:
            timer.fetch(self.next_batch)
            self.now += self.step_s
        timer.stop()
        return timer.result()


def test_timer_drains_ready_batches_until_one_is_waited_for() -> None:
    # worker start-up, then three ready batches, then the loader is the bottleneck
    loop = FakeLoop([1.0, 0.0, 0.0, 0.1, 0.2, 0.2, 0.2], step_s=0.1)
    timer = LoopTimer("cpu", warmup=2, drain=5, timed=3, clock=loop.clock)
    result = loop.run(timer)
    assert result["warmup_iterations"] == 4  # 2, then until the 0.1 s wait
    assert result["iterations"] == 3
    assert result["seconds"] == pytest.approx(0.9)
    assert result["it_per_s"] == pytest.approx(3 / 0.9)
    assert result["wait_fraction"] == pytest.approx(0.6 / 0.9)
    assert result["peak_memory_mib"] is None


def test_timer_without_drain_starts_after_the_warmup() -> None:
    loop = FakeLoop([1.0, 0.0, 0.0, 0.0, 0.3], step_s=0.5)
    result = loop.run(LoopTimer("cpu", warmup=2, drain=0, timed=3, clock=loop.clock))
    assert result["warmup_iterations"] == 2
    assert result["seconds"] == pytest.approx(1.8)
    assert result["wait_fraction"] == pytest.approx(0.3 / 1.8)


def test_timer_drain_is_capped_when_batches_are_always_ready() -> None:
    loop = FakeLoop([0.0] * 10, step_s=0.5)
    result = loop.run(LoopTimer("cpu", warmup=1, drain=3, timed=2, clock=loop.clock))
    assert result["warmup_iterations"] == 4
    assert result["wait_fraction"] == 0.0


def test_timer_refuses_results_without_timed_iterations() -> None:
    timer = LoopTimer("cpu", warmup=1, drain=0, timed=2)
    timer.fetch(lambda: 0)
    with pytest.raises(RuntimeError, match="--timed"):
        timer.stop()


def test_timed_batches_stop_after_the_timed_iterations() -> None:
    timer = LoopTimer("cpu", warmup=2, drain=0, timed=3)
    batches = TimedBatches(range(100), timer)
    assert len(batches) == 5
    assert list(batches) == [0, 1, 2, 3, 4]
    assert timer.seconds is not None and timer.timed_iterations == 3
    fixed = TimedBatches(FixedBatches("b"), LoopTimer("cpu", warmup=0, drain=0, timed=2))
    assert fixed.augmentation is None  # what the Trainer's loop reads of its loader
    assert list(fixed) == ["b", "b"]


def _timing(it_per_s: float, wait: float, memory: float | None) -> dict:
    return {"it_per_s": it_per_s, "wait_fraction": wait, "peak_memory_mib": memory}


def test_rows_and_targets_from_timings() -> None:
    step_only, nn_step = _timing(10.0, 0.0, 900.0), _timing(8.0, 0.0, 1000.0)
    rows = [
        assemble_row("study", 2, "ours", _timing(9.5, 0.05, 1050.0),
                     _timing(4.0, 0.5, 1000.0), step_only, nn_step),
        assemble_row("study", 4, "ours", _timing(9.8, 0.0, 1050.0),
                     _timing(8.0, 0.1, 1000.0), step_only, nn_step),
    ]  # fmt: skip
    assert rows[0]["k"] == 2 and rows[0]["ratio"] == pytest.approx(9.5 / 4.0)
    assert rows[0]["ours_vs_step_only"] == pytest.approx(0.95)
    assert rows[0]["peak_memory_ratio"] == pytest.approx(1.05)
    assert rows[0]["nnunet_wait_fraction"] == 0.5
    checks = targets(rows)["study/ours"]
    assert checks["k2_vs_nnunet"]["met"] and checks["k2_vs_step_only"]["met"]
    assert checks["k4_vs_nnunet"] == {"value": pytest.approx(9.8 / 8.0), "bound": 1.3, "met": False}
    assert checks["k2_memory"]["met"]


def test_cpu_rows_have_no_memory_ratio() -> None:
    t = _timing(1.0, 0.0, None)
    row = assemble_row("small", 1, "ours", t, t, t, t)
    assert row["peak_memory_ratio"] is None and row["ratio"] == 1.0
    assert "k1_memory" not in targets([row])["small/ours"]


def test_depth_and_shared_note() -> None:
    assert depth("ours", 2) == 8 and depth("nnunet", 2) == 14 and depth("nnunet", 16) == 32
    assert shared_note(None, 0.3, 2) is None
    assert shared_note("", 0.3, 2) is None  # an empty note is no note
    assert "load average 1.7 on 2 CPUs" in shared_note(None, 1.7, 2)
    assert shared_note("two other helpers' tests", 0.0, 2).startswith("two other helpers'")


@pytest.mark.parametrize("plan", sorted(PLANS))
def test_both_sides_build_the_same_network(plan: str) -> None:
    pytest.importorskip("nnunetv2")
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    from multitask_unet.interop.nnunet import model_from_plans

    arch = PLANS[plan]["architecture"]
    plans = {"configurations": {"3d_fullres": {"architecture": arch}}}
    ours = model_from_plans(plans, in_channels=1, num_classes=3)
    theirs = get_network_from_plans(
        arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"],
        1, 3, allow_init=False, deep_supervision=True,
    )  # fmt: skip
    shapes = sorted(tuple(p.shape) for p in ours.parameters())
    assert shapes == sorted(tuple(p.shape) for p in theirs.parameters())
    assert all(p % d == 0 for p, d in zip(PLANS[plan]["patch"], ours.size_divisor))
