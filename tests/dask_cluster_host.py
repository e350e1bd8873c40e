"""A real dask LocalCluster (scheduler, nannies, 2 single-threaded worker processes) on
127.0.0.1, in a process of its own so that its threads and restarts stay out of the test
process: prints the scheduler's address, then runs until its stdin closes (the tests end)."""

import sys

from distributed import LocalCluster

if __name__ == "__main__":
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    with LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, memory_limit="1GiB",
        dashboard_address=None, host="127.0.0.1",
    ) as cluster:  # fmt: skip
        print(cluster.scheduler_address, flush=True)
        sys.stdin.read()
