"""Pipeline configuration: ConfigBase / ConfigValue, with tracking of which reactor read what.

A reactor gets a *view* of the config: a shallow copy that reports every parameter read to the
running reactor and refuses writes. Depends only on errors and canonical (and compat.names, for
PyPlant's keyword names).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .compat.names import pyplant_keywords
from .errors import ConfigWriteError, UnknownParamError
from .signatures.canonical import canonical_text

_OWN_NAMES = frozenset({"peek", "has", "mark_auxiliary", "is_auxiliary"})
_ABSENT = object()


class ConfigBase:
    """Base class for pipeline configs; parameters are plain attributes.

    >>> class MyConfig(ConfigBase):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.color = 'red'
    ...         self.log_level = 'info'
    ...         self.mark_auxiliary(['log_level'])  # changing it re-runs nothing
    >>> MyConfig().color
    'red'
    """

    # Class-level defaults so a subclass that forgets super().__init__() still works.
    _reader: Callable[[str], None] | None = None
    _auxiliary: frozenset[str] = frozenset()

    def __init__(self, dictionary: Mapping[str, Any] | None = None) -> None:
        if dictionary is not None:
            # Keys need not be identifiers ('log-level'): they live in __dict__ all the same.
            self.__dict__.update(dictionary)

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("_") or name in _OWN_NAMES:
            return object.__getattribute__(self, name)
        values = object.__getattribute__(self, "__dict__")
        if name in values:
            reader = values.get("_reader")
            if reader is not None and name not in object.__getattribute__(self, "_auxiliary"):
                reader(name)
            return values[name]
        reader = values.get("_reader")
        if reader is None:
            return self._member(name)
        # What the class computes (a property, a method, a class attribute) is a param read
        # in its own right: by its value, or by the class's code for a method (see
        # decisions.param_state). The params a property reads on the way are part of a value
        # known exactly (plain data, arrays), so the reactor re-runs only when the value it got
        # changes; for other values (compared by repr, which may omit what differs) they count.
        inner: list[str] = []
        values["_reader"] = inner.append
        try:
            member = self._member(name)
        finally:
            values["_reader"] = reader
        if name in object.__getattribute__(self, "_auxiliary"):
            return member
        reader(name)
        if not inner:
            return member
        if reader is not values.get("_root_reader"):  # within a property: the outer one decides
            for read in inner:
                reader(read)
            return member
        decided: set[str] = values["_decided"]  # a loop over config.x decides once
        if name not in decided:
            decided.add(name)
            if canonical_text(member) is None and not inspect.isroutine(member):
                for read in inner:
                    reader(read)
        return member

    def _member(self, name: str) -> Any:
        """A property, method or class attribute of the config's class, by name."""
        try:
            return object.__getattribute__(self, name)
        except AttributeError:
            if self._is_member(name):
                raise  # raised inside a property: the user's own error
            raise UnknownParamError(self._unknown_message(name)) from None

    def _is_member(self, name: str) -> bool:
        """Does the config's class (not ConfigBase) define `name`?"""
        if name.startswith("_") or name in _OWN_NAMES:
            return False
        return inspect.getattr_static(type(self), name, _ABSENT) is not _ABSENT

    def _is_method(self, name: str) -> bool:
        """Is `name` a method of the config's class (plain, static or class method)?"""
        found = inspect.getattr_static(type(self), name, None)
        return inspect.isfunction(found) or isinstance(found, staticmethod | classmethod)

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_") and self.__dict__.get("_reader") is not None:
            raise ConfigWriteError(
                f"Reactors may not change the config (tried to set '{name}'). "
                "Send a new ingredient instead, or set it before running the plant."
            )
        object.__setattr__(self, name, value)

    def _params(self) -> dict[str, Any]:
        """All parameters and their values (reading them here is not tracked)."""
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def has(self, name: str) -> bool:
        return name in self._params()

    def peek(self, name: str) -> Any:
        """Read a parameter without making the running reactor depend on it."""
        if not self.has(name):
            raise UnknownParamError(self._unknown_message(name))
        return self.__dict__[name]

    @pyplant_keywords(params="names")
    def mark_auxiliary(self, names: Iterable[str]) -> None:
        """Auxiliary parameters (log levels, temp dirs...) never cause a re-run."""
        names = list(names)
        for name in names:
            if not self.has(name) and not self._is_member(name):
                raise UnknownParamError(self._unknown_message(name))
        self._auxiliary = frozenset(self._auxiliary | set(names))

    def is_auxiliary(self, name: str) -> bool:
        return name in self._auxiliary

    def _read(self, name: str) -> Any:
        """A tracked read by name (pipe.read_config): works for any key."""
        if not self.has(name) and self._is_member(name):
            return getattr(self, name)  # counted as `config.<name>` is
        value = self.peek(name)
        reader = self.__dict__.get("_reader")
        if reader is not None and not self.is_auxiliary(name):
            reader(name)
        return value

    def _view_for(self, reader: Callable[[str], None]) -> ConfigBase:
        view = copy.copy(self)
        object.__setattr__(view, "_reader", reader)
        object.__setattr__(view, "_root_reader", reader)
        object.__setattr__(view, "_decided", set())
        return view

    def _unknown_message(self, name: str) -> str:
        known = ", ".join(sorted(self._params())) or "none"
        return (
            f"Config parameter '{name}' does not exist (known: {known}). "
            "Add it to the config given to plant.set_config()."
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._params()!r})"


class ConfigValue:
    """Base for plain-data objects used as config values; the repr shows every field, so a
    change to any field changes the parameter's fingerprint."""

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in sorted(vars(self).items()))
        return f"{type(self).__qualname__}({fields})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and vars(other) == vars(self)

    def __hash__(self) -> int:
        return hash(repr(self))


def as_config(config: Mapping[str, Any] | ConfigBase) -> ConfigBase:
    if isinstance(config, ConfigBase):
        return config
    if isinstance(config, Mapping):
        return ConfigBase(dict(config))
    raise TypeError(f"set_config takes a dict or a ConfigBase, not {type(config).__name__}.")
