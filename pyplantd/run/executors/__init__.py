"""Executors: where reactors run. `open_executor(choice)` opens one from a parsed choice.

`inline` (the default) runs every reactor on the calling thread, as pyplantd always did;
`threads:N` runs independent reactors on N threads; `local:N` and cluster addresses
(`tcp://HOST:PORT`, `tls://HOST:PORT`) run them on dask.distributed workers, from the optional
`pyplantd.run.executors.dask` module, imported only when asked for.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...errors import ExecutorChoiceError, ExecutorError

if TYPE_CHECKING:
    from .base import Executor

VALID_FORMS = (
    "inline, threads:N, local:N (N >= 1), or a cluster address tcp://HOST:PORT or tls://HOST:PORT"
)
CLUSTER_SCHEMES = ("tcp://", "tls://")


@dataclass(frozen=True)
class ExecutorChoice:
    """A parsed executor choice: `kind` is inline, threads, local or cluster."""

    kind: str
    slots: int = 1  # threads/local: N; cluster: unknown until connected (1)
    address: str | None = None  # cluster only
    insecure: bool = False  # cluster only: a plain tcp:// address off the loopback is allowed
    # local/cluster: a reactor whose last run took less (seconds) runs in this process; dask's
    # ~20-30 ms per step would cost more than running it here (0: every reactor on workers)
    local_below: float = 1.0

    @classmethod
    def parse(cls, text: str, insecure: bool = False) -> ExecutorChoice:
        """`inline`, `threads:N`, `local:N`, or a `tcp://`/`tls://` cluster address."""
        if not isinstance(text, str):
            raise ExecutorChoiceError(
                f"Executor {text!r} is not a string. Valid forms: {VALID_FORMS}."
            )
        value = text.strip()
        if value == "inline":
            return cls("inline")
        if value.startswith(CLUSTER_SCHEMES):
            if not value.split("://", 1)[1]:
                raise ExecutorChoiceError(
                    f"Cluster address {text!r} has no host. Write it as tcp://HOST:PORT or "
                    "tls://HOST:PORT."
                )
            return cls("cluster", address=value, insecure=insecure)
        kind, colon, count = value.partition(":")
        if kind in ("threads", "local"):
            if not colon or not count.isdigit() or int(count) < 1:
                raise ExecutorChoiceError(
                    f"Executor {text!r} needs a number of slots of at least 1 after the colon, "
                    f"as in {kind}:2. Valid forms: {VALID_FORMS}."
                )
            return cls(kind, slots=int(count))
        raise ExecutorChoiceError(f"Executor {text!r} is not known. Valid forms: {VALID_FORMS}.")

    def __str__(self) -> str:
        if self.kind == "inline":
            return "inline"
        if self.kind == "cluster":
            return str(self.address)
        return f"{self.kind}:{self.slots}"


INLINE = ExecutorChoice("inline")


def as_choice(choice: ExecutorChoice | str | None) -> ExecutorChoice:
    if choice is None:
        return INLINE
    if isinstance(choice, ExecutorChoice):
        return choice
    return ExecutorChoice.parse(choice)


def open_executor(choice: ExecutorChoice | str | None = None) -> Executor:
    """An executor for `choice` (default inline). The caller closes it."""
    choice = as_choice(choice)
    if choice.kind == "inline":
        from .inline import InlineExecutor

        return InlineExecutor()
    if choice.kind == "threads":
        from .threads import ThreadExecutor

        return ThreadExecutor(choice.slots)
    try:  # the dask executor's module: `open_dask(choice) -> Executor`
        dask_executor = importlib.import_module(__name__ + ".dask")
    except ModuleNotFoundError as err:
        if err.name != __name__ + ".dask":
            raise
        raise ExecutorError(
            f"Executor {choice} needs the dask executor, which this installation of pyplantd "
            "does not include. Use --executor threads:N, or install pyplantd[dask]."
        ) from None
    executor: Executor = dask_executor.open_dask(choice)
    return executor
