"""The `medmnist` plugin on a small synthetic .npz in MedMNIST's layout."""

from __future__ import annotations

import hashlib
import sys
import types

import numpy as np
import pytest

import torch

from ganzoo.api import DataError, DatasetOptions, Preprocessing, load_dataset, real_images_for, registry


def test_the_medmnist_dataset_is_a_built_in_plugin():
    assert registry("datasets").entry("medmnist").plugin == "medmnist"


@pytest.fixture
def npz(tmp_path, monkeypatch):
    """A small file in MedMNIST's layout; the MD5 table (real package or not) publishes its MD5."""
    rng = np.random.default_rng(0)
    parts = {"train": 10, "val": 3, "test": 5}
    arrays = {}
    for part, n in parts.items():
        arrays[f"{part}_images"] = (rng.random((n, 28, 28)) * 255).astype(np.uint8)
        arrays[f"{part}_labels"] = (np.arange(n) % 2).reshape(n, 1).astype(np.uint8)
    path = tmp_path / "pneumoniamnist_64.npz"
    np.savez(path, **arrays)
    info = types.ModuleType("medmnist.info")
    info.INFO = {"pneumoniamnist": {"MD5_64": hashlib.md5(path.read_bytes()).hexdigest()}}
    monkeypatch.setitem(sys.modules, "medmnist", types.ModuleType("medmnist"))
    monkeypatch.setitem(sys.modules, "medmnist.info", info)
    return path


def opts(path, **kwargs):
    return DatasetOptions(path=str(path), preprocessing=Preprocessing(resolution=32, clahe=False), **kwargs)


def test_parts_labels_and_official_split(npz, tmp_path):
    train = load_dataset("medmnist", opts(npz))
    assert train.images.shape == (10, 1, 32, 32) and set(train.splits) == {"train"}
    test = load_dataset("medmnist", opts(f"{npz}:test", label="1"))
    assert len(test) == 2 and set(test.labels) == {"1"} and test.splits == ["test", "test"]
    everything = load_dataset("medmnist", opts(str(tmp_path / "pneumoniamnist_64") + ":all"))
    assert len(everything) == 18 and everything.splits.count("val") == 3


def test_missing_file_says_where_to_get_it_and_where_to_put_it(tmp_path):
    with pytest.raises(DataError, match=r"nothing is downloaded .* get chestmnist_128\.npz from https://zenodo.*put it at"):
        load_dataset("medmnist", opts(tmp_path / "chestmnist_128.npz"))


def test_md5_checked_when_the_medmnist_package_is_there(npz):
    assert len(load_dataset("medmnist", opts(npz))) == 10
    sys.modules["medmnist.info"].INFO["pneumoniamnist"]["MD5_64"] = "0" * 32
    with pytest.raises(DataError, match="MD5"):
        load_dataset("medmnist", opts(npz))


def test_the_official_test_part_is_the_held_out_part_evaluation_uses(npz):
    held_out = load_dataset("medmnist", opts(npz, part="holdout"))
    assert len(held_out) == 5 and held_out.part == "holdout" and set(held_out.splits) == {"test"}
    train = load_dataset("medmnist", opts(npz, part="train"))
    assert len(train) == 10 and train.part == "train"
    config = {"model_args": {"resolution": 32}, "training": {"clahe": False}, "dataset": {"name": "medmnist", "path": str(npz)}}
    real = real_images_for(config)
    assert real.part == "holdout" and torch.equal(real.images, held_out.images)
    with pytest.raises(DataError, match="train part .* is empty"):
        load_dataset("medmnist", opts(f"{npz}:test", part="train"))
