"""What the manifest remembers about reactors and ingredients (plain data, JSON-serializable)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ReactorRecord:
    """A reactor's last successful run: everything its result depended on."""

    id: str
    name: str
    code_digest: str
    code_parts: dict[str, str]
    params: dict[str, list[str]]  # name -> [fingerprint, short repr]
    inputs: dict[str, str]  # ingredient -> fingerprint received
    outputs: list[str]
    subreactors: list[str] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)  # tracked external file -> fingerprint
    duration: float = 0.0
    finished_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReactorRecord:
        return cls(**data)


@dataclass
class IngredientRecord:
    """The current stored version of an ingredient."""

    name: str
    producer: str  # reactor id
    type: str
    fingerprint: str
    path: str  # payload path relative to the plant dir
    size: int
    meta: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    checksum: str = ""  # of the payload file; "" when only its size is checked

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Version:
    """One complete result of a reactor: the record and the outputs it made. Kept after a
    newer run replaces it, so undoing an edit can bring it back without running anything."""

    key: str  # digest of code, params and inputs
    record: ReactorRecord
    outputs: list[IngredientRecord]
    used_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"record": self.record.to_json(), "outputs": [o.to_json() for o in self.outputs]}

    @classmethod
    def from_json(cls, key: str, data: dict[str, Any], used_at: float) -> Version:
        record = ReactorRecord.from_json(data["record"])
        return cls(key, record, [IngredientRecord(**o) for o in data["outputs"]], used_at)


@dataclass
class HistoryEntry:
    reactor: str
    status: str  # ran / cached / failed
    duration: float
    reasons: list[str]
    started_at: float
