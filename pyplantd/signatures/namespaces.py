"""Every module-level name of the user's modules, by the object it is bound to: who else may
change a value (another name for it, a module that imported it, `module.name` in a module that
imports its module). Depends on origins only.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Callable
from types import ModuleType
from typing import Any

from .origins import is_user_file

Namespace = dict[str, Any]
_PLAIN = (type(None), bool, int, float, complex, str, bytes)  # never changed in place

# sys.modules holds hundreds of modules: each is judged once (name -> (module, user's own))
_JUDGED: dict[str, tuple[object, bool]] = {}


class NameMap:
    """Built when first asked, then kept: make one per run. Namespaces added with `add` (a
    script pyplantd ran is no module) and modules imported since are mapped at the next lookup.

    >>> import types
    >>> module = types.ModuleType("m")
    >>> module.CFG = {}
    >>> module.ALIAS = module.CFG
    >>> names = NameMap()
    >>> names.add(vars(module))
    >>> [name for _, name in names.names_of(module.CFG)]
    ['CFG', 'ALIAS']
    """

    def __init__(self, also_under: Callable[[object], object | None] = lambda value: None) -> None:
        self._also_under = also_under  # a wrapper also counts as a name of what it wraps
        self._added: list[Namespace] = []
        self._mapped: dict[int, Namespace] = {}  # kept alive: their ids stay unique
        self._names: dict[int, list[tuple[Namespace, str]]] = defaultdict(list)
        self._importers: dict[int, list[tuple[Namespace, str]]] = defaultdict(list)
        self._modules_seen = -1

    def add(self, namespace: Namespace) -> None:
        if id(namespace) not in self._mapped:
            self._added.append(namespace)

    def names_of(self, value: object) -> list[tuple[Namespace, str]]:
        """(namespace, name) of every module-level name bound to `value`."""
        self._update()
        return self._names.get(id(value), [])

    def importers_of(self, namespace: Namespace) -> list[tuple[Namespace, str]]:
        """(namespace, name) of every module-level name bound to the module of `namespace`."""
        self._update()
        return self._importers.get(id(namespace), [])

    def _update(self) -> None:
        if not self._added and len(sys.modules) == self._modules_seen:
            return  # asked once per signature: nothing new to map
        found = [n for n in self._added if id(n) not in self._mapped]
        self._added.clear()
        if len(sys.modules) != self._modules_seen:
            self._modules_seen = len(sys.modules)
            found += [vars(m) for m in user_modules() if id(vars(m)) not in self._mapped]
        for namespace in found:
            if id(namespace) not in self._mapped:  # a script's globals are also __main__'s
                self._mapped[id(namespace)] = namespace
                self._map(namespace)

    def _map(self, namespace: Namespace) -> None:
        names, importers = self._names, self._importers
        for name, value in list(namespace.items()):
            if type(value) in _PLAIN or name[:2] == "__":
                continue
            if type(value) is not ModuleType:
                names[id(value)].append((namespace, name))
                inner = self._also_under(value)
                if inner is not None:
                    names[id(inner)].append((namespace, name))
            elif is_user_module(value):  # `import settings`: `settings.CFG["x"] = 1` here
                importers[id(vars(value))].append((namespace, name))


def is_user_module(module: object) -> bool:
    file = getattr(module, "__file__", None)
    return isinstance(file, str) and is_user_file(file)


def user_modules() -> list[ModuleType]:
    """The user's own modules imported right now."""
    found = []
    for name, module in list(sys.modules.items()):
        judged = _JUDGED.get(name)
        if judged is None or judged[0] is not module:
            judged = _JUDGED[name] = (
                module,
                isinstance(module, ModuleType) and is_user_module(module),
            )
        if judged[1]:
            found.append(module)
    for gone in _JUDGED.keys() - sys.modules.keys():
        del _JUDGED[gone]  # keep no module alive that the interpreter dropped
    return found
