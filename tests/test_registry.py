from __future__ import annotations

import pytest

from multitask_unet import MultitaskUNetError, RegistryError
from multitask_unet.registry import Registry


def _registry() -> Registry[int]:
    reg: Registry[int] = Registry("widget")
    reg.add("resnet18", 1)
    reg.add("resnet34", 2)
    reg.add("convnext_tiny", 3)
    return reg


def test_decorator_registers_and_returns_object() -> None:
    reg: Registry[type] = Registry("thing")

    @reg.register("a")
    class A:
        pass

    assert reg.get("a") is A and "a" in reg and len(reg) == 1


def test_list_with_pattern() -> None:
    reg = _registry()
    assert reg.list() == ["convnext_tiny", "resnet18", "resnet34"]
    assert reg.list("resnet*") == ["resnet18", "resnet34"]
    assert reg.list("*tiny") == ["convnext_tiny"]
    assert reg.list("vit*") == []


def test_unknown_name_suggests_close_matches() -> None:
    with pytest.raises(RegistryError, match=r"Did you mean 'resnet18'") as info:
        _registry().get("resnet19")
    assert isinstance(info.value, (KeyError, MultitaskUNetError))
    assert "Available: convnext_tiny, resnet18, resnet34" in str(info.value)


def test_duplicate_and_bad_names_are_errors() -> None:
    reg = _registry()
    with pytest.raises(RegistryError, match="already registered"):
        reg.add("resnet18", 5)
    with pytest.raises(RegistryError, match="non-empty"):
        reg.add("", 5)
