"""Built-in plugin: the `medmnist` dataset, read from MedMNIST's official `.npz` files in a local folder."""

from __future__ import annotations

from ganzoo.api import Register, hookimpl


@hookimpl
def ganzoo_register_datasets(register: Register) -> None:
    from ganzoo.api import DatasetSpec

    from .npz import load_medmnist

    register(
        "medmnist",
        DatasetSpec(load=load_medmnist, description="a local MedMNIST .npz (e.g. pneumoniamnist_64.npz[:train|val|test|all]); never downloads", needs_path=True),
    )
