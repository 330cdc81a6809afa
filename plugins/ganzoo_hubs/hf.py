"""The `hf-hub:` backend: the Hugging Face Hub through `huggingface_hub` (the `ganzoo[hub]` extra).

A ganzoo checkpoint directory is already a Hub model repository (config.json,
model.safetensors, README.md); a push adds manifest.json and samples.png in one commit
and tags it with the version. A pull resolves the revision to one commit first, so every
file comes from the same commit, and the kernel verifies each against the manifest.
Downloads stream into a file that refuses to grow past the manifest's size for it, so a
broken or hostile server cannot fill the disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from pathlib import Path
from typing import Any, Iterator

from ganzoo.api import (
    MANIFEST_FILE,
    MAX_MANIFEST_BYTES,
    CheckpointError,
    GanzooError,
    HubBackend,
    __version__,
    write_manifest,
)

EXTRA_HINT = "pip install 'ganzoo[hub]'"
HTTP_CONFLICT = 409


def import_hf() -> Any:
    """huggingface_hub, imported only when an hf-hub location is used."""
    try:
        import huggingface_hub
        import huggingface_hub.file_download  # noqa: F401  (http_get: a streamed download we can cap)
        import huggingface_hub.utils  # noqa: F401  (its error classes exist in every release we support)
    except ImportError:
        raise GanzooError(f"hf-hub locations need the optional huggingface_hub package: {EXTRA_HINT}") from None
    return huggingface_hub


class HfHub(HubBackend):
    """The Hugging Face Hub, or any Hub-compatible server given as `hf-hub:https://host`."""

    scheme = "hf-hub"
    pins_versions = False
    name_segments = 2

    def __init__(self, address: str) -> None:
        if address and not address.startswith(("http://", "https://")):
            raise GanzooError(f"hf-hub:{address} is not an endpoint; use hf-hub, or hf-hub:https://host")
        super().__init__(address.rstrip("/"))

    @classmethod
    def from_location(cls, address: str) -> tuple[HubBackend, str]:
        """`hf-hub:ORG/NAME[@REVISION]` on `$HF_ENDPOINT` (default huggingface.co)."""
        return cls(""), address

    @property
    def endpoint(self) -> str | None:
        """Read at call time, so `$HF_ENDPOINT` set after import still counts."""
        return self.address or os.environ.get("HF_ENDPOINT") or None

    def cache_key(self) -> str:
        endpoint = self.endpoint or "https://huggingface.co"
        return f"{self.scheme}-{hashlib.sha256(endpoint.encode()).hexdigest()[:16]}"

    def location(self, ref: str) -> str:
        return f"{self.scheme}:{ref}"

    def _api(self) -> Any:
        return import_hf().HfApi(endpoint=self.endpoint, library_name="ganzoo", library_version=__version__)

    def publish(self, staged: Path, name: str, version: str | None) -> str:
        hf = import_hf()
        api = self._api()
        repo = _repo_id(name)
        with _hf_errors(f"hf-hub:{repo}"):
            api.create_repo(repo, repo_type="model", private=True, exist_ok=True)
            tags = {ref.name for ref in api.list_repo_refs(repo).tags}
            if version is None:
                version = str(max((int(t) for t in tags if t.isdigit()), default=0) + 1)
            elif version in tags:
                raise GanzooError(f"hf-hub:{repo}@{version} already exists; pushed versions are immutable, push a new version")
            write_manifest(staged, repo, version)
            operations = [hf.CommitOperationAdd(path_in_repo=p.name, path_or_fileobj=str(p)) for p in sorted(staged.iterdir())]
            commit = api.create_commit(repo, operations=operations, commit_message=f"ganzoo hub push {repo}@{version}")
            try:
                api.create_tag(repo, tag=version, revision=commit.oid)
            except hf.utils.HfHubHTTPError as error:
                if getattr(error.response, "status_code", None) == HTTP_CONFLICT:
                    raise GanzooError(
                        f"hf-hub:{repo}@{version} was taken by a concurrent push; your files are in commit {commit.oid}"
                    ) from None
                raise
        return version

    def resolve(self, name: str, version: str | None) -> str:
        hf = import_hf()
        repo, revision = _repo_id(name), version or "main"
        url = hf.hf_hub_url(repo, MANIFEST_FILE, revision=revision, endpoint=self.endpoint)
        with _hf_errors(f"hf-hub:{repo}@{revision}"):
            metadata = hf.get_hf_file_metadata(url)
        if not metadata.commit_hash:
            raise GanzooError(f"{self.endpoint or 'the Hub'} did not name the commit of hf-hub:{repo}@{revision}")
        return str(metadata.commit_hash)

    def fetch(self, name: str, snapshot: str, filename: str, dest: Path, size: int | None = None) -> None:
        """Stream one file of the commit into `dest`, stopping at the first byte past `size`
        (the manifest's size; `MAX_MANIFEST_BYTES` for the manifest itself)."""
        hf = import_hf()
        repo = _repo_id(name)
        where = f"hf-hub:{repo}@{snapshot}"
        if filename == MANIFEST_FILE:
            size = MAX_MANIFEST_BYTES if size is None else min(size, MAX_MANIFEST_BYTES)
            refusal = f"{where}: {filename} is over {size} bytes; refused"
        else:
            refusal = f"{where}: {filename} is over {size} bytes, the manifest says {size}; refused"
        url = hf.hf_hub_url(repo, filename, revision=snapshot, endpoint=self.endpoint)
        headers = hf.utils.build_hf_headers(library_name="ganzoo", library_version=__version__)
        out = CappedFile(dest, size, refusal)
        try:
            with out, _hf_errors(where):
                hf.file_download.http_get(url, out, headers=headers, displayed_filename=filename)
        except BaseException:
            dest.unlink(missing_ok=True)
            raise


class CappedFile(io.FileIO):
    """A new file that refuses to grow past `limit` bytes (None: no limit) with CheckpointError."""

    def __init__(self, path: Path, limit: int | None, refusal: str) -> None:
        super().__init__(path, "xb")
        self.limit = limit
        self.refusal = refusal

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        if self.limit is not None and self.tell() + len(view) > self.limit:
            raise CheckpointError(self.refusal)
        written = 0
        while written < len(view):
            written += super().write(view[written:])
        return written


def _repo_id(name: str) -> str:
    if name.count("/") != 1:
        raise GanzooError(f"hf-hub models are named ORG/NAME, got {name!r}")
    return name


@contextlib.contextmanager
def _hf_errors(where: str) -> Iterator[None]:
    """Turn huggingface_hub's exceptions into one clear GanzooError line."""
    hf = import_hf()
    errors = hf.utils
    newer = getattr(hf, "errors", None)  # huggingface_hub >= 1.0 splits remote and local misses
    remote_missing = getattr(newer, "RemoteEntryNotFoundError", errors.EntryNotFoundError)
    transport = getattr(newer, "HTTPError", OSError)
    try:
        yield
    except errors.LocalEntryNotFoundError:
        raise GanzooError(f"{where}: the Hub cannot be reached and nothing is cached") from None
    except errors.RepositoryNotFoundError:
        raise GanzooError(f"{where}: repository not found (or private without a token)") from None
    except errors.RevisionNotFoundError:
        raise GanzooError(f"{where}: no such revision or version") from None
    except remote_missing:
        raise CheckpointError(
            f"{where} has no {MANIFEST_FILE} (or lacks a file it lists); only models pushed with "
            "`ganzoo hub push` can be pulled, since every file is verified against that manifest"
        ) from None
    except (errors.HfHubHTTPError, transport, OSError, ValueError) as error:
        text = str(error).strip()
        raise GanzooError(f"{where}: {text.splitlines()[0] if text else type(error).__name__}") from None
