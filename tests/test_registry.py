
import pytest

from ganzoo.errors import GanzooError
from ganzoo.registry import Registry


def test_register_get_and_glob_list():
    reg = Registry("loss")
    reg.register("wgan-gp", 1, plugin="p1")
    reg.register("bce", 2, plugin="p2")
    reg.register("wgan-lp", 3, plugin="p1")
    assert reg.get("bce") == 2
    assert reg.list() == ["bce", "wgan-gp", "wgan-lp"]
    assert reg.list("wgan*") == ["wgan-gp", "wgan-lp"]
    assert reg.list("*", exclude="*-lp") == ["bce", "wgan-gp"]
    assert reg.entry("wgan-gp").plugin == "p1"


def test_unknown_name_lists_known_ones():
    reg = Registry("architecture")
    reg.register("dcgan", object(), plugin="p")
    with pytest.raises(GanzooError, match="unknown architecture 'gan'; known: dcgan"):
        reg.get("gan")


def test_duplicate_warns_and_names_both_plugins():
    reg = Registry("loss")
    reg.register("hinge", 1, plugin="first")
    with pytest.warns(UserWarning, match="'hinge' registered by plugin 'second' replaces the one registered by plugin 'first'"):
        reg.register("hinge", 2, plugin="second")
    assert reg.get("hinge") == 2


@pytest.mark.parametrize("name", ["WGAN", "wgan_gp", "-x", "a b", "", "x-"])
def test_invalid_names_rejected(name):
    reg = Registry("loss")
    with pytest.raises(GanzooError, match="invalid loss name"):
        reg.register(name, 1, plugin="p")


def test_unregister_plugin_drops_its_entries():
    reg = Registry("loss")
    reg.register("a", 1, plugin="p")
    reg.register("b", 2, plugin="q")
    reg.unregister_plugin("p")
    assert reg.list() == ["b"]
