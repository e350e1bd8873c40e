"""The run core: which reactor is ready (scheduler), whether a reactor is fresh and why (judge),
what a running reactor sees (pipework), dry-run plans (planner), and execution history."""
