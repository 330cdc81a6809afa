"""docs/plugins.md stays true: every hookspec documented with its exact signature, links
that resolve, and an example plugin that really works."""

from __future__ import annotations

import inspect
import re
import textwrap
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest
import torch

from ganzoo import hookspecs
from ganzoo.hookspecs import Register
from ganzoo.losses import build_loss
from ganzoo.plugins import REGISTRY_HOOKS, pm, register_plugin, registry, unregister_plugin

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "plugins.md"
HEADING = re.compile(r"^#{2,4} `(ganzoo_\w+)(\(.*\)(?: -> .+)?)`\s*$", re.MULTILINE)


def _annotation(annotation: Any) -> str:
    """An annotation as written in hookspecs.py (strings under `from __future__ import annotations`)."""
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def signature_text(function: Callable[..., Any]) -> str:
    """`(register: Register) -> None`, the form docs/plugins.md uses in its hook headings."""
    signature = inspect.signature(function)
    params = []
    for p in signature.parameters.values():
        text = p.name if p.annotation is p.empty else f"{p.name}: {_annotation(p.annotation)}"
        params.append(text if p.default is p.empty else f"{text} = {p.default!r}")
    returns = "" if signature.return_annotation is signature.empty else f" -> {_annotation(signature.return_annotation)}"
    return f"({', '.join(params)}){returns}"


def hookspec_functions() -> dict[str, Callable[..., Any]]:
    return {name: fn for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "ganzoo_spec")}


def documented() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, signature in HEADING.findall(DOCS.read_text(encoding="utf-8")):
        found.setdefault(name, []).append(signature)
    return found


def fenced_block(marker: str, language: str) -> str:
    """The fenced block right after `<!-- tested: MARKER -->`."""
    text = DOCS.read_text(encoding="utf-8")
    match = re.search(rf"<!-- tested: {marker} -->\n```{language}\n(.*?)\n```", text, re.DOTALL)
    assert match, f"docs/plugins.md lacks the {language} block marked {marker!r}"
    return match.group(1)


def test_the_hookspecs_are_found() -> None:
    names = set(hookspec_functions())
    assert names == {name for name in dir(pm.hook) if name.startswith("ganzoo_")}
    assert set(REGISTRY_HOOKS.values()) <= names and "ganzoo_register_commands" in names


@pytest.mark.parametrize("name", sorted(hookspec_functions()))
def test_every_hookspec_is_documented_with_its_exact_signature(name: str) -> None:
    expected = signature_text(hookspec_functions()[name])
    headings = documented().get(name)
    assert headings, f"docs/plugins.md does not document hook {name}; add a heading ### `{name}{expected}`"
    assert headings == [expected], f"docs/plugins.md documents {name}{headings[0]}, but hookspecs.py says {name}{expected}"


def test_no_documented_hook_is_missing_from_the_hookspecs() -> None:
    stale = set(documented()) - set(hookspec_functions())
    assert not stale, f"docs/plugins.md documents hooks that do not exist: {sorted(stale)}"


def test_signature_text_sees_a_changed_signature() -> None:
    """The check itself: a renamed argument or an added one changes the text."""

    def ganzoo_register_things(register: Register, strict: bool = False) -> None:
        """Not a real hook."""

    assert signature_text(ganzoo_register_things) == "(register: Register, strict: bool = False) -> None"
    assert signature_text(hookspecs.ganzoo_register_losses) == "(register: Register) -> None"


def test_relative_links_resolve() -> None:
    text = DOCS.read_text(encoding="utf-8")
    links = [target for target in re.findall(r"\]\(([^)]+)\)", text) if not re.match(r"[a-z]+:", target)]
    assert links
    missing = [target for target in links if not (DOCS.parent / target.split("#")[0]).exists()]
    assert not missing, f"docs/plugins.md links to missing files: {missing}"


def test_example_pyproject_declares_the_entry_point() -> None:
    project = tomllib.loads(fenced_block("example-pyproject", "toml"))["project"]
    assert project["entry-points"]["ganzoo"] == {"lsgan": "ganzoo_lsgan"}


def test_example_plugin_works() -> None:
    module = ModuleType("ganzoo_lsgan")
    exec(compile(textwrap.dedent(fenced_block("example-plugin", "python")), str(DOCS), "exec"), module.__dict__)
    register_plugin(module, name="docs-example")
    try:
        assert registry("losses").entry("lsgan").plugin == "docs-example"
        loss = build_loss("lsgan")
        discriminator = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 1), torch.nn.Flatten(0))
        real, fake = torch.ones(3, 1, 2, 2), torch.zeros(3, 1, 2, 2)
        value, parts = loss.discriminator_loss(discriminator, real, fake)
        assert value.ndim == 0 and set(parts) == {"d_real", "d_fake"}
        assert loss.generator_loss(discriminator, fake).ndim == 0
    finally:
        unregister_plugin("docs-example")
    assert "lsgan" not in registry("losses")
