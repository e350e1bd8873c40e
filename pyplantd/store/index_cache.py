"""The manifest as the code index cache (code_index.IndexCache): file indexes by content hash.

Reads go to SQLite at once; writes wait in memory for `flush()` at the end of a run, where they
take one transaction, so computing signatures never waits on the disk.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from ..errors import StoreError
from .manifest import Manifest

logger = logging.getLogger(__name__)

_TOUCH_AFTER = 86400.0  # mark a used index as used again at most daily: no write per run


class ManifestIndexCache:
    """Buffers puts and "used" marks of code indexes until `flush()`."""

    def __init__(self, manifest: Manifest) -> None:
        self._manifest = manifest
        self._pending: dict[str, Callable[[], str]] = {}
        self._used: set[str] = set()

    def get(self, content_hash: str) -> str | None:
        found = self._manifest.code_index(content_hash)
        if found is None:
            return None
        body, used_at = found
        if used_at < time.time() - _TOUCH_AFTER:
            self._used.add(content_hash)
        return body

    def put(self, content_hash: str, body: Callable[[], str]) -> None:
        self._pending[content_hash] = body

    def flush(self) -> None:
        """Write what the run added, in one transaction; a failure only costs a later parse."""
        if not (self._pending or self._used):
            return
        pending, used = self._pending, self._used
        self._pending, self._used = {}, set()
        bodies = {key: make() for key, make in pending.items()}
        try:
            self._manifest.put_code_indexes(bodies, used)
        except StoreError as err:  # the manifest's own failures (a full disk, say)
            logger.warning("Could not store %d code indexes in the manifest: %s", len(bodies), err)
