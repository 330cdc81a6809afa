"""A rebalanced copy of a labelled dataset, with every synthetic file marked as such.

Real files are symlinked (or copied) under their original relative paths; generated images
go to `synthetic/<label>/`. `metadata.csv` carries a `synthetic` column and `manifest.json`
lists every file with its origin and sha256, so no synthetic image can pass for a patient's.
"""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import Any

from ganzoo.api import GanzooError, audit_of, file_sha256, load, logger, read_config, resolve_checkpoint, resolve_device, to_uint8, write_png

from .common import write_csv, write_json
from .records import MANIFEST, Record, read_records

MODES = ("link", "copy")


def augment(
    checkpoint: str | Path,
    data: str | Path,
    label: str,
    to_count: int,
    out: str | Path,
    label_column: str = "label",
    mode: str = "link",
    seed: int = 0,
    device: str = "auto",
    allow_mismatch: bool = False,
    audit: str | Path | None = None,
) -> dict[str, Any]:
    """Write `out`: every real image of `data` plus generated `label` images up to `to_count`; returns the manifest.

    The checkpoint must have been trained on `label` images of `data` (its config.json says so);
    `allow_mismatch` adds another model's images anyway. A memorization audit of the model
    (`audit`, a `ganzoo audit --out` directory, else the latest one recorded for these weights)
    that flagged near-copies is warned about: the added images may reproduce patients' images."""
    if mode not in MODES:
        raise GanzooError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    root, out = Path(data).expanduser().resolve(), Path(out)
    if out.exists() and any(out.iterdir()):
        raise GanzooError(f"{out} is not empty; choose a new output directory")
    if out.resolve().is_relative_to(root):
        raise GanzooError(f"the output {out} must not lie inside the data directory {root}")
    records, _ = read_records(root, label_column)
    if any(r.synthetic for r in records):
        raise GanzooError(f"{root} already holds synthetic images; augment a real dataset")
    have = sum(r.label == label for r in records)
    if have == 0:
        raise GanzooError(f"no image in {root} has {label_column} {label!r}; labels: {', '.join(sorted({r.label for r in records}))}")
    missing = max(0, to_count - have)
    if missing == 0:
        logger.warning("%s already has %d %r images >= %d: nothing generated", root, have, label, to_count)
    extra_columns = _metadata_rows(root)
    relatives = [inside_name(record, root) for record in records]
    source = resolve_checkpoint(checkpoint)
    problem = training_mismatch(read_config(source).get("dataset") or {}, root, label)
    if problem and not allow_mismatch:
        raise GanzooError(f"{checkpoint} {problem}: its images are not {label!r} images of {root}; use a checkpoint "
                          f"trained with --data {root} --label {label}, or pass --allow-mismatch")
    if problem:
        logger.warning("%s %s; adding its images as %r anyway (--allow-mismatch)", checkpoint, problem, label)
    audited = check_audit(checkpoint, source, audit) if missing else None
    out.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, Any]] = []
    for record, relative in zip(records, relatives):
        target = out / relative
        if not target.parent.resolve().is_relative_to(out.resolve()):
            raise GanzooError(f"{relative.as_posix()} would be written outside {out}; refused")
        target.parent.mkdir(parents=True, exist_ok=True)
        if mode == "link":
            os.symlink(record.path.resolve(), target)
        else:
            shutil.copy2(record.path, target)
        entries.append({"file": relative.as_posix(), "label": record.label, "synthetic": False, "source": str(record.path.resolve()),
                        "sha256": file_sha256(record.path), **({"patient": record.group} if record.group else {})})
    if missing:
        gan = load(source, device=resolve_device(device))
        images = to_uint8(gan.sample(missing, seed=seed))
        folder = out / "synthetic" / label
        folder.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(images):
            path = folder / f"synthetic-{i:05d}.png"
            write_png(path, image)
            entries.append({"file": path.relative_to(out).as_posix(), "label": label, "synthetic": True,
                            "source": f"{checkpoint} seed {seed} index {i}", "sha256": file_sha256(path)})
    rows = []
    for e in entries:
        original = extra_columns.get(e["file"], {})
        rows.append({**original, "file": e["file"], label_column: e["label"], "synthetic": e["synthetic"]})
    write_csv(out / "metadata.csv", rows)
    counts: dict[str, dict[str, int]] = {}
    for e in entries:
        c = counts.setdefault(e["label"], {"real": 0, "synthetic": 0})
        c["synthetic" if e["synthetic"] else "real"] += 1
    manifest = {"data": str(root), "checkpoint": str(checkpoint), "label": label, "label_column": label_column,
                "to_count": to_count, "seed": seed, "mode": mode, "mismatch": problem, "audit": audited, "counts": counts, "files": entries}
    write_json(out / MANIFEST, manifest)
    (out / "README.md").write_text(
        f"Rebalanced copy of {root}: {missing} synthetic {label!r} image(s) from {checkpoint} (seed {seed}) in synthetic/{label}/.\n"
        "Synthetic files are marked in metadata.csv (column `synthetic`) and manifest.json. They are not patients' images:\n"
        "never put them in a test split. Real files are " + ("symlinks to the originals" if mode == "link" else "copies") + ".\n",
        encoding="utf-8",
    )
    return manifest


def check_audit(checkpoint: str | Path, source: Path, audit: str | Path | None) -> dict[str, Any] | None:
    """The model's audit summary (given, or recorded by `ganzoo audit`), warning when it flagged copies."""
    summary = audit_of(source, audit)
    if summary is None:
        logger.info("no memorization audit of %s found: `ganzoo audit %s --holdout DIR` checks its images are not copies of training images",
                    checkpoint, checkpoint)
        return None
    if summary["flagged"] > 0:
        logger.warning("the memorization audit of %s (%s) flagged %d of %d samples as near-copies of training images: "
                       "its images may reproduce patients' images; look at its gallery before adding them",
                       checkpoint, summary["source"], summary["flagged"], summary["generated"])
    return {"verdict": summary["verdict"], "flagged": summary["flagged"], "generated": summary["generated"], "source": summary["source"]}


def training_mismatch(dataset: dict[str, Any], root: Path, label: str) -> str | None:
    """Why a checkpoint's training data (config.json `dataset`) are not `label` images of
    `root`, or None when they are. The folder is compared only where it is recorded (hub
    models drop it) and found from here (a relative path was relative to where training ran)."""
    if dataset.get("synthetic"):
        return f"was trained on synthetic data ({dataset.get('name')}), not on real images"
    if dataset.get("label") is None:
        return "was trained without --label (on every image of its data, whatever the class)"
    if dataset["label"] != label:
        return f"was trained on label {dataset['label']!r}"
    path = dataset.get("path")
    if path and Path(path).expanduser().is_dir() and Path(path).expanduser().resolve() != root:
        return f"was trained on {path}"
    return None


def inside_name(record: Record, root: Path) -> PurePosixPath:
    """The record's name relative to the data root, which becomes its path under `--out`.

    A name that leaves the root (`../x.png`, an absolute path) would put a link or copy
    outside `--out`, so it is refused; symlinks inside the root are the data's own business.
    """
    name = PurePosixPath(Path(os.path.relpath(os.path.normpath(record.path), root)).as_posix())
    if name.parts[:1] in (("..",), (".",), ()):
        raise GanzooError(f"{record.path} lies outside the data directory {root}; fix its name (e.g. in metadata.csv)")
    return name


def _metadata_rows(root: Path) -> dict[str, dict[str, str]]:
    """The original metadata.csv rows by file, so extra columns (source, view, ...) are kept."""
    meta = root / "metadata.csv"
    if not meta.exists():
        return {}
    with open(meta, newline="", encoding="utf-8") as f:
        return {row["file"]: dict(row) for row in csv.DictReader(f) if row.get("file")}
