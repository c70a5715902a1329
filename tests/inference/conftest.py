"""Fixtures of the inference tests: a tiny model checkpoint with a plan made by data.planning."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import multitask_unet as mtu
from multitask_unet.checkpoints import save_checkpoint
from multitask_unet.data.phantoms import write_phantom_dataset
from multitask_unet.data.planning import Plan, create_plan
from multitask_unet.data.planning.fingerprint import compute_fingerprint

CLASS_NAMES = ("subtype0", "subtype1", "subtype2")


@pytest.fixture(scope="session")
def phantom_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny phantom dataset in the study's layout (3 test cases, 24 x 24 x 12 voxels)."""
    root = tmp_path_factory.mktemp("inference") / "phantoms"
    write_phantom_dataset(
        root, n_train=3, n_validation=0, n_test=3, shape=(24, 24, 12), spacing=(2.0, 2.0, 3.0),
        class_counts=(1, 1, 1), seed=0,
    )  # fmt: skip
    return root


@pytest.fixture(scope="session")
def tiny_plan(phantom_root: Path) -> Plan:
    """A plan of the phantoms' training split for the ``tiny_plain`` network (divisor 4)."""
    from multitask_unet.data.readers import read_dataset

    train = read_dataset(phantom_root).split("train").records
    fingerprint = compute_fingerprint(train, intensity_samples=10_000, workers=1, progress=False)
    return create_plan(fingerprint, size_divisor=4, gpu_memory_gb=0.05)


def make_checkpoint(path: Path, plan: Plan, *, heads: bool = True, seed: int = 0) -> Path:
    """Save a random-weight ``tiny_plain`` model (with a 3-class panda head) and ``plan``."""
    torch.manual_seed(seed)
    spec = {"cls": ("panda", {"num_classes": 3})} if heads else {}
    model = mtu.create_model("tiny_plain", heads=spec)
    names = CLASS_NAMES if heads else ()
    return save_checkpoint(path, model, plan=plan, class_names=names)


@pytest.fixture(scope="session")
def checkpoint_factory():
    """:func:`make_checkpoint`, for tests that need their own checkpoint."""
    return make_checkpoint


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_plan: Plan) -> Path:
    """A checkpoint file of :func:`make_checkpoint`."""
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "model.pt", tiny_plan)
