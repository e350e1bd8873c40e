"""Shell completion for `pyplant` and `pyplantd` in bash, zsh and fish: `--show-completion
[SHELL]` prints the script to source, `--install-completion [SHELL]` installs it, and the
`_PYPLANT_COMPLETE` / `_PYPLANTD_COMPLETE` requests that script makes are answered.

Typer's own options are not used (`add_completion=False`): that switch also leaves its shells
unregistered, so every completion request failed with "Shell bash not supported", and its
options can only guess the shell (from the parent processes), failing where there is none to
see. Here the shell can be named, and is otherwise taken from the parent processes, then from
$SHELL. Depends on typer only.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

SHELLS = ("bash", "zsh", "fish")
SHOW, INSTALL = "--show-completion", "--install-completion"
NO_SHELL = ""  # put in place of an omitted SHELL by `fill_shell`


def complete_var(prog_name: str) -> str:
    return "_{}_COMPLETE".format(prog_name.replace("-", "_").upper())


def detect_shell() -> str | None:
    """The shell the command was started from: the nearest bash, zsh or fish among its parent
    processes, else the login shell in $SHELL; None if neither is one of them."""
    try:
        import shellingham  # installed with typer

        name, _path = shellingham.detect_shell()
        if name in SHELLS:
            return str(name)
    except Exception:  # ShellDetectionFailure, or no /proc: fall back to $SHELL
        pass
    login = Path(os.environ.get("SHELL", "")).name
    return login if login in SHELLS else None


def fill_shell(argv: list[str]) -> list[str]:
    """`--show-completion` and `--install-completion` take an optional SHELL: where it is left
    out, put NO_SHELL after them so that the option's callback detects the shell."""
    filled: list[str] = []
    for index, arg in enumerate(argv):
        filled.append(arg)
        if arg in (SHOW, INSTALL):
            following = argv[index + 1] if index + 1 < len(argv) else None
            if following is None or following.startswith("-"):
                filled.append(NO_SHELL)
    return filled


def _shell(ctx: typer.Context, value: str) -> str:
    if value in SHELLS:
        return value
    if value != NO_SHELL:
        raise typer.BadParameter(
            f"'{value}' is not a shell pyplant completes: use bash, zsh or fish."
        )
    shell = detect_shell()
    if shell is None:
        prog = ctx.find_root().info_name
        raise typer.BadParameter(
            "cannot tell which shell you use (no bash, zsh or fish among the parent processes "
            f"or in $SHELL). Name it: {prog} {SHOW} bash"
        )
    return shell


def script(prog_name: str, shell: str) -> str:
    """The completion script to source in `shell`."""
    from typer._completion_shared import get_completion_script

    return get_completion_script(
        prog_name=prog_name, complete_var=complete_var(prog_name), shell=shell
    )


def _on_show(ctx: typer.Context, param: Any, value: str | None) -> None:
    if value is None or ctx.resilient_parsing:
        return
    typer.echo(script(str(ctx.find_root().info_name), _shell(ctx, value)))
    raise typer.Exit(0)


def _on_install(ctx: typer.Context, param: Any, value: str | None) -> None:
    if value is None or ctx.resilient_parsing:
        return
    from typer._completion_shared import install

    prog_name = str(ctx.find_root().info_name)
    shell, path = install(shell=_shell(ctx, value), prog_name=prog_name,
                          complete_var=complete_var(prog_name))  # fmt: skip
    typer.echo(f"{shell} completion for {prog_name} installed in {path}; it works in new shells.")
    raise typer.Exit(0)


ShowOpt = Annotated[
    str | None,
    typer.Option(
        SHOW, metavar="[SHELL]", is_eager=True, expose_value=False, callback=_on_show,
        help="Print the completion script for SHELL (bash, zsh or fish; default: yours).",
    ),
]  # fmt: skip
InstallOpt = Annotated[
    str | None,
    typer.Option(
        INSTALL, metavar="[SHELL]", is_eager=True, expose_value=False, callback=_on_install,
        help="Install completion for SHELL (bash, zsh or fish; default: yours).",
    ),
]  # fmt: skip


def run(app: Callable[..., Any], prog_name: str) -> None:
    """Run a typer app as `prog_name`, answering completion requests and filling SHELL."""
    if complete_var(prog_name) in os.environ:
        from typer._completion_classes import completion_init

        completion_init()  # registers the shells' classes the request is answered with
    app(args=fill_shell(sys.argv[1:]), prog_name=prog_name)


def matching(names: list[str], incomplete: str) -> list[str]:
    return sorted(name for name in set(names) if name.startswith(incomplete))
