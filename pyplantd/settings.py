"""The settings of the `pyplantd` commands, resolved once into one value: built-in defaults, then
`[tool.pyplantd]` in pyproject.toml, then PYPLANTD_* environment variables, then the command's
flags. Each value remembers where it came from (`pyplantd config` prints it); a bad one is an
error naming the key and the file. Depends on sizes and errors only.
"""

from __future__ import annotations

import difflib
import os
import stat
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import SettingsError
from .sizes import parse_budget

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

PYPROJECT = "pyproject.toml"
TABLE = "tool.pyplantd"
DEFAULT = "default"


@dataclass(frozen=True)
class Setting:
    """One resolved value and where it came from: `default`, `pyproject.toml` (its path is in
    Settings.config_file), an environment variable's name, or a flag such as `--memory`."""

    value: Any
    source: str = DEFAULT

    @property
    def is_set(self) -> bool:
        """Set by the user (anything but the default): it overrides the script's own choice."""
        return self.source != DEFAULT


# -- how each key's value is read ------------------------------------------------------------
def _path(value: object, base: Path) -> Path:
    if not isinstance(value, str | os.PathLike) or not str(value):
        raise ValueError('is not a path (write it as a string, e.g. "plant")')
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _size(value: object, base: Path) -> int:
    return parse_budget(value)


def _names(value: object, base: Path) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v for v in value):
        raise ValueError('is not a list of reactor names (e.g. ["plot"])')
    return tuple(value)


def _milliseconds(value: object, base: Path) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError("is not a number of milliseconds") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("is not a number of milliseconds")
    if not 0 <= value <= 60_000:
        raise ValueError("must be between 0 and 60000 milliseconds")
    return float(value)


def _seconds(value: object, base: Path) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError("is not a number of seconds") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("is not a number of seconds")
    if not 0 <= value <= 86_400:
        raise ValueError("must be between 0 and 86400 seconds")
    return float(value)


def _flag(value: object, base: Path) -> bool:
    if isinstance(value, str) and value.lower() in (
        "1",
        "true",
        "yes",
        "on",
        "0",
        "false",
        "no",
        "off",
    ):
        return value.lower() in ("1", "true", "yes", "on")
    if not isinstance(value, bool):
        raise ValueError("is not true or false")
    return value


def _executor(value: object, base: Path) -> Any:
    from .errors import ExecutorChoiceError
    from .run.executors import ExecutorChoice

    try:
        return ExecutorChoice.parse(value)  # type: ignore[arg-type]
    except ExecutorChoiceError as error:  # its words name the valid forms
        raise ValueError(str(error).replace(f"Executor {value!r} ", "", 1)) from None


@dataclass(frozen=True)
class Key:
    """A key of `[tool.pyplantd]`, with the flag and environment variable that also set it."""

    name: str  # as written in pyproject.toml
    read: Callable[[object, Path], Any]
    default: Any
    flag: str
    help: str
    env: str | None = None

    @property
    def attribute(self) -> str:
        return self.name.replace("-", "_")


KEYS: tuple[Key, ...] = (
    Key("pipeline", _path, Path("pipeline.py"), "PIPELINE", "the pipeline script"),
    Key("plant-dir", _path, None, "--plant-dir", "the plant dir (default: the one the script's "
        "Plant(...) names)", env="PYPLANTD_PLANT_DIR"),
    Key("memory", _size, None, "--memory", "memory budget of the warm tier (default: the "
        "script's Plant(memory=...), else 1/4 of RAM)"),
    Key("disk", _size, None, "--disk", "disk budget for kept versions (default: the script's "
        "Plant(disk=...), else 1/2 of the free space)"),
    Key("targets", _names, (), "--target", "reactors to run (default: the script's "
        "run_reactor calls)"),
    Key("debounce", _milliseconds, 20.0, "--debounce", "quiet time after a save, in ms"),
    Key("tcp", _flag, False, "--tcp", "serve clients on tcp://127.0.0.1, not a Unix socket"),
    Key("poll", _flag, False, "--poll", "re-scan files instead of OS notifications"),
    Key("track-versions", _flag, True, "--track-versions", "re-run on package upgrades "
        "(default: the script's Plant(track_versions=...), else true)"),
    Key("executor", _executor, None, "--executor", "where reactors run: inline, threads:N, "
        "local:N or a cluster address (default: the script's Plant(executor=...), else inline)"),
    Key("insecure-cluster", _flag, False, "--insecure-cluster", "allow a plain tcp:// cluster "
        "address off this machine (its traffic, pickles included, is not encrypted)"),
    Key("local-below", _seconds, 1.0, "--local-below", "with local:N or a cluster, a reactor "
        "whose last run took less, in seconds, runs in this process (0: all on workers)",
        env="PYPLANTD_LOCAL_BELOW"),
)  # fmt: skip
KEY_NAMES = tuple(key.name for key in KEYS)
_BY_ATTRIBUTE = {key.attribute: key for key in KEYS}


@dataclass(frozen=True)
class Settings:
    """Every setting of a command, resolved. `config_file` is the pyproject.toml read, if any."""

    values: Mapping[str, Setting]
    config_file: Path | None = None
    cwd: Path = field(default_factory=Path.cwd)

    def __getitem__(self, attribute: str) -> Setting:
        return self.values[attribute]

    @property
    def pipeline(self) -> Path:
        return Path(self["pipeline"].value)

    @property
    def plant_dir(self) -> Path | None:
        value = self["plant_dir"].value
        return None if value is None else Path(value)

    @property
    def memory(self) -> int | None:
        return self["memory"].value  # type: ignore[no-any-return]

    @property
    def disk(self) -> int | None:
        return self["disk"].value  # type: ignore[no-any-return]

    @property
    def targets(self) -> list[str]:
        return list(self["targets"].value)

    @property
    def debounce(self) -> float:
        """In seconds."""
        return float(self["debounce"].value) / 1000

    @property
    def tcp(self) -> bool:
        return bool(self["tcp"].value)

    @property
    def poll(self) -> bool:
        return bool(self["poll"].value)

    @property
    def executor(self) -> Any:
        """The ExecutorChoice set by the user (None: the script's, else inline)."""
        choice = self["executor"].value
        if choice is None or not self["insecure_cluster"].value:
            return self.with_local_below(choice)
        return self.with_local_below(replace(choice, insecure=True))

    def with_local_below(self, choice: Any) -> Any:
        """A worker executor choice (the user's or the script's) with the local-below
        setting, when the user made one."""
        if choice is None or choice.kind not in ("local", "cluster"):
            return choice
        if not self["local_below"].is_set:
            return choice
        return replace(choice, local_below=self["local_below"].value)

    def source(self, attribute: str) -> str:
        """Where a value came from, in words: `--memory`, `pyproject.toml (/p/pyproject.toml)`."""
        source = self[attribute].source
        if source == PYPROJECT and self.config_file is not None:
            return f"{PYPROJECT} ({self.config_file})"
        return source

    def for_plant(self, plant_dir: str | os.PathLike[str], memory: int | None,
                  disk: int | None, track_versions: bool,
                  executor: Any = None) -> PlantOptions:  # fmt: skip
        """What a plant the script makes with these arguments uses: a setting the user made
        (flag, environment, pyproject.toml) wins over the script's own argument, which wins over
        the default. The one place where this precedence is decided."""
        chosen: dict[str, Any] = {}
        sources: dict[str, str] = {}
        overridden: dict[str, Any] = {}
        script = {"plant_dir": plant_dir, "memory": memory, "disk": disk,
                  "track_versions": track_versions, "executor": executor}  # fmt: skip
        for attribute, own in script.items():
            setting = self[attribute]
            if setting.is_set:
                chosen[attribute], sources[attribute] = setting.value, self.source(attribute)
                if own is not None and own != setting.value:
                    overridden[attribute] = own
            else:
                chosen[attribute] = own
                sources[attribute] = "the script" if own is not None else DEFAULT
        if self["executor"].is_set:
            chosen["executor"] = self.executor  # with --insecure-cluster applied
        elif chosen["executor"] is not None:
            from .run.executors import as_choice

            chosen["executor"] = self.with_local_below(as_choice(chosen["executor"]))
        path = Path(chosen["plant_dir"]).expanduser().absolute()
        return PlantOptions(path, chosen["memory"], chosen["disk"],
                            bool(chosen["track_versions"]), sources, overridden,
                            chosen["executor"])  # fmt: skip


@dataclass(frozen=True)
class PlantOptions:
    """The plant dir and budgets one Plant(...) of the script gets (None: the store's default)."""

    plant_dir: Path
    memory: int | None
    disk: int | None
    track_versions: bool
    sources: Mapping[str, str]
    # What the script asked for that a setting of the user's overrides, by attribute.
    overridden: Mapping[str, Any] = field(default_factory=dict)
    executor: Any = None  # an ExecutorChoice, or None: inline


# -- resolution -------------------------------------------------------------------------------
def resolve(flags: Mapping[str, Any] | None = None, start: Path | None = None,
            env: Mapping[str, str] | None = None) -> Settings:  # fmt: skip
    """The settings of a command: `flags` maps attributes (`plant_dir`) to the values given on
    its command line (None or absent: not given); `start` is where pyproject.toml is looked
    for (default: the pipeline's folder when one is given, else the working directory)."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None and v != [] and v != ()}
    env = os.environ if env is None else env
    cwd = Path.cwd()
    if start is None:
        given = flags.get("pipeline")
        start = (cwd / Path(given)).parent if given is not None else cwd
    found = find_config(start)
    table, config_file = found if found is not None else ({}, None)
    values = {key.attribute: Setting(key.default) for key in KEYS}
    if config_file is not None:
        for name, raw in table.items():
            key = _key(name, config_file)
            values[key.attribute] = Setting(_read(key, raw, config_file.parent, config_file),
                                            PYPROJECT)  # fmt: skip
    here = Path()  # a relative path given on the command line stays as given (to the cwd)
    for key in KEYS:
        if key.env and env.get(key.env):
            values[key.attribute] = Setting(_read(key, env[key.env], here, key.env), key.env)
    for attribute, raw in flags.items():
        key = _BY_ATTRIBUTE[attribute]
        values[attribute] = Setting(_read(key, raw, here, key.flag), key.flag)
    return Settings(values, config_file, cwd)


def _key(name: object, config_file: Path) -> Key:
    for key in KEYS:
        if key.name == name:
            return key
    close = difflib.get_close_matches(str(name), KEY_NAMES, n=1)
    hint = f"Did you mean {close[0]}?" if close else f"Known keys: {', '.join(KEY_NAMES)}."
    raise SettingsError(f"{config_file}: [{TABLE}] has an unknown key '{name}'. {hint}")


def _read(key: Key, raw: object, base: Path, where: str | Path) -> Any:
    try:
        return key.read(raw, base)
    except ValueError as error:
        reason = str(error).rstrip(".")
        if isinstance(where, Path):
            raise SettingsError(
                f"{where}: [{TABLE}] {key.name} = {raw!r} {reason}. Fix it in that file."
            ) from None
        what = "environment variable" if where == key.env else "option"
        raise SettingsError(f"The {what} {where} {raw!r} {reason}.") from None


def find_config(start: Path) -> tuple[dict[str, Any], Path] | None:
    """The `[tool.pyplantd]` table of the nearest pyproject.toml at or above `start` that has
    one, and that file. A file another user could have written is refused, not skipped: its
    settings could name a pipeline to run."""
    start = start.absolute()
    for folder in (start, *start.parents):
        path = folder / PYPROJECT
        try:
            with open(path, "rb") as handle:
                info = os.fstat(handle.fileno())
                text = handle.read()
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        except OSError as error:
            raise SettingsError(f"Cannot read {path}: {error.strerror or error}.") from None
        try:
            document = tomllib.loads(text.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise SettingsError(f"{path} is not valid TOML: {error}. Fix it.") from None
        table = document.get("tool", {}).get("pyplantd") if isinstance(document, dict) else None
        if table is None:
            continue
        if not isinstance(table, dict):
            raise SettingsError(f"{path}: [{TABLE}] must be a table of settings.")
        _check_trusted(path, info)
        return table, path
    return None


def _check_trusted(path: Path, info: os.stat_result) -> None:
    """A config whose file, or folder, another user could have written is not believed."""
    me = os.geteuid()
    folder = os.stat(path.parent)
    owners_ok = info.st_uid in (me, 0) and folder.st_uid in (me, 0)
    writable = info.st_mode & 0o022 or (folder.st_mode & stat.S_IWOTH)
    if not owners_ok or writable:
        raise SettingsError(
            f"Refusing {path}: it or its folder can be changed by another user (file mode "
            f"{stat.S_IMODE(info.st_mode):04o}, owner uid {info.st_uid}), and its "
            f"[{TABLE}] settings choose what pyplantd runs. Make it yours and not writable by "
            "others (chmod go-w), or pass the settings as flags from another folder."
        )


def describe(settings: Settings, attribute: str) -> str:
    """A value as `pyplantd config` prints it."""
    from .sizes import format_size

    value = settings[attribute].value
    if value is None:
        return {"plant_dir": "the one the script's Plant(...) names",
                "memory": "the script's Plant(memory=...), else 1/4 of RAM",
                "disk": "the script's Plant(disk=...), else 1/2 of the free space",
                "executor": "the script's Plant(executor=...), else inline",
                }.get(attribute, "none")  # fmt: skip
    if attribute in ("memory", "disk"):
        return format_size(value)
    if attribute == "targets":
        return ", ".join(value) if value else "the script's run_reactor calls"
    if attribute == "debounce":
        return f"{value:g} ms"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        return _relative(value, settings.cwd)
    return str(value)


def _relative(path: Path, cwd: Path) -> str:
    try:
        return str(path.relative_to(cwd))
    except ValueError:
        return str(path)


def given(**values: Any) -> Settings:
    """Settings holding these values as set by the caller (None: not set), nothing read from
    pyproject.toml or the environment: for code that drives the engine itself."""
    resolved = {key.attribute: Setting(key.default) for key in KEYS}
    for attribute, value in values.items():
        if attribute not in resolved:
            raise TypeError(f"unknown setting {attribute!r} (known: {', '.join(resolved)})")
        if value is not None:
            resolved[attribute] = Setting(value, "the caller")
    return Settings(resolved)
