"""Every exception pyplantd defines is in the one tree of pyplantd.errors, drawn in its
docstring; the client's are in its own ClientError tree and never pyplantd's."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pyplant_client
import pytest

import pyplantd
from pyplantd import errors

# Control flow, not errors: derive from BaseException so that `except Exception` lets them by.
CONTROL_FLOW = (errors.RunCancelled,)
# The user's own exception, raised on a dask worker and reported as text: it stands for the
# reactor's exception (the cause of a ReactorFailedError), so it is not one of pyplantd's errors.
USER_STAND_INS = (errors.RemoteReactorError,)


def exception_classes(package: ModuleType) -> dict[str, type[BaseException]]:
    """Every exception class defined in `package` and its subpackages, by qualified name."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == info.name
                and not name.startswith("_")
            ):
                found[f"{info.name}.{name}"] = value
    return found


def test_every_pyplantd_exception_is_a_plant_error_defined_in_the_errors_module() -> None:
    classes = exception_classes(pyplantd)
    outside = {
        name: cls for name, cls in classes.items()
        if not issubclass(cls, (errors.PlantError, Warning, *CONTROL_FLOW, *USER_STAND_INS))
    }  # fmt: skip
    assert not outside, f"not PlantErrors: {sorted(outside)}"
    elsewhere = {
        name for name, cls in classes.items()
        if issubclass(cls, errors.PlantError) and cls.__module__ != "pyplantd.errors"
    }  # fmt: skip
    assert not elsewhere, f"errors defined outside pyplantd.errors: {sorted(elsewhere)}"


def test_the_errors_docstring_draws_every_error() -> None:
    drawn = errors.__doc__ or ""
    for name, value in vars(errors).items():
        if inspect.isclass(value) and issubclass(value, errors.PlantError):
            assert f" {name} " in drawn or drawn.rstrip().endswith(name), name


@pytest.mark.parametrize(
    ("where", "name"),
    [
        ("pyplantd.daemon.server", "BadArgumentsError"),
        ("pyplantd.daemon.runtime", "DaemonRunningError"),
        ("pyplantd.settings", "SettingsError"),
        ("pyplantd.specs", "MissingDependencyError"),
    ],
)
def test_errors_are_still_found_where_they_were_raised(where: str, name: str) -> None:
    assert getattr(importlib.import_module(where), name) is getattr(errors, name)


def test_every_client_exception_is_a_client_error() -> None:
    from pyplant_client import protocol, trust
    from pyplant_client.errors import ClientError

    bases = (protocol.ProtocolError, trust.UntrustedFileError)  # the client's errors extend them
    classes = exception_classes(pyplant_client)
    outside = {
        name for name, cls in classes.items()
        if not issubclass(cls, ClientError) and cls not in bases
        and not any(issubclass(cls, base) for base in bases)
    }  # fmt: skip
    assert not outside, f"not ClientErrors: {sorted(outside)}"
