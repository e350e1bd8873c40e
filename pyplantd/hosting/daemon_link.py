"""Whether a running `pyplantd watch` holds a plant dir, and a client to it: while a daemon
holds a plant, `pyplantd ls` and `clean` go through it instead of being refused. Uses the
client (pyplant_client) only, never the daemon's code.
"""

from __future__ import annotations

import os
from pathlib import Path

from pyplant_client import Client, ClientError, DaemonNotRunningError

from ..errors import PlantError

LINK_TIMEOUT = 5.0  # seconds to wait for the daemon's answers


def daemon_holding(pipeline: Path | None, plant_dir: Path | None) -> Client | None:
    """A client to the daemon of the project that serves this pipeline, or holds this plant dir,
    or, when neither is known (None), the project's daemon; None when no such daemon runs."""
    start = pipeline.absolute().parent if pipeline is not None else Path.cwd()
    try:
        client = Client.find(start, timeout=LINK_TIMEOUT)
    except DaemonNotRunningError:
        return None
    except ClientError as error:  # a runtime dir we must not trust: say so, never skip it
        raise PlantError(str(error)) from None
    try:
        status = client.status()
    except ClientError:
        client.close()
        return None
    if plant_dir is None and pipeline is None:
        return client  # nothing named: the project's daemon is the one meant
    if _same(status.get("plant_dir"), plant_dir) or (
        plant_dir is None and _same(status.get("pipeline"), pipeline)
    ):
        return client
    client.close()
    return None


def _same(theirs: object, ours: Path | None) -> bool:
    if not isinstance(theirs, str) or not theirs or ours is None:
        return False
    try:
        return os.path.samefile(theirs, ours)
    except OSError:
        return Path(theirs).absolute() == ours.absolute()
