"""Terminal rendering shared by `pyplantd run` and the daemon's console: result tables,
explanations, tracebacks and the live view of a run."""
