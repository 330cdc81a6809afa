"""Built-in plugin: the `dicom` dataset (needs the `ganzoo[dicom]` extra: pydicom, and pylibjpeg
with its libjpeg and openjpeg plugins for compressed transfer syntaxes)."""

from __future__ import annotations

from ganzoo.api import Register, hookimpl


@hookimpl
def ganzoo_register_datasets(register: Register) -> None:
    from ganzoo.api import DatasetSpec

    from .dataset import load_dicom

    register(
        "dicom",
        DatasetSpec(load=load_dicom, description="single-frame grayscale DICOM files (class subfolders or metadata.csv); --window", needs_path=True),
    )
