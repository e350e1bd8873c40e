"""Code signatures: which edits change a reactor's signature, and how the change is explained."""

from __future__ import annotations

import doctest
import importlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from pyplantd.signatures import explain, namespaces, signature
from pyplantd.signatures.explain import describe_changes
from pyplantd.signatures.signature import CodeSignature, SignatureComputer

REPO = Path(__file__).resolve().parents[1]


class Workspace:
    """User modules written to a temp dir and imported fresh after every edit."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.names: set[str] = set()
        self._clock = 1_000_000_000_000_000_000

    def write(self, files: dict[str, str]) -> None:
        for name, text in files.items():
            path = self.root / f"{name}.py"
            path.write_text(textwrap.dedent(text).lstrip("\n"))
            # Rewrites within one clock tick keep mtime and often size: advance mtime by hand so
            # the parse cache (and the import system) sees every edit.
            self._clock += 1_000_000_000
            os.utime(path, ns=(self._clock, self._clock))
            self.names.add(name)

    def forget(self) -> None:
        for name in self.names:
            sys.modules.pop(name, None)
        importlib.invalidate_caches()

    def load(self, name: str) -> ModuleType:
        self.forget()
        return importlib.import_module(name)

    def signature(self, spec: str, **options: object) -> CodeSignature:
        """Signature of `module.func` with a fresh computer, as the engine makes one per run."""
        module, _, func = spec.partition(".")
        return SignatureComputer(**options).signature(getattr(self.load(module), func))  # type: ignore[arg-type]


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # pyc files go stale within a second
    workspace = Workspace(tmp_path)
    yield workspace
    workspace.forget()


def _edit(
    ws: Workspace, before: dict[str, str], after: dict[str, str], spec: str = "pipeline.f"
) -> tuple[CodeSignature, CodeSignature]:
    ws.write(before)
    old = ws.signature(spec)
    ws.write(after)
    return old, ws.signature(spec)


# --- edits that must not change the signature --------------------------------------------------

BASE = """
def f(x, y):
    total = compute(x, 'a', y)
    return total * 2
def compute(x, label, y):
    return x + y
"""


@dataclass
class Same:
    name: str
    text: str


SAME = [
    Same(
        "comment",
        """
        def f(x, y):
            # add things up
            total = compute(x, 'a', y)  # call the helper
            return total * 2
        def compute(x, label, y):
            return x + y
        """,
    ),
    Same(
        "function docstring",
        '''
        def f(x, y):
            """Double the total."""
            total = compute(x, 'a', y)
            return total * 2
        def compute(x, label, y):
            """Add."""
            return x + y
        ''',
    ),
    Same(
        "module docstring",
        '''
        """A pipeline."""
        def f(x, y):
            total = compute(x, 'a', y)
            return total * 2
        def compute(x, label, y):
            return x + y
        ''',
    ),
    Same(
        "blank lines",
        """

        def f(x, y):

            total = compute(x, 'a', y)


            return total * 2

        def compute(x, label, y):
            return x + y
        """,
    ),
    Same(
        "call split over lines, quotes changed",
        """
        def f(x, y):
            total = compute(
                x,
                "a",
                y,
            )
            return (total * 2)
        def compute(x, label, y):
            return x + y
        """,
    ),
]


@pytest.mark.parametrize("case", SAME, ids=lambda c: c.name)
def test_edit_without_behaviour_change_keeps_digest(ws: Workspace, case: Same) -> None:
    old, new = _edit(ws, {"pipeline": BASE}, {"pipeline": case.text})
    assert new == old


MODULE_VALUES = """
N = 3
OTHER = 1
GRID = list(range(N))
OPS = {"grid": GRID}
OPS["n"] = N
print(OTHER)
def f(x):
    return OPS
"""
SAME_MODULE_VALUES = {
    "comment and formatting in a defining statement": MODULE_VALUES.replace(
        'OPS = {"grid": GRID}', 'OPS = {\n    "grid": GRID,  # the grid\n}'
    ),
    "a statement defining other names": MODULE_VALUES.replace("OTHER = 1", "OTHER = 2"),
    "a statement reading the value": MODULE_VALUES + "print(len(OPS))\n",
    "the same value, written another way": MODULE_VALUES.replace("N = 3", "N = 1 + 2"),
}


@pytest.mark.parametrize("after", SAME_MODULE_VALUES.values(), ids=SAME_MODULE_VALUES.keys())
def test_module_statements_that_do_not_define_a_used_value_change_nothing(
    ws: Workspace, after: str
) -> None:
    old, new = _edit(ws, {"pipeline": MODULE_VALUES}, {"pipeline": after})
    assert new.digest == old.digest, describe_changes(old.parts, new.parts)


def test_ruff_format_changes_nothing(ws: Workspace) -> None:
    ruff = Path(sys.executable).parent / "ruff"
    if not ruff.exists():
        pytest.skip("ruff is not installed next to this interpreter")
    ugly = "def f( x,y ) :\n  return compute( x,'a',y ) * 2\ndef compute(x,label,y): return x+y\n"
    ws.write({"pipeline": ugly})
    old = ws.signature("pipeline.f")
    subprocess.run([str(ruff), "format", "--isolated", str(ws.root / "pipeline.py")], check=True)
    formatted = (ws.root / "pipeline.py").read_text()
    ws.write({"pipeline": formatted})
    assert formatted != ugly
    assert ws.signature("pipeline.f") == old


# --- edits that must change the signature, with their explanation ------------------------------


@dataclass
class Changed:
    name: str
    before: dict[str, str]
    after: dict[str, str]
    reasons: list[str]
    spec: str = "pipeline.f"


HELPERS = """
SCALE = 2
def normalize(x):
    return inner(x) * SCALE
def inner(x):
    return x + 1
"""
MODELS = """
class Model:
    def fit(self, x):
        return x * 2
"""
INHERITED = """
class Base:
    def fit(self, x):
        return x
class Model(Base):
    pass
"""
SUBREACTOR = """
def subreactor(func):
    def wrapper(*args):
        return func(*args)
    wrapper.__pyplantd_subreactor__ = func
    wrapper.__wrapped__ = func
    return wrapper
"""


DISPATCH = """
def inc(x):
    return x + 1
def dec(x):
    return x - 1
OPS = {'a': inc}
OPS['b'] = inc
"""
SETUP = """
CFG = {}
def setup():
    fill()
def fill():
    CFG['a'] = 1
setup()
"""
REGISTRY = """
REGISTRY = {}
def register(fn):
    REGISTRY[fn.__name__] = fn
    return fn
@register
def inc(x):
    return x + 1
"""
REBOUND = """
K = 2
def helper(x, k=K):
    return x * k
K = 3
def f(x):
    return helper(x)
"""
FACTORY = """
def make(n):
    data = [n] * 3
    def f(x, k=n + 1):
        return x + n + k + len(data)
    return f
f = make({arg})
"""


def _pipeline(body: str, imports: str = "") -> str:
    return f"{imports}\ndef f(x):\n    return {body}\n"


CHANGED = [
    Changed(
        "body",
        {"pipeline": _pipeline("x + 1")},
        {"pipeline": _pipeline("x + 2")},
        ["code changed (f)"],
    ),
    Changed(
        "helper imported by name",
        {
            "pipeline": _pipeline("normalize(x)", "from helpers import normalize"),
            "helpers": HELPERS,
        },
        {"helpers": HELPERS.replace("inner(x) * SCALE", "inner(x) / SCALE")},
        ["helper normalize() in helpers.py changed"],
    ),
    Changed(
        "helper through its module",
        {"pipeline": _pipeline("helpers.normalize(x)", "import helpers"), "helpers": HELPERS},
        {"helpers": HELPERS.replace("inner(x) * SCALE", "inner(x) / SCALE")},
        ["helper normalize() in helpers.py changed"],
    ),
    Changed(
        "helper module imported inside the function",
        {
            "pipeline": "def f(x):\n    import helpers as h\n    return h.normalize(x)\n",
            "helpers": HELPERS,
        },
        {"helpers": HELPERS.replace("inner(x) * SCALE", "inner(x) / SCALE")},
        ["helper normalize() in helpers.py changed"],
    ),
    Changed(
        "helper of a helper",
        {
            "pipeline": _pipeline("normalize(x)", "from helpers import normalize"),
            "helpers": HELPERS,
        },
        {"helpers": HELPERS.replace("x + 1", "x + 3")},
        ["helper inner() in helpers.py changed"],
    ),
    Changed(
        "constant in the helper module",
        {
            "pipeline": _pipeline("normalize(x)", "from helpers import normalize"),
            "helpers": HELPERS,
        },
        {"helpers": HELPERS.replace("SCALE = 2", "SCALE = 3")},
        ["constant SCALE in helpers.py changed"],
    ),
    Changed(
        "non-literal constant, by its assignment",
        {"pipeline": _pipeline("x + LIMIT", "LIMIT = int('4')")},
        {"pipeline": _pipeline("x + LIMIT", "LIMIT = int('5')")},
        ["constant LIMIT in pipeline.py changed"],
    ),
    Changed(
        "numpy array constant, by content",
        {"pipeline": _pipeline("x + W", "import numpy as np\nW = np.ones(3)")},
        {"pipeline": _pipeline("x + W", "import numpy as np\nW = np.ones(3)\nW[1] = 5")},
        ["W in pipeline.py changed (type ndarray: counted by the statements that define it)"],
    ),
    Changed(
        "class method",
        {"pipeline": _pipeline("Model().fit(x)", "from models import Model"), "models": MODELS},
        {"models": MODELS.replace("x * 2", "x * 4")},
        ["class Model in models.py changed"],
    ),
    Changed(
        "function held in a closure cell",
        {
            "pipeline": (
                "from helpers import normalize\n"
                "def make(fn):\n    def f(x):\n        return fn(x)\n    return f\n"
                "f = make(normalize)\n"
            ),
            "helpers": HELPERS,
        },
        {"helpers": HELPERS.replace("inner(x) * SCALE", "inner(x) - SCALE")},
        ["helper normalize() in helpers.py changed"],
    ),
    Changed(
        "subreactor behind its wrapper",
        {
            "pipeline": (
                "from fakeplant import subreactor\n"
                "@subreactor\ndef smooth(x):\n    return x * 2\n"
                "def f(x):\n    return smooth(x)\n"
            ),
            "fakeplant": SUBREACTOR,
        },
        {
            "pipeline": (
                "from fakeplant import subreactor\n"
                "@subreactor\ndef smooth(x):\n    return x * 3\n"
                "def f(x):\n    return smooth(x)\n"
            )
        },
        ["subreactor smooth() in pipeline.py changed"],
    ),
    Changed(
        "helper behind functools.lru_cache",
        {
            "pipeline": _pipeline("cached(x)", "from helpers import cached"),
            "helpers": "import functools\n@functools.lru_cache\ndef cached(x):\n    return x\n",
        },
        {"helpers": "import functools\n@functools.lru_cache\ndef cached(x):\n    return -x\n"},
        [  # the function behind the wrapper, and the statement binding the wrapper
            "helper cached() in helpers.py changed",
            "cached in helpers.py changed"
            " (type _lru_cache_wrapper: counted by the statements that define it)",
        ],
    ),
    Changed(
        "method of a base class",
        {
            "pipeline": _pipeline("Model().fit(x)", "from models import Model"),
            "models": INHERITED,
        },
        {"models": INHERITED.replace("return x", "return x + 1")},
        ["class Base in models.py changed"],
    ),
    Changed(
        "instance of a user class held in a global",
        {
            "pipeline": _pipeline("MODEL.fit(x)", "from models import Model\nMODEL = Model()"),
            "models": MODELS,
        },
        {"models": MODELS.replace("x * 2", "x * 4")},
        ["class Model in models.py changed"],
    ),
    Changed(
        "helper appears",
        {"pipeline": _pipeline("x", "from helpers import normalize"), "helpers": HELPERS},
        {"pipeline": _pipeline("normalize(x)", "from helpers import normalize")},
        [
            "code changed (f)",
            "now uses helper inner() in helpers.py",
            "now uses helper normalize() in helpers.py",
            "now uses constant SCALE in helpers.py",
        ],
    ),
    Changed(
        "list built from a constant",
        {"pipeline": _pipeline("GRID", "N = 3\nGRID = list(range(N))")},
        {"pipeline": _pipeline("GRID", "N = 4\nGRID = list(range(N))")},
        ["constant N in pipeline.py changed"],
    ),
    Changed(
        "value made by a helper that calls another",
        {
            "pipeline": _pipeline("CFG", "from helpers import CFG"),
            "helpers": "def base():\n    return 2\ndef make():\n    return {'s': base()}\n"
            "CFG = make()\n",
        },
        {
            "helpers": "def base():\n    return 3\ndef make():\n    return {'s': base()}\n"
            "CFG = make()\n"
        },
        ["helper base() in helpers.py changed"],
    ),
    Changed(
        "dispatch table entry set after the definition",
        {"pipeline": _pipeline("OPS", DISPATCH)},
        {"pipeline": _pipeline("OPS", DISPATCH.replace("OPS['b'] = inc", "OPS['b'] = dec"))},
        [
            "now uses helper dec() in pipeline.py",
            "OPS in pipeline.py changed (type dict: counted by the statements that define it)",
        ],
    ),
    Changed(
        "function in a dispatch table",
        {"pipeline": _pipeline("OPS", DISPATCH)},
        {"pipeline": _pipeline("OPS", DISPATCH.replace("x + 1", "x + 2"))},
        ["helper inc() in pipeline.py changed"],
    ),
    Changed(
        "method call after the definition",
        {"pipeline": _pipeline("CFG", "CFG = {}\nCFG.update(a=1)")},
        {"pipeline": _pipeline("CFG", "CFG = {}\nCFG.update(a=2)")},
        ["CFG in pipeline.py changed (type dict: counted by the statements that define it)"],
    ),
    Changed(
        "value passed to a function that fills it",
        {"pipeline": _pipeline("CFG", "CFG = {}\ndef fill(d):\n    d['a'] = 1\nfill(CFG)")},
        {"pipeline": _pipeline("CFG", "CFG = {}\ndef fill(d):\n    d['a'] = 2\nfill(CFG)")},
        ["helper fill() in pipeline.py changed"],
    ),
    Changed(
        "augmented assignment",
        {"pipeline": _pipeline("ACC", "STEP = 1\nACC = [0]\nACC += [STEP]")},
        {"pipeline": _pipeline("ACC", "STEP = 2\nACC = [0]\nACC += [STEP]")},
        ["constant STEP in pipeline.py changed"],
    ),
    Changed(
        "loop filling a dict, its header",
        {"pipeline": _pipeline("T", "T = {}\nfor k in range(2):\n    T[k] = k")},
        {"pipeline": _pipeline("T", "T = {}\nfor k in range(3):\n    T[k] = k")},
        [
            "T in pipeline.py changed (type dict: counted by the statements that define it)",
            "constant k in pipeline.py changed",
        ],
    ),
    Changed(
        "comprehension reading a constant",
        {"pipeline": _pipeline("T", "B = 2\nT = {k: [B * k, (B,)] for k in range(3)}")},
        {"pipeline": _pipeline("T", "B = 3\nT = {k: [B * k, (B,)] for k in range(3)}")},
        ["constant B in pipeline.py changed"],
    ),
    Changed(
        "instance of a user class built from a constant",
        {
            "pipeline": _pipeline(
                "P.n",
                "class P:\n    def __init__(self, n):\n        self.n = n\nSIZE = 3\nP = P(SIZE)",
            )
        },
        {
            "pipeline": _pipeline(
                "P.n",
                "class P:\n    def __init__(self, n):\n        self.n = n\nSIZE = 4\nP = P(SIZE)",
            )
        },
        ["constant SIZE in pipeline.py changed"],
    ),
    Changed(
        "constant imported by name lives where it is defined",
        {"pipeline": _pipeline("SCALE", "from helpers import SCALE"), "helpers": HELPERS},
        {"helpers": HELPERS.replace("SCALE = 2", "SCALE = 3")},
        ["constant SCALE in helpers.py changed"],
    ),
    Changed(
        "constant imported with a star lives where it is defined",
        {"pipeline": _pipeline("SCALE", "from helpers import *"), "helpers": HELPERS},
        {"helpers": HELPERS.replace("SCALE = 2", "SCALE = 3")},
        ["constant SCALE in helpers.py changed"],
    ),
    Changed(
        "attribute set on a helper after its definition",
        {"pipeline": _pipeline("inc(x)", "def inc(x):\n    return x + inc.step\ninc.step = 1")},
        {"pipeline": _pipeline("inc(x)", "def inc(x):\n    return x + inc.step\ninc.step = 2")},
        ["inc in pipeline.py changed (type function: counted by the statements that define it)"],
    ),
    Changed(
        "class attribute set after the class",
        {
            "pipeline": _pipeline("Model().fit(x)", "from models import Model\nModel.k = 1"),
            "models": MODELS,
        },
        {"pipeline": _pipeline("Model().fit(x)", "from models import Model\nModel.k = 2")},
        [  # the class's state as it now is, and the statement that changed it
            "class Model in models.py changed",
            "Model in pipeline.py changed (type type: counted by the statements that define it)",
        ],
    ),
    Changed(
        "closure variable given to a factory",
        {"pipeline": FACTORY.format(arg="2")},
        {"pipeline": FACTORY.format(arg="3")},
        [
            "f in pipeline.py changed (type function: counted by the statements that define it)",
            "closure variable n of f() in pipeline.py changed",
            "default k of f() in pipeline.py changed",
        ],
    ),
    Changed(
        "code of a factory",
        {"pipeline": FACTORY.format(arg="2")},
        {"pipeline": FACTORY.format(arg="2").replace("[n] * 3", "[n] * 4")},
        ["helper make() in pipeline.py changed"],
    ),
    Changed(
        "default value given by a factory",
        {"pipeline": FACTORY.format(arg="2")},
        {"pipeline": FACTORY.format(arg="2").replace("k=n + 1", "k=n + 2")},
        [
            "code changed (make.<locals>.f)",
            "helper make() in pipeline.py changed",
            "default k of f() in pipeline.py changed",
        ],
    ),
    Changed(
        "function of the module that fills a value at import",
        {"pipeline": _pipeline("CFG", SETUP)},
        {"pipeline": _pipeline("CFG", SETUP.replace("CFG['a'] = 1", "CFG['a'] = 2"))},
        ["helper fill() in pipeline.py changed"],
    ),
    Changed(
        "registry filled by a decorator",
        {"pipeline": _pipeline("REGISTRY['inc'](x)", REGISTRY)},
        {"pipeline": _pipeline("REGISTRY['inc'](x)", REGISTRY.replace("x + 1", "x + 2"))},
        [
            "helper inc() in pipeline.py changed",
            "REGISTRY in pipeline.py changed (type dict: counted by the statements that define it)",
        ],
    ),
    Changed(
        "registry of another module filled from a third",
        {
            "pipeline": _pipeline("STEPS['inc'](x)", "import steps\nfrom registry import STEPS"),
            "registry": "STEPS = {}\ndef step(fn):\n    STEPS[fn.__name__] = fn\n    return fn\n",
            "steps": "from registry import step\n@step\ndef inc(x):\n    return x + 1\n",
        },
        {"steps": "from registry import step\n@step\ndef inc(x):\n    return x + 2\n"},
        ["helper inc() in steps.py changed"],
    ),
    Changed(
        "value changed through its module by another module",
        {
            "pipeline": _pipeline("settings.CFG", "import settings\nimport tweaks"),
            "settings": "CFG = {'a': 1}\n",
            "tweaks": "import settings\nsettings.CFG['b'] = 2\n",
        },
        {"tweaks": "import settings\nsettings.CFG['b'] = 3\n"},
        ["settings.CFG in tweaks.py changed (type dict: counted by the statements that define it)"],
    ),
    Changed(
        "value changed by another module that imported it by name",
        {
            "pipeline": _pipeline("CFG", "import tweaks\nfrom settings import CFG"),
            "settings": "CFG = {'a': 1}\n",
            "tweaks": "from settings import CFG\nCFG.update(b=2)\n",
        },
        {"tweaks": "from settings import CFG\nCFG.update(b=3)\n"},
        ["CFG in tweaks.py changed (type dict: counted by the statements that define it)"],
    ),
    Changed(
        "value changed through another name",
        {"pipeline": _pipeline("CFG", "CFG = [1]\nALIAS = CFG\nALIAS.append(2)")},
        {"pipeline": _pipeline("CFG", "CFG = [1]\nALIAS = CFG\nALIAS.append(3)")},
        ["ALIAS in pipeline.py changed (type list: counted by the statements that define it)"],
    ),
    Changed(
        "class changed by another module",
        {
            "pipeline": _pipeline("Model().fit(x)", "import tweaks\nfrom models import Model"),
            "models": MODELS,
            "tweaks": "import models\nmodels.Model.k = 1\n",
        },
        {"tweaks": "import models\nmodels.Model.k = 2\n"},
        [
            "class Model in models.py changed",
            "models.Model in tweaks.py changed"
            " (type type: counted by the statements that define it)",
        ],
    ),
    Changed(
        "default value read from a name bound again later",
        {"pipeline": REBOUND},
        {"pipeline": REBOUND.replace("K = 2", "K = 5")},
        ["constant K in pipeline.py changed", "default k of helper() in pipeline.py changed"],
    ),
    Changed(
        "lambda reactor",
        {"pipeline": "f = lambda x: x + 1  # a lambda\n"},
        {"pipeline": "f = lambda x: x + 2\n"},
        [
            "code changed (<lambda>)",
            "f in pipeline.py changed (type function: counted by the statements that define it)",
        ],
    ),
]


@pytest.mark.parametrize("case", CHANGED, ids=lambda c: c.name)
def test_behaviour_change_changes_digest_and_is_explained(ws: Workspace, case: Changed) -> None:
    old, new = _edit(ws, case.before, case.after, case.spec)
    assert new.digest != old.digest
    assert describe_changes(old.parts, new.parts) == case.reasons


def test_lambda_comment_edit_keeps_digest(ws: Workspace) -> None:
    old, new = _edit(
        ws, {"pipeline": "f = lambda x: x + 1\n"}, {"pipeline": "f = (lambda x: x + 1)  # ok\n"}
    )
    assert new == old


# --- what is recorded --------------------------------------------------------------------------


def test_component_keys(ws: Workspace) -> None:
    ws.write(
        {
            "pipeline": _pipeline(
                "Model().fit(normalize(x))",
                "from helpers import normalize\nfrom models import Model",
            ),
            "helpers": HELPERS,
            "models": MODELS,
        }
    )
    parts = ws.signature("pipeline.f").parts
    assert sorted(parts) == [
        "class:Model@models.py",
        "code:f",
        "const:SCALE@helpers.py",
        "helper:inner@helpers.py",
        "helper:normalize@helpers.py",
    ]


def test_mutable_closure_data_and_written_globals_count_by_code_not_by_state(
    ws: Workspace,
) -> None:
    ws.write(
        {
            "pipeline": """
        COUNT = 0
        def make(log):
            def f(x):
                global COUNT
                COUNT += 1
                log.append(x)
                return x
            return f
        log = []
        f = make(log)
    """
        }
    )
    module = ws.load("pipeline")
    before = SignatureComputer().signature(module.f)
    module.f(1)
    after = SignatureComputer().signature(module.f)
    assert after == before
    assert sorted(after.parts) == [
        "cell:make.<locals>.f:log@pipeline.py",  # a list: by its type and the code making it
        "code:make.<locals>.f",
        "const:f@pipeline.py",  # `f = make(log)`
        "const:log@pipeline.py",  # `log = []`
        "helper:make@pipeline.py",  # the factory
    ]
    assert after.parts["cell:make.<locals>.f:log@pipeline.py"].startswith("t:list:")


def test_module_level_cache_filled_at_run_time_is_not_a_change(ws: Workspace) -> None:
    ws.write(
        {
            "helpers": """
        _CACHE = {}
        SEEN = []
        def lookup(x):
            if x not in _CACHE:
                _CACHE[x] = x * 2
            SEEN.append(x)
            return _CACHE[x]
    """,
            "pipeline": "from helpers import lookup\ndef f(x):\n    return lookup(x)\n",
        }
    )
    module = ws.load("pipeline")
    before = SignatureComputer().signature(module.f)
    module.f(3)
    assert SignatureComputer().signature(module.f) == before
    ws.write({"helpers": (ws.root / "helpers.py").read_text().replace("SEEN = []", "SEEN = [0]")})
    assert ws.signature("pipeline.f").digest != before.digest  # editing the source still counts


def test_extra_subreactors_are_included(ws: Workspace) -> None:
    ws.write({"pipeline": "def f(x):\n    return x\ndef smooth(x):\n    return x * 2\n"})
    module = ws.load("pipeline")
    parts = SignatureComputer().signature(module.f, extra=[module.smooth]).parts
    assert sorted(parts) == ["code:f", "subreactor:smooth@pipeline.py"]


def test_mutual_recursion_terminates(ws: Workspace) -> None:
    ws.write(
        {
            "pipeline": """
        def f(n):
            return g(n - 1) if n > 0 else 0
        def g(n):
            return f(n) + h(n)
        def h(n):
            return g(n)
    """
        }
    )
    parts = ws.signature("pipeline.f").parts
    assert sorted(parts) == ["code:f", "helper:g@pipeline.py", "helper:h@pipeline.py"]


def test_third_party_package_recorded_with_its_version_and_stdlib_not(ws: Workspace) -> None:
    ws.write(
        {
            "pipeline": """
        import math
        import os
        import numpy as np
        from numpy import median
        def f(x):
            return np.mean(x) + median(x) + math.sqrt(len(os.path.join("a", "b")))
    """
        }
    )
    parts = ws.signature("pipeline.f").parts
    assert parts == {"code:f": parts["code:f"], "package:numpy": np.__version__}


def test_package_imported_inside_the_function_is_recorded(ws: Workspace) -> None:
    ws.write({"pipeline": "def f(x):\n    import numpy.linalg as la\n    return la.norm(x)\n"})
    assert ws.signature("pipeline.f").parts["package:numpy"] == np.__version__


def test_track_versions_false_records_no_package(ws: Workspace) -> None:
    ws.write({"pipeline": "import numpy as np\ndef f(x):\n    return np.mean(x)\n"})
    assert sorted(ws.signature("pipeline.f", track_versions=False).parts) == ["code:f"]


def test_custom_function_hash_replaces_ast_hash_but_references_are_followed(ws: Workspace) -> None:
    ws.write(
        {"pipeline": _pipeline("normalize(x)", "from helpers import normalize"), "helpers": HELPERS}
    )
    parts = ws.signature("pipeline.f", function_hash=lambda func: f"v-{func.__name__}").parts
    assert parts["code:f"] == "v-f"
    assert parts["helper:normalize@helpers.py"] == "v-normalize"
    assert parts["helper:inner@helpers.py"] == "v-inner"
    assert "const:SCALE@helpers.py" in parts


def test_exec_code_has_a_stable_digest_within_the_process() -> None:
    def make(body: str) -> Callable[..., object]:
        namespace: dict[str, object] = {"LIMIT": 3}
        exec(f"def f(x):\n    return {body} + LIMIT\n", namespace)
        return namespace["f"]  # type: ignore[return-value]

    first = SignatureComputer().signature(make("x + 1"))
    assert SignatureComputer().signature(make("x + 1")) == first
    assert SignatureComputer().signature(make("x + 2")).digest != first.digest
    assert "const:LIMIT@<string>" in first.parts


def test_signature_hashes_the_loaded_code_not_a_later_edit_of_its_file(ws: Workspace) -> None:
    ws.write({"pipeline": _pipeline("x + 1")})
    func = ws.load("pipeline").f
    before = SignatureComputer().signature(func)
    ws.write({"pipeline": _pipeline("x + 2")})
    assert SignatureComputer().signature(func) == before  # x + 1 is what runs
    assert ws.signature("pipeline.f").digest != before.digest  # imported again: x + 2


def test_digest_is_stable_across_processes(ws: Workspace) -> None:
    ws.write(
        {
            "pipeline": _pipeline(
                "x in NAMES and x in TABLE",
                "NAMES = {'a', 'b', 'c', 'd'}\nTABLE = {'k': ('v', 1.5, None)}",
            )
        }
    )
    here = ws.signature("pipeline.f").digest
    script = (
        "import pipeline\n"
        "from pyplantd.signatures.signature import SignatureComputer\n"
        "print(SignatureComputer().signature(pipeline.f).digest)\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{ws.root}{os.pathsep}{REPO}", "PYTHONHASHSEED": "random"}
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        assert out.stdout.strip() == here


# --- explanations ------------------------------------------------------------------------------


@dataclass
class Explained:
    old: dict[str, str]
    new: dict[str, str]
    reasons: list[str] = field(default_factory=list)


EXPLAINED = [
    Explained({"code:plot_data": "a"}, {"code:plot_data": "b"}, ["code changed (plot_data)"]),
    Explained(
        {"helper:normalize@helpers.py": "a"},
        {"helper:normalize@helpers.py": "b"},
        ["helper normalize() in helpers.py changed"],
    ),
    Explained(
        {}, {"helper:normalize@helpers.py": "b"}, ["now uses helper normalize() in helpers.py"]
    ),
    Explained(
        {"helper:normalize@helpers.py": "a"},
        {},
        ["no longer uses helper normalize() in helpers.py"],
    ),
    Explained(
        {"class:Model@models.py": "a"},
        {"class:Model@models.py": "b"},
        ["class Model in models.py changed"],
    ),
    Explained({}, {"class:Model@models.py": "b"}, ["now uses class Model in models.py"]),
    Explained({"class:Model@models.py": "a"}, {}, ["no longer uses class Model in models.py"]),
    Explained(
        {"const:SCALE@helpers.py": "a"},
        {"const:SCALE@helpers.py": "b"},
        ["constant SCALE in helpers.py changed"],
    ),
    Explained({}, {"const:SCALE@helpers.py": "b"}, ["now uses constant SCALE in helpers.py"]),
    Explained({"const:SCALE@helpers.py": "a"}, {}, ["no longer uses constant SCALE in helpers.py"]),
    Explained(
        {"subreactor:smooth@pipeline.py": "a"},
        {"subreactor:smooth@pipeline.py": "b"},
        ["subreactor smooth() in pipeline.py changed"],
    ),
    Explained(
        {}, {"subreactor:smooth@pipeline.py": "b"}, ["now uses subreactor smooth() in pipeline.py"]
    ),
    Explained(
        {"subreactor:smooth@pipeline.py": "a"},
        {},
        ["no longer uses subreactor smooth() in pipeline.py"],
    ),
    Explained({"package:numpy": "1.26.4"}, {"package:numpy": "2.0.1"}, ["numpy 1.26.4 -> 2.0.1"]),
    Explained({}, {"package:scipy": "1.11.0"}, ["now uses scipy 1.11.0"]),
    Explained({"package:scipy": "1.11.0"}, {}, ["no longer uses scipy"]),
    Explained({"code:f": "a", "helper:h@x.py": "a"}, {"code:f": "a", "helper:h@x.py": "a"}, []),
    Explained(
        {
            "package:numpy": "1",
            "helper:b@x.py": "1",
            "code:f": "1",
            "const:A@x.py": "1",
            "class:C@x.py": "1",
            "subreactor:s@x.py": "1",
        },
        {
            "package:numpy": "2",
            "helper:b@x.py": "2",
            "code:f": "2",
            "const:A@x.py": "2",
            "class:C@x.py": "2",
            "subreactor:s@x.py": "2",
        },
        [
            "code changed (f)",
            "subreactor s() in x.py changed",
            "helper b() in x.py changed",
            "class C in x.py changed",
            "constant A in x.py changed",
            "numpy 1 -> 2",
        ],
    ),
]


@pytest.mark.parametrize("case", EXPLAINED, ids=lambda c: ",".join(c.reasons) or "no change")
def test_describe_changes_wording(case: Explained) -> None:
    assert describe_changes(case.old, case.new) == case.reasons


def test_docstring_examples_run() -> None:
    assert doctest.testmod(signature).failed == 0
    assert doctest.testmod(explain).failed == 0
    assert doctest.testmod(namespaces).failed == 0
