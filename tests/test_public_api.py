from __future__ import annotations

import importlib

import pytest

import multitask_unet as mtu

PACKAGES = [
    "multitask_unet",
    "multitask_unet.layers",
    "multitask_unet.encoders",
    "multitask_unet.decoders",
    "multitask_unet.heads",
    "multitask_unet.models",
    "multitask_unet.losses",
    "multitask_unet.data",
    "multitask_unet.data.planning",
    "multitask_unet.data.preprocessing",
    "multitask_unet.data.sampling",
    "multitask_unet.inference",
    "multitask_unet.evaluation",
    "multitask_unet.training",
]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_resolves(package: str) -> None:
    module = importlib.import_module(package)
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert missing == []
    assert len(module.__all__) == len(set(module.__all__))


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Trainr'"):
        mtu.Trainr  # noqa: B018


def test_lazy_names_are_the_defining_objects() -> None:
    from multitask_unet.data import read_dataset

    assert mtu.read_dataset is read_dataset
    assert "Predictor" in dir(mtu)


def test_a_training_loop_imports_its_data_pipeline_from_the_sampling_package() -> None:
    from multitask_unet.data import sampling
    from multitask_unet.data.sampling import loader

    for name in ("LoaderConfig", "TrainLoader", "queue_loader", "cache_entries", "Batch"):
        assert name in sampling.__all__
    assert sampling.TrainLoader is loader.TrainLoader
    assert sampling.BalancedCaseSampler is loader.BalancedCaseSampler
