from __future__ import annotations

import pytest

from multitask_unet.cli import main


def test_models_lists_every_registry(capsys) -> None:
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for line_start, name in (
        ("presets:", "tiny_plain"),
        ("encoders:", "residual"),
        ("decoders:", "unet"),
        ("heads:", "panda"),
    ):
        line = next(ln for ln in out.splitlines() if ln.startswith(line_start))
        assert name in line


def test_models_pattern_filters(capsys) -> None:
    assert main(["models", "tiny*"]) == 0
    out = capsys.readouterr().out
    assert "tiny_plain" in out and "nnunet_3d_fullres" not in out


def test_help_lists_commands(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    assert "models" in capsys.readouterr().out
