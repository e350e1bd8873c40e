"""A real second Unix user for tests about files another user could have written: created once
(idempotent; we run as root, as CI does), and commands run as that user with `runuser`.
Tests using it are skipped, with the reason, when not run as root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

OTHER_USER = "pyplantd-test-other2"
TIMEOUT = 60


def other_user() -> pwd.struct_passwd:
    """The second user, created on first use; skips the test when that cannot be done."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a second Unix user (CI runs as root)")
    for tool in ("useradd", "runuser"):
        if shutil.which(tool) is None:
            pytest.skip(f"needs {tool} to act as a second Unix user")
    try:
        return pwd.getpwnam(OTHER_USER)
    except KeyError:
        pass
    created = subprocess.run(
        ["useradd", "-M", "-r", "-s", "/usr/sbin/nologin", OTHER_USER],
        capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    if created.returncode not in (0, 9):  # 9: it exists (another test run made it meanwhile)
        raise AssertionError(f"useradd {OTHER_USER} failed: {created.stderr}")
    return pwd.getpwnam(OTHER_USER)


def as_other(*command: str, stdin: str | None = None) -> None:
    """Run `command` as the second user; it must succeed."""
    other_user()
    done = subprocess.run(
        ["runuser", "-u", OTHER_USER, "--", *command], input=stdin, capture_output=True,
        text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, f"{command} as {OTHER_USER}: {done.stderr}"


def shared_dir() -> Path:
    """A fresh folder every user may write to, sticky like /tmp (the caller removes it)."""
    other_user()
    path = Path(tempfile.mkdtemp(prefix="pyplantd-shared-", dir="/tmp"))
    os.chmod(path, 0o1777)
    return path
