"""The one place the client loads a pickle: an ingredient the daemon stored as one (an object, a
trained model), read from its payload file in the plant dir, in the caller's own process, and
only once the file is found to be the user's own and to hold exactly the bytes recorded when it
was stored. What comes over the socket is never unpickled: the daemon only names the file.
"""

from __future__ import annotations

import hmac
import pickle
from pathlib import Path
from typing import Any

from . import trust
from .errors import ClientError, ProtocolError, UntrustedFileError

# A pickled payload's checksum, as the daemon names it: xxh3_128 over the file's bytes.
CHECKSUM_ALGORITHM = "xxh3_128-file"
PROTOCOL = 5


def dumps(value: Any) -> bytes:
    """A value fetched as an array or JSON, as a pickle (`pyplant fetch -o x.pkl`)."""
    return pickle.dumps(value, protocol=PROTOCOL)


def refusal(name: str, kind: object) -> str:
    """Why an object is not loaded without leave, and how to give it."""
    return (
        f"'{name}' is a {kind or 'Python object'} stored as a pickle, and loading a pickle runs "
        f"code. If you trust this plant dir: Client.fetch({name!r}, allow_pickle=True), or "
        f"`pyplant fetch {name} -o {name}.pkl --allow-pickle`."
    )


def load(name: str, result: dict[str, Any]) -> Any:
    """The value in the payload file of a 'fetch' reply of format 'pickle', checked first."""
    data = checked_bytes(name, result)
    try:
        return pickle.loads(data)  # the user's own file, unaltered since it was stored
    except (AttributeError, ImportError) as err:
        raise ClientError(
            f"'{name}' holds a {result.get('python_type') or 'value'} whose class this process "
            f"cannot find ({err}). Import the module that defines it first; a class defined in "
            "the pipeline script itself is pickled as __main__'s: move it into a module."
        ) from None


def checked_bytes(name: str, result: dict[str, Any]) -> bytes:
    """The bytes of the payload file the reply names, believed only if the file is the user's
    own (checked on the descriptor read), of the recorded size and checksum."""
    path, checksum = result.get("path"), result.get("checksum")
    if not isinstance(path, str) or not path:
        raise ProtocolError("a 'file' reply to 'fetch' names no path")
    if not isinstance(checksum, dict) or checksum.get("algorithm") != CHECKSUM_ALGORITHM:
        raise ProtocolError(f"the daemon sent no usable checksum for {path}; refusing it")
    try:
        data = trust.read_payload_file(Path(path))
    except trust.UntrustedFileError as err:
        raise UntrustedFileError(str(err)) from None
    except OSError as err:
        raise ClientError(f"cannot read '{name}' from {path}: {err.strerror or err}") from None
    size = result.get("size")
    if size is not None and len(data) != size:
        raise UntrustedFileError(altered(name, path, f"{len(data)} bytes, not {size}"))
    try:
        import xxhash
    except ImportError:
        raise ClientError(
            f"checking '{name}' against its checksum needs xxhash: pip install xxhash"
        ) from None
    digest = checksum.get("digest")
    if not isinstance(digest, str) or not hmac.compare_digest(
        xxhash.xxh3_128_hexdigest(data), digest
    ):
        raise UntrustedFileError(altered(name, path, "its content is not what was stored"))
    return data


def altered(name: str, path: str, how: str) -> str:
    return (
        f"Refusing {path}: {how}, so the file was changed on disk after '{name}' was stored. "
        f"Re-make it: pyplant invalidate <the reactor that sends '{name}'>."
    )
