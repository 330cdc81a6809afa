import json
import os
import shutil
import struct
import sys
from pathlib import Path

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


def _two_gans():
    """Two DCGANs with different weights (torch's RNG seeds each one differently)."""
    torch.manual_seed(0)
    old = ganzoo.create_gan("dcgan")
    torch.manual_seed(1)
    return old, ganzoo.create_gan("dcgan")


def _config(gan):
    return {"format_version": 1, "architecture": "dcgan", "model_args": gan.model_args}


def _which(directory, old, new):
    """'old' or 'new': the complete checkpoint at `directory` (raises if there is none)."""
    weights = load_gan(directory).generator.state_dict()
    for name, gan in (("old", old), ("new", new)):
        if all(torch.equal(value, gan.generator.state_dict()[key]) for key, value in weights.items()):
            return name
    raise AssertionError(f"{directory} holds neither checkpoint")


def test_replacing_a_checkpoint_leaves_a_complete_one_at_every_moment(tmp_path, monkeypatch):
    """Overwriting `best/`: before and after each rename, swap or delete (where a crash could
    stop it) the directory holds the old checkpoint or the new one, complete."""
    import ganzoo.checkpoint as ck

    old, new = _two_gans()
    best = tmp_path / "best"
    write_checkpoint(best, old, _config(old), "card")
    seen = []

    def watched(function):
        def run(*args, **kwargs):
            seen.append(_which(best, old, new))
            result = function(*args, **kwargs)
            seen.append(_which(best, old, new))
            return result

        return run

    for module, name in ((os, "rename"), (os, "replace"), (shutil, "rmtree"), (ck, "_exchange")):
        if hasattr(module, name):
            monkeypatch.setattr(module, name, watched(getattr(module, name)))
    write_checkpoint(best, new, _config(new), "card")
    assert _which(best, old, new) == "new" and seen[0] == "old" and seen[-1] == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


def test_a_failed_swap_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    """The step that replaces the directory fails (disk error, crash): the old `best/` stays."""
    import ganzoo.checkpoint as ck

    old, new = _two_gans()
    best = tmp_path / "best"
    write_checkpoint(best, old, _config(old), "card")

    def failing(a, b):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(ck, "_exchange", failing, raising=False)
    with pytest.raises(OSError, match="Input/output error"):
        write_checkpoint(best, new, _config(new), "card")
    assert _which(best, old, new) == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]


def test_without_an_atomic_swap_a_failed_second_rename_puts_the_old_one_back(tmp_path, monkeypatch):
    """Where renameat2 is missing: old renamed aside, then the new one's rename fails."""
    import ganzoo.checkpoint as ck

    old, new = _two_gans()
    best = tmp_path / "best"
    write_checkpoint(best, old, _config(old), "card")
    monkeypatch.setattr(ck, "_exchange", lambda a, b: False, raising=False)
    rename = os.rename
    calls = []

    def second_fails(src, dst, *args, **kwargs):
        calls.append(Path(src).name)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return rename(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "rename", second_fails)
    with pytest.raises(OSError, match="No space left"):
        write_checkpoint(best, new, _config(new), "card")
    monkeypatch.undo()
    assert calls[0] == "best" and len(calls) == 3  # aside, the failed one, back
    assert _which(best, old, new) == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best"]
    write_checkpoint(best, new, _config(new), "card")  # and the fallback replaces when nothing fails
    assert _which(best, old, new) == "new"


def test_renameat2_swaps_two_directories(tmp_path):
    """The atomic step itself, where this machine's kernel and filesystem support it."""
    import ganzoo.checkpoint as ck

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "from-a").touch()
    if not ck._exchange(tmp_path / "a", tmp_path / "b"):
        assert ck._renameat2() is None or not sys.platform.startswith("linux")
        return
    assert [p.name for p in (tmp_path / "b").iterdir()] == ["from-a"] and not any((tmp_path / "a").iterdir())
