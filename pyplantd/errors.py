"""Every error pyplantd raises, in one tree.

    PlantError                      base of everything below
    ├── ReactorNotFoundError        a reactor name that is not in the plant
    ├── IngredientNotFoundError     a received ingredient that no reactor produces
    ├── DependencyCycleError        reactors waiting on each other
    ├── ReactorFailedError          a reactor raised; the user's exception is ``__cause__``
    ├── UnknownParamError           a config parameter that does not exist (also an AttributeError)
    ├── ConfigWriteError            a reactor tried to change the config
    ├── AllocationError             an allocated ingredient was never sent, or sent wrongly
    ├── ScriptError                 a pipeline script could not be loaded or run
    ├── SourceChangedError          code that runs differs from its file: nothing recorded
    └── StoreError                  the plant dir or a payload could not be used
        ├── PlantDirError           not a plant dir, an incompatible version, or in use
        └── PayloadDamagedError     a payload is missing, truncated or altered on disk

Warnings use ``PlantWarning``. ``RunCancelled`` is not an error but control flow: it derives
from BaseException (like KeyboardInterrupt) so that a reactor's ``except Exception`` does not
swallow a cancellation.
"""

from __future__ import annotations


class PlantError(Exception):
    """Base class of all pyplantd errors."""


class ReactorNotFoundError(PlantError, LookupError):
    """A reactor name that is not in the plant, or is ambiguous."""


class IngredientNotFoundError(PlantError, LookupError):
    """An ingredient was received that no reactor produces."""


class DependencyCycleError(PlantError):
    """Reactors wait for each other's ingredients, so none can go on."""


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
    """The directory is not a usable plant dir (foreign, incompatible or in use)."""


class PayloadDamagedError(StoreError):
    """A payload on disk does not match what the manifest recorded."""


class RunCancelled(BaseException):
    """The run was cancelled (a newer save arrived); finished reactors stay recorded."""


class PlantWarning(UserWarning):
    """Something was repaired or skipped; the run goes on."""
