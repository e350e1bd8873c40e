"""Stale-or-not: compare a reactor's record with the present and say why it must re-run.

Pure functions over records, config and code signatures; the scheduler asks, this module answers
in words a user understands (`param 'n' changed 10 -> 20`). Input fingerprints are compared by
the scheduler itself, since knowing them may require running upstream reactors first.
"""

from __future__ import annotations

import enum
import inspect
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..config import ConfigBase
from ..fingerprint import (
    array_fingerprint,
    file_fingerprint,
    hash_bytes,
    short_repr,
    with_code,
)
from ..pickler import dumps
from ..reactor import find_subreactor
from ..signatures.canonical import canonical_text
from ..signatures.explain import describe_changes
from ..signatures.signature import CodeSignature, SignatureComputer
from ..signatures.value_code import ValueCode
from ..store.plant_store import PlantStore
from ..store.records import IngredientRecord, ReactorRecord, Version

if TYPE_CHECKING:
    from .scheduler import Reactor

NEW_REACTOR = "new reactor (never ran)"
TARGET = "target"
PACKAGE_PART = "package:"


@dataclass
class Decision:
    """What happened to one reactor in one run, and why."""

    reactor: str  # short name
    reactor_id: str
    status: str  # ran / cached / failed / skipped
    reasons: list[str] = field(default_factory=list)
    duration: float = 0.0
    started_at: float = 0.0
    where: str = ""  # ran or failed: "main", "thread" or a worker's address

    @property
    def why(self) -> str:
        return "; ".join(self.reasons) if self.reasons else "cached"


class Judge:
    """Is a reactor fresh, and why not: one per run (or plan), shared by the scheduler and the
    planner, owning what they would otherwise compute twice (code signatures of a reactor with
    its subreactors, the code stored values name). Input fingerprints are compared by the
    scheduler's check tasks, since knowing them may require running upstream reactors first."""

    def __init__(
        self,
        store: PlantStore,
        config: ConfigBase,
        signatures: SignatureComputer,
        track_versions: bool = True,
        forced: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        self.store, self.config, self.signatures = store, config, signatures
        self.track_versions, self.forced = track_versions, forced
        self.value_code = ValueCode(signatures, track_versions)
        self._codes: dict[str, CodeSignature] = {}
        # Signatures are computed here and, for the values reactors send on other threads,
        # there (code_of): one at a time, since the computer's caches are not thread-safe.
        self._signing = threading.RLock()

    def code(self, reactor: Reactor, subreactor_ids: list[str]) -> CodeSignature:
        key = reactor.id + "|" + ",".join(subreactor_ids)
        code = self._codes.get(key)
        if code is None:
            with self._signing:
                code = code_signature(self.signatures, reactor.func, subreactor_ids)
            self._codes[key] = code
        return code

    def code_of(self, named: Any) -> dict[str, str]:
        """The code the objects a sent value names (see ValueCode.of), from any thread."""
        with self._signing:
            return self.value_code.of(named)

    def static_reasons(self, reactor: Reactor) -> list[str]:
        """Why it must re-run, before any input is looked at (forced, code, params, files,
        its outputs); none: it may be served if its inputs match."""
        record = self.store.reactor(reactor.id)
        code = self.code(reactor, record.subreactors if record else [])
        with self._signing:  # params' states may need code signatures
            reasons = static_reasons(
                record, code, self.config, self.store, self.signatures, self.track_versions
            )
        return (["forced"] if reactor.id in self.forced else []) + reasons

    def code_changed(self, reactor: Reactor, record: ReactorRecord) -> bool:
        code = self.code(reactor, record.subreactors)
        return bool(code_changes(record, code, self.track_versions))

    def input_changed(self, name: str) -> str:
        why = self.value_code.why.get(name)  # a stored value whose code changed since it was sent
        return f"input '{name}' changed" + (f" ({why})" if why else "")

    def restorable_records(self, reactor: Reactor) -> Iterator[ReactorRecord]:
        """The records of `restorable`, computed only when the first is asked for."""
        for version in self.restorable(reactor):
            yield version.record

    def restorable(self, reactor: Reactor) -> list[Version]:
        """Earlier results (not the current one) that match the present, inputs aside."""
        if reactor.id in self.forced:
            return []
        current = self.store.reactor(reactor.id)
        current_key = version_key(current) if current is not None else None
        found = []
        for version in self.store.versions_of(reactor.id):
            if version.key == current_key and self.outputs_current(version.record):
                continue  # that is `current`, checked first
            code = self.code(reactor, version.record.subreactors)
            with self._signing:
                matches = version_matches(
                    version, code, self.config, self.store, self.signatures, self.track_versions
                )
            if matches:
                found.append(version)
        return found

    def outputs_current(self, record: ReactorRecord) -> bool:
        """Are the outputs of this result (a version's record) still its reactor's? (Not once
        another reactor, since renamed or deleted, sent one of them.)"""
        return all(
            (current := self.store.ingredient(name)) is None or current.producer == record.id
            for name in record.outputs
        )

    def param_states(self, names: list[str]) -> dict[str, list[str]]:
        """The recorded state of the params a reactor read (those that still exist)."""
        with self._signing:
            states = {name: param_state(self.config, name, self.signatures) for name in names}
        return {name: state for name, state in states.items() if state is not None}

    def stored_fingerprint(self, record: IngredientRecord) -> str:
        """A stored value's fingerprint now (the code it names may have changed)."""
        with self._signing:
            return self.value_code.fingerprint(record)


def code_signature(
    computer: SignatureComputer, func: Callable[..., Any], subreactor_ids: list[str]
) -> CodeSignature:
    """The reactor's code signature including the subreactors it called last time."""
    found = [f for f in (find_subreactor(i) for i in subreactor_ids) if f is not None]
    signature = computer.signature(func, extra=found)
    missing = [i for i in subreactor_ids if find_subreactor(i) is None]
    if not missing:
        return signature
    parts = dict(signature.parts)
    for sub_id in missing:
        module, qualname = sub_id.split(":", 1)
        parts[f"subreactor:{qualname}@{module.rpartition('.')[2]}.py"] = "missing"
    return CodeSignature(hash_bytes(*(f"{k}={v};" for k, v in sorted(parts.items()))), parts)


def param_state(config: ConfigBase, name: str, computer: SignatureComputer) -> list[str] | None:
    """[fingerprint, short repr] of a parameter's current value, of what a property or class
    attribute of the config's class gives now, or of the class's code for one of its methods;
    None if it no longer exists. A value naming the user's classes or functions counts their
    code too (see value_code; package versions count in the signatures of the reactors that
    use them)."""
    if config.has(name):
        return _value_state(config.peek(name), computer)
    if not config._is_member(name):
        return None
    if config._is_method(name):  # called with any arguments: the code behind it counts
        cls = type(config)
        return [computer.definition_signature(cls).digest, f"the code of class {cls.__qualname__}"]
    try:
        value = config._member(name)
    except Exception as err:  # the reactor re-runs, and meets the error itself
        return [hash_bytes("raised", repr(err)), f"<{type(err).__name__} raised>"]
    return _value_state(value, computer)


def _value_state(value: Any, computer: SignatureComputer) -> list[str]:
    if inspect.isfunction(value):
        return [computer.signature(value).digest, f"{value.__qualname__}()"]
    named: list[Any] = []
    content = hash_bytes(_canonical(value, named))
    code = ValueCode(computer, track_versions=False).of(named) if named else {}
    return [with_code(content, code), short_repr(value)]


_SCALARS = (type(None), bool, int, float, complex, str, bytes)
_PLAIN = (*_SCALARS, list, tuple, set, frozenset, dict, np.ndarray)


def _canonical(value: Any, named: list[Any]) -> str:
    """A text that is equal exactly when two parameter values are equal, across processes;
    collects in `named` the classes and functions whose code the value's behaviour depends on.
    Plain data is written by the one canonical form of signatures (`canonical_text`); this adds
    containers holding other things, and the things themselves."""
    plain = canonical_text(value)
    if plain is not None:
        return plain
    kind = type(value)
    if kind is list or kind is tuple:
        inner = ",".join(_canonical(v, named) for v in value)
        return f"{kind.__name__}[{inner}]"
    if kind is set or kind is frozenset:  # set order varies with the hash seed
        return f"{kind.__name__}[" + ",".join(sorted(_canonical(v, named) for v in value)) + "]"
    if kind is dict:
        inner = ",".join(f"{_canonical(k, named)}:{_canonical(v, named)}" for k, v in value.items())
        return f"dict[{inner}]"
    if kind is np.ndarray:
        return "array:" + array_fingerprint(value)
    if isinstance(value, type) or inspect.isfunction(value):  # by name (a repr has an address)
        named.append(value)
        return f"{kind.__name__}:{value.__module__}.{value.__qualname__}"
    if isinstance(value, enum.Enum):
        named.append(kind)
        return repr(value)
    # A subclass of a plain type may hold more than its repr shows (a mask, attributes, a
    # default factory); a default repr holds a memory address: both count by their pickle.
    if isinstance(value, _PLAIN) or kind.__repr__ is object.__repr__:
        try:
            data, found = dumps(value)
        except Exception:  # unpicklable: the repr is the best content we can see
            named.append(kind)
            return f"{kind.__qualname__}:{hash_bytes('repr:', repr(value))}"
        named.extend(found)
        return f"{kind.__qualname__}:{hash_bytes(data)}"
    named.append(kind)
    return repr(value)


def static_reasons(
    record: ReactorRecord | None,
    code: CodeSignature,
    config: ConfigBase,
    store: PlantStore,
    computer: SignatureComputer,
    track_versions: bool = True,
) -> list[str]:
    """Reasons to re-run that need no upstream work: code, params, own outputs."""
    if record is None:
        return [NEW_REACTOR]
    reasons: list[str] = []
    reasons += code_changes(record, code, track_versions)
    reasons += _param_reasons(record, config, computer)
    reasons += file_reasons(record.files)
    reasons += _output_reasons(record, store)
    return reasons


def code_changes(record: ReactorRecord, code: CodeSignature, track_versions: bool) -> list[str]:
    """How the code differs from the record; package versions count only while tracked."""
    if code.digest == record.code_digest:
        return []
    before = record.code_parts
    if not track_versions:  # a record made while tracking must not look changed now
        before = {k: v for k, v in before.items() if not k.startswith(PACKAGE_PART)}
    if before == code.parts:
        return []
    return describe_changes(before, code.parts) or ["code changed"]


def version_key(record: ReactorRecord) -> str:
    """Identifies one result of a reactor: the code, params, inputs and files it was made from."""
    params = sorted((name, state[0]) for name, state in record.params.items())
    inputs, files = sorted(record.inputs.items()), sorted(record.files.items())
    return hash_bytes(record.code_digest, repr(params), repr(inputs), repr(files))


def version_matches(
    version: Version,
    code: CodeSignature,
    config: ConfigBase,
    store: PlantStore,
    computer: SignatureComputer,
    track_versions: bool,
) -> bool:
    """Could this earlier result be served now (inputs aside)? Its payloads must be intact."""
    record = version.record
    if code_changes(record, code, track_versions) or _param_reasons(record, config, computer):
        return False
    if file_reasons(record.files):
        return False
    return all(store.intact(output) for output in version.outputs)


def file_reasons(files: dict[str, str]) -> list[str]:
    """Tracked data files whose content differs from what the reactor last read."""
    reasons = []
    for path, fingerprint in files.items():
        shown = _shown_path(path)
        try:
            current = tracked_file_fingerprint(path)
        except OSError:
            reasons.append(f"file '{shown}' is missing")
            continue
        if current != fingerprint:
            reasons.append(f"file '{shown}' changed")
    return reasons


# path -> (stamp, fingerprint): a tracked file is re-hashed only when its stamp changed. Size and
# mtime alone do not show every rewrite (cp -p, rsync -t and os.utime restore the mtime): the
# stamp also holds the inode (an atomic save makes a new one) and ctime, which every write or
# utime moves and nothing can set back. Where ctime is the creation time (Windows), the daemon
# drops the entries of the files its watcher saw change (forget_tracked_files).
_FILE_FINGERPRINTS: dict[str, tuple[tuple[int, ...], str]] = {}
# Times advance in clock ticks (often 1-10 ms): a write within the tick of the one we hashed
# would leave the stamp as it was, so a file written this recently is not cached.
_TICK_NS = 50_000_000


def tracked_file_fingerprint(path: str) -> str:
    stat = os.stat(path)
    stamp = (stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size, stat.st_ino, stat.st_dev)
    cached = _FILE_FINGERPRINTS.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    fingerprint = file_fingerprint(path)
    if max(stat.st_mtime_ns, stat.st_ctime_ns) < time.time_ns() - _TICK_NS:
        _FILE_FINGERPRINTS[path] = (stamp, fingerprint)
    else:
        _FILE_FINGERPRINTS.pop(path, None)
    return fingerprint


def forget_tracked_files(paths: Iterable[str | os.PathLike[str]]) -> None:
    """Files seen changed: hash them again when next needed, whatever their stamps say."""
    for path in paths:
        _FILE_FINGERPRINTS.pop(os.fspath(path), None)


def _shown_path(path: str) -> str:
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def _param_reasons(
    record: ReactorRecord, config: ConfigBase, computer: SignatureComputer
) -> list[str]:
    reasons = []
    by_code: dict[str, list[str]] = {}  # code shown -> the params counted by it (methods)
    for name, (fingerprint, shown) in record.params.items():
        if config.is_auxiliary(name):
            continue
        now = param_state(config, name, computer)
        if now is None:
            reasons.append(f"param '{name}' was removed")
        elif now[0] != fingerprint and shown == now[1]:  # code, under the same name
            by_code.setdefault(shown, []).append(f"'{name}'")
        elif now[0] != fingerprint:
            reasons.append(f"param '{name}' changed {shown} -> {now[1]}")
    for shown, names in by_code.items():
        params = "param" if len(names) == 1 else "params"
        reasons.append(f"{params} {', '.join(names)} changed: {shown}")
    return reasons


def _output_reasons(record: ReactorRecord, store: PlantStore) -> list[str]:
    reasons = []
    for name in record.outputs:
        ingredient = store.ingredient(name)
        if ingredient is None:
            reasons.append(f"output '{name}' is missing")
        elif ingredient.producer != record.id:
            sender = ingredient.producer.rpartition(":")[2]
            reasons.append(f"output '{name}' was last sent by {sender}")
        elif not store.intact(ingredient):
            reasons.append(f"output '{name}' is missing or damaged on disk")
    return reasons
