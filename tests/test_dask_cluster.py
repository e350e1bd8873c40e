"""Which dask clusters pyplantd uses: the refusal of clear-text addresses off this machine, made
before anything is sent anywhere, and the message when the dask extra is not installed."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest
from conftest import REPO, SUBPROCESS_TIMEOUT, start_cluster_host

from pyplantd.errors import ExecutorError
from pyplantd.run.executors.dask_cluster import check_address, is_loopback


@pytest.mark.parametrize(
    "address",
    ["tcp://10.1.2.3:8786", "tcp://scheduler.example.org:8786", "tcp://[2001:db8::1]:8786",
     "tcp://0.0.0.0:8786", "tcp://192.168.0.10"],
)  # fmt: skip
def test_a_clear_text_address_off_the_loopback_is_refused_with_the_reason(address: str) -> None:
    with pytest.raises(ExecutorError) as refused:
        check_address(address, insecure=False)
    message = str(refused.value)
    assert address in message
    assert "pickles" in message and "tls://" in message and "--insecure-cluster" in message


@pytest.mark.parametrize(
    "address, insecure",
    [("tcp://127.0.0.1:8786", False), ("tcp://127.5.6.7:1", False), ("tcp://localhost:8786", False),
     ("tcp://[::1]:8786", False), ("tls://10.1.2.3:8786", False), ("tcp://10.1.2.3:8786", True)],
)  # fmt: skip
def test_loopback_tls_or_an_explicit_insecure_flag_are_allowed(
    address: str, insecure: bool
) -> None:
    check_address(address, insecure)


def test_only_literal_loopback_addresses_count_as_local() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("LOCALHOST")
    assert not is_loopback("127.0.0.1.example.org")  # a name: would need a lookup
    assert not is_loopback("10.0.0.1")


# Every socket connection and name lookup the process attempts fails the test (audit hooks see
# them before they happen); the refusal must come first.
_NO_NETWORK = textwrap.dedent(
    """
    import sys
    attempts = []
    def audit(event, args):
        if event in ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname"):
            attempts.append((event, args[1:] if event == "socket.connect" else args))
            raise RuntimeError(f"network attempted: {event} {args!r}")
    sys.addaudithook(audit)
    from pyplantd.run.executors import open_executor, ExecutorChoice
    from pyplantd.errors import ExecutorError
    from pyplantd.run.executors import open_executor
    try:
        open_executor(ExecutorChoice.parse(sys.argv[1]))
    except ExecutorError as err:
        print("REFUSED", err)
    print("ATTEMPTS", attempts)
    """
)


def test_the_refusal_comes_before_any_connection_or_name_lookup() -> None:
    for address in ("tcp://10.1.2.3:8786", "tcp://scheduler.example.org:8786"):
        done = subprocess.run(
            [sys.executable, "-c", _NO_NETWORK, address], capture_output=True, text=True,
            timeout=SUBPROCESS_TIMEOUT, cwd=REPO,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert f"REFUSED Refusing to connect to the dask scheduler at {address}" in done.stdout
        assert "ATTEMPTS []" in done.stdout


_WITHOUT_DASK = textwrap.dedent(
    """
    import sys
    sys.modules["distributed"] = None  # as if the extra were not installed
    import numpy as np
    from pyplantd import Plant, ReactorFunc
    from pyplantd.errors import ExecutorError
    from pyplantd.run.executors import open_executor

    @ReactorFunc
    def make(pipe):
        pipe.send("x", np.arange(3))

    with Plant(sys.argv[1]) as plant:  # runs inline without it
        plant.add_reactors(make)
        plant.run_reactor("make")
        print("INLINE", plant.fetch_ingredient("x").tolist())
    for choice in ("local:2", "tcp://127.0.0.1:8786"):
        try:
            open_executor(choice)
        except ExecutorError as err:
            print("ERROR", err)
    """
)


def test_without_the_dask_extra_pyplantd_runs_and_says_how_to_get_it(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_DASK, str(tmp_path / "plant")], capture_output=True,
        text=True, timeout=SUBPROCESS_TIMEOUT, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "INLINE [0, 1, 2]" in done.stdout
    errors = [line for line in done.stdout.splitlines() if line.startswith("ERROR")]
    assert len(errors) == 2
    assert all('pip install "pyplantd[dask]"' in line for line in errors)


def test_workers_with_other_package_versions_are_an_error_naming_them(tmp_path) -> None:
    pytest.importorskip("distributed", reason="the dask extra is not installed")
    from pyplantd.run.executors.dask_cluster import connect

    # the workers see another version of xxhash (its metadata only: the module is the same)
    info = tmp_path / "xxhash-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: xxhash\nVersion: 0.0.1\n")
    with (
        start_cluster_host(workers=1, pythonpath=str(tmp_path)) as address,
        pytest.raises(ExecutorError) as refused,
    ):
        connect(address)
    message = str(refused.value)
    assert re.search(r"xxhash 0\.0\.1 on tcp://127\.0\.0\.1:\d+ \([\d.]+ here\)", message), message
    assert "Install the same versions on both sides" in message


def test_local_below_comes_from_the_project_the_environment_or_the_flag(tmp_path) -> None:
    from pyplantd import settings

    (tmp_path / "pyproject.toml").write_text("[tool.pyplantd]\nlocal-below = 0.25\n")
    resolved = settings.resolve({}, start=tmp_path, env={})
    # the script's own choice gets it too; threads and inline have no use for it
    chosen = resolved.for_plant(tmp_path / "plant", None, None, True, "local:2").executor
    assert (str(chosen), chosen.local_below) == ("local:2", 0.25)
    assert (
        resolved.for_plant(tmp_path / "p", None, None, True, "threads:2").executor.local_below == 1
    )
    resolved = settings.resolve({}, start=tmp_path, env={"PYPLANTD_LOCAL_BELOW": "0"})
    assert resolved.for_plant(tmp_path / "p", None, None, True, "local:2").executor.local_below == 0
    flags = {"local_below": 3, "executor": "tcp://127.0.0.1:8786"}
    resolved = settings.resolve(flags, start=tmp_path, env={})
    assert resolved.executor.local_below == 3.0
    (tmp_path / "pyproject.toml").write_text('[tool.pyplantd]\nlocal-below = "soon"\n')
    with pytest.raises(settings.SettingsError, match="local-below = 'soon' is not a number"):
        settings.resolve({}, start=tmp_path, env={})
