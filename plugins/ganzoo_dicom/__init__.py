"""Built-in plugin: the `dicom` dataset (needs the `ganzoo[dicom]` extra: pydicom, and pylibjpeg
with its libjpeg and openjpeg plugins for compressed transfer syntaxes)."""

from __future__ import annotations

from ganzoo.api import DatasetSpec, Register, hookimpl

from .dataset import load_dicom


@hookimpl
def ganzoo_register_datasets(register: Register) -> None:
    register(
        "dicom",
        DatasetSpec(load=load_dicom, description="single-frame grayscale DICOM files (class subfolders or metadata.csv); --window", needs_path=True),
    )
