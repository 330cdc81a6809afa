"""Reading the tensors of a TorchScript archive without unpickling it.

A TorchScript file is a zip: `<root>/data.pkl` describes the module tree, `<root>/data/<key>`
holds raw tensor bytes. `pickletools` only decodes the opcodes; a small stack machine here
rebuilds plain objects from them and never imports or calls anything. The file is untrusted
input: every malformed part (zip, pickle, storage records) becomes one GanzooError naming
the file, sizes are capped before anything is decompressed, and cyclic or absurdly deep
module trees are refused instead of recursing forever.
"""

from __future__ import annotations

import math
import pickletools
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ganzoo.api import GanzooError

MAX_PICKLE_BYTES = 16 << 20  # data.pkl of a whole Inception network is 28 KB
MAX_ENTRY_BYTES = 256 << 20  # one storage; Inception's largest is 6 MB
MAX_TOTAL_BYTES = 1 << 30  # all storages and the tensors built from them together
MAX_DEPTH = 64  # module nesting (Inception: 5)
MAX_NODES = 100_000  # objects and containers visited while collecting tensors

# What can go wrong while decoding hostile bytes; each becomes a GanzooError with the file name.
MALFORMED = (
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    OSError,
    NotImplementedError,
    RuntimeError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    struct.error,
    UnicodeDecodeError,
    OverflowError,
    MemoryError,
)


class _Global:
    def __init__(self, name: str) -> None:
        self.name = name


class _Object:
    def __init__(self, cls: str) -> None:
        self.cls = cls
        self.state: Any = None


@dataclass
class _TensorRef:
    key: str
    dtype: torch.dtype
    numel: int
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


_STORAGE_DTYPES = {
    "torch FloatStorage": torch.float32,
    "torch DoubleStorage": torch.float64,
    "torch HalfStorage": torch.float16,
    "torch BFloat16Storage": torch.bfloat16,
    "torch LongStorage": torch.int64,
    "torch IntStorage": torch.int32,
    "torch ByteStorage": torch.uint8,
    "torch BoolStorage": torch.bool,
}
_PUSH_ARG = {"BININT", "BININT1", "BININT2", "LONG1", "BINUNICODE", "SHORT_BINUNICODE", "BINFLOAT", "BINBYTES", "SHORT_BINBYTES"}
_CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}


def _ints(values: Any, what: str) -> tuple[int, ...]:
    if not isinstance(values, (tuple, list)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise GanzooError(f"tensor {what} is not a list of integers")
    return tuple(values)


def _rebuild_tensor(args: Any) -> _TensorRef:
    storage, offset, size, stride = args[:4]
    if not (isinstance(storage, tuple) and len(storage) == 4 and storage[0] == "storage"):
        raise GanzooError("tensor record without a storage")
    _, key, dtype, numel = storage
    return _TensorRef(key, dtype, numel, int(offset), _ints(size, "size"), _ints(stride, "stride"))


def interpret_module_pickle(data: bytes) -> Any:
    """Rebuild a TorchScript `data.pkl` as plain objects, never executing or importing anything.

    Globals stay names: only three are understood (tensor rebuild, OrderedDict, int lists),
    anything else is refused. Raises GanzooError or one of MALFORMED on bad input.
    """
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[int, Any] = {}

    def pop_mark() -> list[Any]:
        start = marks.pop()
        items = stack[start:]
        del stack[start:]
        return items

    for opcode, arg, _ in pickletools.genops(data):
        op = opcode.name
        if op in ("PROTO", "FRAME"):
            continue
        if op == "STOP":
            if len(stack) != 1 or marks:
                raise GanzooError("data.pkl stops with a malformed stack")
            return stack[0]
        if op == "MARK":
            marks.append(len(stack))
        elif op in _PUSH_ARG:
            stack.append(arg)
        elif op in _CONSTANTS:
            stack.append(_CONSTANTS[op])
        elif op in ("BINPUT", "LONG_BINPUT", "MEMOIZE"):
            memo[arg if op != "MEMOIZE" else len(memo)] = stack[-1]
        elif op in ("BINGET", "LONG_BINGET"):
            stack.append(memo[arg])
        elif op == "GLOBAL":
            stack.append(_Global(arg))
        elif op == "EMPTY_TUPLE":
            stack.append(())
        elif op in ("TUPLE1", "TUPLE2", "TUPLE3"):
            count = int(op[-1])
            if len(stack) < count:
                raise IndexError("stack underflow")
            items = tuple(stack[-count:])
            del stack[-count:]
            stack.append(items)
        elif op == "TUPLE":
            stack.append(tuple(pop_mark()))
        elif op == "EMPTY_LIST":
            stack.append([])
        elif op == "APPEND":
            item = stack.pop()
            stack[-1].append(item)
        elif op == "APPENDS":
            items = pop_mark()
            stack[-1].extend(items)
        elif op == "EMPTY_DICT":
            stack.append({})
        elif op == "SETITEM":
            value, key = stack.pop(), stack.pop()
            stack[-1][key] = value
        elif op == "SETITEMS":
            items = pop_mark()
            stack[-1].update(zip(items[::2], items[1::2]))
        elif op == "NEWOBJ":
            args, cls = stack.pop(), stack.pop()
            if not (isinstance(cls, _Global) and cls.name.startswith(("__torch__.", "__torch__ ")) and args == ()):
                raise GanzooError(f"unexpected object {getattr(cls, 'name', type(cls).__name__)!r}")
            stack.append(_Object(cls.name))
        elif op == "BUILD":
            state = stack.pop()
            if not isinstance(stack[-1], _Object):
                raise GanzooError("BUILD on something that is not a module")
            stack[-1].state = state
        elif op == "BINPERSID":
            pid = stack.pop()
            if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _Global)):
                raise GanzooError("unexpected storage record")
            if pid[1].name not in _STORAGE_DTYPES:
                raise GanzooError(f"unsupported storage type {pid[1].name!r}")
            stack.append(("storage", str(pid[2]), _STORAGE_DTYPES[pid[1].name], int(pid[4])))
        elif op == "REDUCE":
            args, func = stack.pop(), stack.pop()
            name = getattr(func, "name", None) if isinstance(func, _Global) else None
            if not isinstance(args, tuple):
                raise GanzooError("REDUCE without an argument tuple")
            if name == "torch._utils _rebuild_tensor_v2":
                stack.append(_rebuild_tensor(args))
            elif name == "collections OrderedDict" and args == ():
                stack.append({})
            elif name == "torch.jit._pickle build_intlist":
                stack.append(list(args[0]))
            else:
                raise GanzooError(f"refusing to call {name!r}")
        else:
            raise GanzooError(f"unsupported pickle opcode {op}")
    raise GanzooError("data.pkl has no STOP opcode")


def collect_tensor_refs(root: Any) -> dict[str, _TensorRef]:
    """Tensor records by attribute path, walking module states; cycles and depth are refused."""
    out: dict[str, _TensorRef] = {}
    on_path: set[int] = set()
    visited = 0

    def walk(node: Any, prefix: str, depth: int) -> None:
        nonlocal visited
        visited += 1
        if visited > MAX_NODES:
            raise GanzooError(f"the module tree has more than {MAX_NODES} nodes")
        if isinstance(node, _TensorRef):
            out[prefix.rstrip(".")] = node
            return
        if not (isinstance(node, _Object) and isinstance(node.state, dict)):
            return
        if id(node) in on_path:
            raise GanzooError(f"the module tree refers to itself at {prefix.rstrip('.') or 'the root'!r}")
        if depth > MAX_DEPTH:
            raise GanzooError(f"the module tree is nested deeper than {MAX_DEPTH} levels")
        on_path.add(id(node))
        for key, value in node.state.items():
            walk(value, f"{prefix}{key}.", depth + 1)
        on_path.discard(id(node))

    walk(root, "", 0)
    return out


def _entry(archive: zipfile.ZipFile, name: str, limit: int) -> zipfile.ZipInfo:
    """A zip entry whose declared (uncompressed) size is at most `limit`; checked before reading."""
    try:
        info = archive.getinfo(name)
    except KeyError:
        raise GanzooError(f"entry {name} is missing") from None
    if info.file_size > limit:
        raise GanzooError(f"entry {name} declares {info.file_size} bytes, more than the {limit} allowed")
    return info


def _read_entry(archive: zipfile.ZipFile, name: str, limit: int) -> bytes:
    return archive.read(_entry(archive, name, limit))


def _storage_tensor(raw: bytes, ref: _TensorRef) -> torch.Tensor:
    flat = torch.frombuffer(bytearray(raw), dtype=ref.dtype) if raw else torch.empty(0, dtype=ref.dtype)
    if flat.numel() != ref.numel:
        raise GanzooError(f"storage {ref.key} holds {flat.numel()} values, its record says {ref.numel}")
    return flat


def _view(flat: torch.Tensor, ref: _TensorRef, name: str) -> torch.Tensor:
    if len(ref.size) != len(ref.stride) or any(s < 0 for s in ref.size) or any(st < 0 for st in ref.stride):
        raise GanzooError(f"tensor {name} has a malformed size/stride")
    last = ref.offset + sum((s - 1) * st for s, st in zip(ref.size, ref.stride)) if all(ref.size) else ref.offset - 1
    if ref.offset < 0 or last >= flat.numel():
        raise GanzooError(f"tensor {name} points outside its storage")
    return flat.as_strided(ref.size, ref.stride, ref.offset).clone()


def _read_tensors(archive: zipfile.ZipFile) -> dict[str, torch.Tensor]:
    names = archive.namelist()
    roots = [n for n in names if n.count("/") == 1 and n.endswith("/data.pkl")]
    if len(roots) != 1:
        raise GanzooError("not a TorchScript archive (no single data.pkl)")
    prefix = roots[0].split("/")[0]
    if f"{prefix}/byteorder" in names and _read_entry(archive, f"{prefix}/byteorder", 16).strip() != b"little":
        raise GanzooError("it stores big-endian tensors, which ganzoo does not read")
    refs = collect_tensor_refs(interpret_module_pickle(_read_entry(archive, roots[0], MAX_PICKLE_BYTES)))
    storages: dict[str, torch.Tensor] = {}
    tensors: dict[str, torch.Tensor] = {}
    total = 0
    for name, ref in refs.items():
        if ref.key not in storages:
            info = _entry(archive, f"{prefix}/data/{ref.key}", MAX_ENTRY_BYTES)
            total += info.file_size
            if total > MAX_TOTAL_BYTES:
                raise GanzooError(f"its storages exceed {MAX_TOTAL_BYTES} bytes in all")
            storages[ref.key] = _storage_tensor(archive.read(info), ref)
        total += math.prod(ref.size) * storages[ref.key].element_size()
        if total > MAX_TOTAL_BYTES:
            raise GanzooError(f"its tensors exceed {MAX_TOTAL_BYTES} bytes in all")
        tensors[name] = _view(storages[ref.key], ref, name)
    return tensors


def read_torchscript_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a TorchScript archive by attribute path (e.g. 'net.layers.conv.weight').

    Nothing is unpickled and no TorchScript code is run. Any malformed input raises a
    GanzooError that names the file.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            return _read_tensors(archive)
    except GanzooError as error:
        raise GanzooError(f"{path}: {error}") from None
    except RecursionError:
        raise GanzooError(f"{path} is not a readable TorchScript archive: its structure is nested too deeply") from None
    except MALFORMED as error:
        raise GanzooError(f"{path} is not a readable TorchScript archive ({type(error).__name__}: {error})") from None
