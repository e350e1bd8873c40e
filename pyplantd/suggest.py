"""Closest known names, for messages about a name that is not known: `Did you mean plot?`.
Depends on nothing else in pyplantd."""

from __future__ import annotations

from collections.abc import Iterable


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """` Did you mean plot or plots?` (with its leading space), or '' if nothing is close."""
    import difflib  # here: only a message about an unknown name needs it

    close = difflib.get_close_matches(name, sorted(set(known)), n=3, cutoff=0.6)
    if not close:
        lowered = name.lower()  # a prefix or a part of a name counts too: 'plo' -> plot
        close = [k for k in sorted(set(known)) if lowered and lowered in k.lower()][:3]
    return f" Did you mean {' or '.join(close)}?" if close else ""


def unknown(kind: str, name: str, known: Iterable[str], where: str) -> str:
    """`Reactor 'plt' is not in this plant (known: load, plot). Did you mean plot?`"""
    names = sorted(set(known))
    listed = ", ".join(names) or "none"
    return f"{kind} '{name}' is not in {where} (known: {listed}).{did_you_mean(name, names)}"
