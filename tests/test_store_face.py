"""PlantStore's face: code outside pyplantd/store asks the store what it needs through its
methods (records, producers, budgets, memory use, pending writes, the run history) and never
reaches into its manifest, indexes, warm tier, payload files or writer."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pyplantd"
INSIDE = {"reactors", "ingredients", "versions", "manifest", "warm", "payloads", "writer"}


def _is_store(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in ("store", "source")
    return isinstance(node, ast.Attribute) and node.attr in ("store", "_store")


def reaches_into_the_store(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in INSIDE and _is_store(node.value):
            found.append(f"{path}:{node.lineno}: .{node.attr}")
    return found


def test_no_module_outside_the_store_reaches_into_it() -> None:
    outside = [
        path for path in sorted(PACKAGE.rglob("*.py"))
        if PACKAGE / "store" not in path.parents
    ]  # fmt: skip
    found = [line for path in outside for line in reaches_into_the_store(path)]
    assert not found, "\n".join(found)


def test_the_rule_sees_a_reach_into_the_store(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("def f(plant, store):\n    return plant._store.warm, store.ingredients\n")
    assert len(reaches_into_the_store(sample)) == 2
