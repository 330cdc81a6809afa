"""The audit contract: `ganzoo.audit(...)` runs a registered audit, and an audit's summary
travels into model cards (`hub push --audit DIR`) and warnings (`augment`).

An audit plugin registers a function (hook `ganzoo_register_audits`) and writes `audit.json`,
whose `summary` holds at least `verdict` (one line), `flagged` and `generated` (counts) and
`model_sha256` (the sha256 of the audited `model.safetensors`, null for a folder of images);
`markdown` (a short block for model cards) and other scalar fields are optional. The kernel
knows nothing else about audits. The latest summary of each model is recorded by that sha256
under `$GANZOO_HOME/audits/`, so a command that uses the model finds its audit untold.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from .checkpoint import WEIGHTS_FILE, find_checkpoint
from .errors import GanzooError
from .paths import atomic_write_text, dump_json, file_sha256, ganzoo_home
from .plugins import registry

AUDIT_FILE = "audit.json"
DEFAULT_AUDIT = "memorization"
REQUIRED = {"verdict": str, "flagged": int, "generated": int}


def run_audit(*args: Any, kind: str = DEFAULT_AUDIT, **kwargs: Any) -> dict[str, Any]:
    """Run the audit registered as `kind` (e.g. `memorization`, from `ganzoo audit`) and return its report."""
    return registry("audits").get(kind)(*args, **kwargs)


def model_sha256(checkpoint: str | Path) -> str:
    """sha256 of a checkpoint's weights file: what ties an audit to the model it audited.
    `checkpoint` is a local checkpoint or run directory (`resolve_checkpoint` for hub locations)."""
    return file_sha256(find_checkpoint(checkpoint) / WEIGHTS_FILE)


def check_summary(summary: Any, where: str) -> dict[str, Any]:
    """An audit summary as the contract says, or a GanzooError naming what is wrong."""
    if not isinstance(summary, Mapping):
        raise GanzooError(f"{where} has no audit summary (a JSON object under 'summary')")
    for key, kind in REQUIRED.items():
        value = summary.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise GanzooError(f"{where}: audit summary field {key!r} must be a {kind.__name__}, got {value!r}")
    sha = summary.get("model_sha256")
    if sha is not None and not isinstance(sha, str):
        raise GanzooError(f"{where}: audit summary field 'model_sha256' must be a string or null")
    if not isinstance(summary.get("markdown", ""), str):
        raise GanzooError(f"{where}: audit summary field 'markdown' must be text")
    return dict(summary)


def read_audit(path: str | Path) -> dict[str, Any]:
    """The summary of an audit: a directory holding `audit.json`, or the file itself."""
    path = Path(path).expanduser()
    file = path / AUDIT_FILE if path.is_dir() else path
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as error:
        raise GanzooError(f"cannot read the audit {file}: {error.strerror or error} (run `ganzoo audit ... --out DIR` first)") from None
    except ValueError as error:
        raise GanzooError(f"{file} is not valid JSON: {error}") from None
    summary = check_summary(data.get("summary") if isinstance(data, dict) else None, str(file))
    return {**summary, "source": str(file)}


def _record_path(sha: str) -> Path:
    if not sha.isalnum():
        raise GanzooError(f"not a sha256: {sha!r}")
    return ganzoo_home() / "audits" / f"{sha}.json"


def record_audit(summary: Mapping[str, Any]) -> Path | None:
    """Remember an audit summary as the latest one of its model (none for a folder of images)."""
    summary = check_summary(summary, "the audit")
    if not summary.get("model_sha256"):
        return None
    path = _record_path(summary["model_sha256"])
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, dump_json({"summary": summary}))
    return path


def audit_of(checkpoint: str | Path, path: str | Path | None = None) -> dict[str, Any] | None:
    """The audit summary of a checkpoint: the one at `path` (which must be of this model), else
    the latest recorded one, else None."""
    if path is None:
        record = _record_path(model_sha256(checkpoint))
        return read_audit(record) if record.is_file() else None
    return audit_matching(read_audit(path), checkpoint)


def audit_matching(summary: Mapping[str, Any], checkpoint: str | Path) -> dict[str, Any]:
    """`summary`, checked to be an audit of this checkpoint's weights (not another model's)."""
    summary = check_summary(summary, "the audit")
    sha = model_sha256(checkpoint)
    if summary.get("model_sha256") != sha:
        audited = f"model {str(summary['model_sha256'])[:12]}" if summary.get("model_sha256") else "a folder of images"
        where = summary.get("source", "the audit")
        raise GanzooError(f"{where} is an audit of {audited}, not of {checkpoint} (weights sha256 {sha[:12]})")
    return summary
