"""Running a pipeline script as `python pipeline.py` would, under a host that may redirect its
Plant(...): one-shot runs, probing a script's plant dir, termination signals, the daemon link."""
