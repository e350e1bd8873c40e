"""The files of a sequence on disk: where they live, how an edit is saved (in place or by
rename, keeping size and mtime or not), and what a run left behind (served.json, ran.jsonl).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from .edits import Edit

RUNTIME = Path(__file__).with_name("project_runtime.py")
SECOND_NS = 1_000_000_000


def scratch_root() -> str:
    """Where sequences run: DIFFTEST_TMP, else /dev/shm when it has room (no disk flushes: the
    engine fsyncs every payload, which on a shared disk costs more than the runs), else /tmp."""
    chosen = os.environ.get("DIFFTEST_TMP")
    if chosen:
        return chosen
    shm = "/dev/shm"
    try:
        room = shutil.disk_usage(shm).free
    except OSError:
        room = 0
    if room > 512 * 2**20 and os.access(shm, os.W_OK):
        return shm
    return tempfile.gettempdir()


def write_tree(root: Path, files: dict[str, str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(RUNTIME, root / "served.py")
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def save(path: Path, text: str, edit: Edit) -> bool:
    """Write as an editor would; True if the file keeps its size and whole-second mtime (what
    CPython's bytecode cache checks)."""
    before = path.stat()
    if edit.save == "atomic":
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(temp, path)
    else:
        with open(path, "w") as handle:
            handle.write(text)
    after = path.stat()
    if edit.keep_stat and after.st_size == before.st_size:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    elif after.st_mtime_ns < before.st_mtime_ns + SECOND_NS:
        # A person's saves are seconds apart; two saves within one second keeping the size
        # would fool CPython's bytecode cache, which only a kept mtime should test.
        os.utime(path, ns=(after.st_atime_ns, before.st_mtime_ns + SECOND_NS))
    after = path.stat()
    same_second = int(after.st_mtime) == int(before.st_mtime)
    return after.st_size == before.st_size and same_second


def read_served(out: Path) -> dict[str, list[str]] | None:
    try:
        served: dict[str, list[str]] = json.loads((out / "served.json").read_text())
    except (OSError, ValueError):
        return None
    return served


def read_ran(out: Path) -> dict[str, dict[str, str]]:
    """reactor -> the digests of its inputs, for each reactor that executed."""
    ran = {}
    try:
        lines = (out / "ran.jsonl").read_text().splitlines()
    except OSError:
        return {}
    for line in lines:
        record = json.loads(line)
        ran[record["reactor"]] = record["inputs"]
    return ran


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"
