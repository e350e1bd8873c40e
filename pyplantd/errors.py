"""Every error pyplantd raises, in one tree.

    PlantError                      base of everything below
    ├── ReactorNotFoundError        a reactor name that is not in the plant
    ├── IngredientNotFoundError     a received ingredient that no reactor produces
    ├── DependencyCycleError        reactors waiting on each other (or on themselves)
    ├── AmbiguousIngredientError    an ingredient that two reactors send
    ├── ReactorFailedError          a reactor raised; the user's exception is ``__cause__``, and
    │                               the error is also of its type (``except ValueError`` works)
    ├── UnknownParamError           a config parameter that does not exist (also an AttributeError)
    ├── ConfigWriteError            a reactor tried to change the config
    ├── AllocationError             an allocated ingredient was never sent, or sent wrongly
    ├── ScriptError                 a pipeline script could not be loaded or run
    ├── SourceChangedError          code that runs differs from its file: nothing recorded
    └── StoreError                  the plant dir or a payload could not be used
        ├── PlantDirError           not a plant dir, incompatible, in use, or not safe (another
        │                           user could change it, a link pyplantd did not make)
        └── PayloadDamagedError     a payload is missing, truncated or altered on disk

Warnings use ``PlantWarning``. ``RunCancelled`` is not an error but control flow: it derives
from BaseException (like KeyboardInterrupt) so that a reactor's ``except Exception`` does not
swallow a cancellation.
"""

from __future__ import annotations

import contextlib
from types import GetSetDescriptorType, MemberDescriptorType
from typing import Any


class PlantError(Exception):
    """Base class of all pyplantd errors."""


class ReactorNotFoundError(PlantError, LookupError):
    """A reactor name that is not in the plant, or is ambiguous."""


class IngredientNotFoundError(PlantError, LookupError):
    """An ingredient was received that no reactor produces."""


class DependencyCycleError(PlantError):
    """Reactors wait for each other's ingredients, so none can go on."""


class AmbiguousIngredientError(PlantError):
    """Two reactors send the same ingredient: which one a consumer gets would depend on what
    ran before."""


class ReactorFailedError(PlantError):
    """A reactor raised an exception; the original is the ``__cause__``."""

    def __init__(self, message: str, reactor: str) -> None:
        super().__init__(message)
        self.reactor = reactor


class UnknownParamError(PlantError, AttributeError):
    """A config parameter that does not exist."""


class ConfigWriteError(PlantError):
    """Reactors may read the config but never change it."""


class AllocationError(PlantError):
    """An allocated ingredient was not sent, or sent with the wrong value."""


class SourceChangedError(PlantError):
    """A source file changed after its code was loaded: results would be recorded under code
    that did not run, so none are."""


class ScriptError(PlantError):
    """A pipeline script could not be found, loaded or run."""


class StoreError(PlantError):
    """The plant dir or one of its payloads could not be used."""


class PlantDirError(StoreError):
    """The directory is not a usable plant dir (foreign, incompatible, in use, or one that
    another user could change)."""


class PayloadDamagedError(StoreError):
    """A payload on disk does not match what the manifest recorded."""


class RunCancelled(BaseException):
    """The run was cancelled (a newer save arrived); finished reactors stay recorded."""


class PlantWarning(UserWarning):
    """Something was repaired or skipped; the run goes on."""


def reactor_failed_error(message: str, reactor: str, cause: BaseException) -> ReactorFailedError:
    """The error `run_reactor` raises for a reactor that raised `cause`.

    It is a ReactorFailedError (so a PlantError) *and* an instance of the cause's own type, so
    ``except ValueError`` catches a reactor's ValueError as PyPlant's re-raise did, with the
    cause's attributes and ``args``; its message names the reactor and the line that raised.
    """
    message = f"{message}{_where(cause)}"
    failure_type = _failure_type(type(cause))
    if failure_type is ReactorFailedError:
        return ReactorFailedError(message, reactor)
    failure: ReactorFailedError = failure_type.__new__(failure_type, *cause.args)
    _copy_fields(cause, failure)
    failure.args = cause.args
    failure.reactor = reactor
    setattr(failure, _MESSAGE, message)  # shown by str(), whatever the cause's args
    return failure


_MESSAGE = "_failure_message"
_failure_types: dict[type[BaseException], type[ReactorFailedError]] = {}


def _failure_type(cause_type: type[BaseException]) -> type[ReactorFailedError]:
    """ReactorFailedError combined with `cause_type`, made once per type; plain
    ReactorFailedError when the two cannot be combined (a layout or MRO conflict)."""
    if issubclass(cause_type, ReactorFailedError) or cause_type is Exception:
        return ReactorFailedError
    found = _failure_types.get(cause_type)
    if found is None:
        namespace = {
            "__module__": __name__,
            "__qualname__": f"ReactorFailedError[{cause_type.__qualname__}]",
            "__str__": lambda self: getattr(self, _MESSAGE),
            "__reduce__": lambda self: (
                _rebuilt_failure,
                (cause_type, str(self), self.reactor, self.args),
            ),
        }
        try:
            found = type("ReactorFailedError", (ReactorFailedError, cause_type), namespace)
        except TypeError:
            found = ReactorFailedError
        _failure_types[cause_type] = found
    return found


def _rebuilt_failure(
    cause_type: type[Exception], message: str, reactor: str, args: tuple[Any, ...]
) -> ReactorFailedError:
    """Unpickling: the same combined type, with the message, reactor and args it had."""
    failure_type = _failure_type(cause_type)
    failure = failure_type.__new__(failure_type, *args)
    failure.args, failure.reactor = args, reactor
    setattr(failure, _MESSAGE, message)
    return failure


def _copy_fields(cause: BaseException, failure: BaseException) -> None:
    """The cause's attributes: those of Python classes and the C-level fields of built-in
    exceptions (OSError.errno and .filename, UnicodeError.start...)."""
    for cls in type(cause).__mro__:
        if cls.__module__ != "builtins":
            continue
        for name, attr in vars(cls).items():
            if name != "args" and not name.startswith("__") and isinstance(attr, _FIELDS):
                with contextlib.suppress(AttributeError, TypeError, ValueError):
                    setattr(failure, name, getattr(cause, name))
    failure.__dict__.update(getattr(cause, "__dict__", {}))


_FIELDS = (GetSetDescriptorType, MemberDescriptorType)


def _where(cause: BaseException) -> str:
    """` at path:line`: the innermost frame of the user's code in the cause's traceback."""
    from .signatures.origins import is_user_file  # only when a reactor failed

    tb, found = cause.__traceback__, None
    while tb is not None:
        if is_user_file(tb.tb_frame.f_code.co_filename):
            found = tb
        tb = tb.tb_next
    if found is None:
        return ""
    return f" at {found.tb_frame.f_code.co_filename}:{found.tb_lineno}"
