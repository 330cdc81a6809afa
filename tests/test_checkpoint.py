import json
import struct

import pytest
import torch
from safetensors.torch import load_file, save_file

import ganzoo
from ganzoo.checkpoint import load_gan, write_checkpoint
from ganzoo.errors import CheckpointError


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "run"
    return ganzoo.train({"arch": "dcgan", "images": 16, "batch_size": 8, "steps": 1, "device": "cpu", "out": str(out)})


def copy_checkpoint(src, dst):
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_config_json_is_sorted_and_indented(checkpoint):
    text = (checkpoint / "config.json").read_text()
    config = json.loads(text)
    assert text == json.dumps(config, indent=2, sort_keys=True) + "\n"
    assert config["format_version"] == 1 and config["loss"] == "bce" and config["loss_args"] == {"n_critic": 1}


def test_run_directory_loads_its_last_checkpoint(checkpoint):
    run = checkpoint.parent.parent
    assert torch.equal(ganzoo.load(str(run)).sample(2), ganzoo.load(str(checkpoint)).sample(2))


def _drop(tensors):
    del tensors["generator.0.weight"]


def _reshape(tensors):
    tensors["generator.0.weight"] = torch.zeros(3, 3)


def _retype(tensors):
    tensors["generator.0.weight"] = tensors["generator.0.weight"].double()


@pytest.mark.parametrize(
    "edit, message",
    [
        (_drop, "missing 1 tensor.*generator.0.weight"),
        (_reshape, "tensor 'generator.0.weight' is F32\\[3, 3\\]"),
        (_retype, "F64"),
    ],
    ids=["missing", "shape", "dtype"],
)
def test_tensor_that_does_not_match_is_refused(checkpoint, tmp_path, edit, message):
    """A missing tensor, a wrong shape or a wrong dtype: a clear error, checked from the header."""
    bad = copy_checkpoint(checkpoint, tmp_path / "bad")
    tensors = load_file(str(bad / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(bad / "model.safetensors"))
    with pytest.raises(CheckpointError, match=message):
        load_gan(bad)


def test_bogus_header_is_refused(checkpoint, tmp_path):
    bad = copy_checkpoint(checkpoint, tmp_path / "bad")
    (bad / "model.safetensors").write_bytes(struct.pack("<Q", 2**40) + b"{}")
    with pytest.raises(CheckpointError, match="bogus safetensors header"):
        load_gan(bad)


def test_pickle_formats_are_refused(tmp_path):
    for suffix in (".pt", ".pth", ".bin"):
        path = tmp_path / f"model{suffix}"
        path.write_bytes(b"\x80\x04not really")
        with pytest.raises(CheckpointError, match="never loaded"):
            load_gan(path)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_gan(tmp_path / "nothing")
    with pytest.raises(CheckpointError, match="not a ganzoo checkpoint"):
        load_gan(tmp_path)


def test_write_is_atomic_and_leaves_no_temp(tmp_path):
    gan = ganzoo.create_gan("dcgan")
    target = tmp_path / "ckpt"
    write_checkpoint(target, gan, {"format_version": 1, "architecture": "dcgan", "model_args": gan.model_args}, "card")

    class Boom(Exception):
        pass

    def exploding(*args, **kwargs):
        raise Boom

    import ganzoo.checkpoint as ck

    original = ck.save_file
    ck.save_file = exploding
    try:
        with pytest.raises(Boom):
            write_checkpoint(target, ganzoo.create_gan("dcgan"), {"format_version": 1, "architecture": "dcgan", "model_args": gan.model_args}, "card")
    finally:
        ck.save_file = original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    assert torch.equal(load_gan(target).sample(1), gan.sample(1))


def test_no_pickle_in_the_source_tree():
    """torch.load only with weights_only=True, and no pickle module, anywhere in the package."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    offenders = []
    for path in list((root / "ganzoo").rglob("*.py")) + list((root / "plugins").rglob("*.py")):
        text = path.read_text()
        for match in re.finditer(r"torch\.load\(([^)]*)\)", text):
            if "weights_only=True" not in match.group(1):
                offenders.append(f"{path}: {match.group(0)}")
        if re.search(r"^\s*(import pickle|from pickle|import dill|import cloudpickle)\b", text, re.M):
            offenders.append(f"{path}: imports pickle")
    assert offenders == []
