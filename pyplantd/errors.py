"""Every error pyplantd raises, in one tree.

    PlantError                      base of everything below
    ├── NotAReactorError            a function registered as a reactor without @ReactorFunc
    ├── ReactorNotFoundError        a reactor name that is not in the plant
    ├── IngredientNotFoundError     a received ingredient that no reactor produces
    │   └── UnknownIngredientError  a name the plant does not know (also a ValueError, as
    │                               PyPlant raised)
    ├── DependencyCycleError        reactors waiting on each other (or on themselves)
    ├── AmbiguousIngredientError    an ingredient that two reactors send
    ├── ReactorFailedError          a reactor raised; the user's exception is ``__cause__``, and
    │                               the error is also of its type (``except ValueError`` works)
    ├── UnknownParamError           a config parameter that does not exist
    ├── ConfigWriteError            a reactor tried to change the config
    ├── AllocationError             an allocated ingredient was never sent, or sent wrongly
    ├── InvalidOperationException   a spec asked for what it does not do (PyPlant's name)
    ├── MissingDependencyError      a spec's optional package is not installed
    ├── ScriptError                 a pipeline script could not be loaded or run
    ├── SourceChangedError          code that runs differs from its file: nothing recorded
    ├── SettingsError               a flag, environment variable, pyproject.toml key or
    │                               Plant(...) argument with a value it cannot have (also a
    │                               ValueError)
    ├── ExecutorError               an executor that cannot be used (a missing extra, a cluster
    │   │                           that cannot be reached or must not be)
    │   └── ExecutorChoiceError     `--executor` not in a valid form (also a ValueError)
    ├── DaemonRunningError          another daemon already serves this project
    ├── RuntimeDirError             `.pyplantd/` or a file in it is not pyplantd's (a link,
    │                               another user's)
    ├── BadArgumentsError           a daemon request whose arguments do not fit its command
    └── StoreError                  the plant dir or a payload could not be used
        ├── UnknownTypeError        an ingredient type no spec is registered for
        ├── PlantDirError           not a plant dir, incompatible, in use, or not safe (another
        │                           user could change it, a link pyplantd did not make)
        └── PayloadDamagedError     a payload is missing, truncated or altered on disk

Each is also an instance of the built-in exception PyPlant 0.6.0 raised in the same case, so a
PyPlant script's ``except`` clauses keep working. By class:

    NotAReactorError         RuntimeError    (add_reactors)
    ReactorNotFoundError     ValueError      (run_reactor; and a LookupError)
    IngredientNotFoundError  RuntimeError    (a run that cannot go on; and a LookupError)
    DependencyCycleError     RuntimeError    (PyPlant's "Deadlock?")
    UnknownParamError        AttributeError
    ConfigWriteError         RuntimeError
    AllocationError          RuntimeError    (sent twice, a spec not isAllocatable, a moved file)
    UnknownTypeError         RuntimeError    (send, fetch)
    MissingDependencyError   ImportError     (a spec's package: PyPlant imported it on use)

and, where PyPlant raised another built-in type for the same error, that call raises the class
made also of that type by `also` (its name unchanged): KeyError from PipeworkMock's receive and
read_config and from utils given an unknown reactor; ValueError from allocate of an unknown type
or of a built-in type other than file and hdf_array.

A reactor's own exception raised on a dask worker comes back as a ``RemoteReactorError`` (text,
never a pickle): it stands for the user's exception as the cause of a ``ReactorFailedError``, and
derives from the original built-in type where there is one, not from ``PlantError``.

Warnings use ``PlantWarning``. ``RunCancelled`` is not an error but control flow: it derives
from BaseException (like KeyboardInterrupt) so that a reactor's ``except Exception`` does not
swallow a cancellation; the daemon's ``Stop`` (a stop request) is one.
"""

from __future__ import annotations

import contextlib
from types import GetSetDescriptorType, MemberDescriptorType
from typing import Any, TypeVar


class PlantError(Exception):
    """Base class of all pyplantd errors."""


class NotAReactorError(PlantError, RuntimeError):
    """A function given as a reactor is not decorated with @ReactorFunc."""


class ReactorNotFoundError(PlantError, LookupError, ValueError):
    """A reactor name that is not in the plant, or is ambiguous."""


class IngredientNotFoundError(PlantError, LookupError, RuntimeError):
    """An ingredient was received that no reactor produces."""


class UnknownIngredientError(IngredientNotFoundError, ValueError):
    """An ingredient name the plant does not know (PyPlant raised ValueError for it)."""


class DependencyCycleError(PlantError, RuntimeError):
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


class ConfigWriteError(PlantError, RuntimeError):
    """Reactors may read the config but never change it."""


class AllocationError(PlantError, RuntimeError):
    """An allocated ingredient was not sent, or sent with the wrong value."""


class InvalidOperationException(PlantError):  # noqa: N818 - PyPlant's name
    """A spec was asked for something it does not do, e.g. allocation (also pyplantd.specs's)."""


class MissingDependencyError(PlantError, ImportError):
    """An optional package a spec needs is not installed (also pyplantd.specs's)."""


class SourceChangedError(PlantError):
    """A source file changed after its code was loaded: results would be recorded under code
    that did not run, so none are."""


class ScriptError(PlantError):
    """A pipeline script could not be found, loaded or run."""


class ExecutorError(PlantError):
    """The executor asked for cannot be used: a bad choice, a missing extra, or a cluster that
    cannot be reached or must not be (see pyplantd.run.executors)."""


class ExecutorChoiceError(ExecutorError, ValueError):
    """An executor choice that is not one of its valid forms (`threads:0`, `gpu:2`)."""


class SettingsError(PlantError, ValueError):
    """A setting with a value it cannot have: names the key, the value and where it was set."""


class DaemonRunningError(PlantError):
    """Another daemon already serves this project."""


class RuntimeDirError(PlantError):
    """`.pyplantd/` or a file in it is not something pyplantd made: a link, another user's."""


class BadArgumentsError(PlantError):
    """A well-formed daemon request whose arguments do not fit its command."""


class StoreError(PlantError):
    """The plant dir or one of its payloads could not be used."""


class UnknownTypeError(StoreError, RuntimeError):
    """An ingredient type that no registered spec handles."""


class PlantDirError(StoreError):
    """The directory is not a usable plant dir (foreign, incompatible, in use, or one that
    another user could change)."""


class PayloadDamagedError(StoreError):
    """A payload on disk does not match what the manifest recorded."""


class RunCancelled(BaseException):
    """The run was cancelled (a newer save arrived); finished reactors stay recorded."""


class PlantWarning(UserWarning):
    """Something was repaired or skipped; the run goes on."""


E = TypeVar("E", bound=PlantError)


def also(builtin: type[Exception], error: E) -> E:
    """`error`, of a class made also a subclass of `builtin`: the built-in exception PyPlant
    raised at this call (see the table above). Its class keeps the name of `error`'s."""
    made: E = _also_class(builtin, type(error))(*error.args)
    return made


def _also_class(builtin: type[Exception], cls: type[PlantError]) -> type[Any]:
    combined = _also_types.get((cls, builtin))
    if combined is None:
        namespace = {
            "__module__": cls.__module__,
            "__qualname__": cls.__qualname__,
            "__str__": BaseException.__str__,  # the message as written (KeyError quotes it)
            "__reduce__": lambda self: (_also_rebuilt, (builtin, cls, self.args)),
        }
        combined = type(cls.__name__, (cls, builtin), namespace)
        _also_types[(cls, builtin)] = combined
        _also_parts[combined] = (builtin, cls)
    return combined


_also_types: dict[tuple[type[PlantError], type[Exception]], type[Any]] = {}
_also_parts: dict[type[Any], tuple[type[Exception], type[PlantError]]] = {}


def _also_rebuilt(builtin: type[Exception], cls: type[E], args: tuple[Any, ...]) -> E:
    """Unpickling: the same combined class, with the same args."""
    return also(builtin, cls(*args))


def _picklable_type(cls: type[BaseException]) -> Any:
    """`cls`, or how `also` made it (a class it made has no importable name of its own)."""
    return _also_parts.get(cls, cls)


def _unpickled_type(found: Any) -> type[BaseException]:
    return found if isinstance(found, type) else _also_class(*found)


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
                (_picklable_type(cause_type), str(self), self.reactor, self.args),
            ),
        }
        try:
            found = type("ReactorFailedError", (ReactorFailedError, cause_type), namespace)
        except TypeError:
            found = ReactorFailedError
        _failure_types[cause_type] = found
    return found


def _rebuilt_failure(
    cause_type: Any, message: str, reactor: str, args: tuple[Any, ...]
) -> ReactorFailedError:
    """Unpickling: the same combined type, with the message, reactor and args it had."""
    failure_type = _failure_type(_unpickled_type(cause_type))
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

    place = getattr(cause, "place", None) if isinstance(cause, RemoteReactorError) else None
    if place is not None:
        return f" at {place[0]}:{place[1]}"

    tb, found = cause.__traceback__, None
    while tb is not None:
        if is_user_file(tb.tb_frame.f_code.co_filename):
            found = tb
        tb = tb.tb_next
    if found is None:
        return ""
    return f" at {found.tb_frame.f_code.co_filename}:{found.tb_lineno}"


class RemoteReactorError(Exception):
    """A reactor's exception raised in another process (a dask worker) and reported as text:
    an exception object may not unpickle here, and pickles are never taken from a worker.
    Its class is named after the original type, and derives from it when that is built in
    (``except ValueError`` still works); `place` and `trimmed` say where the user's code raised."""

    place: tuple[str, int, int] | None = None  # path, line, column (1-based)
    trimmed: str = ""  # the traceback of the user's own frames, as Python prints one

    @classmethod
    def of(
        cls, type_name: str, message: str, path: str = "", line: int = 0, column: int = 0,
        trimmed: str = "", builtin: Any = None,
    ) -> RemoteReactorError:  # fmt: skip
        kind = _remote_type(type_name, builtin)
        error = kind.__new__(kind, message)
        Exception.__init__(error, message)
        error.place = (path, line, column) if path else None
        error.trimmed = trimmed
        return error


_remote_types: dict[tuple[str, Any], type[RemoteReactorError]] = {}


def _remote_type(type_name: str, builtin: Any) -> type[RemoteReactorError]:
    base = builtin if isinstance(builtin, type) and issubclass(builtin, Exception) else None
    found = _remote_types.get((type_name, base))
    if found is None:
        bases: tuple[type, ...] = (RemoteReactorError,) if base in (None, Exception) else (
            RemoteReactorError, base,
        )  # fmt: skip
        try:
            found = type(type_name, bases, {"__module__": "builtins"})
        except TypeError:  # a layout conflict: the name alone
            found = type(type_name, (RemoteReactorError,), {"__module__": "builtins"})
        _remote_types[(type_name, base)] = found
    return found
