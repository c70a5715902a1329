"""Layer specs: norms and activations given as "name" or ("name", {options})."""

from __future__ import annotations

import pytest

from multitask_unet import ConfigError, RegistryError
from multitask_unet.layers.specs import make_act, make_norm


def test_layer_specs() -> None:
    assert type(make_norm(("group", {"num_groups": 2}), 4, spatial_dims=3)).__name__ == "GroupNorm"
    assert make_norm(None, 4, spatial_dims=3) is None
    with pytest.raises(ConfigError, match="num_groups"):
        make_norm(("group", {"num_groups": 3}), 4, spatial_dims=3)
    with pytest.raises(ConfigError, match="invalid options"):
        make_act(("relu", {"slope": 2}))
    with pytest.raises(RegistryError, match="leaky_relu"):
        make_act("leaky_rellu")
