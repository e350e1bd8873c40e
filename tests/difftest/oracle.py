"""The independent oracle: evaluates a generated project as plain Python, without the engine's
scheduler, store or caches. Each reactor runs once, on demand; a sent value is deep-copied at
`send` and again for each consumer (frozen at send, nobody's mutation reaches anyone else).

It imports the user's modules fresh from a copy of the project that holds no bytecode and no
plant dir, and uses pyplantd only for what the user's own code imports (the decorators and
ConfigBase, which run nothing).
"""

from __future__ import annotations

import copy
import importlib
import sys
import types
from collections.abc import Callable
from typing import Any


class _Want:
    def __init__(self, name: str) -> None:
        self.name = name


class _Pipe:
    def __init__(self, evaluation: Evaluation) -> None:
        self._evaluation = evaluation

    def receive(self, name: str) -> _Want:
        return _Want(name)

    def send(self, name: str, value: Any, type: Any = None) -> None:
        self._evaluation.values[name] = copy.deepcopy(value)

    def read_config(self, name: str) -> Any:
        config = self._evaluation.config
        return config[name] if isinstance(config, dict) else config.__dict__[name]

    def track_file(self, path: str) -> str:
        return path


class Evaluation:
    def __init__(
        self, funcs: dict[str, Callable[..., Any]], producers: dict[str, str], config: Any
    ) -> None:
        self.funcs = funcs
        self.producers = producers
        self.config = config
        self.values: dict[str, Any] = {}
        self.running: set[str] = set()

    def value(self, name: str) -> Any:
        if name not in self.values:
            self.run(self.producers[name])
        return copy.deepcopy(self.values[name])

    def run(self, reactor: str) -> None:
        if reactor in self.running:
            raise RuntimeError(f"cycle through {reactor}")
        self.running.add(reactor)
        func = self.funcs[reactor]
        takes_config = func.__code__.co_argcount >= 2
        args = (_Pipe(self), self.config) if takes_config else (_Pipe(self),)
        result = func(*args)
        if isinstance(result, types.GeneratorType):
            answer = None
            while True:
                try:
                    asked = result.send(answer)
                except StopIteration:
                    break
                answer = self.value(asked.name) if isinstance(asked, _Want) else None


def evaluate(project_dir: str, reactors: dict[str, list[str]], producers: dict[str, str]) -> None:
    """Run the collector of the project in `project_dir` (already the working directory);
    `reactors` maps each reactor id to its module and its name there."""
    sys.dont_write_bytecode = True
    path = f"{project_dir}/pipeline.py"
    pipeline = types.ModuleType("difftest_pipeline")  # not __main__: its main block stays out
    pipeline.__file__ = path
    sys.modules[pipeline.__name__] = pipeline
    with open(path) as handle:
        exec(compile(handle.read(), path, "exec"), pipeline.__dict__)
    funcs = {}
    for reactor, (module, name) in reactors.items():
        home = pipeline if module == "pipeline" else importlib.import_module(module)
        funcs[reactor] = getattr(home, name)
    Evaluation(funcs, producers, pipeline.CONFIG).run("collect")
