"""Read legacy (non-zip) ``torch.save`` files without running the code they name.

A legacy file is five pickles in a row followed by raw storage bytes (torch/serialization.py
``_legacy_load``): the magic number, the protocol version (1001), a dict of system information,
the object itself (storages as persistent ids ``("storage", StorageType, key, location, numel,
view)``, classes of whole modules as ``("module", cls, source_file, source)``), the list of
storage keys, then per key an int64 element count and the storage's bytes.

:func:`load_legacy_torch_file` unpickles the object with an allow-list: only torch's tensor
rebuilders (wrapped, with bounds checks), its storage classes (as dtypes),
``collections.OrderedDict``, ``set`` and ``frozenset`` resolve to real objects. Every other global becomes an inert class
(:class:`InertObject` subclass) that records its name: instances made from it (``NEWOBJ``)
keep the state ``__setstate__`` would have received (:attr:`InertObject.state`) and nothing
else. Calling a global (``REDUCE``, ``INST``, ``OBJ``) is refused with
:class:`UnsafePickleError` naming the file and the global, except for a few calls that old
modules pickle and that are recorded, not made (:data:`RECORDED_CALLS`). No callable from the
file ever runs.
"""

from __future__ import annotations

import _compat_pickle
import io
import os
import pickle
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from chemprune.common.atomic import CheckpointError

__all__ = [
    "MAGIC_NUMBER",
    "RECORDED_CALLS",
    "UnsafePickleError",
    "InertObject",
    "InertCall",
    "load_legacy_torch_file",
]

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

#: calls that old ``nn.Module`` pickles make and that are recorded as :class:`InertCall`
#: instead of being made (``_backend``, ``partial(init_fn, ...)`` attributes)
RECORDED_CALLS = frozenset(
    {"torch.nn.backends.thnn._get_thnn_function_backend", "functools.partial"}
)

_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


class UnsafePickleError(CheckpointError):
    """The file's pickle calls a global that is not allowed (it would run code on load)."""


class _Refused(Exception):
    """Raised inside the unpickler; turned into :class:`UnsafePickleError` with the path."""


class _InertMeta(type):
    """Metaclass of the stand-ins for globals: calling one (``REDUCE``) never runs code."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        name = cls.global_name  # type: ignore[attr-defined]
        if name in RECORDED_CALLS and not kwargs:
            return InertCall(name, args)
        raise _Refused(name)


class InertObject(metaclass=_InertMeta):
    """An instance of a class named in the file, made without running the class's code.

    Attributes:
        global_name: ``module.qualname`` of the class (on the class).
        new_args: the arguments ``NEWOBJ`` passed.
        state: what ``BUILD`` passed (``__setstate__``'s argument; ``None`` if none).
    """

    global_name = ""

    def __new__(cls, *args: Any) -> InertObject:
        obj = object.__new__(cls)
        obj.new_args = args
        obj.state = None
        return obj

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<inert {self.global_name}>"


class InertCall:
    """A recorded call ``global_name(*args)`` (made by the pickle, never executed)."""

    def __init__(self, global_name: str, args: tuple[Any, ...]) -> None:
        self.global_name = global_name
        self.args = args
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<inert call {self.global_name}>"


@dataclass(frozen=True)
class _StorageKind:
    dtype: torch.dtype


@dataclass(frozen=True)
class _StorageView:
    root: Tensor  # the root storage's elements, filled after the object pickle
    offset: int
    numel: int


# The pure-Python unpickler: its memo is a dict. The C one sizes its memo array to the largest
# index a pickle names, so a damaged file naming memo slot 10**9 allocates gigabytes and hangs
# (found by the legacy_model fuzz surface).
_Unpickler = pickle._Unpickler  # type: ignore[attr-defined]


def _plain_data_unpickler(fh: io.BufferedIOBase) -> pickle.Unpickler:
    class PlainData(_Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            raise _Refused(f"{module}.{name}")

    return PlainData(fh, encoding="utf-8")


class _SafeLoader:
    """Allow-listed unpickling of the object pickle; storages allocated, filled later."""

    def __init__(self, byte_budget: int) -> None:
        self.roots: dict[str, Tensor] = {}
        self.budget = byte_budget
        self.classes: dict[str, type] = {}
        self.real: dict[str, Any] = {
            "collections.OrderedDict": OrderedDict,
            "builtins.set": set,  # nn.Module's _non_persistent_buffers_set
            "builtins.frozenset": frozenset,
            "torch._utils._rebuild_tensor_v2": self.rebuild_tensor_v2,
            "torch._utils._rebuild_tensor": self.rebuild_tensor,
            "torch._utils._rebuild_parameter": self.rebuild_parameter,
        }

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 names (protocol 2 pickles write ``__builtin__``): name them as Python 3 does
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        full = f"{module}.{name}"
        if full in self.real:
            return self.real[full]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageKind(_STORAGE_DTYPES[name])
        if full not in self.classes:
            self.classes[full] = _InertMeta(
                name, (InertObject,), {"global_name": full, "__module__": module}
            )
        return self.classes[full]

    def persistent_load(self, saved_id: Any) -> Any:
        if not isinstance(saved_id, tuple) or not saved_id:
            raise ValueError(f"bad persistent id {type(saved_id).__name__}")
        kind = saved_id[0].decode("ascii") if isinstance(saved_id[0], bytes) else saved_id[0]
        if kind == "module" and len(saved_id) == 4:
            return saved_id[1]  # the class of a whole pickled module (an inert stand-in)
        if kind != "storage" or len(saved_id) != 6:
            raise ValueError(f"unknown persistent id {kind!r}")
        storage_kind, key, _location, numel, view = saved_id[1:]
        if not isinstance(storage_kind, _StorageKind) or not isinstance(numel, int) or numel < 0:
            raise ValueError(f"bad storage record for key {key!r}")
        key = str(key)
        root = self.roots.get(key)
        if root is None:
            nbytes = numel * torch.empty((), dtype=storage_kind.dtype).element_size()
            self.budget -= nbytes
            if self.budget < 0:
                raise ValueError("the storages are larger than the file")
            root = self.roots[key] = torch.zeros(numel, dtype=storage_kind.dtype)
        if root.dtype != storage_kind.dtype:
            raise ValueError(f"storage {key!r} read with two dtypes")
        if view is None:
            return _StorageView(root, 0, root.numel())
        _view_key, offset, size = view
        if not (0 <= offset and 0 <= size and offset + size <= root.numel()):
            raise ValueError(f"storage view out of bounds in {key!r}")
        return _StorageView(root, int(offset), int(size))

    @staticmethod
    def rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any) -> Tensor:
        if not isinstance(storage, _StorageView):
            raise ValueError("a tensor without a storage")
        size, stride = tuple(size), tuple(stride)
        ints = (offset, *size, *stride)
        if not all(isinstance(v, int) and v >= 0 for v in ints) or len(size) != len(stride):
            raise ValueError("a tensor with bad sizes, strides or offset")
        if all(s > 0 for s in size):
            last = offset + sum((s - 1) * st for s, st in zip(size, stride, strict=True))
            if last >= storage.numel:
                raise ValueError("a tensor out of its storage's bounds")
        return storage.root.as_strided(size, stride, storage.offset + offset)

    def rebuild_tensor_v2(
        self,
        storage: Any,
        offset: Any,
        size: Any,
        stride: Any,
        requires_grad: Any,
        backward_hooks: Any,
        metadata: Any = None,
    ) -> Tensor:
        if backward_hooks:
            raise ValueError("a tensor with backward hooks")
        return self.rebuild_tensor(storage, offset, size, stride)

    @staticmethod
    def rebuild_parameter(data: Any, requires_grad: Any, backward_hooks: Any) -> Tensor:
        if not isinstance(data, Tensor) or backward_hooks:
            raise ValueError("a bad parameter record")
        return data


def _read_storages(fh: io.BufferedIOBase, loader: _SafeLoader, keys: Any) -> None:
    if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(loader.roots):
        raise ValueError("the storage key list does not match the storages the object uses")
    for key in keys:
        root = loader.roots[str(key)]
        head = fh.read(8)
        if len(head) != 8:
            raise EOFError("the file ends inside its storage data")
        (count,) = struct.unpack("<q", head)
        if count != root.numel():
            raise ValueError(f"storage {key!r} holds {count} elements, expected {root.numel()}")
        nbytes = count * root.element_size()
        raw = fh.read(nbytes)
        if len(raw) != nbytes:
            raise EOFError("the file ends inside its storage data")
        if nbytes:
            root.view(torch.uint8).copy_(torch.frombuffer(bytearray(raw), dtype=torch.uint8))


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def load_legacy_torch_file(path: os.PathLike | str) -> Any:
    """The object of a legacy ``torch.save`` file, with inert stand-ins for every class.

    Raises:
        FileNotFoundError: no such file.
        UnsafePickleError: the pickle calls a global outside :data:`RECORDED_CALLS`.
        CheckpointError: a zip-format ``torch.save`` file, a truncated or foreign file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    data = path.read_bytes()
    if data[:4] == b"PK\x03\x04":
        raise CheckpointError(
            f"model file {path} is a zip-format torch.save file, not a legacy (schnetpack 0.x) one"
        )
    if len(data) > 262 and data[257:262] == b"ustar":
        raise CheckpointError(f"model file {path} is a pre-0.4 tar-format torch file (unsupported)")
    fh = io.BytesIO(data)
    loader = _SafeLoader(byte_budget=len(data))
    try:
        plain: Callable[[], Any] = lambda: _plain_data_unpickler(fh).load()  # noqa: E731
        if plain() != MAGIC_NUMBER:
            raise ValueError("no legacy torch.save magic number")
        if plain() != PROTOCOL_VERSION:
            raise ValueError("unsupported legacy protocol version")
        info = plain()
        if not isinstance(info, dict) or info.get("little_endian") is not True:
            raise ValueError("written on a big-endian machine (unsupported)")

        class Safe(_Unpickler):
            def find_class(self, module: str, name: str) -> Any:
                return loader.find_class(module, name)

            def persistent_load(self, pid: Any) -> Any:
                return loader.persistent_load(pid)

        obj = Safe(fh, encoding="utf-8").load()
        _read_storages(fh, loader, plain())
    except _Refused as err:
        raise UnsafePickleError(
            f"model file {path} is refused: its pickle calls {err.args[0]}, which a model file "
            "must not do (it would run code on load)"
        ) from None
    except Exception as err:  # noqa: BLE001 - a damaged pickle raises anything
        raise CheckpointError(
            f"model file {path} is not a readable legacy torch.save file (truncated or foreign?): "
            f"{type(err).__name__}: {_first_line(err)}"
        ) from None
    return obj
