"""Checkpoint directories: config.json + model.safetensors + trainer state + README.md.

No pickle anywhere: weights and optimizer tensors are safetensors, everything else JSON.
A checkpoint is written into a temporary sibling directory and renamed into place (swapped
with the old one in a single step when it replaces one, e.g. the trainer's `best/`), so a
crash leaves either the old checkpoint or the new one, never half of one, nor none.
"""

from __future__ import annotations

import copy
import ctypes
import errno
import functools
import json
import os
import shutil
import struct
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .console import logger
from .errors import CheckpointError, GanzooError
from .models import GAN, Normalization, create_gan
from .paths import dump_json, fsync_dir
from .plugins import missing_plugin_hint

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
STATE_TENSORS_FILE = "trainer_state.safetensors"
STATE_JSON_FILE = "trainer_state.json"
CARD_FILE = "README.md"
MAX_HEADER_BYTES = 100 * 1024 * 1024
REFUSED_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt")
AT_FDCWD = -100  # linux/fcntl.h
RENAME_EXCHANGE = 2  # linux/fs.h: swap the two names atomically


def gan_tensors(gan: GAN, components: list[str]) -> dict[str, torch.Tensor]:
    """Flat `component.param` tensors of the chosen components, contiguous on the CPU."""
    tensors = {}
    for component in components:
        module = getattr(gan, component)
        for key, value in module.state_dict().items():
            tensors[f"{component}.{key}"] = value.detach().cpu().contiguous()
    return tensors


def gan_components(gan: GAN) -> list[str]:
    return ["generator", "discriminator"] + (["generator_ema"] if gan.generator_ema is not None else [])


def write_checkpoint(
    directory: Path,
    gan: GAN,
    config: dict[str, Any],
    card: str,
    components: list[str] | None = None,
    state_tensors: dict[str, torch.Tensor] | None = None,
    state_json: dict[str, Any] | None = None,
) -> Path:
    """Write a complete checkpoint at `directory` atomically (temp dir + fsync + rename)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    components = components or gan_components(gan)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.tmp-"))
    try:
        tmp.chmod(0o755)
        save_file(gan_tensors(gan, components), str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        if state_tensors is not None:
            save_file({k: v.detach().cpu().contiguous() for k, v in state_tensors.items()}, str(tmp / STATE_TENSORS_FILE))
            (tmp / STATE_JSON_FILE).write_text(dump_json(state_json or {}))
        (tmp / CARD_FILE).write_text(card, encoding="utf-8")
        # config.json last: its presence marks the checkpoint complete.
        saved = {**config, "normalization": gan.normalization.to_dict(), "components": components}
        (tmp / CONFIG_FILE).write_text(dump_json(saved))
        for path in tmp.iterdir():
            path.chmod(0o644)
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        fsync_dir(tmp)
        _move_into_place(tmp, directory)
        fsync_dir(directory.parent)
    except BaseException:
        _discard(tmp)
        raise
    return directory


def _move_into_place(new: Path, target: Path) -> None:
    """Put directory `new` at `target`; an existing `target` is swapped out in one atomic step.

    Where the OS or filesystem cannot swap, the old directory is renamed aside and put back if
    the second rename fails; only a crash between those two renames could then leave no `target`.
    """
    if not os.path.lexists(target):
        new.rename(target)
        return
    if _exchange(new, target):
        _discard(new)  # `new` now names the old checkpoint
        return
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    target.rename(old)
    try:
        new.rename(target)
    except BaseException:
        old.rename(target)
        raise
    _discard(old)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux renameat2(RENAME_EXCHANGE); False where unsupported."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # old kernel or a filesystem without it
        return False
    raise OSError(code, os.strerror(code), str(a), None, str(b))


@functools.cache
def _renameat2() -> Any:
    """libc's renameat2 (glibc 2.28+), or None off Linux or with an older libc."""
    if not sys.platform.startswith("linux"):
        return None
    function = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if function is not None:
        function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        function.restype = ctypes.c_int
    return function


def _discard(path: Path) -> None:
    if path.is_symlink():
        path.unlink()
    else:
        shutil.rmtree(path, ignore_errors=True)


def check_safetensors_header(path: Path) -> None:
    """Refuse a file whose header is not a sane safetensors header, before any allocation."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path} is not a safetensors file (too short)")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > min(MAX_HEADER_BYTES, size - 8):
            raise CheckpointError(f"{path} has a bogus safetensors header length ({header_len} bytes)")
        try:
            header = json.loads(f.read(header_len))
        except ValueError:
            raise CheckpointError(f"{path} has an unreadable safetensors header") from None
    data_len = size - 8 - header_len
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info.get("data_offsets", (0, -1))
        if not (0 <= start <= end <= data_len):
            raise CheckpointError(f"{path}: tensor {name!r} points outside the file")


def read_tensors(path: Path, expected: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """Load a safetensors file; with `expected`, shapes and dtypes must match it exactly."""
    check_safetensors_header(path)
    tensors = {}
    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():
            if expected is not None and key in expected:
                sl = f.get_slice(key)
                shape, dtype = tuple(sl.get_shape()), sl.get_dtype()
                want = expected[key]
                if shape != tuple(want.shape) or str(want.dtype).removeprefix("torch.") != _torch_dtype_name(dtype):
                    raise CheckpointError(
                        f"{path}: tensor {key!r} is {dtype}{list(shape)}, the model expects "
                        f"{want.dtype}{list(want.shape)}"
                    )
            tensors[key] = f.get_tensor(key)
    return tensors


_SAFETENSORS_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64", "I64": "int64", "I32": "int32", "U8": "uint8", "I8": "int8", "BOOL": "bool", "I16": "int16"}


def _torch_dtype_name(dtype: str) -> str:
    return _SAFETENSORS_DTYPES.get(dtype, dtype)


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory, or a run directory's `last` checkpoint; refuses pickle files by name."""
    path = Path(path).expanduser()
    if path.is_file():
        if path.suffix in REFUSED_SUFFIXES:
            raise CheckpointError(
                f"{path}: {path.suffix} files can hold pickled code and are never loaded; "
                "ganzoo checkpoints are directories with config.json + model.safetensors"
            )
        if path.name in (CONFIG_FILE, WEIGHTS_FILE):
            path = path.parent
        else:
            raise CheckpointError(f"{path} is a file; a checkpoint is a directory with config.json + model.safetensors")
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not (path / CONFIG_FILE).exists() and (path / "last" / CONFIG_FILE).exists():
        path = path / "last"
    if not (path / CONFIG_FILE).exists():
        raise CheckpointError(f"{path} is not a ganzoo checkpoint (no {CONFIG_FILE})")
    if not (path / WEIGHTS_FILE).exists():
        raise CheckpointError(f"{path} is incomplete: {WEIGHTS_FILE} is missing")
    return path


def read_config(path: str | Path) -> dict[str, Any]:
    path = find_checkpoint(path)
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
    except ValueError as error:
        raise CheckpointError(f"{path / CONFIG_FILE} is not valid JSON: {error}") from None
    for key in ("format_version", "architecture", "model_args"):
        if key not in config:
            raise CheckpointError(f"{path / CONFIG_FILE} lacks {key!r}")
    if config["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer ganzoo (format {config['format_version']}); upgrade ganzoo to load it"
        )
    return config


def check_plugins(config: dict[str, Any]) -> None:
    """Refuse a checkpoint whose architecture or loss plugin is missing here, saying what to install."""
    provided = config.get("provided_by") or {}
    for kind, name in (("architectures", config.get("architecture")), ("losses", config.get("loss"))):
        hint = missing_plugin_hint(kind, name, provided.get(kind)) if name else None
        if hint:
            raise CheckpointError(hint)


def load_gan(path: str | Path, device: str | torch.device = "cpu") -> GAN:
    """Rebuild the GAN from config.json alone and load its weights strictly."""
    path = find_checkpoint(path)
    config = read_config(path)
    check_plugins(config)
    gan = create_gan(config["architecture"], **_model_kwargs(config["model_args"]))
    components = config.get("components", ["generator", "discriminator"])
    if "generator_ema" in components:
        gan.generator_ema = copy.deepcopy(gan.generator)
    expected = gan_tensors(gan, components)
    tensors = read_tensors(path / WEIGHTS_FILE, expected)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} tensor(s), e.g. {', '.join(missing[:3])}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} tensor(s), e.g. {', '.join(unexpected[:3])}")
        raise CheckpointError(f"{path / WEIGHTS_FILE} does not match {config['architecture']}: {'; '.join(parts)}")
    for component in components:
        prefix = f"{component}."
        state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        getattr(gan, component).load_state_dict(state, strict=True)
    gan.normalization = saved_normalization(path, config)
    gan.checkpoint_config = config
    return gan.to(device)


def saved_normalization(path: Path, config: dict[str, Any]) -> Normalization:
    """The generator's output units; checkpoints from before they were saved count as [-1, 1]."""
    if "normalization" not in config:
        training = config.get("training")
        if isinstance(training, dict) and training.get("normalize", "none") != "none":
            logger.warning(
                "%s was trained with --normalize %s but does not record the data's mean/std: "
                "its samples are read as [-1, 1] and their intensities will be off", path, training["normalize"]
            )
        return Normalization()
    try:
        return Normalization.from_dict(config["normalization"])
    except GanzooError as error:
        raise CheckpointError(f"{path / CONFIG_FILE}: {error}") from None


def _model_kwargs(model_args: dict[str, Any]) -> dict[str, Any]:
    args = dict(model_args)
    return {"res": args.pop("resolution"), **args}


def find_resume_checkpoint(path: str | Path) -> Path:
    """The newest complete checkpoint in a run directory (or the checkpoint itself).

    A damaged or half-written checkpoint is skipped with a message, falling back to the
    one before it.
    """
    path = Path(path)
    candidates = [path] if (path / CONFIG_FILE).exists() else sorted((path / "checkpoints").glob("step-*"), reverse=True)
    for candidate in candidates:
        problem = checkpoint_problem(candidate)
        if problem is None:
            return candidate
        logger.warning("skipping checkpoint %s: %s", candidate, problem)
    raise CheckpointError(f"no complete checkpoint to resume in {path}")


def checkpoint_problem(directory: Path) -> str | None:
    """Why a checkpoint cannot be resumed from, or None when it is complete and readable."""
    for name in (CONFIG_FILE, WEIGHTS_FILE, STATE_TENSORS_FILE, STATE_JSON_FILE):
        if not (directory / name).is_file():
            return f"{name} is missing"
    try:
        json.loads((directory / CONFIG_FILE).read_text())
        json.loads((directory / STATE_JSON_FILE).read_text())
        check_safetensors_header(directory / WEIGHTS_FILE)
        check_safetensors_header(directory / STATE_TENSORS_FILE)
    except (ValueError, CheckpointError) as error:
        return str(error)
    return None


def has_checkpoint(run_dir: Path) -> bool:
    return any((Path(run_dir) / "checkpoints").glob("step-*")) or (Path(run_dir) / CONFIG_FILE).exists()
