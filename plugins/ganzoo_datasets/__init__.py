"""Built-in plugin: the `folder` dataset (folder.py) and the `synthetic-cxr` phantoms (synthetic.py).

Both are imported when the hook runs, so loading the plugin imports no torch.
"""

from __future__ import annotations

from ganzoo.api import Register, hookimpl


@hookimpl
def ganzoo_register_datasets(register: Register) -> None:
    from ganzoo.api import DatasetSpec

    from .folder import load_folder
    from .synthetic import load_synthetic_cxr

    register(
        "folder",
        DatasetSpec(load=load_folder, description="PNG/JPEG files in a directory (class subfolders or metadata.csv)", needs_path=True),
    )
    register(
        "synthetic-cxr",
        DatasetSpec(load=load_synthetic_cxr, description="procedural chest X-ray phantoms (synthetic, the default)"),
    )
