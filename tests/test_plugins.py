"""Plugin discovery through real entry points: distributions written into a temp dir on sys.path."""

import importlib
import sys
import textwrap

import pytest

from ganzoo import plugins
from ganzoo.errors import GanzooError


def make_distribution(site, dist_name, entry_name, module_name, source):
    (site / f"{module_name}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist_name.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[ganzoo]\n{entry_name} = {module_name}\n")


GOOD = """
from ganzoo.hookspecs import hookimpl
from ganzoo.losses import GANLoss

class Squared(GANLoss):
    '''Least squares, for the test.'''

@hookimpl
def ganzoo_register_losses(register):
    register("lsgan-test", Squared)
"""
BROKEN_IMPORT = "raise ImportError('needs a library that is not installed')\n"
MISSPELLED = """
from ganzoo.hookspecs import hookimpl

@hookimpl
def ganzoo_register_lossez(register):
    register("never", object)
"""
RAISING = """
from ganzoo.hookspecs import hookimpl

@hookimpl
def ganzoo_register_losses(register):
    register("half-done", object)
    raise RuntimeError("bug in the plugin")
"""
DUPLICATE = """
from ganzoo.hookspecs import hookimpl

@hookimpl
def ganzoo_register_losses(register):
    register("bce", object)
"""


@pytest.fixture
def site(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    plugins.reset()
    yield site
    for name in list(sys.modules):
        if name.startswith("zz_plugin_"):
            del sys.modules[name]
    monkeypatch.undo()
    importlib.invalidate_caches()
    plugins.reset()


def test_third_party_plugin_registers_through_entry_point(site):
    make_distribution(site, "ganzoo-lsgan-test", "lsgan", "zz_plugin_good", GOOD)
    importlib.invalidate_caches()
    losses = plugins.registry("losses")
    assert "lsgan-test" in losses and losses.entry("lsgan-test").plugin == "lsgan"
    info = {i.name: i for i in plugins.plugin_infos()}["lsgan"]
    assert info.version == "1.2.3" and info.source == "entry point (ganzoo-lsgan-test)"
    assert info.registered == {"losses": ["lsgan-test"]}
    # The built-ins come through the same group.
    assert {i.name: i.source for i in plugins.plugin_infos()}["dcgan"] == "built-in"


def test_broken_plugins_are_reported_by_name_and_ganzoo_keeps_working(site):
    make_distribution(site, "broken-a", "broken-import", "zz_plugin_import", BROKEN_IMPORT)
    make_distribution(site, "broken-b", "misspelled", "zz_plugin_misspelled", MISSPELLED)
    make_distribution(site, "broken-c", "raising", "zz_plugin_raising", RAISING)
    importlib.invalidate_caches()
    with pytest.warns(UserWarning):
        failures = plugins.plugin_failures()
    assert "needs a library" in failures["broken-import"]
    assert "ganzoo_register_lossez" in failures["misspelled"]
    assert "bug in the plugin" in failures["raising"]
    losses = plugins.registry("losses")
    assert "half-done" not in losses  # what a failing hook registered is dropped
    assert {"bce", "wgan-gp"} <= set(losses.list())


def test_duplicate_name_warns_with_both_plugins(site):
    make_distribution(site, "dup", "zz-dup", "zz_plugin_dup", DUPLICATE)
    importlib.invalidate_caches()
    with pytest.warns(UserWarning, match="'bce' registered by plugin '(zz-dup|dcgan)' replaces the one registered by plugin '(dcgan|zz-dup)'"):
        plugins.load_plugins()


def test_disable_plugins_env(site, monkeypatch):
    monkeypatch.setenv("GANZOO_DISABLE_PLUGINS", "wgan-gp")
    plugins.reset()
    assert "wgan-gp" not in plugins.registry("architectures")
    assert "dcgan" in plugins.registry("architectures")
    with pytest.raises(GanzooError, match="unknown architecture 'wgan-gp'; known: dcgan"):
        plugins.registry("architectures").get("wgan-gp")


def test_trace_prints_hook_calls(site, monkeypatch, capsys):
    monkeypatch.setenv("GANZOO_TRACE_PLUGINS", "1")
    plugins.reset()
    plugins.load_plugins()
    err = capsys.readouterr().err
    assert "ganzoo_register_architectures -> dcgan" in err


def test_register_plugin_in_process(site):
    module = type(sys)("zz_plugin_inline")
    exec(textwrap.dedent(GOOD), module.__dict__)
    plugins.register_plugin(module, name="inline")
    try:
        assert "lsgan-test" in plugins.registry("losses")
    finally:
        plugins.unregister_plugin("inline")
    assert "lsgan-test" not in plugins.registry("losses")
