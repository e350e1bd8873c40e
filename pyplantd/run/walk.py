"""The one walk over a dependency graph: what a set of nodes reaches through a neighbour
function, iteratively (chains can be thousands deep), optionally in post-order (each node after
the neighbours it reaches first). Depends on nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import TypeVar

Node = TypeVar("Node")


def reached(
    starts: Iterable[Node],
    neighbours: Callable[[Node], Iterable[Node]],
    key: Callable[[Node], Hashable] = lambda node: node,
    post_order: bool = False,
) -> list[Node]:
    """Every node reachable from `starts` (themselves included), each once (by `key`), depth
    first in the order given; with `post_order`, a node comes after all it reaches that was not
    reached before it (upstream first, when `neighbours` gives what a node depends on)."""
    order: list[Node] = []
    seen: set[Hashable] = set()
    stack: list[tuple[Node, bool]] = [(node, False) for node in reversed(list(starts))]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if key(node) in seen:
            continue
        seen.add(key(node))
        if post_order:
            stack.append((node, True))
        else:
            order.append(node)
        stack.extend((n, False) for n in reversed(list(neighbours(node))) if key(n) not in seen)
    return order
