"""Share checkpoints through model hubs: `hub:NAME[@VERSION]`, `local-dir:HUB/NAME`, `hf-hub:ORG/NAME`.

A pushed model is a checkpoint directory (the generator by default, never trainer state), a
model card, a sample grid and `manifest.json` (every file's sha256 and size). Hub backends
are plugins that only move bytes; this module stages pushes and verifies pulls, so every
backend gets the same guarantees: only files the manifest lists, only `.safetensors`,
`.json`, `.md` and `.png` files, every sha256 matched and every safetensors header checked
before anything is loaded. Nothing is ever unpickled.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .audits import audit_matching
from .cache_entries import entry_path, pin_entry, remove_entry
from .caches import write_entry
from .card import model_card
from .checkpoint import find_checkpoint, load_gan, read_config, write_checkpoint
from .errors import CheckpointError, GanzooError
from .images import to_uint8, write_grid
from .locations import HubBackend, ModelRef, ModelVersion, get_hub, is_location, location_of, target
from .locations import validate_version
from .manifest import MANIFEST_FILE, MAX_MANIFEST_BYTES, read_manifest, verify_file, verify_snapshot
from .paths import cache_dir

SAMPLES_FILE = "samples.png"
PULLS = "hub-pulls"
SAMPLE_GRID = 16
SAMPLE_KEYS = ("samples", "n_samples", "num_samples")  # generated images; evaluate's n_fake is kept as is


@dataclass
class ModelInfo:
    """What `ganzoo hub show` prints: the verified card, its front matter and metrics."""

    name: str
    version: str
    location: str
    card: str
    front_matter: dict[str, Any]
    metrics: dict[str, Any]
    manifest: dict[str, Any] = field(repr=False)


# -- push -------------------------------------------------------------------------------


def _shareable_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config minus local paths (where the hospital's images or the run lived): not needed to sample."""
    shared = copy.deepcopy(config)
    if isinstance(shared.get("dataset"), dict):
        shared["dataset"]["path"] = None
        if isinstance(shared["dataset"].get("split"), dict):
            shared["dataset"]["split"]["file"] = None  # its sha256 still names the split
    if isinstance(shared.get("training"), dict):
        for key in ("data", "out", "resume", "split"):
            if key in shared["training"]:
                shared["training"][key] = None
    shared.pop("components", None)
    return shared


def normalize_metrics(metrics: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The card's form of metrics given as `{"fid": 41.2}`, `{"fid": {"value": 41.2, "samples": 5000}}`
    or the report `ganzoo evaluate --json` writes (`{"metrics": {"fid": {"value", "n_fake",
    "n_real", extras}}, ...}`): each a value, its sample counts and its scalar extras."""
    metrics = metrics or {}
    if isinstance(metrics.get("metrics"), dict) and "value" not in metrics["metrics"]:
        metrics = metrics["metrics"]  # an evaluate report: the rest says how, not what, was measured
    out: dict[str, dict[str, Any]] = {}
    for key, value in metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[str(key)] = {"value": float(value)}
            continue
        if not isinstance(value, dict) or not isinstance(value.get("value"), (int, float)):
            raise GanzooError(
                f"metric {key!r} must be a number or {{'value': number, 'samples': count}} "
                f"(or give the JSON `ganzoo evaluate --json` writes), got {value!r}"
            )
        entry: dict[str, Any] = {"value": float(value["value"])}
        samples = next((value[k] for k in SAMPLE_KEYS if value.get(k) is not None), None)
        if samples is not None:
            entry["samples"] = int(samples)
        for extra_key, extra in value.items():
            if extra_key not in ("value", *SAMPLE_KEYS) and isinstance(extra, (str, int, float, bool)):
                entry[str(extra_key)] = extra
        out[str(key)] = entry
    return out


def sample_counts(entry: dict[str, Any]) -> tuple[Any, Any]:
    """(generated, real) image counts of a card's metric entry; "unknown" where not recorded."""
    return entry.get("samples", entry.get("n_fake", "unknown")), entry.get("n_real", "unknown")


def audit_front_matter(audit: dict[str, Any]) -> dict[str, Any]:
    """An audit summary's scalar fields for the card's front matter (not its Markdown or local paths)."""
    return {k: v for k, v in audit.items() if k not in ("markdown", "source") and (v is None or isinstance(v, (str, int, float, bool)))}


def audit_section(audit: dict[str, Any] | None) -> list[str]:
    """The card's memorization-audit section: the audit's own summary, or that none was supplied."""
    lines = ["## Memorization audit", ""]
    if audit is None:
        return lines + ["No audit was supplied with this push (`ganzoo audit`, then `ganzoo hub push --audit DIR`).", ""]
    return lines + [(audit.get("markdown") or f"Verdict: {audit['verdict']}.").strip(), ""]


def hub_card(
    config: dict[str, Any], location: str, components: list[str], license: str | None, metrics: dict[str, Any], audit: dict[str, Any] | None = None
) -> str:
    """The checkpoint's model card plus license, metrics, the audit summary, the sample grid and how to load from the hub."""
    extra: dict[str, Any] = {"pipeline_tag": "unconditional-image-generation", "components": components}
    if license:
        extra["license"] = license
    if metrics:
        extra["metrics"] = metrics
    if audit is not None:
        extra["audit"] = audit_front_matter(audit)
    card = model_card(config, extra)
    lines = ["", "## Samples", "", f"![{SAMPLE_GRID} samples, seed 0]({SAMPLES_FILE})", ""]
    if metrics:
        lines += ["## Metrics", "", "| metric | value | generated images | real images |", "| --- | --- | --- | --- |"]
        lines += [f"| {k} | {v['value']:.6g} | {' | '.join(map(str, sample_counts(v)))} |" for k, v in metrics.items()]
        lines.append("")
    lines += audit_section(audit)
    lines += [
        "## Load from the hub",
        "",
        "```python",
        "import ganzoo",
        "",
        f'gan = ganzoo.load("{location}")  # add @VERSION to pin a version',
        "images = gan.sample(16, seed=0)",
        "```",
        "",
        f"or `ganzoo hub pull {location}` and `ganzoo generate {location} -n 16 --out samples/`.",
        "Pulls verify every file's sha256 against `manifest.json`; weights are safetensors, so loading runs no code.",
        "",
        f"License: {license or 'not stated by the uploader'}.",
        "",
    ]
    return card + "\n".join(lines)


def stage(
    checkpoint: str | Path,
    directory: Path,
    location: str,
    include_discriminator: bool = False,
    license: str | None = None,
    metrics: dict[str, Any] | None = None,
    seed: int = 0,
    audit: dict[str, Any] | None = None,
) -> Path:
    """Write what a push publishes into `directory`: weights, config, card, sample grid (no manifest).

    `audit` is an audit summary (`ganzoo.audits.read_audit`); it must be of this checkpoint's weights."""
    source = resolve_checkpoint(checkpoint)
    if audit is not None:
        audit = audit_matching(audit, source)
    gan = load_gan(source)
    config = read_config(source)
    components = ["generator"]
    if include_discriminator:
        components.append("discriminator")
    if gan.generator_ema is not None:
        components.append("generator_ema")
    if include_discriminator and "discriminator" not in config.get("components", ["discriminator"]):
        raise GanzooError(f"{source} holds no discriminator to include")
    metrics = {**normalize_metrics(config.get("metrics")), **normalize_metrics(metrics)}
    config = _shareable_config(config)
    card = hub_card(config, location, components, license, metrics, audit)
    write_checkpoint(directory, gan, config, card, components=components)
    write_grid(directory / SAMPLES_FILE, to_uint8(gan.sample(SAMPLE_GRID, seed=seed)))
    return directory


def push(
    checkpoint: str | Path,
    name: str,
    hub: str | None = None,
    *,
    include_discriminator: bool = False,
    license: str | None = None,
    metrics: dict[str, Any] | None = None,
    seed: int = 0,
    audit: dict[str, Any] | None = None,
) -> ModelRef:
    """Publish a checkpoint (generator only unless `include_discriminator`) as `NAME[@VERSION]`.

    `name` may also be a full location such as `hf-hub:org/name`. Without a version the
    next integer version is used; an existing version is never overwritten. `audit`, an
    audit summary of this checkpoint, goes into the model card.
    """
    backend, name, version = target(name, hub)
    if not license:
        warnings.warn("no license given; the model card will not state one (use --license)", stacklevel=2)
    if audit is None:
        warnings.warn("no memorization audit given; the model card will say the model was not audited (`ganzoo audit`, then --audit DIR)", stacklevel=2)
    staging = Path(tempfile.mkdtemp(dir=cache_dir("hub-staging"), prefix="push-"))
    try:
        staged = stage(
            checkpoint,
            staging / "model",
            location_of(backend, name),
            include_discriminator=include_discriminator,
            license=license,
            metrics=metrics,
            seed=seed,
            audit=audit,
        )
        version = backend.publish(staged, name, version)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    ref = f"{name}@{version}"
    return ModelRef(hub=backend.uri, name=name, version=version, location=location_of(backend, ref))


# -- pull -------------------------------------------------------------------------------


def _fetch_verified(backend: HubBackend, name: str, snapshot: str, dest: Path, only: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Fetch the manifest, check it, then fetch and verify the files it lists (or `only` those)."""
    backend.fetch(name, snapshot, MANIFEST_FILE, dest / MANIFEST_FILE, MAX_MANIFEST_BYTES)
    manifest = read_manifest(dest, *_identity(backend, name, snapshot))
    for filename, entry in manifest["files"].items():
        if only is None or filename in only:
            backend.fetch(name, snapshot, filename, dest / filename, entry["size"])
            verify_file(dest, filename, entry)
    return manifest


def pull(location: str, hub: str | None = None, *, force: bool = False) -> Path:
    """Fetch a model into the local cache, verify every file, and return the checkpoint directory.

    The copy is pinned (cache `hub-pulls`): no other ganzoo process clears or evicts it while
    this one runs. With `force`, it is downloaded again even when a verified copy is there.
    """
    backend, name, version = target(location, hub)
    snapshot = validate_version(backend.resolve(name, version))
    key = f"{backend.cache_key()}/{name}/{snapshot}"
    if force:
        remove_entry(PULLS, key, even_in_use=True)
    elif (cached := _cached(backend, key, name)) is not None:
        return cached
    where = location_of(backend, f"{name}@{snapshot}")
    details = {"location": where, "hub": backend.uri, "name": name, "snapshot": snapshot}
    with write_entry(PULLS, key, f"{where} (pulled and verified)", details, pin=True) as tmp:
        tmp.mkdir()
        _fetch_verified(backend, name, snapshot, tmp)
        verify_snapshot(tmp, *_identity(backend, name, snapshot))
    return entry_path(PULLS, key)


def _identity(backend: HubBackend, name: str, snapshot: str) -> tuple[str | None, str | None]:
    """The name and version a manifest must repeat: only where versions are immutable directories."""
    return (name, snapshot) if backend.pins_versions else (None, None)


def _cached(backend: HubBackend, key: str, name: str) -> Path | None:
    """A pinned cached pull that still verifies; a bad copy warns, is removed and pulled again."""
    entry = pin_entry(PULLS, key)
    if entry is None:
        return None
    try:
        verify_snapshot(entry.path, *_identity(backend, name, entry.path.name))
        return entry.path
    except CheckpointError as error:
        warnings.warn(f"cached copy {entry.path} failed verification ({error}); pulling it again", stacklevel=3)
        remove_entry(PULLS, key, even_in_use=True)
        return None


def load(location: str, hub: str | None = None, device: str = "cpu") -> Any:
    """Pull (verified) and load a hub model as a GAN."""
    return load_gan(pull(location, hub), device=device)


def resolve_checkpoint(location: str | Path) -> Path:
    """A checkpoint directory for a path (a run directory means its last checkpoint) or a hub
    location (pulled and verified first): what every command that reads a model calls."""
    return find_checkpoint(pull(str(location)) if is_location(location) else Path(location))


def load_checkpoint(location: str | Path, device: str | Any = "cpu") -> Any:
    """`ganzoo.load`: the GAN at a path or hub location, rebuilt from its config.json."""
    return load_gan(resolve_checkpoint(location), device=device)


def list_models(hub: str | None = None) -> list[ModelVersion]:
    """Every version on a hub, by name then publication time."""
    return get_hub(hub).models()


def front_matter(card: str) -> dict[str, Any]:
    """The YAML front matter of a model card (safe_load: plain data only)."""
    if not card.startswith("---\n"):
        return {}
    end = card.find("\n---", 4)
    data = yaml.safe_load(card[4:end]) if end > 0 else None
    return data if isinstance(data, dict) else {}


def show(location: str, hub: str | None = None) -> ModelInfo:
    """A model's verified card and metrics, fetching only the manifest and README.md."""
    backend, name, version = target(location, hub)
    snapshot = validate_version(backend.resolve(name, version))
    with tempfile.TemporaryDirectory(dir=cache_dir("hub-staging"), prefix="show-") as tmp:
        manifest = _fetch_verified(backend, name, snapshot, Path(tmp), only=("README.md",))
        card = (Path(tmp) / "README.md").read_text(encoding="utf-8") if "README.md" in manifest["files"] else ""
    meta = front_matter(card)
    shown = str(manifest.get("version") or snapshot)
    return ModelInfo(
        name=name,
        version=shown,
        location=location_of(backend, f"{name}@{shown}"),
        card=card,
        front_matter=meta,
        metrics=meta.get("metrics") or {},
        manifest=manifest,
    )
