"""Draws the pipeline graph model as text for a terminal, Mermaid, Graphviz DOT, or SVG (through
Graphviz's `dot`). The daemon builds the model (pyplantd.graph.model) and `pyplant graph` draws
it; `pyplantd graph` imports this module too, so each format has one definition. Standard
library only.

The model (JSON):
    {"v": 1, "pipeline": "pipeline.py", "plant_dir": "...", "static": bool, "notes": [...],
     "reactors": [{"id", "name", "state", "why": [...], "duration", "elapsed", "hidden": [...]}],
     "edges": [{"ingredient", "source": id | null, "target": id | null, "size", "static"}]}
`state` is fresh / stale / failed / never ran / running; an edge's source is null when no
reactor is known to send it, its target null when no reactor receives it.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import GraphError

FORMATS = ("text", "mermaid", "dot", "svg", "json")
SUFFIXES = {
    ".txt": "text", ".mmd": "mermaid", ".mermaid": "mermaid", ".dot": "dot", ".gv": "dot",
    ".svg": "svg", ".json": "json",
}  # fmt: skip
DOT_TIMEOUT = 60.0  # seconds; dot lays out thousands of nodes well within it
GRAPHVIZ_MISSING = (
    "Graphviz's `dot` is not installed (not found on PATH), so the graph cannot be drawn as "
    "SVG. Install Graphviz (Debian/Ubuntu: `sudo apt-get install graphviz`; Fedora: `sudo dnf "
    "install graphviz`; macOS: `brew install graphviz`; conda: `conda install -c conda-forge "
    "graphviz`), or use `--format dot` (and render it elsewhere) or `--format mermaid`."
)
# state -> (fill, stroke): green fresh, amber stale, red failed, grey never ran, blue running
COLORS = {
    "fresh": ("#e3f4e1", "#2e7d32"), "stale": ("#fff3cd", "#b26a00"),
    "failed": ("#fde2e1", "#c62828"), "never ran": ("#f1f1f1", "#777777"),
    "running": ("#e1ecfd", "#1565c0"),
}  # fmt: skip
MAX_REASON = 80  # characters of one reason inside a drawn node
ANSI = {"fresh": "32", "stale": "33", "failed": "31", "never ran": "2", "running": "34"}


# -- choosing ----------------------------------------------------------------------------------
def choose_format(fmt: str | None, output: Path | None) -> str:
    """The format asked for, else the one the output file's suffix names, else text."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise GraphError(f"Unknown graph format '{fmt}'. Use one of {', '.join(FORMATS)}.")
        return fmt
    if output is None:
        return "text"
    found = SUFFIXES.get(output.suffix.lower())
    if found is None:
        raise GraphError(
            f"Cannot tell the format of {output} from its suffix. Name it .txt, .mmd, .dot, .svg "
            "or .json, or pass --format."
        )
    return found


def render(model: dict[str, Any], fmt: str, color: bool = False) -> bytes:
    """The model drawn in `fmt` (see FORMATS), as the bytes to write; `color` colours the text
    format's states for a terminal."""
    if fmt == "svg":
        return render_svg(model)
    if fmt == "json":
        return (json.dumps(model, indent=2) + "\n").encode()
    if fmt == "text":
        return render_text(model, color).encode()
    drawn = {"mermaid": render_mermaid, "dot": render_dot}[fmt](model)
    return drawn.encode()


def wants_color(output: Path | None) -> bool:
    """Colour for a terminal, unless NO_COLOR is set (https://no-color.org)."""
    return output is None and sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def write(data: bytes, output: Path | None) -> None:
    """To the file, else to standard output (as bytes: SVG is UTF-8 whatever the locale)."""
    if output is not None:
        try:
            output.write_bytes(data)
        except OSError as error:
            raise GraphError(f"Cannot write the graph to {output}: {error.strerror}.") from None
        return
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def summary(model: dict[str, Any]) -> str:
    """`3 reactors, 2 ingredients` for a confirmation line."""
    count, ingredients = len(model["reactors"]), _ingredient_count(model)
    return (
        f"{count} reactor{'s' * (count != 1)}, {ingredients} ingredient{'s' * (ingredients != 1)}"
    )


def focus(model: dict[str, Any], names: Iterable[str]) -> dict[str, Any]:
    """Only the named reactors (or the producers of named ingredients) and what they need."""
    names = list(names)
    if not names:
        return model
    ids = {r["name"]: r["id"] for r in model["reactors"]} | {r["id"]: r["id"] for r in
                                                             model["reactors"]}  # fmt: skip
    producers = {e["ingredient"]: e["source"] for e in model["edges"]}
    keep = {_start(name, ids, producers, model) for name in names}
    suppliers: dict[str, set[str]] = {}
    for edge in model["edges"]:
        if edge["source"] and edge["target"]:
            suppliers.setdefault(edge["target"], set()).add(edge["source"])
    frontier = list(keep)
    while frontier:
        for supplier in suppliers.get(frontier.pop(), ()):
            if supplier not in keep:
                keep.add(supplier)
                frontier.append(supplier)
    edges = [
        e for e in model["edges"]
        if e["target"] in keep or (e["target"] is None and e["source"] in keep)
    ]  # fmt: skip
    reactors = [r for r in model["reactors"] if r["id"] in keep]
    return {**model, "reactors": reactors, "edges": edges}


def _start(name: str, ids: dict[str, str], producers: dict[str, Any], model: dict[str, Any]) -> str:
    if name in ids:
        return ids[name]
    if producers.get(name):
        return str(producers[name])
    if name in producers:
        raise GraphError(f"No reactor of {model['pipeline']} is known to send '{name}'.")
    reactors = [r["name"] for r in model["reactors"]]
    known = reactors + sorted(set(producers))
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"Did you mean {' or '.join(close)}?" if close else (
        f"Known reactors: {', '.join(reactors) or 'none'}."
    )  # fmt: skip
    raise GraphError(f"'{name}' is not a reactor or an ingredient of {model['pipeline']}. {hint}")


# -- words shared by the formats ---------------------------------------------------------------
def duration_text(seconds: object) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def size_text(size: object) -> str:
    if not isinstance(size, int | float):
        return ""
    value, unit = float(size), "B"
    for bigger in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"


def _timing(reactor: dict[str, Any]) -> str:
    if reactor["state"] == "running":
        return f"for {duration_text(reactor.get('elapsed'))}"
    return duration_text(reactor.get("duration"))


def _ingredient_count(model: dict[str, Any]) -> int:
    return len({e["ingredient"] for e in model["edges"]})


def _title(model: dict[str, Any]) -> str:
    return f"{model['pipeline']}: {summary(model)} (plant {model['plant_dir'] or '?'})"


def layers(model: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """Reactors by depth: each after every reactor it receives from (those in a cycle last)."""
    reactors = model["reactors"]
    successors: dict[str, set[str]] = {r["id"]: set() for r in reactors}
    for edge in model["edges"]:
        source, target = edge["source"], edge["target"]
        if source in successors and target in successors and source != target:
            successors[source].add(target)
    pending = dict.fromkeys(successors, 0)
    for targets in successors.values():
        for target in targets:
            pending[target] += 1
    depth = {i: 0 for i, count in pending.items() if count == 0}
    ordered = list(depth)
    for reactor in ordered:  # Kahn's order: the list grows while it is walked
        for successor in successors[reactor]:
            depth[successor] = max(depth.get(successor, 0), depth[reactor] + 1)
            pending[successor] -= 1
            if pending[successor] == 0:
                ordered.append(successor)
    placed = set(ordered)
    in_cycle = max(depth.values(), default=-1) + 1
    grouped: dict[int, list[dict[str, Any]]] = {}
    for reactor in reactors:
        level = depth[reactor["id"]] if reactor["id"] in placed else in_cycle
        grouped.setdefault(level, []).append(reactor)
    return [grouped[level] for level in sorted(grouped)]


# -- text --------------------------------------------------------------------------------------
def render_text(model: dict[str, Any], color: bool = False) -> str:
    """A layered list for the terminal: each reactor with its state, last duration and why, then
    the ingredients it sends and who receives them."""
    names = {r["id"]: r["name"] for r in model["reactors"]}
    lines = [_title(model)] + [f"note: {note}" for note in model["notes"]]
    if not model["reactors"]:
        return "\n".join([*lines, "(no reactors)"]) + "\n"
    width = max(len(r["name"]) for r in model["reactors"])
    by_source: dict[str | None, list[dict[str, Any]]] = {}
    orphans: dict[str, list[str]] = {}  # reactor -> inputs no reactor is known to send
    for edge in model["edges"]:
        by_source.setdefault(edge["source"], []).append(edge)
        if edge["source"] is None and edge["target"]:
            orphans.setdefault(edge["target"], []).append(edge["ingredient"])
    grouped = layers(model)
    number_width = len(str(len(grouped)))
    for depth, layer in enumerate(grouped, 1):
        for index, reactor in enumerate(layer):
            number = str(depth) if index == 0 else ""
            why = "; ".join(reactor["why"])
            state = f"{reactor['state']:<9}"
            if color and reactor["state"] in ANSI:
                state = f"\x1b[{ANSI[reactor['state']]}m{state}\x1b[0m"
            lines.append(
                f"{number:>{number_width}}  {reactor['name']:<{width}}  {state}  "
                f"{_timing(reactor):>9}  {why}".rstrip()
            )
            indent = " " * (number_width + 4)
            lines += [indent + line for line in _outputs(by_source.get(reactor["id"], []), names)]
            lines += [
                f"{indent}<- {name} (no reactor is known to send it)"
                for name in orphans.get(reactor["id"], [])
            ]
            lines += [f"{indent}? not shown: {hidden}" for hidden in reactor["hidden"]]
    return "\n".join(lines) + "\n"


def _outputs(edges_out: list[dict[str, Any]], names: dict[str, str]) -> list[str]:
    """`-> data 7.6 MiB to plot, report` per ingredient a reactor sends."""
    outgoing: dict[str, list[dict[str, Any]]] = {}
    for edge in edges_out:
        outgoing.setdefault(edge["ingredient"], []).append(edge)
    lines = []
    for ingredient, edges in outgoing.items():
        size = size_text(edges[0]["size"])
        text = f"-> {ingredient}" + (f" {size}" if size else "")
        targets = [
            names.get(e["target"], e["target"]) + (" (static)" if e["static"] else "")
            for e in edges
            if e["target"]
        ]
        if targets:
            text += f" to {', '.join(targets)}"
        else:
            text += " (not received, static)" if edges[0]["static"] else " (not received)"
        lines.append(text)
    return lines


# -- mermaid -----------------------------------------------------------------------------------
def render_mermaid(model: dict[str, Any]) -> str:
    """A Mermaid flowchart (GitHub, GitLab and many editors draw it from a ```mermaid block)."""
    ids = {r["id"]: f"r{i}" for i, r in enumerate(model["reactors"])}
    lines = ["flowchart LR", f"  %% {_title(model)}"]
    lines += [f"  %% note: {note}" for note in model["notes"]]
    for reactor in model["reactors"]:
        label = "<br/>".join(_mermaid_text(line) for line in _node_lines(reactor))
        lines.append(f'  {ids[reactor["id"]]}["{label}"]:::{_css_class(reactor["state"])}')
    extra = 0
    for edge in model["edges"]:
        source, target = ids.get(edge["source"] or ""), ids.get(edge["target"] or "")
        if source is None:
            source, extra = f"x{extra}", extra + 1
            lines.append(f'  {source}(("?"))')
        if target is None:
            target, extra = f"x{extra}", extra + 1
            lines.append(f'  {target}((" "))')
        arrow = "-.->" if edge["static"] else "-->"
        label = "<br/>".join(_mermaid_text(line) for line in _edge_lines(edge))
        lines.append(f'  {source} {arrow}|"{label}"| {target}')
    for state, (fill, stroke) in COLORS.items():
        dash = ",stroke-dasharray:4 3" if state == "never ran" else ""
        lines.append(f"  classDef {_css_class(state)} fill:{fill},stroke:{stroke}{dash}")
    return "\n".join(lines) + "\n"


def _css_class(state: str) -> str:
    return state.replace(" ", "_") if state in COLORS else "stale"


def _mermaid_text(text: str) -> str:
    """Text inside a quoted Mermaid label: entity codes for what Mermaid would parse."""
    for char, code in (("&", "#amp;"), ('"', "#quot;"), ("<", "#lt;"), (">", "#gt;")):
        text = text.replace(char, code)
    return text


# -- dot / svg ---------------------------------------------------------------------------------
def render_dot(model: dict[str, Any]) -> str:
    """Graphviz DOT: `dot -Tsvg graph.dot -o graph.svg` (or -Tpng) draws it."""
    ids = {r["id"]: f"r{i}" for i, r in enumerate(model["reactors"])}
    title = "\n".join([_title(model), *model["notes"]])
    lines = [
        "digraph pipeline {",
        "  rankdir=LR;",
        f'  graph [label="{_dot_text(title)}", labelloc=t, fontname="Helvetica", fontsize=12];',
        '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    for reactor in model["reactors"]:
        fill, stroke = COLORS.get(reactor["state"], COLORS["stale"])
        style = ', style="rounded,filled,dashed"' if reactor["state"] == "never ran" else ""
        label = _dot_text("\n".join(_node_lines(reactor)))
        lines.append(
            f'  {ids[reactor["id"]]} [label="{label}", fillcolor="{fill}", '
            f'color="{stroke}"{style}];'
        )
    extra = 0
    for edge in model["edges"]:
        source, target = ids.get(edge["source"] or ""), ids.get(edge["target"] or "")
        if source is None:
            source, extra = f"x{extra}", extra + 1
            lines.append(f'  {source} [shape=circle, label="?", style="", width=0.3];')
        if target is None:
            target, extra = f"x{extra}", extra + 1
            lines.append(f'  {target} [shape=point, label="", width=0.08];')
        style = ", style=dashed" if edge["static"] else ""
        label = _dot_text("\n".join(_edge_lines(edge)))
        lines.append(f'  {source} -> {target} [label="{label}"{style}];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    """Text inside a quoted DOT string; newlines become centred line breaks."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_svg(model: dict[str, Any]) -> bytes:
    """SVG drawn by Graphviz's `dot`; GraphError naming how to install it when it is missing."""
    program = shutil.which("dot")
    if program is None:
        raise GraphError(GRAPHVIZ_MISSING)
    try:
        done = subprocess.run(
            [program, "-Tsvg"], input=render_dot(model).encode(), capture_output=True,
            timeout=DOT_TIMEOUT, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise GraphError(
            f"Graphviz's dot did not finish within {DOT_TIMEOUT:g} s. Write --format dot and "
            "render it yourself."
        ) from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        raise GraphError(f"Graphviz's dot failed (exit {done.returncode}): {message}")
    return done.stdout


# -- node and edge labels ----------------------------------------------------------------------
def _node_lines(reactor: dict[str, Any]) -> list[str]:
    timing = _timing(reactor)
    lines = [reactor["name"], reactor["state"] + (f" · {timing}" if timing != "-" else "")]
    for reason in reactor["why"][:3]:
        lines.append(reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 3] + "...")
    if len(reactor["why"]) > 3:
        lines.append(f"and {len(reactor['why']) - 3} more")
    if reactor["hidden"]:
        lines.append(f"+{len(reactor['hidden'])} not shown (see the text format)")
    return lines


def _edge_lines(edge: dict[str, Any]) -> list[str]:
    size = size_text(edge["size"])
    lines = [edge["ingredient"]] + ([size] if size else [])
    return lines + (["(static)"] if edge["static"] else [])
