"""Missing reference implementations skip locally and fail in CI (tests/_references.py)."""

from __future__ import annotations

import pytest

from _references import STRICT_VARIABLE, real_data_folder, reference, require


def test_a_missing_reference_skips_locally_and_fails_in_ci(monkeypatch) -> None:
    monkeypatch.delenv(STRICT_VARIABLE, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no_such_reference_module"):
        require("no_such_reference_module")
    monkeypatch.setenv(STRICT_VARIABLE, "1")
    with pytest.raises(pytest.fail.Exception, match=f"{STRICT_VARIABLE}=1"):
        require("no_such_reference_module")


def test_a_reference_is_imported_only_when_used(monkeypatch) -> None:
    monkeypatch.setenv(STRICT_VARIABLE, "1")
    lazy = reference("no_such_reference_module")  # naming it costs nothing ...
    with pytest.raises(pytest.fail.Exception):
        lazy.anything  # ... using it does  # noqa: B018
    assert reference("json").dumps([1]) == "[1]"


def test_the_real_data_variable_must_point_at_the_data(monkeypatch, tmp_path) -> None:
    """Unset skips; set to a folder that is not there fails; set right gives the folder."""
    monkeypatch.delenv("MULTITASK_UNET_TEST_DATA", raising=False)
    with pytest.raises(pytest.skip.Exception, match="not set"):
        real_data_folder()
    monkeypatch.setenv("MULTITASK_UNET_TEST_DATA", str(tmp_path / "missing"))
    with pytest.raises(pytest.fail.Exception, match="is not a folder"):
        real_data_folder()
    monkeypatch.setenv("MULTITASK_UNET_TEST_DATA", str(tmp_path))
    assert real_data_folder() == tmp_path
