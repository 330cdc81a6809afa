"""Hub manifests: every file's sha256 and size, written on push and verified on pull.

Only plain file names with the allowed suffixes, every sha256 matched and every safetensors
header checked before anything is loaded; nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
import re
import stat
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .checkpoint import check_safetensors_header
from .errors import CheckpointError
from .paths import dump_json, file_sha256
from .version import __version__

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1
ALLOWED_SUFFIXES = (".safetensors", ".json", ".md", ".png")
REQUIRED_FILES = ("config.json", "model.safetensors")
MAX_MANIFEST_BYTES = 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FILE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")


def check_filename(filename: Any, where: str) -> str:
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
        check_filename(path.name, str(directory))
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
        check_filename(filename, str(path))
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


