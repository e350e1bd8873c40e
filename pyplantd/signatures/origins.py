"""Where code comes from: the user's own files, an installed package (and its version), the
stdlib, or nothing to track. Depends on nothing else in pyplantd but distributions.
"""

from __future__ import annotations

import functools
import os
import sys
from types import CodeType, FunctionType
from typing import Literal

Origin = Literal["user", "stdlib", "package", "ignored"]

# pyplantd/, not signatures/
_PYPLANTD_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.lru_cache(maxsize=8192)
def is_user_file(path: str) -> bool:
    """True for a .py file of the user's own code: not the stdlib, not site-packages or
    dist-packages, not pyplantd itself.

    >>> is_user_file(os.__file__)
    False
    """
    if not path.endswith(".py"):
        return False
    absolute = os.path.normcase(os.path.abspath(path))
    if _is_library_path(absolute):  # without resolving links (lstat per folder): most are
        return False
    return not _is_library_path(os.path.normcase(os.path.realpath(path)))


def _is_library_path(path: str) -> bool:
    if {"site-packages", "dist-packages"} & set(path.split(os.sep)):  # any venv, any interpreter
        return True
    if path.startswith(_OWN_DIRS):  # the stdlib's and pyplantd's modules, without sysconfig
        return True
    return any(path == root or path.startswith(root + os.sep) for root in _library_roots())


_OWN_DIRS = tuple(
    os.path.normcase(folder) + os.sep
    for folder in (os.path.dirname(os.path.abspath(os.__file__)), _PYPLANTD_DIR)
)


@functools.cache
def _library_roots() -> tuple[str, ...]:
    import sysconfig  # here: its data takes ~1 ms to load, and most paths never need it

    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots.add(_PYPLANTD_DIR)
    return tuple(
        {os.path.normcase(f(r)) for r in roots for f in (os.path.abspath, os.path.realpath)}
    )


def package_version(module_name: str) -> str | None:
    """Installed version of the distribution providing a top-level import name.

    >>> package_version("os") is None
    True
    """
    dist = distribution(module_name.partition(".")[0])
    return None if dist is None else _dist_version(dist)


def _dist_version(dist: str) -> str | None:
    # looked up once per process: what runs is the version imported first, even if upgraded
    # on disk since
    from . import distributions  # not at import: most processes find no package to look up

    return distributions.version(dist)


def distribution(top: str) -> str | None:
    """Name of the installed distribution providing a top-level import name, if any."""
    from . import distributions

    return distributions.distribution(top)


def module_origin(module_name: str | None, file: str | None = None) -> Origin:
    """Where a module comes from; `file` overrides the file of the module of that name."""
    top = (module_name or "").partition(".")[0]
    if top == "pyplantd":
        return "ignored"
    file = file or module_file(module_name)
    if file is not None and is_user_file(file):
        return "user"
    if top in sys.stdlib_module_names:
        return "stdlib"
    if top and distribution(top) is not None:
        return "package"
    # no file and no distribution: code exec'd into a namespace of the user's
    return "ignored" if file is not None else "user"


def definition_origin(obj: FunctionType | type) -> Origin:
    """Where a function or class comes from, judged by the file its code was compiled from."""
    code = getattr(obj, "__code__", None)
    file = code.co_filename if isinstance(code, CodeType) else None
    file = None if file is None or file.startswith("<") else file
    return module_origin(module_name_of(obj), file)


def safe_attr(obj: object, name: str) -> object:
    """`getattr(obj, name, None)`, or None if the attribute lookup raises."""
    try:  # proxies and lazy objects may raise anything from __getattr__
        return getattr(obj, name, None)
    except Exception:
        return None


def module_name_of(obj: object) -> str | None:
    """`obj.__module__` if it is a string, else None."""
    name = safe_attr(obj, "__module__")
    return name if isinstance(name, str) else None


def module_file(module_name: str | None) -> str | None:
    """The file of an imported module of that name, if any."""
    file = getattr(sys.modules.get(module_name or ""), "__file__", None)
    return file if isinstance(file, str) else None
