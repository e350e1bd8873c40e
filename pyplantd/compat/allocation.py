"""Storage allocated by a spec of PyPlant's interface (``spec.allocate(warehouse, name, ...)``).

PyPlant's lifecycle, kept: `pipe.allocate` calls the spec's `allocate` and the reactor gets what
it returns; the reactor fills it and sends it; the spec's ``store(warehouse, name, value)``
makes it persistent; ``allocate_temp`` storage gets ``deallocate(warehouse, 'temp_' + name)``
when the reactor ends. pyplantd gives each allocation a directory of its own as
``warehouse.baseDir``, calls `store` when the reactor ends (so everything it wrote counts), and
packs the directory as the ingredient's payload (see spec_adapter); the spec's own copy is then
deallocated. Depends on compat.warehouse only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..errors import AllocationError, InvalidOperationException
from .warehouse import Warehouse, spec_name

logger = logging.getLogger(__name__)

_UNSENT = object()


@dataclass
class Allocation:
    spec: Any  # the spec of PyPlant's interface
    name: str  # as the spec knows it ('temp_' + name for allocate_temp, as in PyPlant)
    directory: str  # the spec's warehouse.baseDir for this allocation alone
    handle: Any  # what `allocate` returned: the reactor fills it
    sent: Any = _UNSENT  # what the reactor sent as the ingredient's value

    @classmethod
    def make(cls, spec: Any, name: str, options: dict[str, Any]) -> Allocation:
        if not getattr(spec, "isAllocatable", False):
            raise AllocationError(
                f"Ingredient type {spec_name(spec)} cannot be allocated: its spec does not set "
                "isAllocatable = True. Send the value with pipe.send(name, value) instead."
            )
        import tempfile  # here: only scripts with such specs pay for it

        directory = tempfile.mkdtemp(prefix="pyplantd-allocated-")
        try:
            handle = spec.allocate(Warehouse(directory), name, **options)
        except BaseException:
            _remove(directory)
            raise
        return cls(spec, name, directory, handle)

    def store(self) -> Any:
        """The spec's ``store`` of the sent value, in this allocation's directory: its metadata."""
        assert self.sent is not _UNSENT
        return self.spec.store(Warehouse(self.directory), self.name, self.sent)

    def discard(self) -> None:
        """Let the spec release the storage (``deallocate``), then delete its directory. A spec
        that does not deallocate (PyPlant's default raises) loses nothing: the directory goes."""
        try:
            self.spec.deallocate(Warehouse(self.directory), self.name)
        except Exception as err:  # its storage is gone with the directory either way
            if not isinstance(err, InvalidOperationException):
                logger.warning(
                    "Deallocating '%s' (type %s) failed: %s", self.name, spec_name(self.spec), err
                )
        finally:
            _remove(self.directory)


def _remove(directory: str) -> None:
    import shutil

    shutil.rmtree(directory, ignore_errors=True)
