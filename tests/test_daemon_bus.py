"""The daemon's event bus: one way out for what clients hear, names from one enum (the
wire's), every subscriber called in publishing order."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from pyplantd.daemon.bus import DaemonBus, Kind

PACKAGE = Path(__file__).resolve().parents[1] / "pyplantd"
CLIENT_CLI = Path(__file__).resolve().parents[1] / "client" / "pyplant_client" / "cli.py"


def test_subscribers_hear_every_event_in_order_by_its_wire_name() -> None:
    bus, heard, also = DaemonBus(), [], []
    bus.publish(Kind.log, {"text": "nobody listens yet"})  # no subscriber: goes nowhere
    bus.subscribe(lambda kind, fields: heard.append((kind, fields)))
    bus.subscribe(lambda kind, fields: also.append(kind))
    bus.publish(Kind.run_started, {"run_id": 1})
    bus.publish(Kind.run_finished, {"run_id": 1, "status": "ok"})
    assert heard == [
        ("run_started", {"run_id": 1}),
        ("run_finished", {"run_id": 1, "status": "ok"}),
    ]
    assert also == ["run_started", "run_finished"]
    assert all(type(kind) is str for kind, _ in heard)  # plain JSON on the wire


def test_the_unsubscribed_hear_nothing_more() -> None:
    bus, heard = DaemonBus(), []

    def sink(kind: str, fields: dict[str, Any]) -> None:
        heard.append(kind)

    bus.subscribe(sink)
    bus.publish(Kind.log, {})
    bus.unsubscribe(sink)
    bus.publish(Kind.log, {})
    assert heard == ["log"]


def publish_calls_naming_events_by_string(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "publish"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            found.append(f"{path.name}:{node.lineno}: publish({node.args[0].value!r})")
    return found


def test_the_daemon_names_every_event_it_publishes_by_kind() -> None:
    found = [
        line for path in sorted((PACKAGE / "daemon").glob("*.py"))
        for line in publish_calls_naming_events_by_string(path)
    ]  # fmt: skip
    assert not found, "\n".join(found)


def test_every_event_name_the_client_reads_is_a_kind() -> None:
    """The names the client's CLI compares an event's type with."""
    read = set()
    for node in ast.walk(ast.parse(CLIENT_CLI.read_text())):
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                for item in side.elts if isinstance(side, ast.Tuple) else [side]:
                    if isinstance(item, ast.Constant) and isinstance(item.value, str):
                        read.add(item.value)
    read = {name for name in read if name.startswith(("run_", "reactor_", "reload_", "log"))}
    assert read, "the client's CLI reads no event names: this test looks in the wrong place"
    assert read <= {kind.value for kind in Kind}, read - {kind.value for kind in Kind}
