"""What the client raises. Depends only on the protocol and trust modules.

    Exception
    ├── protocol.ProtocolError
    │   └── ProtocolError ─────────┐   bad reply, version mismatch, or the daemon's error reply
    └── ClientError ───────────────┤   (`.type`: "BadArguments", "UnknownCommand", ...)
        ├── DaemonNotRunningError  │   no connection file, or its daemon is gone
        ├── ProtocolError ─────────┘
        ├── UntrustedFileError     a runtime dir, connection or payload file another user
        │                          could have written (theirs, open to others, a link)
        ├── ClientTimeoutError  (also a builtin TimeoutError)   no reply in time
        ├── GraphError          a graph that cannot be drawn as asked (format, name, Graphviz)
        └── writers.WriteError  a fetched value that cannot be written as asked (suffix, kind)

`DaemonNotRunning` and `ClientTimeout` are the same classes under shorter names.
"""

from __future__ import annotations

from . import protocol, trust


class ClientError(Exception):
    """Base of everything the client raises."""


class DaemonNotRunningError(ClientError):
    """No daemon to talk to: no connection file, or the process it names is gone."""


class ProtocolError(ClientError, protocol.ProtocolError):
    """The daemon's answer is unusable, or it is an error reply (then `type` is its kind)."""

    def __init__(self, message: str, type: str = "ProtocolError") -> None:
        super().__init__(message)
        self.type = type
        self.message = message


class UntrustedFileError(ClientError, trust.UntrustedFileError):
    """A file the client will not believe, named with the reason; never used."""


class ClientTimeoutError(ClientError, TimeoutError):
    """The daemon did not answer in time."""


class GraphError(ClientError):
    """The graph cannot be drawn as asked: an unknown format or name, or Graphviz missing."""


DaemonNotRunning = DaemonNotRunningError
ClientTimeout = ClientTimeoutError
