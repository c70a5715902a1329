"""Old import paths of moved modules still work: they warn, naming the new path, and give the
same objects (see the deprecation shims marked ``__deprecated_path__ = True``)."""

from __future__ import annotations

import importlib
import pkgutil
import re
import sys
import warnings

import pytest

import multitask_unet
from _references import require

#: Old module -> (new module, {name: its home when not the new module}).
SHIMS: dict[str, tuple[str, dict[str, str]]] = {
    "multitask_unet.data.report": ("multitask_unet.data.validation_report", {}),
    "multitask_unet.evaluation.calibration": ("multitask_unet.evaluation.calibration_metrics", {}),
    "multitask_unet.evaluation.inputs": (
        "multitask_unet.evaluation.reading",
        {"PredictionTable": "multitask_unet.prediction_table"},
    ),
    "multitask_unet.inference.calibrate": ("multitask_unet.inference.checkpoint_calibration", {}),
    "multitask_unet.inference.results": (
        "multitask_unet.prediction_table",
        {"remove_stale_temps": "multitask_unet._atomic"},
    ),
    "multitask_unet.training.validation": ("multitask_unet.training.online_evaluation", {}),
}


@pytest.mark.parametrize("old", sorted(SHIMS))
def test_old_path_warns_and_gives_the_same_objects(old: str) -> None:
    new, elsewhere = SHIMS[old]
    sys.modules.pop(old, None)  # a shim warns when it is executed, i.e. on its first import
    with pytest.warns(DeprecationWarning, match=re.escape(f"{old} moved to {new}")):
        shim = importlib.import_module(old)
    assert shim.__deprecated_path__ is True
    target = importlib.import_module(new)
    expected = set(target.__all__) | set(elsewhere)
    assert set(shim.__all__) == expected
    for name in shim.__all__:
        home = importlib.import_module(elsewhere.get(name, new))
        assert getattr(shim, name) is getattr(home, name), name


def _shims() -> list[str]:
    """Every module of the package marked ``__deprecated_path__ = True``."""
    found = []
    for info in pkgutil.walk_packages(multitask_unet.__path__, "multitask_unet."):
        if info.name.endswith(".__main__"):  # runs the command line when imported
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = importlib.import_module(info.name)
        if getattr(module, "__deprecated_path__", False) is True:
            found.append(info.name)
    return found


def test_every_shim_warns_and_only_re_exports() -> None:
    """Shims of every move (also those not in SHIMS): a warning naming the old path and the new
    one, and public names that are defined elsewhere (the moved objects themselves)."""
    shims = _shims()
    assert set(SHIMS) <= set(shims)
    for old in shims:
        sys.modules.pop(old, None)
        with pytest.warns(DeprecationWarning, match=re.escape(f"{old} moved to multitask_unet.")):
            shim = importlib.import_module(old)
        assert shim.__all__, old
        for name in shim.__all__:
            value = getattr(shim, name)
            home = getattr(value, "__module__", None)
            assert home != old, f"{old}.{name} is defined in the shim, not re-exported"


def test_prediction_table_has_one_class() -> None:
    from multitask_unet.prediction_table import PredictionTable

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from multitask_unet.evaluation.inputs import PredictionTable as read_side
        from multitask_unet.inference.results import PredictionTable as write_side

    assert read_side is write_side is PredictionTable


def test_load_timm3d_checkpoint_moved_to_interop() -> None:
    require("timm_3d")
    from multitask_unet.encoders import timm3d
    from multitask_unet.interop.timm3d_weights import load_timm3d_checkpoint

    assert "load_timm3d_checkpoint" not in timm3d.__all__
    with pytest.warns(DeprecationWarning, match=r"multitask_unet\.interop\.timm3d_weights"):
        old = timm3d.load_timm3d_checkpoint
    assert old is load_timm3d_checkpoint
    with pytest.raises(AttributeError, match="no attribute 'load_checkpoint'"):
        timm3d.load_checkpoint  # noqa: B018


def test_write_report_is_importable_from_the_report_module() -> None:
    from multitask_unet.evaluation.report import write_report
    from multitask_unet.evaluation.report_writer import write_report as moved

    assert write_report is moved
