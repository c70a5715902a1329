"""The Trainer on a tiny cached phantom dataset: files, checkpoints, resume rules, validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from _helpers import Prepared, config, final_weights, trainer

from multitask_unet.checkpoints import load_checkpoint
from multitask_unet.data.sampling.loader import TrainLoader
from multitask_unet.errors import ConfigError, TrainingError
from multitask_unet.training import TrainConfig
from multitask_unet.training import trainer as trainer_module
from multitask_unet.training.metrics import read_metrics


@pytest.mark.parametrize(
    ("head", "optimizer", "progress"),
    [("last_stage", "sgd", False), ("ovr", "adamw", True), (None, "sgd", False)],
)
def test_fit_writes_a_complete_run(
    prepared: Prepared,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    head: str | None,
    optimizer: str,
    progress: bool,
) -> None:
    cfg = config(
        model={"preset": "tiny_plain", "head": head},
        optimizer={"name": optimizer, "lr": 0.003},
        epochs=2,
        iterations_per_epoch=2,
        val_every=1,
        progress=progress,
    )
    result = trainer(prepared, tmp_path, cfg, val=True).fit()
    shown = capsys.readouterr()
    if progress:  # the bar shows the loss parts, the throughput and the time left
        assert all(word in shown.err for word in ("seg=", "samples/s=", "left=", "epoch 2/2"))
    else:  # one line per epoch
        assert shown.out.count("epoch ") == 2 and "val/dice_lesion=" in shown.out
    assert result.epochs == 2
    assert {p.name for p in tmp_path.iterdir()} >= {"config.yaml", "metrics.csv", "curves.png"}
    assert TrainConfig.load(tmp_path / "config.yaml") == cfg
    rows = read_metrics(tmp_path / "metrics.csv")
    assert [r["epoch"] for r in rows] == [0, 1]
    assert rows[1]["lr"] < rows[0]["lr"] == pytest.approx(0.003)  # poly decay by epoch
    assert all(0 <= r["val/dice_lesion"] <= 1 for r in rows)
    assert ("val/auc" in rows[-1]) == (head is not None)
    assert ("loss/cls" in rows[-1]) == (head is not None)
    # Both checkpoints load with weights_only=True and hold what the predictor needs.
    for name in ("last.pt", "best.pt"):
        torch.load(tmp_path / "checkpoints" / name, weights_only=True)
        ckpt = load_checkpoint(tmp_path / "checkpoints" / name)
        assert ckpt.class_names == prepared.class_names
        assert ckpt.load_plan() == prepared.plan
        assert set(ckpt.build_model().heads) == ({"cls"} if head else set())
        assert ckpt.versions["torch"] == torch.__version__
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt").training
    assert state is not None and state["epoch"] == 1 and state["best_epoch"] in (0, 1)
    assert TrainConfig.from_dict(state["config"]) == cfg
    assert set(state) >= {"optimizer", "scheduler", "scaler", "rng", "loss"}


def test_training_lowers_the_loss(prepared: Prepared, tmp_path: Path) -> None:
    cfg = config(optimizer={"name": "adamw", "lr": 0.01}, epochs=4, iterations_per_epoch=4)
    trainer(prepared, tmp_path, cfg).fit()
    losses = [r["loss/seg"] for r in read_metrics(tmp_path / "metrics.csv")]
    assert losses[-1] < losses[0]


def test_refuses_to_overwrite_a_run_and_to_resume_nothing(
    prepared: Prepared, tmp_path: Path
) -> None:
    cfg = config(epochs=1, iterations_per_epoch=1)
    with pytest.raises(ConfigError, match="nothing to resume"):
        trainer(prepared, tmp_path, cfg).fit(resume=True)
    trainer(prepared, tmp_path, cfg).fit()
    with pytest.raises(ConfigError, match="already holds a run"):
        trainer(prepared, tmp_path, cfg).fit()


def test_resume_rejects_a_changed_config_but_may_train_longer(
    prepared: Prepared, tmp_path: Path
) -> None:
    trainer(prepared, tmp_path, config(epochs=1, iterations_per_epoch=1)).fit()
    changed = config(epochs=1, iterations_per_epoch=1, seed=99)
    with pytest.raises(ConfigError, match="seed"):
        trainer(prepared, tmp_path, changed).fit(resume=True)
    result = trainer(prepared, tmp_path, config(epochs=2, iterations_per_epoch=1)).fit(resume=True)
    assert result.epochs == 2
    assert [r["epoch"] for r in read_metrics(tmp_path / "metrics.csv")] == [0, 1]


def test_resuming_a_finished_run_changes_nothing(prepared: Prepared, tmp_path: Path) -> None:
    cfg = config(epochs=1, iterations_per_epoch=1)
    trainer(prepared, tmp_path, cfg).fit()
    before = final_weights(tmp_path)
    trainer(prepared, tmp_path, cfg).fit(resume=True)
    after = final_weights(tmp_path)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_patch_not_divisible_names_the_fix(prepared: Prepared, tmp_path: Path) -> None:
    cfg = config(patch_size=[16, 16, 10])
    with pytest.raises(ConfigError, match="size_divisor"):
        trainer(prepared, tmp_path, cfg).fit()


def test_a_patch_of_one_bottleneck_voxel_names_the_fix(prepared: Prepared, tmp_path: Path) -> None:
    cfg = config(patch_size=[4, 4, 4])  # the tiny preset's size_divisor: 1 x 1 x 1 at the bottom
    with pytest.raises(ConfigError, match=r"single voxel.*e\.g\. \(4, 4, 8\)"):
        trainer(prepared, tmp_path, cfg).fit()


def test_checkpoint_plan_carries_the_trained_patch(prepared: Prepared, tmp_path: Path) -> None:
    from multitask_unet.inference import Predictor

    assert tuple(prepared.plan.patch_size) != (8, 8, 8)
    trainer(prepared, tmp_path, config(patch_size=[8, 8, 8], epochs=1)).fit()
    checkpoint = tmp_path / "checkpoints" / "last.pt"
    assert load_checkpoint(checkpoint).load_plan().patch_size == (8, 8, 8)
    assert Predictor.from_checkpoint(checkpoint).window_size == (8, 8, 8)


def test_loader_workers_do_not_change_the_batches(prepared: Prepared, tmp_path: Path) -> None:
    """Resuming with other ``num_workers`` replays the same epoch: each draw carries its seed."""
    from multitask_unet.training.distributed import DistInfo

    info = DistInfo(0, 1, 0, torch.device("cpu"))
    batches = {}
    for workers in (0, 2):
        cfg = config(num_workers=workers, augment=True, iterations_per_epoch=2)
        loader = TrainLoader(
            prepared.entries(prepared.train_ids),
            trainer(prepared, tmp_path, cfg)._loader_config(info),
        )
        loader.set_epoch(3)
        batches[workers] = list(loader)
    for a, b in zip(batches[0], batches[2]):
        assert a.case_id == b.case_id and torch.equal(a.image, b.image)


def test_learned_loss_weights_are_checkpointed(prepared: Prepared, tmp_path: Path) -> None:
    loss = {
        "terms": {
            "seg": {"loss": "dice_ce", "deep_supervision": True},
            "cls": {"loss": "ce", "weight": 0.3},
        },
        "uncertainty": True,
    }
    trainer(prepared, tmp_path, config(loss=loss, epochs=1, iterations_per_epoch=2)).fit()
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt").training
    assert state is not None
    log_vars = {k: v for k, v in state["loss"].items() if "log_vars" in k}
    assert set(log_vars) == {"log_vars.seg", "log_vars.cls"}
    assert any(float(v) != 0.0 for v in log_vars.values())  # they were trained


def test_nan_weights_stop_training_and_keep_the_last_finite_checkpoint(
    prepared: Prepared, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = trainer_module.build_optimizer
    steps = []

    def poisoned(
        params, cfg, **kernels
    ):  # the optimiser turns the weights NaN from its third step on
        optimizer = real(params, cfg, **kernels)

        def nan_after(opt, args, kwargs):
            steps.append(1)
            if len(steps) >= 3:
                for group in opt.param_groups:
                    for p in group["params"]:
                        p.data.fill_(float("nan"))

        optimizer.register_step_post_hook(nan_after)
        return optimizer

    monkeypatch.setattr(trainer_module, "build_optimizer", poisoned)
    cfg = config(epochs=3, iterations_per_epoch=2)
    with pytest.raises(TrainingError, match=r"NaN or infinite in epoch 2 .*last.pt still holds "
                       r"epoch 1.*runtime\.amp: off"):  # fmt: skip
        trainer(prepared, tmp_path, cfg).fit()
    assert len(steps) == 4  # it stopped at the end of the epoch that broke
    assert [r["epoch"] for r in read_metrics(tmp_path / "metrics.csv")] == [0]
    weights = final_weights(tmp_path)
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())
