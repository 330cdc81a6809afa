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
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import yaml

from . import __version__
from .errors import CheckpointError, GanzooError
from .paths import cache_dir, dump_json, file_sha256, fsync_dir, ganzoo_home

MANIFEST_FILE = "manifest.json"
SAMPLES_FILE = "samples.png"
MANIFEST_FORMAT = 1
ALLOWED_SUFFIXES = (".safetensors", ".json", ".md", ".png")
REQUIRED_FILES = ("config.json", "model.safetensors")
MAX_MANIFEST_BYTES = 1024 * 1024
DEFAULT_SCHEME = "hub"
SAMPLE_GRID = 16
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# A scheme is two or more lowercase characters, so a Windows drive letter is never one.
SCHEME_PATTERN = re.compile(r"^([a-z0-9][a-z0-9-]*[a-z0-9]):(.*)$", re.DOTALL)
SEGMENT_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
FILE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class ModelRef:
    """Where a pushed model now lives; `location` is what `ganzoo.load` accepts."""

    hub: str
    name: str
    version: str
    location: str


@dataclass(frozen=True)
class ModelVersion:
    """One row of `ganzoo hub list`."""

    name: str
    version: str
    created: str | None
    size: int
    ganzoo_version: str | None


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


class HubBackend:
    """What a hub plugin registers with `register(scheme, cls)`: it moves bytes, never trusts them.

    `cls(address)` is the hub of the URI `scheme:address`; `cls.from_location(address)`
    splits a model location `scheme:address` into that hub and `NAME[@VERSION]`.
    """

    scheme: ClassVar[str] = ""
    #: True when a version is an immutable directory whose manifest must repeat its name and version.
    pins_versions: ClassVar[bool] = True
    #: How many `/`-separated segments a model name may have (2 allows `org/name`).
    name_segments: ClassVar[int] = 1

    def __init__(self, address: str) -> None:
        self.address = address

    @classmethod
    def from_location(cls, address: str) -> tuple[HubBackend, str]:
        raise GanzooError(f"{cls.scheme}: names a hub, not a model; use `hub:NAME` with --hub {cls.scheme}:...")

    @property
    def uri(self) -> str:
        return f"{self.scheme}:{self.address}"

    def cache_key(self) -> str:
        """A directory name for this hub's pulls: which hub a cached model came from."""
        return f"{self.scheme}-{hashlib.sha256(self.uri.encode()).hexdigest()[:16]}"

    def location(self, ref: str) -> str:
        """The model location of `NAME[@VERSION]` on this hub."""
        raise NotImplementedError

    def publish(self, staged: Path, name: str, version: str | None) -> str:
        """Publish the files in `staged` as an immutable version; write its manifest; return the version."""
        raise NotImplementedError

    def resolve(self, name: str, version: str | None) -> str:
        """The immutable snapshot id of `version` (the latest when None); it keys the local cache."""
        raise NotImplementedError

    def fetch(self, name: str, snapshot: str, filename: str, dest: Path, size: int | None = None) -> None:
        """Copy one file of a snapshot to `dest` (a file that does not exist yet); never interpret it."""
        raise NotImplementedError

    def models(self) -> list[ModelVersion]:
        """Every version of every model on this hub."""
        raise GanzooError(f"the {self.scheme} hub cannot list its models")


# -- names and locations ----------------------------------------------------------------


def validate_name(name: str, segments: int = 1) -> str:
    """Refuse anything that could leave a hub directory: `..`, absolute paths, odd characters."""
    parts = name.split("/") if isinstance(name, str) else [None]
    if not (1 <= len(parts) <= segments) or not all(isinstance(p, str) and SEGMENT_PATTERN.match(p) for p in parts):
        shape = "NAME or ORG/NAME" if segments > 1 else "NAME"
        raise GanzooError(
            f"invalid model name {name!r}: use {shape} made of letters, digits, '.', '_' and '-', "
            "starting with a letter or digit (no '..', no absolute paths)"
        )
    return name


def validate_version(version: str) -> str:
    if not isinstance(version, str) or not VERSION_PATTERN.match(version):
        raise GanzooError(
            f"invalid version {version!r}: use letters, digits, '.', '_' and '-', starting with a letter or digit"
        )
    return version


def split_ref(ref: str) -> tuple[str, str | None]:
    """`NAME@VERSION` -> (NAME, VERSION); `NAME` -> (NAME, None)."""
    name, sep, version = ref.partition("@")
    return name, (validate_version(version) if sep else None)


def default_hub() -> str:
    """`$GANZOO_HUB`, else the directory `$GANZOO_HOME/hub`: the hub `hub:NAME` means."""
    return os.environ.get("GANZOO_HUB") or f"local-dir:{ganzoo_home() / 'hub'}"


def _backend_class(scheme: str) -> type[HubBackend]:
    from .plugins import registry

    hubs = registry("hubs")
    if scheme not in hubs:
        known = ", ".join([DEFAULT_SCHEME, *hubs.list()])
        raise GanzooError(f"unknown hub scheme {scheme!r}; known: {known}")
    return hubs.get(scheme)


def get_hub(uri: str | None = None) -> HubBackend:
    """The backend for a hub URI like `local-dir:/shared/hub` or `hf-hub`; None is the default hub."""
    uri = uri or default_hub()
    match = SCHEME_PATTERN.match(uri) or SCHEME_PATTERN.match(uri + ":")
    if match is None or match.group(1) == DEFAULT_SCHEME:
        raise GanzooError(f"hub {uri!r} is not a hub URI; write local-dir:/path/to/hub, hf-hub or hf-hub:https://host")
    return _backend_class(match.group(1))(match.group(2))


def _target(location: str, hub: str | None) -> tuple[HubBackend, str, str | None]:
    """Split a model location (or a bare `NAME[@VERSION]` on `hub`) into backend, name, version."""
    match = SCHEME_PATTERN.match(location)
    if match is None or match.group(1) == DEFAULT_SCHEME:
        backend, ref = get_hub(hub), (match.group(2) if match else location)
    else:
        if hub is not None:
            raise GanzooError(f"{location!r} already names its hub; drop --hub {hub}")
        backend, ref = _backend_class(match.group(1)).from_location(match.group(2))
    name, version = split_ref(ref)
    return backend, validate_name(name, backend.name_segments), version


def _location(backend: HubBackend, ref: str) -> str:
    """`hub:REF` on the default hub, else the backend's own spelling of the location."""
    try:
        is_default = backend.uri == get_hub().uri
    except GanzooError:
        is_default = False
    return f"{DEFAULT_SCHEME}:{ref}" if is_default else backend.location(ref)


def is_location(location: str | Path) -> bool:
    """True for `scheme:...` strings; a Path is always a path (write `./a:b` for a folder named `a:b`)."""
    return isinstance(location, str) and SCHEME_PATTERN.match(location) is not None


def resolve_location(location: str | Path) -> Path:
    """A local checkpoint directory for a path or a hub location; hub models are pulled and verified."""
    if not is_location(location):
        return Path(location)
    return pull(str(location))


# -- manifests and verification ---------------------------------------------------------


def _check_filename(filename: Any, where: str) -> str:
    if not isinstance(filename, str) or not FILE_PATTERN.match(filename) or filename == MANIFEST_FILE:
        raise CheckpointError(f"{where} lists {filename!r}: a hub model holds plain file names only")
    if not filename.endswith(ALLOWED_SUFFIXES):
        raise CheckpointError(
            f"{where} lists {filename!r}: only {', '.join(ALLOWED_SUFFIXES)} files are accepted "
            "(.pt/.bin/.pkl files can hold pickled code and are never pulled)"
        )
    return filename


def file_entries(directory: Path) -> dict[str, dict[str, Any]]:
    """sha256 and size of every file in `directory`, refusing anything a pull would refuse."""
    entries = {}
    for path in sorted(Path(directory).iterdir()):
        if path.name == MANIFEST_FILE:
            continue
        _check_filename(path.name, str(directory))
        if not stat.S_ISREG(path.lstat().st_mode):
            raise CheckpointError(f"{path} is not a regular file")
        entries[path.name] = {"sha256": file_sha256(path), "size": path.stat().st_size}
    return entries


def write_manifest(directory: Path, name: str, version: str, files: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Write `manifest.json` for the files in `directory`; backends call it once the version is known."""
    manifest = {
        "format": MANIFEST_FORMAT,
        "name": name,
        "version": version,
        "ganzoo_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
        "files": files if files is not None else file_entries(directory),
    }
    path = Path(directory) / MANIFEST_FILE
    path.write_text(dump_json(manifest))
    with open(path, "rb") as f:
        os.fsync(f.fileno())
    return manifest


def read_manifest(directory: Path, name: str | None = None, version: str | None = None) -> dict[str, Any]:
    """Parse and check a manifest: sane size, plain allowed file names, the expected name and version."""
    path = Path(directory) / MANIFEST_FILE
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise CheckpointError(f"{directory} has no {MANIFEST_FILE}; hub models are verified against it") from None
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_MANIFEST_BYTES:
        raise CheckpointError(f"{path} is not a plain file under {MAX_MANIFEST_BYTES} bytes")
    try:
        manifest = json.loads(path.read_bytes())
    except ValueError as error:
        raise CheckpointError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise CheckpointError(f"{path} lacks a 'files' table")
    if manifest.get("format", 0) > MANIFEST_FORMAT:
        raise CheckpointError(f"{path} was written by a newer ganzoo (manifest format {manifest['format']}); upgrade ganzoo")
    for filename, entry in manifest["files"].items():
        _check_filename(filename, str(path))
        if (
            not isinstance(entry, dict)
            or not SHA256_PATTERN.match(str(entry.get("sha256")))
            or not isinstance(entry.get("size"), int)
            or entry["size"] < 0
        ):
            raise CheckpointError(f"{path}: the entry of {filename!r} needs a sha256 and a size")
    missing = [f for f in REQUIRED_FILES if f not in manifest["files"]]
    if missing:
        raise CheckpointError(f"{path} does not list {', '.join(missing)}")
    if name is not None and manifest.get("name") != name:
        raise CheckpointError(f"{path} describes model {manifest.get('name')!r}, not {name!r}")
    if version is not None and str(manifest.get("version")) != version:
        raise CheckpointError(f"{path} describes version {manifest.get('version')!r}, not {version!r}")
    return manifest


def verify_file(directory: Path, filename: str, entry: dict[str, Any]) -> None:
    """Size, sha256 and format checks of one file against its manifest entry."""
    path = Path(directory) / filename
    try:
        info = path.lstat()
    except FileNotFoundError:
        raise CheckpointError(f"{filename} is listed in the manifest but missing") from None
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(f"{filename} is not a regular file (a symlink?); refused")
    if info.st_size != entry["size"]:
        raise CheckpointError(f"{filename} is {info.st_size} bytes, the manifest says {entry['size']}; refused")
    digest = file_sha256(path)
    if digest != entry["sha256"]:
        raise CheckpointError(
            f"{filename} does not match the manifest (sha256 {digest[:12]}..., expected {entry['sha256'][:12]}...): "
            "it changed after it was pushed; refused"
        )
    if filename.endswith(".safetensors"):
        from .checkpoint import check_safetensors_header

        check_safetensors_header(path)
    elif filename.endswith(".png"):
        with open(path, "rb") as f:
            if f.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
                raise CheckpointError(f"{filename} is not a PNG file; refused")
    elif filename.endswith(".json"):
        try:
            json.loads(path.read_bytes())
        except ValueError:
            raise CheckpointError(f"{filename} is not valid JSON; refused") from None


def verify_snapshot(directory: Path, name: str | None = None, version: str | None = None) -> dict[str, Any]:
    """Check a pulled directory holds exactly its manifest's files, each matching; returns the manifest."""
    manifest = read_manifest(directory, name, version)
    extra = sorted(p.name for p in Path(directory).iterdir() if p.name != MANIFEST_FILE and p.name not in manifest["files"])
    if extra:
        raise CheckpointError(f"{directory} holds files the manifest does not list: {', '.join(extra)}")
    for filename, entry in manifest["files"].items():
        verify_file(directory, filename, entry)
    return manifest


# -- push -------------------------------------------------------------------------------


def _shareable_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config minus local paths (where the hospital's images or the run lived): not needed to sample."""
    shared = copy.deepcopy(config)
    if isinstance(shared.get("dataset"), dict):
        shared["dataset"]["path"] = None
    if isinstance(shared.get("training"), dict):
        for key in ("data", "out", "resume"):
            if key in shared["training"]:
                shared["training"][key] = None
    shared.pop("components", None)
    return shared


def normalize_metrics(metrics: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """`{"fid": 41.2}` or `{"fid": {"value": 41.2, "samples": 5000}}` -> the card's form."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in (metrics or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[str(key)] = {"value": float(value)}
            continue
        if not isinstance(value, dict) or not isinstance(value.get("value"), (int, float)):
            raise GanzooError(f"metric {key!r} must be a number or {{'value': number, 'samples': count}}, got {value!r}")
        entry: dict[str, Any] = {"value": float(value["value"])}
        samples = next((value[k] for k in ("samples", "n_samples", "num_samples") if value.get(k) is not None), None)
        if samples is not None:
            entry["samples"] = int(samples)
        for extra_key, extra in value.items():
            if extra_key not in ("value", "samples", "n_samples", "num_samples") and isinstance(extra, (str, int, float, bool)):
                entry[str(extra_key)] = extra
        out[str(key)] = entry
    return out


def hub_card(config: dict[str, Any], location: str, components: list[str], license: str | None, metrics: dict[str, Any]) -> str:
    """The checkpoint's model card plus license, metrics, the sample grid and how to load from the hub."""
    from .card import model_card

    extra: dict[str, Any] = {"pipeline_tag": "unconditional-image-generation", "components": components}
    if license:
        extra["license"] = license
    if metrics:
        extra["metrics"] = metrics
    card = model_card(config, extra)
    lines = ["", "## Samples", "", f"![{SAMPLE_GRID} samples, seed 0]({SAMPLES_FILE})", ""]
    if metrics:
        lines += ["## Metrics", "", "| metric | value | samples |", "| --- | --- | --- |"]
        lines += [f"| {k} | {v['value']:.6g} | {v.get('samples', 'unknown')} |" for k, v in metrics.items()]
        lines.append("")
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
) -> Path:
    """Write what a push publishes into `directory`: weights, config, card, sample grid (no manifest)."""
    import torchvision.utils

    from .checkpoint import load_gan, read_config, resolve_checkpoint, write_checkpoint
    from .data import to_uint8
    from .generate import write_png

    source = resolve_checkpoint(resolve_location(checkpoint))
    gan = load_gan(source)
    config = read_config(source)
    components = ["generator"]
    if include_discriminator:
        components.append("discriminator")
    if gan.generator_ema is not None:
        components.append("generator_ema")
    if include_discriminator and "discriminator" not in config.get("components", ["discriminator"]):
        raise GanzooError(f"{source} holds no discriminator to include")
    metrics = normalize_metrics({**config.get("metrics", {}), **(metrics or {})})
    config = _shareable_config(config)
    card = hub_card(config, location, components, license, metrics)
    write_checkpoint(directory, gan, config, card, components=components)
    images = to_uint8(gan.sample(SAMPLE_GRID, seed=seed))
    write_png(directory / SAMPLES_FILE, torchvision.utils.make_grid(images, nrow=int(SAMPLE_GRID**0.5), padding=2))
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
) -> ModelRef:
    """Publish a checkpoint (generator only unless `include_discriminator`) as `NAME[@VERSION]`.

    `name` may also be a full location such as `hf-hub:org/name`. Without a version the
    next integer version is used; an existing version is never overwritten.
    """
    backend, name, version = _target(name, hub)
    if not license:
        warnings.warn("no license given; the model card will not state one (use --license)", stacklevel=2)
    staging = Path(tempfile.mkdtemp(dir=cache_dir("hub-staging"), prefix="push-"))
    try:
        staged = stage(
            checkpoint,
            staging / "model",
            _location(backend, name),
            include_discriminator=include_discriminator,
            license=license,
            metrics=metrics,
            seed=seed,
        )
        version = backend.publish(staged, name, version)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    ref = f"{name}@{version}"
    return ModelRef(hub=backend.uri, name=name, version=version, location=_location(backend, ref))


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
    """Fetch a model into the local cache, verify every file, and return the checkpoint directory."""
    backend, name, version = _target(location, hub)
    snapshot = validate_version(backend.resolve(name, version))
    final = cache_dir("hub-pulls") / backend.cache_key() / name / snapshot
    if not force and _cached(backend, final, name):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{snapshot}.tmp-"))
    try:
        _fetch_verified(backend, name, snapshot, tmp)
        verify_snapshot(tmp, *_identity(backend, name, snapshot))
        if final.exists():
            if not force and _cached(backend, final, name):
                return final  # a concurrent pull placed it meanwhile; never pull it from under its reader
            old = final.with_name(f".{final.name}.old-{os.getpid()}")
            final.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        try:
            tmp.rename(final)
        except OSError:
            if not final.is_dir():
                raise
        fsync_dir(final.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _identity(backend: HubBackend, name: str, snapshot: str) -> tuple[str | None, str | None]:
    """The name and version a manifest must repeat: only where versions are immutable directories."""
    return (name, snapshot) if backend.pins_versions else (None, None)


def _cached(backend: HubBackend, directory: Path, name: str) -> bool:
    """True when a cached pull is present and still verifies; a bad copy warns and is pulled again."""
    if not directory.is_dir():
        return False
    try:
        verify_snapshot(directory, *_identity(backend, name, directory.name))
        return True
    except CheckpointError as error:
        warnings.warn(f"cached copy {directory} failed verification ({error}); pulling it again", stacklevel=3)
        return False


def load(location: str, hub: str | None = None, device: str = "cpu") -> Any:
    """Pull (verified) and load a hub model as a GAN."""
    from .checkpoint import load_gan

    return load_gan(pull(location, hub), device=device)


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
    backend, name, version = _target(location, hub)
    snapshot = validate_version(backend.resolve(name, version))
    with tempfile.TemporaryDirectory(dir=cache_dir("hub-staging"), prefix="show-") as tmp:
        manifest = _fetch_verified(backend, name, snapshot, Path(tmp), only=("README.md",))
        card = (Path(tmp) / "README.md").read_text(encoding="utf-8") if "README.md" in manifest["files"] else ""
    meta = front_matter(card)
    shown = str(manifest.get("version") or snapshot)
    return ModelInfo(
        name=name,
        version=shown,
        location=_location(backend, f"{name}@{shown}"),
        card=card,
        front_matter=meta,
        metrics=meta.get("metrics") or {},
        manifest=manifest,
    )


__all__ = [
    "HubBackend",
    "ModelInfo",
    "ModelRef",
    "ModelVersion",
    "default_hub",
    "get_hub",
    "list_models",
    "load",
    "pull",
    "push",
    "resolve_location",
    "show",
    "verify_snapshot",
    "write_manifest",
]
