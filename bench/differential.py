"""The differential tester's long run: random projects and edits, every served value compared with
a fresh run and with plain Python; failure classes shrunk to minimal projects.

    python bench/differential.py --oneshot 1000 --daemon 200 --jobs 2 --shrink
    python bench/differential.py --replay oneshot:17 --shrink     # one sequence, minimised

Not a `bench_*.py`: `run.sh` does not run it. Seeds are `--first`..`--first + N - 1` for each
mode; the report goes to stdout (Markdown) and progress to stderr. Exit 1 if anything failed.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from difftest.campaign import (
    progress,
    report_minimal,
    run_all,
    shrink_classes,
    summary,
)
from difftest.sequence import make_sequence


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oneshot", type=int, default=100, help="one-shot sequences")
    parser.add_argument("--daemon", type=int, default=20, help="daemon sequences")
    parser.add_argument("--first", type=int, default=0, help="first seed")
    parser.add_argument("--edits", type=int, default=None, help="edits per sequence (3-7)")
    parser.add_argument("--exclude", default="", help="features to leave out, comma-separated")
    parser.add_argument("--no-bytecode", action="store_true", help="never use __pycache__")
    parser.add_argument("--jobs", type=int, default=1, help="sequences run in parallel")
    parser.add_argument("--shrink", action="store_true", help="minimise one failure per class")
    parser.add_argument("--shrink-budget", type=float, default=300, help="seconds per class")
    parser.add_argument("--replay", default="", help="MODE:SEED, one sequence")
    args = parser.parse_args()
    exclude = frozenset(filter(None, args.exclude.split(",")))

    def sequence(mode: str, seed: int):  # type: ignore[no-untyped-def]
        made = make_sequence(seed, mode, args.edits, exclude)
        made.bytecode = not args.no_bytecode
        return made

    if args.replay:
        mode, seed = args.replay.split(":")
        sequences = [sequence(mode, int(seed))]
    else:
        sequences = [sequence("oneshot", args.first + n) for n in range(args.oneshot)]
        sequences += [sequence("daemon", args.first + n) for n in range(args.daemon)]
    started = time.monotonic()
    tally = run_all(sequences, args.jobs, progress)
    command = "python bench/differential.py " + shlex.join(sys.argv[1:])
    print(summary(tally, command))
    if args.shrink and tally.classes:
        log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
        print()
        print(report_minimal(shrink_classes(tally, args.shrink_budget, log)))
    elif args.replay:
        from difftest.shrink import describe

        for outcomes in tally.classes.values():
            print(describe(outcomes[0]))
    print(f"\n({time.monotonic() - started:.0f} s)", file=sys.stderr)
    return 1 if tally.classes else 0


if __name__ == "__main__":
    sys.exit(main())
