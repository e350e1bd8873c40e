"""The dask executor (`local:2`): a CPU-bound wide pipeline against inline (parallel
efficiency, with the load average), and runs of a wide pipeline each with one worker SIGKILLed
at a random moment (completed, failed naming a reactor, or hung; the plant dir checked after).

    bash bench/run.sh bench_dask
    bash bench/run.sh bench_dask -- --kills 20 --seed 1
    python bench/bench_dask.py --cpu-only --repeats 3    # the CPU-bound section alone

Also the local:2 rows of bench_parallel's wide pipeline and 50-chain (its own scenarios), with
the cluster started before the clock, as a daemon or a script's first run leaves it for the
runs that follow. Prints one Markdown section on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_parallel
from _common import child_env, fmt_seconds, load_average, log, md_table, median

ROOT = Path(__file__).resolve().parents[1]

CPU = """
import json, os, sys, time
from pyplantd import Plant, ReactorFunc


def spin(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total

"""  # the 8 reactors and the sink follow
CPU += "".join(
    f"\n@ReactorFunc\ndef cpu_{i}(pipe):\n"
    f"    tick = time.process_time()\n"
    f"    pipe.send('cpu_{i}', spin(pipe.read_config('n')))\n"
    f"    pipe.send('cpu_time_{i}', time.process_time() - tick)\n"
    for i in range(8)
)
CPU += """

@ReactorFunc
def cpu_sink(pipe):
    values = yield tuple(pipe.receive(f"cpu_{i}") for i in range(8))
    times = yield tuple(pipe.receive(f"cpu_time_{i}") for i in range(8))
    pipe.send("cpu_total", (sum(values), sum(times)))


executor = sys.argv[3] if sys.argv[3] != "inline" else None
with Plant(sys.argv[1], executor=executor) as plant:
    plant.set_config({"n": int(sys.argv[2])})
    if executor:  # the cluster starts before the clock does (a daemon starts it once)
        from pyplantd.run.executors import ExecutorChoice
        from pyplantd.run.executors.dask import shared_cluster
        shared_cluster(ExecutorChoice.parse(executor))
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    plant.run_reactor(cpu_sink)
    wall = time.perf_counter() - start
    total, cpu = plant.fetch_ingredient("cpu_total")
print(json.dumps({"wall": wall, "cpu": cpu, "load_before": load_before,
                  "load_after": os.getloadavg()[0]}))
"""

KILLS = """
import json, os, random, signal, sys, threading, time
from pyplantd import Plant, ReactorFunc
from pyplantd.errors import PlantError
from pyplantd.run.executors import ExecutorChoice
from pyplantd.run.executors.dask import shared_cluster
from pyplantd.store.plant_store import PlantStore

PARTS = 8
"""
KILLS += "".join(
    f"\n@ReactorFunc\ndef part_{i}(pipe):\n    time.sleep(0.5)\n    pipe.send('part_{i}', {i})\n"
    for i in range(8)
)
KILLS += """

@ReactorFunc
def sink(pipe):
    parts = yield tuple(pipe.receive(f"part_{i}") for i in range(PARTS))
    pipe.send("total", sum(parts))


def check(plant_dir):
    store = PlantStore(plant_dir)
    try:
        bad = []
        for reactor_id in store.reactors:
            if len(store.versions_of(reactor_id)) != 1:
                bad.append(f"{reactor_id}: {len(store.versions_of(reactor_id))} versions")
        for record in store.ingredients.values():
            path = str(store.payloads.resolve(record.path))
            if not store.payloads.intact(record.path, record.size):
                bad.append(f"{record.name} missing")
            elif record.checksum and not store.spec(record.type).verify(path, record.checksum):
                bad.append(f"{record.name} fails its checksum")
        on_disk = {f"payloads/{p.name}" for p in (plant_dir / "payloads").iterdir()}
        orphans = sorted(on_disk - store.referenced_paths())
        return bad, orphans
    finally:
        store.close()


rng = random.Random(int(sys.argv[3]))
choice = ExecutorChoice.parse("local:2")
cluster = shared_cluster(choice)
results = []
for run in range(int(sys.argv[2])):
    cluster.client.wait_for_workers(2, timeout=120)
    plant_dir = __import__("pathlib").Path(sys.argv[1]) / f"plant-{run}"
    delay = rng.uniform(0.1, 1.8)  # a clean run takes ~2.1-2.6 s here
    killed = []

    def kill():
        time.sleep(delay)
        pids = cluster.client.run(os.getpid)
        worker = rng.choice(sorted(pids))
        os.kill(pids[worker], signal.SIGKILL)
        killed.append(time.perf_counter())

    outcome, error = {}, ""
    def go():
        try:
            with Plant(plant_dir, executor="local:2") as plant:
                plant.add_reactors(*[globals()[f"part_{i}"] for i in range(PARTS)], sink)
                plant.run_reactor(sink)
                outcome["total"] = plant.fetch_ingredient("total")
        except PlantError as err:
            outcome["error"] = str(err)

    killer = threading.Thread(target=kill, daemon=True)
    runner = threading.Thread(target=go, daemon=True)
    tick = time.perf_counter()
    killer.start(); runner.start()
    runner.join(60)
    ended = time.perf_counter()
    wall = ended - tick
    killer.join(5)
    if runner.is_alive():
        results.append({"run": run, "delay": delay, "outcome": "hung", "wall": wall})
        break
    bad, orphans = check(plant_dir)
    state = "completed" if outcome.get("total") == sum(range(PARTS)) else "failed"
    results.append({"run": run, "delay": delay, "outcome": state, "wall": wall,
                    "error": outcome.get("error", ""), "bad": bad, "orphans": orphans,
                    "during": bool(killed) and killed[0] < ended})
print(json.dumps(results))
"""


def run_json(script: str, args: list[str], timeout: float) -> object:
    with tempfile.TemporaryDirectory(prefix="bench-dask-") as folder:
        path = Path(folder) / "script.py"
        path.write_text(script)
        env = child_env()
        done = subprocess.run(
            [sys.executable, str(path), str(Path(folder) / "plants"), *args], cwd=folder,
            env=env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: exit {done.returncode}\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])


def calibrate() -> int:
    """Iterations of the reactors' loop that take about a second on one core here."""
    n = 200_000
    while True:
        tick = time.process_time()
        total = 0
        for i in range(n):
            total += i * i % 7
        spent = time.process_time() - tick
        if spent > 0.2:
            return int(n / spent)
        n *= 2


# bench_parallel's scripts open the executor at their timed run: for a cluster executor, open
# it (start or connect to its cluster) before the clock starts.
WARM_UP = """from pyplantd.run.executors import open_executor
    open_executor(os.environ["BENCH_EXECUTOR"]).close()
    start = time.perf_counter()"""


def parallel_rows(executor: str, repeats: int) -> tuple[str, str]:
    bench_parallel.WIDE = bench_parallel.WIDE.replace(
        "    start = time.perf_counter()", "    " + WARM_UP, 1
    )
    bench_parallel.CHAIN = bench_parallel.CHAIN.replace(
        "    start = time.perf_counter()", "    " + WARM_UP, 1
    )
    with tempfile.TemporaryDirectory(prefix="bench-dask-parallel-") as folder:
        work = Path(folder)
        wide = bench_parallel.wide(work, [executor], repeats, 600)
        chain = bench_parallel.chain_overhead(work, [executor], repeats, 600)
    return wide, chain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cpu-only", action="store_true", help="only the CPU-bound section")
    args = parser.parse_args()

    if not args.cpu_only:
        wide_table, chain_table = parallel_rows("local:2", 3)
    n = calibrate()
    log(f"cpu: {n} iterations per reactor (~1 s on one core)")
    rows = []
    for executor in ("inline", "local:2"):
        walls, effs, loads = [], [], []
        for _ in range(args.repeats):
            data = run_json(CPU, [str(n), executor], 600)
            assert isinstance(data, dict)
            workers = 2 if executor != "inline" else 1
            walls.append(data["wall"])
            effs.append(data["cpu"] / (data["wall"] * workers))
            loads.append(f"{data['load_before']:.1f}→{data['load_after']:.1f}")
            log(f"cpu {executor}: {data}")
        rows.append([executor, fmt_seconds(median(walls)), f"{median(effs):.2f}", ", ".join(loads)])
    speedup = float(rows[0][1].split()[0]) / float(rows[1][1].split()[0]) if rows else 0.0
    cpu_section = f"""**CPU-bound wide pipeline**: 8 reactors each spinning a pure-Python loop of
{n:,} iterations (about 1 s on one core, calibrated first) and a sink, one-shot, fresh plant
dir; the cluster started before the clock. Parallel efficiency = sum of the reactors' CPU time
/ (wall x workers). Median of {args.repeats}; load average (1 min) before→after each run, since
the 2 cores are shared with other work.

{md_table(["executor", "wall", "parallel efficiency", "load average"], rows)}

Speedup local:2 over inline: {speedup:.2f}x."""
    if args.cpu_only:
        print(f"""## Dask executor: CPU-bound parallel efficiency

Command: `python bench/bench_dask.py --cpu-only --repeats {args.repeats}`.
Load average when it ended: {load_average()}.

{cpu_section}
""")
        return

    log(f"kills: {args.kills} runs")
    kills = run_json(KILLS, [str(args.kills), str(args.seed)], 60 * args.kills + 300)
    assert isinstance(kills, list)
    completed = sum(r["outcome"] == "completed" for r in kills)
    failed = [r for r in kills if r["outcome"] == "failed"]
    hung = [r for r in kills if r["outcome"] == "hung"]
    damaged = [r for r in kills if r.get("bad") or r.get("orphans")]
    walls = [r["wall"] for r in kills if r["outcome"] != "hung"]
    during = sum(bool(r.get("during")) for r in kills)
    wall_median = fmt_seconds(median(walls)) if walls else "-"
    wall_max = fmt_seconds(max(walls)) if walls else "-"
    kill_rows = [
        [r["run"], f"{r['delay']:.2f} s", "yes" if r.get("during") else "no (after)",
         r["outcome"], fmt_seconds(r["wall"]),
         "; ".join(r.get("bad", []) + r.get("orphans", [])) or "ok", r.get("error", "")[:80]]
        for r in kills
    ]  # fmt: skip

    print(f"""## Dask executor: CPU-bound parallel efficiency, random worker kills

Command: `bash bench/run.sh bench_dask -- --repeats {args.repeats} --kills {args.kills} \
--seed {args.seed}`.
Load average when it ended: {load_average()}.

**local:2 rows of bench_parallel** (its scenarios and columns; the cluster started before
the clock). Wide pipeline: 8 reactors sleeping 1 s + a sink receiving all 8 in one yield;
"with records" is the run after a param edit that makes all 8 stale. Repeats: 3.

{wide_table}

Overhead per trivial reactor, 50-chain (`plant.run_reactor(r49)` wall / 50):

{chain_table}

{cpu_section}

**Random kills**: {len(kills)} runs of 8 x 0.5 s sleeping reactors + a sink on local:2, each in a
fresh plant dir, one worker SIGKILLed after a random delay (0.1-1.8 s, seed {args.seed}); a run
that has not ended after 60 s counts as hung. After each run the plant dir is checked: every
reactor exactly one version, every current payload present and passing its checksum, no
unreferenced payload.

Kills that landed during the run: {during} of {len(kills)}. Completed: {completed}; failed
naming a reactor: {len(failed)}; hung: {len(hung)}; plant dir problems: {len(damaged)}.
Wall: median {wall_median}, max {wall_max}.

{md_table(["run", "kill at", "during the run", "outcome", "wall", "plant dir", "error"], kill_rows)}
""")


if __name__ == "__main__":
    main()
