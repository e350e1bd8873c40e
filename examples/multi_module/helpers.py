"""Helpers used by the pipeline: edit one and only the reactors that use it re-run."""

SCALE = 2.0


def normalize(values):
    return (values - values.mean()) / (values.std() + 1e-12)


def summarize(values):
    return {"mean": float(values.mean()), "min": float(values.min()), "max": float(values.max())}
