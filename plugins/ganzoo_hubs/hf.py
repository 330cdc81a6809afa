"""The `hf-hub:` backend: the Hugging Face Hub through `huggingface_hub` (the `ganzoo[hub]` extra).

A ganzoo checkpoint directory is already a Hub model repository (config.json,
model.safetensors, README.md); a push adds manifest.json and samples.png in one commit
and tags it with the version. A pull resolves the revision to one commit first, so every
file comes from the same commit, and ganzoo.hub verifies each against the manifest.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

from ganzoo import __version__
from ganzoo.errors import CheckpointError, GanzooError
from ganzoo.hub import MANIFEST_FILE, HubBackend, write_manifest

EXTRA_HINT = "pip install 'ganzoo[hub]'"
HTTP_CONFLICT = 409


def import_hf() -> Any:
    """huggingface_hub, imported only when an hf-hub location is used."""
    try:
        import huggingface_hub
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
        import hashlib

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
        hf = import_hf()
        repo = _repo_id(name)
        with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".hf-download-") as tmp:
            with _hf_errors(f"hf-hub:{repo}@{snapshot}"):
                path = hf.hf_hub_download(
                    repo,
                    filename,
                    revision=snapshot,
                    local_dir=tmp,
                    endpoint=self.endpoint,
                    library_name="ganzoo",
                    library_version=__version__,
                )
            shutil.move(str(Path(path).resolve()), str(dest))


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
