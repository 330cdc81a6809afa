"""Built-in plugin: the `medmnist` dataset, read from MedMNIST's official `.npz` files in a local folder."""

from __future__ import annotations

from ganzoo.api import DatasetSpec, Register, hookimpl

from .npz import load_medmnist


@hookimpl
def ganzoo_register_datasets(register: Register) -> None:
    register(
        "medmnist",
        DatasetSpec(load=load_medmnist, description="a local MedMNIST .npz (e.g. pneumoniamnist_64.npz[:train|val|test|all]); never downloads", needs_path=True),
    )
