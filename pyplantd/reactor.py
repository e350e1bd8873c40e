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
MAIN_THREAD_MARKER = "__pyplantd_main_thread__"
SUBREACTOR_MARKER = "__pyplantd_subreactor__"

# Latest function per reactor id, in decoration order. Re-executing a script (the daemon does)
# or a notebook cell replaces the old function objects instead of piling them up.
_visible_reactors: dict[str, Callable[..., Any]] = {}
_visible_subreactors: dict[str, Callable[..., Any]] = {}
_told_redefined: set[str] = set()  # interactive reactors whose redefinition was reported


def function_id(func: Callable[..., Any]) -> str:
    """Stable identity `module:qualname`; a script run as __main__ is named after its file, and
    code typed in a notebook or console (a __main__ with no file) is `__main__`, whatever cell
    defined it, so that a later cell's definition replaces an earlier one."""
    module = getattr(func, "__module__", None) or "?"
    if module == "__main__":
        script = _script_file(func)
        module = _script_module(script) if script else "__main__"
    return f"{module}:{func.__qualname__}"


@functools.lru_cache(maxsize=64)
def _script_module(script: str) -> str:
    # asked for every reactor, several times a run: one script's name is worked out once
    return os.path.splitext(os.path.basename(script))[0]


def _script_file(func: Callable[..., Any]) -> str | None:
    namespace = getattr(func, "__globals__", None)
    file = namespace.get("__file__") if isinstance(namespace, dict) else None
    return file if isinstance(file, str) else None


def latest_definition(func: Callable[..., Any]) -> Callable[..., Any]:
    """The latest decorated definition with `func`'s id (a later cell's, say), else `func`."""
    return _visible_reactors.get(function_id(func), func)


def ReactorFunc(  # noqa: N802
    func: Callable[..., Any] | None = None, *, main_thread: bool = False
) -> Any:
    """Mark `func(pipe)` or `func(pipe, config)` as a reactor; it is returned unchanged.

    `@ReactorFunc(main_thread=True)` keeps a reactor on the main thread of the process that
    runs the plant, whatever the executor (GUI toolkits and some plotting backends need it);
    targets always run there.

    >>> @ReactorFunc
    ... def load(pipe):
    ...     pipe.send('data', [1, 2, 3])
    """
    if func is None:
        return lambda decorated: _mark_reactor(decorated, main_thread)
    return _mark_reactor(func, main_thread)


def _mark_reactor(func: Callable[..., Any], main_thread: bool) -> Callable[..., Any]:
    if not callable(func):
        raise TypeError(f"@ReactorFunc decorates a function, not {func!r}.")
    setattr(func, REACTOR_MARKER, True)
    if main_thread:
        setattr(func, MAIN_THREAD_MARKER, True)
    reactor_id = function_id(func)
    previous = _visible_reactors.pop(reactor_id, None)
    if previous is not None and previous is not func:
        _tell_redefined(reactor_id, func)
    _visible_reactors[reactor_id] = func
    return func


def needs_main_thread(func: Callable[..., Any]) -> bool:
    """Whether the reactor was marked `@ReactorFunc(main_thread=True)`."""
    return bool(getattr(func, MAIN_THREAD_MARKER, False))


def _tell_redefined(reactor_id: str, func: Callable[..., Any]) -> None:
    """Once per reactor, in a notebook or console: the new definition is the one that runs (a
    script run again, as the daemon does, replaces its reactors without a word)."""
    if getattr(func, "__module__", None) != "__main__" or _script_file(func) is not None:
        return
    if reactor_id not in _told_redefined:
        _told_redefined.add(reactor_id)
        import logging  # here: rarely needed, and a module of reactors need not load it

        logging.getLogger(__name__).warning(
            "Reactor '%s' was defined again: from now on its latest definition runs, in every "
            "Plant (this is said once per reactor).",
            func.__qualname__,
        )


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
    if where is None:
        _told_redefined.clear()
