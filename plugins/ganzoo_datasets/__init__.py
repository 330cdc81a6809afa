"""Built-in plugin: the `folder` dataset (folder.py) and the `synthetic-cxr` phantoms (synthetic.py)."""

from __future__ import annotations

from ganzoo.api import DatasetSpec, Register, hookimpl

from .folder import load_folder
from .synthetic import load_synthetic_cxr


@hookimpl
def ganzoo_register_datasets(register: Register) -> None:
    register(
        "folder",
        DatasetSpec(load=load_folder, description="PNG/JPEG files in a directory (class subfolders or metadata.csv)", needs_path=True),
    )
    register(
        "synthetic-cxr",
        DatasetSpec(load=load_synthetic_cxr, description="procedural chest X-ray phantoms (synthetic, the default)"),
    )
