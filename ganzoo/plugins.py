"""Plugin loading (entry-point group `ganzoo`) and the registries the plugins fill.

Loading is lazy and happens once, in two steps: importing the plugin modules (all that adding
their CLI commands needs, so `ganzoo --help` imports no torch) and filling the registries
(on the first `registry()` call). A plugin that fails to import, has a misspelled hook,
or raises inside a hook is recorded by name in `plugin_failures()` and skipped, so one
broken package never takes ganzoo down. `GANZOO_DISABLE_PLUGINS=a,b` switches plugins off.
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pluggy

from . import hookspecs
from .registry import Registry

ENTRY_POINT_GROUP = "ganzoo"
REGISTRY_HOOKS = {
    "datasets": "ganzoo_register_datasets",
    "architectures": "ganzoo_register_architectures",
    "losses": "ganzoo_register_losses",
    "metrics": "ganzoo_register_metrics",
    "features": "ganzoo_register_feature_extractors",
    "augmentations": "ganzoo_register_augmentations",
    "hubs": "ganzoo_register_hubs",
    "executors": "ganzoo_register_executors",
    "audits": "ganzoo_register_audits",
}
# What one entry of each registry is called in messages ("unknown loss 'x'").
ENTRY_NOUNS = {
    "datasets": "dataset",
    "architectures": "architecture",
    "losses": "loss",
    "metrics": "metric",
    "features": "feature extractor",
    "augmentations": "augmentation",
    "hubs": "hub",
    "executors": "executor",
    "audits": "audit",
}


@dataclass
class PluginInfo:
    """What `ganzoo plugins` shows for one plugin."""

    name: str
    version: str
    source: str
    distribution: str | None = None
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None


pm = pluggy.PluginManager("ganzoo")
pm.add_hookspecs(hookspecs)

_REGISTRIES: dict[str, Registry] = {kind: Registry(ENTRY_NOUNS[kind]) for kind in REGISTRY_HOOKS}

_plugins: dict[str, PluginInfo] = {}
_imported = False
_loaded = False


def _disabled() -> set[str]:
    return {n.strip() for n in os.environ.get("GANZOO_DISABLE_PLUGINS", "").split(",") if n.strip()}


def _trace(message: str) -> None:
    if os.environ.get("GANZOO_TRACE_PLUGINS"):
        print(f"[ganzoo plugins] {message}", file=sys.stderr)


def _fail(info: PluginInfo, error: BaseException) -> None:
    info.error = f"{type(error).__name__}: {error}"
    warnings.warn(f"ganzoo plugin {info.name!r} is skipped: {info.error}", stacklevel=3)


def _register_module(name: str, module: Any, info: PluginInfo) -> None:
    """Register one plugin module; a misspelled hook makes that plugin fail, not ganzoo."""
    _plugins[name] = info
    try:
        pm.register(module, name=name)
        pm.check_pending()
    except Exception as error:  # a broken plugin must be reported, whatever it raised
        if pm.get_plugin(name) is not None:
            pm.unregister(name=name)
        _fail(info, error)


def _fill_registries() -> None:
    """Call each plugin's register hooks one plugin at a time, so failures are attributed."""
    for kind, hook_name in REGISTRY_HOOKS.items():
        registry = _REGISTRIES[kind]
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            info = _plugins[impl.plugin_name]
            if info.error:
                continue

            def register(name: str, obj: Any, _plugin: str = impl.plugin_name, _kind: str = kind) -> None:
                registry.register(name, obj, plugin=_plugin)
                _plugins[_plugin].registered.setdefault(_kind, []).append(name)

            _trace(f"{hook_name} -> {impl.plugin_name}")
            try:
                impl.function(register=register)
            except Exception as error:  # a plugin's own bug: drop what it registered
                for reg in _REGISTRIES.values():
                    reg.unregister_plugin(impl.plugin_name)
                info.registered.clear()
                _fail(info, error)


def register_commands(app: Any) -> None:
    """Let each plugin add CLI commands; a plugin whose hook raises is reported and skipped.
    Only the plugin modules are imported: registries are filled when a command needs them."""
    import_plugins()
    for impl in pm.hook.ganzoo_register_commands.get_hookimpls():
        info = _plugins[impl.plugin_name]
        if info.error:
            continue
        _trace(f"ganzoo_register_commands -> {impl.plugin_name}")
        try:
            impl.function(app=app)
        except Exception as error:  # a plugin's own bug must not break the CLI
            _fail(info, error)


def load_plugins() -> None:
    """Import every plugin of the `ganzoo` entry-point group once and fill the registries."""
    global _loaded
    if _loaded:
        return
    import_plugins()
    _loaded = True
    _fill_registries()


def import_plugins() -> None:
    """Import and register every plugin module of the `ganzoo` entry-point group once."""
    global _imported
    if _imported:
        return
    _imported = True
    disabled = _disabled()
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in disabled or ep.name in _plugins:
            continue
        dist = ep.dist
        info = PluginInfo(
            name=ep.name,
            version=dist.version if dist else "unknown",
            source="built-in" if dist is not None and dist.name == "ganzoo" else f"entry point ({dist.name if dist else '?'})",
            distribution=dist.name if dist else None,
        )
        _trace(f"loading {ep.name} from {ep.value}")
        try:
            module = ep.load()
        except Exception as error:  # ImportError, SyntaxError, anything at import time
            _plugins[ep.name] = info
            _fail(info, error)
            continue
        _register_module(ep.name, module, info)


def register_plugin(module: Any, name: str, version: str = "0", source: str = "direct") -> None:
    """Register a plugin object in-process (tests, notebooks); refills the registries."""
    load_plugins()
    _register_module(name, module, PluginInfo(name=name, version=version, source=source))
    _refill()


def unregister_plugin(name: str) -> None:
    """Remove a plugin registered with `register_plugin` and everything it registered."""
    if pm.get_plugin(name) is not None:
        pm.unregister(name=name)
    _plugins.pop(name, None)
    _refill()


def _refill() -> None:
    for registry in _REGISTRIES.values():
        registry.clear()
    for info in _plugins.values():
        info.registered.clear()
    _fill_registries()


def reset() -> None:
    """Forget every plugin so the next call loads them again (tests use this)."""
    global _imported, _loaded
    for name, _ in list(pm.list_name_plugin()):
        pm.unregister(name=name)
    _plugins.clear()
    for registry in _REGISTRIES.values():
        registry.clear()
    _imported = _loaded = False


def plugin_infos() -> list[PluginInfo]:
    load_plugins()
    return sorted(_plugins.values(), key=lambda info: info.name)


def plugin_failures() -> dict[str, str]:
    load_plugins()
    return {info.name: info.error for info in _plugins.values() if info.error}


def provenance(kind: str, name: str) -> dict[str, str | None]:
    """Which plugin (and distribution, version) registered `name` in registry `kind`: saved in
    config.json so a checkpoint can say what to install when that plugin is missing."""
    plugin = registry(kind).entry(name).plugin
    info = _plugins.get(plugin)
    return {"name": name, "plugin": plugin, "distribution": info.distribution if info else None, "version": info.version if info else None}


def missing_plugin_hint(kind: str, name: str, recorded: dict[str, Any] | None) -> str | None:
    """What to install for a `kind` entry `name` that a checkpoint used and this machine lacks."""
    load_plugins()
    if name in _REGISTRIES[kind] or not recorded:
        return None
    plugin, dist, version = recorded.get("plugin"), recorded.get("distribution"), recorded.get("version")
    install = f"pip install '{dist}=={version}'" if dist and version else f"install the package that provides the ganzoo plugin {plugin!r}"
    return f"{ENTRY_NOUNS[kind]} {name!r} came from plugin {plugin!r} ({dist or 'unknown distribution'} {version or ''}), which is not installed here: {install}"


def plugin_versions() -> dict[str, str]:
    """Versions of the plugins that loaded; saved in every checkpoint's config.json."""
    load_plugins()
    return {info.name: info.version for info in _plugins.values() if not info.error}


def registry(kind: str) -> Registry:
    """The registry for `kind` (a key of REGISTRY_HOOKS, e.g. 'architectures'), loaded."""
    load_plugins()
    return _REGISTRIES[kind]
