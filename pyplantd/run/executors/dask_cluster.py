"""The dask cluster a dask executor uses: `local:N` starts one on 127.0.0.1 (and stops it), an
address connects to an existing scheduler (whose life pyplantd never manages). An address that
would carry pickles in clear text off this machine is refused before anything is sent to it.

Imports `distributed` only when a cluster is opened: pyplantd runs without the dask extra.
"""

from __future__ import annotations

import importlib.metadata
import ipaddress
import logging
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...errors import ExecutorError

if TYPE_CHECKING:
    from distributed import Client

INSTALL_HINT = 'pip install "pyplantd[dask]"'
# Distributions whose versions must be the same here and on every worker: what the engine and
# the job driver run on, and what pickles travel through. (Packages the user's reactors import
# are compared too, as they are imported: see `check_versions`.)
CORE_PACKAGES = (
    "pyplantd", "distributed", "dask", "cloudpickle", "msgpack", "numpy", "h5py", "xxhash",
)  # fmt: skip
START_TIMEOUT = 120.0  # seconds for a local cluster's workers, or a remote scheduler, to answer


def import_distributed() -> Any:
    """The `distributed` module, or an error saying how to install it."""
    try:
        import distributed
    except ImportError as err:
        raise ExecutorError(
            f"Running reactors on dask workers needs the dask extra, which is not installed "
            f"({err}). Install it with: {INSTALL_HINT}"
        ) from None
    return distributed


def check_address(address: str, insecure: bool) -> None:
    """Refuse a cluster address pyplantd must not connect to; sends nothing anywhere (no name
    is even looked up). dask's comm carries pickles, which run code where they are loaded:
    over plain tcp:// anyone on the path can read or change them, so only the loopback, or
    tls://, or an explicit --insecure-cluster, are allowed."""
    scheme, sep, rest = address.partition("://")
    if not sep or scheme not in ("tcp", "tls"):
        raise ExecutorError(
            f"Cluster address {address!r} is not tcp://HOST:PORT or tls://HOST:PORT."
        )
    host = _host(rest)
    if not host:
        raise ExecutorError(f"Cluster address {address!r} has no host.")
    if scheme == "tls" or insecure or is_loopback(host):
        return
    raise ExecutorError(
        f"Refusing to connect to the dask scheduler at {address}: plain tcp:// to a host other "
        "than this machine's loopback is unauthenticated and unencrypted, and dask's comm "
        "carries pickles, which run code on whoever loads them. Use a tls:// address (with "
        "dask's TLS settings), or pass --insecure-cluster if the network is trusted."
    )


def _host(rest: str) -> str:
    """The host of `HOST:PORT`, `[v6]:PORT` or `HOST`."""
    hostport = rest.split("/", 1)[0]
    if hostport.startswith("["):
        return hostport[1:].split("]", 1)[0]
    if hostport.count(":") > 1:  # a bare IPv6 address
        return hostport
    return hostport.rsplit(":", 1)[0] if ":" in hostport else hostport


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or `localhost` (a name that resolves elsewhere would need a lookup,
    which the check must not make)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class Shipping:
    """What the runs on a cluster have shipped by value and checked, so far."""

    modules_seen: int = 0  # len(sys.modules) when last looked at
    by_value: set[str] = field(default_factory=set)  # the user's modules pickled by value
    versions_checked: set[str] = field(default_factory=lambda: set(CORE_PACKAGES))


@dataclass
class Cluster:
    """A client of a dask scheduler, and the local cluster behind it when pyplantd started it."""

    client: Client
    owned: Any = None  # the SpecCluster pyplantd started (local:N), stopped by close()
    name: str = ""
    shipping: Shipping = field(default_factory=Shipping)

    @property
    def address(self) -> str:
        return str(self.client.scheduler.address)

    def workers(self) -> list[str]:
        return sorted(self.client.scheduler_info(n_workers=-1)["workers"])

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            if self.owned is not None:
                self.owned.close()
                self.owned = None


def start_local(slots: int, memory_limit: str | None = None) -> Cluster:
    """`local:N`: N single-threaded worker processes on 127.0.0.1, no dashboard. They are
    started as fresh interpreters (`python -m dask spec`), never forked or spawned from this
    process, so a pipeline script without a main guard is not run again in each of them."""
    distributed = import_distributed()
    from distributed.deploy.subprocess import SubprocessCluster

    worker_kwargs: dict[str, Any] = {"memory_limit": memory_limit or "auto"}
    no_dashboard: Any = None  # (typed as str, documented as None: no dashboard)
    owned = SubprocessCluster(
        host="127.0.0.1", dashboard_address=no_dashboard, n_workers=slots, threads_per_worker=1,
        worker_kwargs=worker_kwargs, silence_logs=logging.ERROR,
    )  # fmt: skip
    try:
        client = distributed.Client(owned, set_as_default=False, timeout=START_TIMEOUT)
        client.wait_for_workers(slots, timeout=START_TIMEOUT)
    except BaseException:
        owned.close()
        raise
    cluster = Cluster(client, owned, f"local:{slots}")
    check_versions(cluster, CORE_PACKAGES)
    return cluster


def connect(address: str, insecure: bool = False) -> Cluster:
    """An existing dask scheduler at `address` (checked first: see check_address)."""
    check_address(address, insecure)
    distributed = import_distributed()
    try:
        client = distributed.Client(address, set_as_default=False, timeout=START_TIMEOUT)
    except OSError as err:
        raise ExecutorError(
            f"Could not connect to the dask scheduler at {address}: {err}. Check that it runs "
            "and that this machine can reach it."
        ) from None
    cluster = Cluster(client, None, address)
    try:
        client.wait_for_workers(1, timeout=START_TIMEOUT)
        check_versions(cluster, CORE_PACKAGES)
    except BaseException:
        client.close()
        raise
    return cluster


def local_versions(packages: tuple[str, ...] | list[str]) -> dict[str, str | None]:
    """The installed version of each distribution (None when it is not installed)."""
    found: dict[str, str | None] = {}
    for package in packages:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    found["python"] = ".".join(str(part) for part in sys.version_info[:3])
    return found


def check_versions(cluster: Cluster, packages: tuple[str, ...] | list[str]) -> None:
    """Every worker has the same versions of `packages` (and Python) as this process, or an
    error names each that differs: a reactor must compute on a worker what it would here."""
    here = local_versions(packages)
    # (a worker dying while it is asked is skipped: its replacement runs the same installation)
    there = cluster.client.run(local_versions, list(packages), on_error="return")
    differing = []
    for worker, versions in sorted(there.items()):
        if not isinstance(versions, dict):
            continue
        for package, version in sorted(versions.items()):
            if version != here.get(package):
                mine = here.get(package) or "not installed"
                differing.append(
                    f"{package} {version or 'not installed'} on {worker} ({mine} here)"
                )
    if differing:
        raise ExecutorError(
            f"The workers of {cluster.name} run other package versions than this process: "
            f"{'; '.join(differing)}. Install the same versions on both sides."
        )
