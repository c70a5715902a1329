"""``train --plans``: an nnU-Net plans file gives the network and the plan; then ``predict``."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import nibabel as nib
import pytest
import torch
import yaml
from _nnunet_plans import ARCH, LABELS, PHANTOMS, PLANS, TINY, changed, write_plans

from _references import require
from multitask_unet.cli import main
from multitask_unet.data.phantoms import write_phantom_dataset
from multitask_unet.data.planning import Plan
from multitask_unet.interop import preprocessing_from_nnunet


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("plans_cli") / "phantoms"
    write_phantom_dataset(root, **PHANTOMS)
    return root


def test_train_with_plans_then_predict(data: Path, tmp_path: Path) -> None:
    plans, run, out = write_plans(tmp_path / "nnunet"), tmp_path / "run", tmp_path / "out"
    assert main(["train", str(data), "-o", str(run), "--plans", str(plans), *TINY]) == 0
    plan = Plan.load(run / "plan.json")
    assert plan.preprocessing == preprocessing_from_nnunet(plans)
    assert (plan.patch_size, plan.batch_size, plan.size_divisor) == ((8, 16, 16), 2, (2, 4, 4))
    model = yaml.safe_load((run / "config.yaml").read_text())["model"]
    assert model["preset"] is None and model["encoder"]["channels"] == [4, 8, 16]
    assert model["encoder"]["kernel_sizes"][0] == [1, 3, 3] and model["head"] == "panda"

    predict = ["predict", str(data / "test"), "-o", str(out), "--model", str(run)]
    assert main([*predict, "--device", "cpu", "--no-progress"]) == 0
    for image in sorted((data / "test").glob("*_0000.nii.gz")):
        label_map = out / image.name.replace("_0000.nii.gz", ".nii.gz")
        assert nib.load(label_map).shape == nib.load(image).shape
    assert len((out / "predictions.csv").read_text().splitlines()) == 3  # header + 2 cases


def test_patch_and_batch_flags_override_the_plans(data: Path, tmp_path: Path) -> None:
    plans, run = write_plans(tmp_path / "nnunet"), tmp_path / "run"
    argv = ["train", str(data), "-o", str(run), "--plans", str(plans), "--configuration",
            "3d_fullres", "--patch-size", "12", "16", "20", "--batch-size", "1", *TINY]  # fmt: skip
    assert main(argv) == 0
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["patch_size"] == [12, 16, 20] and config["data"]["batch_size"] == 1
    assert Plan.load(run / "plan.json").patch_size == (8, 16, 16)  # the plans' own, recorded


def test_plans_with_init_weights_of_an_nnunet_checkpoint(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    networks = require("nnunetv2.utilities.get_network_from_plans")
    network = networks.get_network_from_plans(
        ARCH["network_class_name"], copy.deepcopy(ARCH["arch_kwargs"]),
        ARCH["_kw_requires_import"], 1, 3, deep_supervision=True,
    )  # fmt: skip
    checkpoint = tmp_path / "fold_0" / "checkpoint_final.pth"
    checkpoint.parent.mkdir()
    torch.save({"network_weights": network.state_dict(), "trainer_name": "nnUNetTrainer"},
               checkpoint)  # fmt: skip
    plans, run = write_plans(tmp_path), tmp_path / "run"
    argv = ["train", str(data), "-o", str(run), "--plans", str(plans), "--init-weights",
            str(checkpoint), "--head", "ovr", *TINY]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "(nnU-Net checkpoint)" in printed and "newly initialised: heads.cls" in printed


@pytest.mark.parametrize(
    ("setup", "extra", "message"),
    [
        ("missing", [], "does not exist"),
        ("not_json", [], "is not valid JSON"),
        ("plans", ["--configuration", "3d_lowres"], r"no configuration '3d_lowres'; available: "
                                                    r"\['3d_fullres'\]"),
        ("two_channels", [], r"normalises 2 image channel\(s\) but .* has 1 \(CT\)"),
        ("four_labels", [], r"declares labels \[0, 1, 2\] but the plans' dataset.json "
                            r"\[0, 1, 2, 3\]"),
        ("transposed", [], r"transpose_forward \[1, 0, 2\]"),
        ("plans", ["--preset", "tiny_plain"], "drop --preset"),
        ("plans", ["--budget", "5m"], "drop --budget"),
        ("none", ["--configuration", "3d_fullres"], "give --plans too"),
    ],
)  # fmt: skip
def test_bad_plans_are_refused_and_nothing_is_written(
    data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    setup: str,
    extra: list[str],
    message: str,
) -> None:
    folder = tmp_path / "nnunet"
    plans = folder / "nnUNetPlans.json"
    if setup == "not_json":
        folder.mkdir()
        plans.write_text('{"configurations": ')
    elif setup == "two_channels":
        write_plans(
            folder, changed(normalization_schemes=["CTNormalization", "ZScoreNormalization"])
        )
    elif setup == "four_labels":
        write_plans(folder, labels={**LABELS, "duct": 3})
    elif setup == "transposed":
        write_plans(folder, {**PLANS, "transpose_forward": [1, 0, 2]})
    elif setup == "plans":
        write_plans(folder)
    run = tmp_path / "run"
    flags = [] if setup == "none" else ["--plans", str(plans)]
    assert main(["train", str(data), "-o", str(run), *flags, *extra, *TINY]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not run.exists()


def test_an_existing_plan_in_the_run_folder_is_refused(
    data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plans, run = write_plans(tmp_path / "nnunet"), tmp_path / "run"
    run.mkdir()
    (run / "plan.json").write_text("{}")
    assert main(["train", str(data), "-o", str(run), "--plans", str(plans), *TINY]) == 2
    assert "plan.json exists" in capsys.readouterr().err
    assert (run / "plan.json").read_text() == "{}" and not (run / "preprocessed").exists()
