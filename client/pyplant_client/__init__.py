"""pyplant_client: the thin client of the pyplantd daemon (needs only pyzmq)."""

from .client import Client, EventStream
from .errors import (
    ClientError,
    ClientTimeout,
    ClientTimeoutError,
    DaemonNotRunning,
    DaemonNotRunningError,
    ProtocolError,
    UntrustedFileError,
)
from .protocol import PROTOCOL_VERSION, ConnectionInfo

__version__ = "0.1.0"

__all__ = [
    "PROTOCOL_VERSION",
    "Client",
    "ClientError",
    "ClientTimeout",
    "ClientTimeoutError",
    "ConnectionInfo",
    "DaemonNotRunning",
    "DaemonNotRunningError",
    "EventStream",
    "ProtocolError",
    "UntrustedFileError",
    "__version__",
]
