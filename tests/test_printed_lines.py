"""The daemon's printed lines: written in batches, in order, each once, even when what is told
of a written batch (a client's log event) flushes the batch again, as the daemon's bus does."""

from __future__ import annotations

from pyplantd.daemon.printed import PrintedLines


def test_a_flush_called_back_from_on_written_writes_every_group_once_in_order() -> None:
    written: list[tuple[str | None, bool, list[str]]] = []
    told: list[tuple[str | None, str]] = []
    printed: PrintedLines

    def publish(reactor: str | None, text: str) -> None:
        printed.flush()  # the daemon flushes before anything reaches a client
        told.append((reactor, text))

    printed = PrintedLines(lambda r, e, lines: written.append((r, e, list(lines))), publish)
    expected = []
    for index in range(3000):  # alternating streams: one group per line, deeper than the stack
        stderr = bool(index % 2)
        printed.add("chatter", stderr, f"line {index}")
        expected.append(("chatter", stderr, [f"line {index}"]))
    printed.close()
    assert written == expected
    assert told == [("chatter", f"line {index}") for index in range(3000)]
