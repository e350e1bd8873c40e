"""Shell completion of `pyplantd` and `pyplant`, asked of real shells: the script
`--show-completion` prints is sourced in bash (and zsh, fish when installed), and the shell's
completion function is called as a TAB would, with reactor and ingredient names among what it
offers. Also `--install-completion`, and a shell that cannot be told."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from live_daemon import ENV, live_daemon

PIPELINE = """
import numpy as np

from pyplantd import Plant, ReactorFunc


@ReactorFunc
def load_data(pipe):
    pipe.send('data', np.arange(3.0))


@ReactorFunc
def plot_data(pipe):
    data = yield pipe.receive('data')
    pipe.send('figure', float(data.sum()))


if __name__ == '__main__':
    with Plant('plant') as plant:
        plant.run_reactor(plot_data)
"""
BIN = Path(sys.executable).parent


@pytest.fixture
def project(tmp_path: Path) -> Path:
    if not (BIN / "pyplantd").exists() or not (BIN / "pyplant").exists():
        pytest.skip(f"needs the pyplantd and pyplant commands installed beside {sys.executable}")
    root = tmp_path / "project"
    root.mkdir()
    (root / "pipeline.py").write_text(textwrap.dedent(PIPELINE).lstrip())
    return root


def shell(program: str, script: str, cwd: Path, **env: str) -> str:
    """Run `script` in a real non-interactive `program` (bash, zsh, fish); its output."""
    if shutil.which(program) is None:
        pytest.skip(f"{program} is not installed (apt-get install {program})")
    path = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    done = subprocess.run(
        [program, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=120,
        env={**os.environ, **ENV, "PATH": path, **env},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


BASH_ASK = """
source <({prog} --show-completion bash)
ask() {{ COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _{prog}_completion {prog};
        echo "${{COMPREPLY[*]}}"; }}
"""


def test_bash_completes_commands_options_reactors_and_ingredients(project: Path) -> None:
    script = BASH_ASK.format(prog="pyplantd") + textwrap.dedent("""
        ask pyplantd ""
        ask pyplantd ru
        ask pyplantd run --tar
        ask pyplantd run --target ""
        ask pyplantd graph --target p
        ask pyplantd clean ""
        ask pyplantd accept load
    """)
    lines = shell("bash", script, project).splitlines()
    assert sorted(lines[0].split()) == ["accept", "clean", "config", "graph", "ls", "run", "watch"]
    assert lines[1:] == [
        "run", "--target", "load_data plot_data", "plot_data", "data figure", "load_data",
    ]  # fmt: skip


def test_bash_completes_pyplant_names_from_the_running_daemon(project: Path) -> None:
    script = BASH_ASK.format(prog="pyplant") + textwrap.dedent("""
        ask pyplant fe
        ask pyplant fetch ""
        ask pyplant run ""
        ask pyplant invalidate plo
    """)
    assert shell("bash", script, project).splitlines()[1] == ""  # no daemon: no names
    with live_daemon(project, "pipeline.py"):
        lines = shell("bash", script, project).splitlines()
    assert lines == ["fetch", "data figure", "load_data plot_data", "plot_data"]


def test_zsh_completion_offers_the_names(project: Path) -> None:
    # compinit loads the completion system; _arguments, which only runs inside a completion
    # widget, is replaced by one that prints what it was given.
    script = textwrap.dedent("""
        autoload -Uz compinit && compinit -u
        source <(pyplantd --show-completion zsh)
        _arguments() { print -rl -- "$@" }
        words=(pyplantd run --target ""); CURRENT=4; _pyplantd_completion
    """)
    printed = shell("zsh", script, project, HOME=str(project))
    assert printed.strip() == '*: :(("load_data" "plot_data"))'


def test_fish_completion_offers_the_names(project: Path) -> None:
    script = textwrap.dedent("""
        pyplantd --show-completion fish | source
        complete -C 'pyplantd ru'
        complete -C 'pyplantd run --target '
    """)
    lines = shell("fish", script, project, HOME=str(project)).splitlines()
    assert lines[0].split("\t")[0] == "run"
    assert lines[1:] == ["load_data", "plot_data"]


def test_install_completion_writes_what_a_new_shell_sources(project: Path) -> None:
    home = project / "home"
    home.mkdir()
    installed = shell("bash", "pyplant --install-completion bash", project, HOME=str(home))
    assert installed.startswith(f"bash completion for pyplant installed in {home}")
    script = "source ~/.bashrc; " + BASH_ASK.split("\n", 2)[2].format(prog="pyplant")
    asked = shell("bash", script + "ask pyplant sta", project, HOME=str(home))
    assert asked.splitlines() == ["status"]


# Runs a command as an orphan (its parent exits at once), so that no shell is among its
# parents: it is adopted by init, as a command started by a desktop launcher or a service is.
ORPHAN = """
import os, subprocess, sys
out, command = sys.argv[1], sys.argv[2:]
if os.fork() == 0:
    os.setsid()
    with open(out + ".tmp", "w") as handle:
        code = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT).returncode
        handle.write(f"\\nexit {code}\\n")
    os.rename(out + ".tmp", out)
os._exit(0)
"""


def as_orphan(tmp: Path, *command: str, **env: str) -> str:
    out = tmp / f"orphan-{len(list(tmp.iterdir()))}.txt"
    subprocess.run(
        [sys.executable, "-c", ORPHAN, str(out), *command], timeout=60,
        env={**os.environ, **ENV, **env}, check=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not out.exists():
        assert time.monotonic() < deadline, f"{command} did not finish"
        time.sleep(0.05)
    return out.read_text()


def test_without_a_parent_shell_it_is_the_login_shell_or_must_be_named(project: Path) -> None:
    pyplantd = str(BIN / "pyplantd")
    printed = as_orphan(project, pyplantd, "--show-completion", SHELL="/usr/bin/zsh")
    if "#compdef" not in printed and "complete -o default" in printed:
        pytest.skip("this machine's init process is a shell: every process has one as parent")
    assert printed.startswith("#compdef pyplantd") and printed.endswith("exit 0\n")
    printed = as_orphan(project, pyplantd, "--show-completion", SHELL="/bin/tcsh")
    assert printed.endswith("exit 2\n")
    assert "cannot tell which shell you use" in printed
    assert "pyplantd --show-completion bash" in " ".join(printed.split())
    named = as_orphan(project, pyplantd, "--show-completion", "fish", SHELL="/bin/tcsh")
    assert named.startswith("complete --command pyplantd")
