import pytest

from harness.registry import ComponentConfig, Registry, RegistryError


class Cfg(ComponentConfig):
    width: int = 1


def test_register_get_and_did_you_mean():
    reg = Registry("widget")
    reg.register("transformer", Cfg)(lambda cfg: cfg.width)
    assert reg.get("transformer").build(Cfg(name="transformer", width=3)) == 3
    with pytest.raises(RegistryError, match=r"unknown widget 'transfomer'; did you mean 'transformer'\?"):
        reg.get("transfomer")
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("transformer", Cfg)(lambda cfg: 0)


def test_component_config_forbids_unknown_keys():
    with pytest.raises(ValueError, match="Extra inputs"):
        Cfg(name="x", widht=2)
