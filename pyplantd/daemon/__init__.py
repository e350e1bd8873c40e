"""The development daemon: a warm plant that re-runs the pipeline on every save."""
