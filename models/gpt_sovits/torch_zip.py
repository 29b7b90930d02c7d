"""Safe reader for `torch.save` zip archives, restricted to what GPT-SoVITS files contain.

`torch.load` runs arbitrary pickled code unless `weights_only=True`, and `weights_only=True`
refuses the official SoVITS files because their config is a pickled `utils.HParams` object.
This module therefore unpickles `<root>/data.pkl` itself with an allow-list of globals and
rebuilds tensors from the raw `<root>/data/<key>` storage entries; nothing outside the list is
ever imported or called.

Archive layout (written by `torch.save`): one root folder of arbitrary name (GPT-SoVITS uses a
timestamp), holding `data.pkl`, `data/<storage key>` (raw little-endian bytes unless the
`byteorder` entry says "big"), and bookkeeping entries (`version`, `.format_version`, ...).
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch

from voiceseal_models.gpt_sovits.errors import CheckpointError

# Storage classes a `torch.save` pickle names for typed storages, mapped to their dtype.
_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "HalfStorage": torch.float16,
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


@dataclass(frozen=True)
class StorageType:
    """Stand-in for a `torch.<X>Storage` class named in the pickle: only its dtype matters."""

    dtype: torch.dtype


@dataclass(frozen=True)
class TensorStub:
    """Shape and dtype of a tensor whose bytes were not read (`read_archive(meta_only=True)`)."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    storage_key: str


class HParamsNode:
    """Dict-like stand-in for the official `utils.HParams` class (a bag of attributes).

    Pickle restores such objects by creating an empty instance and handing its `__dict__` to
    `__setstate__`; we keep that dict and never execute any of the original class's code.
    """

    values: dict[str, Any]

    def __new__(cls, *args: object) -> HParamsNode:
        if args:
            raise CheckpointError("utils.HParams was pickled with constructor arguments")
        node = super().__new__(cls)
        node.values = {}
        return node

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
            raise CheckpointError("utils.HParams state is not a dict of named fields")
        self.values = dict(state)


def to_plain(obj: Any) -> Any:
    """Convert `HParamsNode` trees (and OrderedDicts) into plain nested dicts."""
    if isinstance(obj, HParamsNode):
        return {k: to_plain(v) for k, v in obj.values.items()}
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_plain(v) for v in obj)
    return obj


class _HeadPatchedFile(io.RawIOBase):
    """Read-only view of a file whose first two bytes are replaced (version tag -> "PK")."""

    def __init__(self, raw: io.BufferedIOBase, head: bytes) -> None:
        super().__init__()
        self._raw = raw
        self._head = head

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def readinto(self, buffer: Any) -> int:
        start = self._raw.tell()
        view = memoryview(buffer).cast("B")
        n = self._raw.readinto(view)
        if n and start < len(self._head):
            end = min(len(self._head), start + n)
            view[: end - start] = self._head[start:end]
        return n or 0

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_zip(raw: io.BufferedIOBase, *, source: str) -> zipfile.ZipFile:
    """Open `raw` (positioned anywhere) as a zip, putting "PK" back over a version tag."""
    try:
        return zipfile.ZipFile(_HeadPatchedFile(raw, b"PK"))
    except zipfile.BadZipFile as exc:
        raise CheckpointError(
            f"{source}: starts like a zip archive but its directory is missing or damaged "
            f"(truncated or corrupt file): {exc}"
        ) from exc


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only allow-listed globals and reads storages lazily from the zip."""

    def __init__(
        self,
        data: bytes,
        *,
        archive: zipfile.ZipFile,
        root: str,
        big_endian: bool,
        meta_only: bool,
        source: str,
    ) -> None:
        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._root = root
        self._big_endian = big_endian
        self._meta_only = meta_only
        self._source = source
        self._storages: dict[str, torch.Tensor | _StorageRef] = {}
        self._globals: dict[tuple[str, str], Any] = {
            ("collections", "OrderedDict"): OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor,
            ("utils", "HParams"): HParamsNode,
        }
        for name, dtype in _STORAGE_DTYPES.items():
            self._globals[("torch", name)] = StorageType(dtype)

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._globals[(module, name)]
        except KeyError:
            allowed = ", ".join(sorted(f"{m}.{n}" for m, n in self._globals if m != "torch"))
            raise CheckpointError(
                f"{self._source}: refused to unpickle: it references the global "
                f"'{module}.{name}', which no official GPT-SoVITS checkpoint contains "
                f"(allowed: {allowed} and torch storage classes)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        if (
            not isinstance(pid, tuple)
            or len(pid) != 5
            or pid[0] != "storage"
            or not isinstance(pid[1], StorageType)
            or not isinstance(pid[2], str)
            or not isinstance(pid[4], int)
        ):
            raise CheckpointError(f"{self._source}: malformed storage reference {pid!r:.200}")
        _, storage_type, key, _location, numel = pid
        cached = self._storages.get(key)
        if cached is None:
            cached = self._load_storage(key, storage_type.dtype, numel)
            self._storages[key] = cached
        if cached.dtype != storage_type.dtype:
            raise CheckpointError(f"{self._source}: storage {key} is used with two dtypes")
        return cached

    def _load_storage(self, key: str, dtype: torch.dtype, numel: int) -> torch.Tensor | _StorageRef:
        entry = f"{self._root}data/{key}"
        try:
            info = self._archive.getinfo(entry)
        except KeyError:
            raise CheckpointError(
                f"{self._source}: storage entry '{entry}' is missing from the archive"
            ) from None
        itemsize = torch.empty((), dtype=dtype).element_size()
        if numel < 0 or info.file_size < numel * itemsize:
            raise CheckpointError(
                f"{self._source}: storage '{key}' holds {info.file_size} bytes, "
                f"expected {numel} x {itemsize}"
            )
        if self._meta_only:
            return _StorageRef(key, dtype, numel)
        try:
            raw = bytearray(self._archive.read(entry))
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise CheckpointError(f"{self._source}: storage '{key}' is corrupt: {exc}") from exc
        raw = raw[: numel * itemsize]
        if numel == 0:
            return torch.empty(0, dtype=dtype)
        flat = torch.frombuffer(raw, dtype=torch.uint8)
        if self._big_endian and itemsize > 1:
            flat = flat.view(-1, itemsize).flip(1).reshape(-1)
        return flat.view(dtype)

    def _rebuild_tensor(
        self,
        storage: torch.Tensor | _StorageRef,
        offset: int,
        size: tuple[int, ...],
        stride: tuple[int, ...],
        requires_grad: bool = False,
        backward_hooks: object = None,
        metadata: object = None,
    ) -> torch.Tensor | TensorStub:
        if not isinstance(storage, torch.Tensor | _StorageRef):
            raise CheckpointError(f"{self._source}: tensor rebuilt from a non-storage object")
        if (
            not isinstance(offset, int)
            or not isinstance(size, tuple)
            or not isinstance(stride, tuple)
            or len(size) != len(stride)
            or not all(isinstance(v, int) and v >= 0 for v in (offset, *size, *stride))
        ):
            raise CheckpointError(f"{self._source}: malformed tensor geometry {size}/{stride}")
        numel = storage.numel if isinstance(storage, _StorageRef) else storage.numel()
        if all(size):
            last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
            if last >= numel:
                raise CheckpointError(
                    f"{self._source}: tensor of shape {list(size)} reaches element {last} "
                    f"of a storage holding {numel}"
                )
        if isinstance(storage, _StorageRef):
            return TensorStub(tuple(size), storage.dtype, storage.key)
        return torch.as_strided(storage, size, stride, offset)


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: torch.dtype
    numel: int


def read_archive(archive: zipfile.ZipFile, *, source: str, meta_only: bool = False) -> Any:
    """Unpickle the archive's `data.pkl` safely.

    Tensors come back as CPU tensors viewing their storage (tensors that share a storage in the
    file share it here too), or as `TensorStub`s when `meta_only` (no storage bytes are read).
    """
    pkl_names = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
    if len(pkl_names) != 1:
        raise CheckpointError(
            f"{source}: a zip archive but not a torch checkpoint "
            f"(expected exactly one '<root>/data.pkl', found {len(pkl_names)})"
        )
    root = pkl_names[0][: -len("data.pkl")]
    big_endian = False
    if f"{root}byteorder" in archive.namelist():
        order = archive.read(f"{root}byteorder").decode("ascii", "replace").strip()
        if order not in ("little", "big"):
            raise CheckpointError(f"{source}: unknown byte order {order!r}")
        big_endian = order == "big"
    try:
        data = archive.read(pkl_names[0])
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CheckpointError(f"{source}: data.pkl is corrupt: {exc}") from exc
    unpickler = _RestrictedUnpickler(
        data,
        archive=archive,
        root=root,
        big_endian=big_endian,
        meta_only=meta_only,
        source=source,
    )
    try:
        return unpickler.load()
    except CheckpointError:
        raise
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"{source}: data.pkl is not a valid pickle: {exc}") from exc
