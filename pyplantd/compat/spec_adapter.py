"""Run a spec written against PyPlant's interface (``store(warehouse, name, value) -> meta``,
``fetch(warehouse, name, meta)``) as a pyplantd spec.

PyPlant's specs write any files they like under ``warehouse.baseDir``; pyplantd keeps one
payload file per value, written atomically. So the spec writes into a private directory, and
its files and metadata are packed into one uncompressed tar (deterministic: same files, same
bytes, so an identical re-run stops there). Reading unpacks it into a directory that lives
until the spec is closed, since what `fetch` returns may keep reading its files. Storage the
spec allocates is packed the same way when its reactor ends (see compat.allocation).
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import shutil
import tarfile
import tempfile
from typing import Any

from ..errors import PlantError
from ..fingerprint import PICKLE_PROTOCOL
from ..store import specs as native
from .allocation import Allocation
from .warehouse import Warehouse, spec_name

_META = ".pyplantd-meta"  # archive member: the ingredient's name and the spec's metadata


def is_pyplant_spec(spec: Any) -> bool:
    """A spec of PyPlant's interface: not a pyplantd spec, and has get_name/store/fetch."""
    if isinstance(spec, native.IngredientTypeSpec):
        return False
    return all(callable(getattr(spec, m, None)) for m in ("get_name", "store", "fetch"))


def as_native(spec: Any) -> native.IngredientTypeSpec:
    """A pyplantd spec for `spec`, adapting it if it is written against PyPlant's interface."""
    if isinstance(spec, native.IngredientTypeSpec):
        return spec
    if not is_pyplant_spec(spec):
        raise PlantError(
            f"{spec!r} is not an ingredient type spec. Subclass pyplantd.IngredientTypeSpec "
            "(or PyPlant's pyplantd.specs.IngredientTypeSpec) and register an instance."
        )
    name = spec_name(spec)
    adapter = type(f"PyPlantSpec[{name}]", (PyPlantSpec,), {"name": name})
    return adapter(spec)


class PyPlantSpec(native.IngredientTypeSpec):
    """A PyPlant-interface spec, stored as a tar of the files it writes."""

    suffix = ".tar"

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._unpacked: list[str] = []  # directories `fetch` results may still read

    def is_instance(self, value: Any) -> bool:
        return bool(self.inner.is_instance(value))

    def allocate(self, name: str, options: dict[str, Any]) -> Allocation:
        """PyPlant's ``pipe.allocate``: the spec's own allocate, in a directory of its own."""
        return Allocation.make(self.inner, name, options)

    def write_named(self, name: str, value: Any, path: str) -> native.Written:
        if isinstance(value, Allocation):  # its reactor ended: stored as it is now
            _pack(value.directory, {"name": name, "meta": value.store()}, path)
        else:
            with tempfile.TemporaryDirectory(prefix="pyplantd-spec-") as scratch:
                meta = self.inner.store(Warehouse(scratch), name, value)
                _pack(scratch, {"name": name, "meta": meta}, path)
        checksum = native.file_fingerprint(path)  # the content: the files and the metadata
        return native.Written(checksum, checksum)

    def describe(self, value: Any) -> dict[str, Any]:
        return super().describe(value.sent if isinstance(value, Allocation) else value)

    def store(self, value: Any, path: str) -> None:
        self.write_named("ingredient", value, path)

    def fetch(self, path: str) -> Any:
        return self.load(path, out_of_core=False)

    def load(self, path: str, out_of_core: bool) -> Any:
        directory = tempfile.mkdtemp(prefix="pyplantd-spec-")
        self._unpacked.append(directory)
        found = _unpack(path, directory)
        return self.inner.fetch(Warehouse(directory), found["name"], found["meta"])

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            for directory in self._unpacked:
                shutil.rmtree(directory, ignore_errors=True)
            self._unpacked.clear()


def _pack(directory: str, header: dict[str, Any], path: str) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as archive:
        _add_bytes(archive, _META, pickle.dumps(header, protocol=PICKLE_PROTOCOL))
        for root, dirs, files in os.walk(directory):
            dirs.sort()
            for file_name in sorted(files):
                full = os.path.join(root, file_name)
                with open(full, "rb") as handle:
                    _add_bytes(archive, os.path.relpath(full, directory), handle.read())


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)  # no mtime, owner or mode: equal files, equal archive
    info.size = len(data)
    info.mode = 0o600
    archive.addfile(info, io.BytesIO(data))


def _unpack(path: str, directory: str) -> dict[str, Any]:
    with tarfile.open(path, "r") as archive:
        header: dict[str, Any] = {}
        for member in archive.getmembers():
            if not member.isfile():
                continue
            handle = archive.extractfile(member)
            assert handle is not None
            data = handle.read()
            if member.name == _META:
                header = pickle.loads(data)  # a payload of this plant dir, like PickleSpec's
                continue
            target = os.path.realpath(os.path.join(directory, member.name))
            if not target.startswith(os.path.realpath(directory) + os.sep):
                raise PlantError(f"Payload {path} names a file outside its directory.")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as out:
                out.write(data)
    with contextlib.suppress(KeyError):
        return {"name": header["name"], "meta": header["meta"]}
    raise PlantError(f"Payload {path} has no header: it was not written by pyplantd.")
