"""Planning: nnU-Net's target-spacing and patch-size rules, the plan JSON and its cache key."""

from __future__ import annotations

import argparse
import json
import types
from pathlib import Path

import numpy as np
import pytest

from _references import reference
from multitask_unet.data.planning.fingerprint import (
    CaseFingerprint,
    DatasetFingerprint,
    IntensityStats,
)
from multitask_unet.data.planning.patch_size import (
    estimate_feature_map_elements,
    feature_map_capacity,
    plan_patch_size,
    size_divisor_tuple,
    stage_strides,
)
from multitask_unet.data.planning.plan import (
    ChannelNormalization,
    Plan,
    PreprocessingConfig,
    create_plan,
    plan_target_spacing,
)
from multitask_unet.errors import ConfigError

planner_module = reference(
    "nnunetv2.experiment_planning.experiment_planners.default_experiment_planner"
)


def _fingerprint(spacings, shapes, *, labels=(0, 1, 2)) -> DatasetFingerprint:
    stats = IntensityStats(50.0, 40.0, 55.0, -100.0, 300.0, -50.0, 180.0)
    cases = [
        CaseFingerprint(
            case_id=f"c{i}",
            spacing=tuple(map(float, sp)),
            shape=tuple(map(int, sh)),
            shape_after_crop=tuple(map(int, sh)),
            label=i % 3,
            label_voxels={str(k): 10 for k in labels},
        )
        for i, (sp, sh) in enumerate(zip(spacings, shapes))
    ]
    return DatasetFingerprint.from_cases(cases, [stats])


def _spacing_sets():
    rng = np.random.default_rng(0)
    n = 12
    return {
        "isotropic": (rng.uniform(0.8, 1.2, (n, 3)), rng.integers(80, 200, (n, 3))),
        # thick slices, few of them: the 10th-percentile rule applies
        "aniso_few_slices": (
            np.column_stack([rng.choice([2.5, 5.0, 6.0], n), np.full((n, 2), 0.7)]),
            np.column_stack([rng.integers(20, 40, n), rng.integers(300, 400, (n, 2))]),
        ),
        # thick slices but many of them: the median stays
        "aniso_many_slices": (
            np.column_stack([rng.choice([3.0, 5.0], n), np.full((n, 2), 0.8)]),
            np.column_stack([rng.integers(200, 300, n), rng.integers(250, 300, (n, 2))]),
        ),
        # coarse middle axis
        "coarse_h": (
            np.column_stack([np.full(n, 0.8), rng.choice([4.0, 6.0], n), np.full(n, 0.8)]),
            np.column_stack(
                [rng.integers(300, 400, n), rng.integers(10, 30, n), rng.integers(300, 400, n)]
            ),
        ),
    }


@pytest.mark.parametrize("name", list(_spacing_sets()))
def test_target_spacing_equals_nnunet(name: str) -> None:
    spacings, shapes = _spacing_sets()[name]
    fake_planner = types.SimpleNamespace(
        overwrite_target_spacing=None,
        anisotropy_threshold=3,
        dataset_fingerprint={"spacings": spacings.tolist(), "shapes_after_crop": shapes.tolist()},
    )
    theirs = planner_module.ExperimentPlanner.determine_fullres_target_spacing(fake_planner)
    ours, axis = plan_target_spacing(spacings, shapes)
    np.testing.assert_allclose(ours, theirs)
    median = np.median(spacings, axis=0)
    assert (axis is None) == np.allclose(ours, median)


def _nnunet_plan(spacing, median_shape) -> dict:
    """nnU-Net's 3d_fullres configuration for one spacing and median shape, default settings."""
    planner = object.__new__(planner_module.ExperimentPlanner)
    settings = {
        "UNet_base_num_features": 32, "UNet_reference_val_3d": 560000000,
        "UNet_reference_val_2d": 85000000, "UNet_reference_com_nfeatures": 32,
        "UNet_reference_val_corresp_GB": 8, "UNet_reference_val_corresp_bs_2d": 12,
        "UNet_reference_val_corresp_bs_3d": 2, "UNet_featuremap_min_edge_length": 4,
        "UNet_blocks_per_stage_encoder": (2,) * 14, "UNet_blocks_per_stage_decoder": (2,) * 13,
        "UNet_min_batch_size": 2, "UNet_max_features_2d": 512, "UNet_max_features_3d": 320,
        "max_dataset_covered": 0.05, "UNet_vram_target_GB": 8,
        "preprocessor_name": "DefaultPreprocessor",
        "dataset_json": {"channel_names": {"0": "CT"}, "labels": {"b": 0, "p": 1, "l": 2}},
        "dataset_fingerprint": {"median_relative_size_after_cropping": 1.0},
    }  # fmt: skip
    for key, value in settings.items():
        setattr(planner, key, value)
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    planner.UNet_class = PlainConvUNet
    return planner.get_plans_for_configuration(
        np.array(spacing), np.array(median_shape), "x", float(np.prod(median_shape)) * 40, {}
    )


@pytest.mark.parametrize(("spacing", "median_shape"), [((3.0, 0.8, 0.8), (40, 300, 300))])
def test_patch_size_and_memory_estimate_equal_nnunet(spacing, median_shape) -> None:
    """The median shape does not fit 8 GB, so both shrink the patch; z is pooled later."""
    theirs = _nnunet_plan(spacing, median_shape)
    strides = theirs["architecture"]["arch_kwargs"]["strides"]
    divisor = tuple(int(np.prod([s[a] for s in strides])) for a in range(3))
    assert stage_strides(spacing, divisor) == tuple(tuple(s) for s in strides)

    patch, estimate = plan_patch_size(median_shape, spacing, size_divisor=divisor)
    assert patch == tuple(int(p) for p in theirs["patch_size"])

    network = planner_module.ExperimentPlanner.static_estimate_VRAM_usage(
        theirs["patch_size"], 1, 3, theirs["architecture"]["network_class_name"],
        theirs["architecture"]["arch_kwargs"], theirs["architecture"]["_kw_requires_import"],
    )  # fmt: skip
    assert estimate == estimate_feature_map_elements(patch, strides, num_classes=3) == network


@pytest.mark.parametrize("divisor", [16, (8, 32, 32), (4, 16, 32)])
@pytest.mark.parametrize("gpu_memory_gb", [2.0, 8.0, 40.0])
def test_patch_size_is_divisible_and_fits_the_budget(divisor, gpu_memory_gb) -> None:
    median_shape, spacing = (61, 233, 187), (2.0, 0.7, 0.7)
    patch, estimate = plan_patch_size(
        median_shape, spacing, size_divisor=divisor, gpu_memory_gb=gpu_memory_gb
    )
    d = size_divisor_tuple(divisor)
    assert all(p % k == 0 and p >= k for p, k in zip(patch, d))
    assert estimate <= feature_map_capacity(gpu_memory_gb)
    assert all(p <= -(-m // k) * k for p, m, k in zip(patch, median_shape, d))  # <= median, rounded
    smaller, _ = plan_patch_size(median_shape, spacing, size_divisor=divisor, gpu_memory_gb=0.5)
    assert np.prod(smaller) <= np.prod(patch)


@pytest.mark.parametrize(
    ("median_shape", "gpu_memory_gb", "expected"),
    [((10, 10, 10), 8.0, (16, 16, 32)),  # cases smaller than one divisor: grow the last axis
     ((12, 40, 20), 8.0, (16, 48, 32)),
     ((200, 200, 200), 1e-4, (32, 16, 16))],  # nothing fits: stop at two bottleneck voxels
)  # fmt: skip
def test_the_patch_never_leaves_a_single_voxel_at_the_bottleneck(
    median_shape, gpu_memory_gb, expected
) -> None:
    patch, _ = plan_patch_size(
        median_shape, (1.0, 1.0, 1.0), size_divisor=16, gpu_memory_gb=gpu_memory_gb
    )
    assert patch == expected


@pytest.mark.parametrize("bad", [0, 12, (8, 32), (8, 32, 24), "32"])
def test_size_divisor_must_be_powers_of_two(bad) -> None:
    with pytest.raises(ConfigError, match="size_divisor"):
        size_divisor_tuple(bad)


def test_create_plan_json_round_trip_and_cache_key(tmp_path: Path) -> None:
    spacings, shapes = _spacing_sets()["aniso_few_slices"]
    fingerprint = _fingerprint(spacings, shapes)
    plan = create_plan(fingerprint, size_divisor=(8, 32, 32))
    assert plan.target_spacing == pytest.approx(plan_target_spacing(spacings, shapes)[0])
    assert plan.anisotropic_axis == 0
    assert plan.preprocessing.normalization[0].lower == fingerprint.intensity[0].percentile_00_5
    assert plan.batch_size >= 2 and plan.preprocessing.labels == (0, 1, 2)

    path = tmp_path / "plan.json"
    plan.save(path)
    loaded = Plan.load(path)
    assert loaded == plan and loaded.cache_key() == plan.cache_key()
    assert json.loads(path.read_text())["patch_size"] == list(plan.patch_size)
    assert not list(tmp_path.glob(".*tmp"))  # the atomic write left no temporary file

    # the key follows preprocessing only: a new memory budget keeps it, a new spacing changes it
    assert create_plan(fingerprint, gpu_memory_gb=4.0).cache_key() == plan.cache_key()
    moved = create_plan(fingerprint, target_spacing=(3.0, 0.7, 0.7))
    assert moved.cache_key() != plan.cache_key()
    assert create_plan(fingerprint, normalization="zscore").cache_key() != plan.cache_key()


def test_plan_and_config_validation() -> None:
    fingerprint = _fingerprint(*_spacing_sets()["isotropic"])
    plan = create_plan(fingerprint, size_divisor=16)
    with pytest.raises(ConfigError, match="divisible"):
        plan.replace(patch_size=[20, 32, 32])
    with pytest.raises(ConfigError, match="needs"):
        ChannelNormalization("ct", lower=0.0)
    with pytest.raises(ConfigError, match="orientation"):
        plan.preprocessing.replace(orientation="XYZ")
    with pytest.raises(ConfigError, match="channel"):
        create_plan(fingerprint, normalization=["ct", "ct"])
    with pytest.raises(ConfigError, match="no option"):
        PreprocessingConfig.from_dict({**plan.preprocessing.to_dict(), "spacing": [1, 1, 1]})


def _cli(module, argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    module.add_parser(parser.add_subparsers(dest="command"))
    return module.run(parser.parse_args(argv))


def test_plan_command_writes_a_loadable_plan(phantom_dataset, tmp_path: Path, capsys) -> None:
    from multitask_unet.cli import plan as plan_cli

    out = tmp_path / "plan.json"
    argv = ["plan", str(phantom_dataset.root), "-o", str(out), "--size-divisor", "4,8,8",
            "--workers", "1", "--no-progress", "--intensity-samples", "5000"]  # fmt: skip
    assert _cli(plan_cli, argv) == 0
    plan = Plan.load(out)
    train = phantom_dataset.split("train")
    assert [c.case_id for c in plan.fingerprint.cases] == list(train.case_ids)
    assert plan.size_divisor == (4, 8, 8)
    assert plan.preprocessing.labels == tuple(sorted(set(train.label_names.values())))
    printed = capsys.readouterr().out
    assert "target spacing" in printed and plan.cache_key() in printed
