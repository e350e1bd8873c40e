"""Measures what freezing a sent value at `send` costs, for the two ways of doing it.

A sent list, dict or object must be stored, fingerprinted and received as it was at `send`,
and no consumer may change what another one receives. Two ways: copy (`copy.deepcopy` at
send, then one per consumer) or serialize (`pickle.dumps` at send, whose bytes are also what
the writer stores and hashes, then `pickle.loads` per consumer). Both are timed in this process
on values of several shapes, as the engine thread would pay them for one and for three
consumers. For arrays: making the producer's own array read-only (what pyplantd does when the
array owns its memory) against copying it, for 1 GiB of float32.

Prints a Markdown section on stdout; progress on stderr.

    bench/.venv/bin/python bench/bench_freeze.py --repeats 5
"""

from __future__ import annotations

import argparse
import copy
import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np
from _common import (
    FLOAT32,
    GIB,
    best_of,
    fmt_bytes,
    fmt_time,
    load_average,
    log,
    md_table,
    touch_own_memory,
    warm_memory,
)

PROTOCOL = 5


class Record:
    def __init__(self, i: int) -> None:
        self.id, self.name, self.values = i, f"record {i}", [i, i + 0.5]


def values() -> dict[str, Any]:
    return {
        "config dict (30 keys, nested)": {
            f"key{i}": {"n": i, "tags": ["a", "b"], "scale": i / 3} for i in range(30)
        },
        "list of 1M ints": list(range(10**6)),
        "100k small dicts": [{"id": i, "name": f"n{i}", "tags": ["a", "b"]} for i in range(10**5)],
        "10k objects of a user class": [Record(i) for i in range(10**4)],
    }


def measure_values(repeats: int) -> list[list[str]]:
    rows = []
    for label, value in values().items():
        log(f"timing {label}")
        data = pickle.dumps(value, protocol=PROTOCOL)
        deepcopy = best_of(lambda v=value: copy.deepcopy(v), repeats)
        dumps = best_of(lambda v=value: pickle.dumps(v, protocol=PROTOCOL), repeats)
        loads = best_of(lambda d=data: pickle.loads(d), repeats)
        rows.append(
            [
                label,
                fmt_bytes(len(data)),
                fmt_time(deepcopy),
                fmt_time(dumps),
                fmt_time(loads),
                fmt_time(2 * deepcopy),
                fmt_time(dumps + loads),
                fmt_time(4 * deepcopy),
                fmt_time(dumps + 3 * loads),
            ]
        )
    return rows


def measure_array(repeats: int) -> list[list[str]]:
    log("timing 1 GiB array: read-only flag vs copy")
    array = np.ones(GIB // FLOAT32, dtype=np.float32)

    def read_only() -> None:
        array.flags.writeable = True
        array.flags.writeable = False

    flag = best_of(read_only, repeats)
    copying = best_of(lambda: array.copy(), max(1, repeats // 2))
    return [
        ["read-only in place (pyplantd, when the array owns its memory)", fmt_time(flag), "0 B"],
        ["copy at send", fmt_time(copying), fmt_bytes(array.nbytes)],
    ]


def report(
    args: argparse.Namespace, value_rows: list[list[str]], array_rows: list[list[str]]
) -> str:
    headers = [
        "value", "pickled size", "deepcopy", "pickle.dumps", "pickle.loads",
        "copy: 1 consumer", "serialize: 1 consumer", "copy: 3 consumers", "serialize: 3 consumers",
    ]  # fmt: skip
    return "\n".join(
        [
            "## Freezing a sent value: copy per consumer vs serialize at send",
            "",
            "**What is measured.** The engine-thread cost of making a sent value immutable for",
            "its consumers. *copy*: `copy.deepcopy` at send (a snapshot) and one per consumer;",
            "the writer then pickles the snapshot (not counted). *serialize* (what pyplantd",
            "does): `pickle.dumps` at send, whose bytes the writer stores and hashes as they are,",
            "and `pickle.loads` per consumer, which also gives consumers exactly what a later",
            f"run loads from disk. Best of {args.repeats} timings each, in this process.",
            "Immutable values (numbers, strings, tuples of them) are shared and cost neither.",
            "",
            md_table(headers, value_rows),
            "",
            "Arrays are not pickled: an array that owns its memory is made read-only in place",
            "(a later write by its producer raises), which costs nothing whatever its size;",
            "only a view of memory that can still be written is copied:",
            "",
            md_table(["1 GiB float32 array", "time", "extra memory"], array_rows),
            "",
            f"Load average after the runs: {load_average()}.",
            "",
            f"Command: `bench/.venv/bin/python bench/bench_freeze.py --repeats {args.repeats}`",
            "",
        ]
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    warm_memory()
    touch_own_memory()
    value_rows = measure_values(args.repeats)
    array_rows = measure_array(args.repeats)
    print(report(args, value_rows, array_rows))


if __name__ == "__main__":
    main()
