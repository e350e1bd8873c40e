"""The @ReactorFunc / @SubreactorFunc decorators and the registry of visible reactor functions.

Depends on nothing else in pyplantd: the plant reads the registry, the signature module reads the
subreactor marker.
"""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

REACTOR_MARKER = "__pyplantd_reactor__"
SUBREACTOR_MARKER = "__pyplantd_subreactor__"

# Latest function per reactor id, in decoration order. Re-executing a script (the daemon does)
# replaces the old function objects instead of piling them up.
_visible_reactors: dict[str, Callable[..., Any]] = {}
_visible_subreactors: dict[str, Callable[..., Any]] = {}


def function_id(func: Callable[..., Any]) -> str:
    """Stable identity `module:qualname`; a script run as __main__ is named after its file."""
    module = getattr(func, "__module__", None) or "?"
    if module == "__main__":
        code = getattr(func, "__code__", None)
        filename = code.co_filename if code else "__main__"
        module = os.path.splitext(os.path.basename(filename))[0]
    return f"{module}:{func.__qualname__}"


def ReactorFunc(func: Callable[..., Any]) -> Callable[..., Any]:  # noqa: N802
    """Mark `func(pipe)` or `func(pipe, config)` as a reactor; it is returned unchanged.

    >>> @ReactorFunc
    ... def load(pipe):
    ...     pipe.send('data', [1, 2, 3])
    """
    if not callable(func):
        raise TypeError(f"@ReactorFunc decorates a function, not {func!r}.")
    setattr(func, REACTOR_MARKER, True)
    _visible_reactors.pop(function_id(func), None)
    _visible_reactors[function_id(func)] = func
    return func


@dataclass(frozen=True)
class SubreactorStarted:
    """Yielded by a subreactor wrapper so the plant records which subreactors a reactor used."""

    func: Callable[..., Any]


def SubreactorFunc(func: Callable[..., Any]) -> Callable[..., Generator[Any, Any, Any]]:  # noqa: N802
    """Mark a helper procedure whose code changes re-run every reactor that calls it.

    Call it as ``result = yield from sub(pipe, ...)``; it may receive and send on the caller's
    behalf, call other subreactors, or be a plain function.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        yield SubreactorStarted(func)
        if inspect.isgeneratorfunction(func):
            return (yield from func(*args, **kwargs))
        return func(*args, **kwargs)

    setattr(wrapper, SUBREACTOR_MARKER, func)
    _visible_subreactors[function_id(func)] = func
    return wrapper


def is_reactor(func: object) -> bool:
    return callable(func) and getattr(func, REACTOR_MARKER, False) is True


def visible_reactors() -> list[Callable[..., Any]]:
    """Every @ReactorFunc decorated so far (latest version of each)."""
    return list(_visible_reactors.values())


def visible_subreactors() -> list[Callable[..., Any]]:
    """Every @SubreactorFunc decorated so far (the undecorated functions), from a copy."""
    return list(_visible_subreactors.copy().values())


def find_subreactor(subreactor_id: str) -> Callable[..., Any] | None:
    return _visible_subreactors.get(subreactor_id)


def start_reactor(func: Callable[..., Any], pipe: Any, config: Any) -> Generator[Any, Any, None]:
    """A generator for one execution of `func`, whether it is a generator function or not."""
    takes_config = len(inspect.signature(func).parameters) >= 2
    args = (pipe, config) if takes_config else (pipe,)
    if inspect.isgeneratorfunction(func):
        return func(*args)  # type: ignore[no-any-return]

    def run_plain() -> Generator[Any, Any, None]:
        func(*args)
        yield  # one step, as in PyPlant (its reactor_step listeners hear it)

    return run_plain()


def forget_visible(where: Callable[[Callable[..., Any]], bool] | None = None) -> None:
    """Forget the decorated functions for which `where(func)` is true, or all of them (tests
    isolate themselves with this). The daemon forgets those its reload defines again, so that
    one the code no longer defines is never run again."""
    for registry in (_visible_reactors, _visible_subreactors):
        for key, func in list(registry.items()):
            if where is None or where(func):
                del registry[key]
