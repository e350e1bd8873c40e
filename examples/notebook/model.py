"""The model the pipeline trains: a module of its own, so that a notebook can import the class
and load a fitted model (a class defined in pipeline.py itself would be pickled as __main__'s)."""


class Line:
    """y = slope * x + intercept."""

    def __init__(self, slope: float, intercept: float) -> None:
        self.slope, self.intercept = slope, intercept

    def __call__(self, x: float) -> float:
        return self.slope * x + self.intercept

    def __repr__(self) -> str:
        return f"Line(slope={self.slope:.3f}, intercept={self.intercept:.3f})"
