"""Code signature changes in words: one reason per component that differs, in a stable order
(`helper normalize() in helpers.py changed`). Depends on nothing in pyplantd.
"""

from __future__ import annotations

BY_CODE = "t:"  # prefix of a component counted by its type and defining code, not its value
_KIND_ORDER = ("code", "subreactor", "helper", "class", "const", "cell", "default", "package")
_LABELS = {
    "helper": "helper {}() in {}",
    "class": "class {} in {}",
    "const": "constant {} in {}",
    "subreactor": "subreactor {}() in {}",
}
_LOCAL_LABELS = {
    "cell": "closure variable {1} of {0}() in {2}",
    "default": "default {1} of {0}() in {2}",
}


def describe_changes(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """Human-readable reasons, one per differing component, in a stable order.

    >>> describe_changes({"package:numpy": "1.26.4"}, {"package:numpy": "2.0.1"})
    ['numpy 1.26.4 -> 2.0.1']
    """
    keys = sorted(old.keys() | new.keys(), key=_change_order)
    return [_describe(k, old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)]


def _change_order(key: str) -> tuple[int, str]:
    kind = key.partition(":")[0]
    return (_KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER)), key


def _describe(key: str, before: str | None, after: str | None) -> str:
    kind, _, rest = key.partition(":")
    if kind == "code":
        return f"code changed ({rest})"
    if kind == "package":
        if before is None:
            return f"now uses {rest} {after}"
        return f"no longer uses {rest}" if after is None else f"{rest} {before} -> {after}"
    name, _, file = rest.partition("@")  # qualnames never contain "@"; file names might
    if kind in _LOCAL_LABELS:
        owner, _, variable = name.rpartition(":")
        label = _LOCAL_LABELS[kind].format(owner.rpartition(".")[2], variable, file)
    else:
        label = _LABELS[kind].format(name, file) if kind in _LABELS else key
    counted = next((v for v in (after, before) if v is not None), "")
    note = ""
    if counted.startswith(BY_CODE):  # a value that may change in place: say what counts
        type_name = counted[len(BY_CODE) :].rpartition(":")[0]
        if kind in _LOCAL_LABELS:
            note = f" (type {type_name}: counted by its type and the code that made it)"
        else:
            label = f"{name} in {file}"
            note = f" (type {type_name}: counted by the statements that define it)"
    if before is None:
        return f"now uses {label}{note}"
    return f"no longer uses {label}{note}" if after is None else f"{label} changed{note}"
