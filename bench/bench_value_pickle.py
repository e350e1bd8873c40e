"""Measures what pickling a sent value costs now that the pickle keeps a value's whole state and
names the code it refers to (pyplantd.pickler), against plain `pickle.dumps`.

A sent list, dict or object is pickled at `send`. pyplantd's pickler calls back into Python only
for objects that are not plain builtin data (numbers, strings, lists, tuples, dicts, sets), to
list the classes and functions the pickle names; a value naming the user's classes then has
their code signatures computed (once per class per run) for its fingerprint. Timed in this
process, best of several runs.

Prints a Markdown section on stdout; progress on stderr.

    bench/.venv/bin/python bench/bench_value_pickle.py --repeats 7
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _common import fmt_bytes, fmt_seconds, load_average, log, md_table, warm_memory

from pyplantd.pickler import dumps
from pyplantd.signatures.signature import SignatureComputer
from pyplantd.signatures.value_code import ValueCode

PROTOCOL = 5
N_FLOATS = 10 * 2**20 // 8  # 10 MiB of float64 values
USER_MODULE = """
class Record:
    def __init__(self, i):
        self.id, self.name, self.values = i, f"record {i}", [i, i + 0.5]

    def total(self):
        return sum(self.values)
"""


def user_records(count: int) -> list[Any]:
    """Instances of a class in a module of the user's own (a file outside site-packages)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-value-pickle-"))
    (folder / "records.py").write_text(textwrap.dedent(USER_MODULE))
    sys.path.insert(0, str(folder))
    import records  # type: ignore[import-not-found]

    return [records.Record(i) for i in range(count)]


def values() -> dict[str, Any]:
    return {
        "list of 1.3M floats (10 MiB of float64)": [float(i) for i in range(N_FLOATS)],
        "list of 1.3M ints": list(range(N_FLOATS)),
        "dict of 330k str -> float": {f"key{i}": i / 3 for i in range(N_FLOATS // 4)},
        "100k small dicts": [{"id": i, "name": f"n{i}", "tags": ["a", "b"]} for i in range(10**5)],
        "10k objects of a user class": user_records(10**4),
    }


def fmt_time(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs" if seconds < 1e-3 else fmt_seconds(seconds)


def best(func: Callable[[], object], repeats: int) -> float:
    """The fastest of `repeats` timings (the machine is shared)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(repeats: int) -> list[list[str]]:
    rows = []
    for label, value in values().items():
        log(f"timing {label}")
        plain = best(lambda v=value: pickle.dumps(v, protocol=PROTOCOL), repeats)
        whole = best(lambda v=value: dumps(v), repeats)
        data, named = dumps(value)

        def with_code(named: tuple[Any, ...] = named) -> None:
            ValueCode(SignatureComputer()).of(named)  # a new run: nothing cached

        code = best(with_code, repeats) if named else 0.0
        change = (whole - plain) / plain * 100
        rows.append(
            [
                label, fmt_bytes(len(data)), fmt_time(plain), fmt_time(whole), f"{change:+.0f} %",
                str(len(named)), fmt_time(code) if named else "-",
            ]
        )  # fmt: skip
    return rows


def report(args: argparse.Namespace, rows: list[list[str]]) -> str:
    headers = [
        "value", "pickled size", "pickle.dumps", "pyplantd pickler", "change",
        "definitions named", "their code signatures (once per run)",
    ]  # fmt: skip
    return "\n".join(
        [
            "## Pickling a sent value whole, naming the code it refers to",
            "",
            "**What is measured.** The engine-thread cost of pickling a sent value at `send`:",
            "plain `pickle.dumps` against pyplantd's pickler, which keeps a value's whole state",
            "and lists the classes and functions it names (it calls back only for objects that",
            "are not plain builtin data), then, for a value naming the user's classes, the code",
            "signatures of those, which its fingerprint covers (computed once per class per",
            f"run). Best of {args.repeats} timings each, in this process.",
            "",
            md_table(headers, rows),
            "",
            f"Load average after the runs: {load_average()}.",
            "",
            "Command: `bench/.venv/bin/python bench/bench_value_pickle.py "
            f"--repeats {args.repeats}`",
            "",
        ]
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    warm_memory()
    print(report(args, measure(args.repeats)))


if __name__ == "__main__":
    main()
