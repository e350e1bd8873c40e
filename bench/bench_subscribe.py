"""Measures subscribing to a daemon's events: what the mark costs and what it saves.

Against a real `python -m pyplantd.cli watch pipeline.py` (one reactor), interleaved:

1. `Client.subscribe()` (waits for the handshake, then asks for a mark until it arrives on the
   stream) and the handshake-only wait it replaces (`EventStream(..., connect=2.0)`, all a
   daemon without `mark` gets): p50/p99 of opening a stream.
2. Subscribe, `run`, follow to `run_finished`, each way: p50, and how many runs lost events
   (no `run_started` first, or a `run_finished` built from `status`).

Prints a Markdown section on stdout; progress on stderr.

    bench/.venv/bin/python bench/bench_subscribe.py --subscribes 1000 --runs 200 --gap 0.02
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import zmq
from _common import load_average, log, md_table, percentile
from bench_client import TINY_SCRIPT, Daemon, project, wait_first_run
from pyplant_client import Client, EventStream

HANDSHAKE_WAIT = 2.0  # as the client's fallback
_CONTEXT: zmq.Context[zmq.Socket[bytes]] = zmq.Context()


def handshake_only(client: Client) -> EventStream:
    return EventStream(_CONTEXT, client.info.events, client.info.key_bytes, HANDSHAKE_WAIT)


def open_times(
    client: Client, open_stream: Callable[[Client], EventStream], n: int, gap: float
) -> list[float]:
    times = []
    for _ in range(n):
        time.sleep(gap)  # apart, as separate commands are (not timed)
        start = time.perf_counter()
        stream = open_stream(client)
        times.append(time.perf_counter() - start)
        stream.close()
    return times


def run_once(client: Client, open_stream: Callable[[Client], EventStream]) -> tuple[float, bool]:
    """Seconds from subscribing to the run's end, and whether events of the run were lost."""
    start = time.perf_counter()
    with open_stream(client) as stream:
        events = list(client.follow(stream, client.run(), timeout=60))
    lost = events[0]["type"] != "run_started" or bool(events[-1].get("synthesized"))
    return time.perf_counter() - start, lost or stream.missed > 0


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribes", type=int, default=1000, help="streams opened each way")
    parser.add_argument("--runs", type=int, default=200, help="runs followed each way")
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between streams")
    args = parser.parse_args(argv)
    ways = {"`Client.subscribe()` (mark)": Client.subscribe, "handshake wait only": handshake_only}
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="bsu_", dir="/tmp") as tmp:
        daemon = Daemon(project(Path(tmp), "tiny", TINY_SCRIPT))
        daemon.start()
        try:
            with daemon.client() as client:
                wait_first_run(daemon, client)
                log(f"opening {args.subscribes} streams each way, interleaved")
                opened: dict[str, list[float]] = {name: [] for name in ways}
                for _ in range(10):
                    for name, way in ways.items():
                        opened[name] += open_times(client, way, args.subscribes // 10, args.gap)
                log(f"following {args.runs} runs each way, interleaved")
                runs: dict[str, list[tuple[float, bool]]] = {name: [] for name in ways}
                for _ in range(args.runs):
                    for name, way in ways.items():
                        runs[name].append(run_once(client, way))
        finally:
            daemon.stop()
    rows = []
    for name in ways:
        took = [seconds for seconds, _lost in runs[name]]
        lost = sum(lost for _seconds, lost in runs[name])
        rows.append([
            name, _ms(percentile(opened[name], 50)), _ms(percentile(opened[name], 99)),
            _ms(percentile(took, 50)), f"{lost} of {len(took)}",
        ])  # fmt: skip
    table = md_table(
        ["stream opened by", "open p50", "open p99", "subscribe+run+follow p50",
         "runs that lost events"], rows,
    )  # fmt: skip
    command = (
        f"bench/.venv/bin/python bench/bench_subscribe.py --subscribes {args.subscribes} "
        f"--runs {args.runs} --gap {args.gap:g}"
    )
    print(f"""## Subscribing to events: a confirmed subscription against a handshake wait

A one-reactor daemon; load average {load_before} before, {load_average()} after.
{args.subscribes} streams opened each way, {args.gap * 1000:g} ms apart (back to back, the daemon's
PUB socket often takes a subscription only after the first mark went out: it is asked again
1 ms later), then {args.runs} runs each way (subscribe, `run`, follow to `run_finished`),
back to back, interleaved. A run lost events when its first event was not
`run_started` or its `run_finished` had to be built from `status`.

{table}

Opening a stream costs the handshake wait plus one `mark` round trip (two when the first mark
is lost). Followed back to back, a run's figure also holds the daemon's work after the run
before: a mark asked then waits for the GIL on two daemon threads (the request thread and the
event thread), while `run` only waits in the engine's inbox. `pyplant run` (a new process, some
200 ms to start) does not meet that.

**Command:** `bash bench/run.sh bench_subscribe`, which runs

    {command}
""")


if __name__ == "__main__":
    main()
