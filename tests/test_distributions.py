"""Package versions: importlib.metadata's answers, kept on disk while the folders hold still."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, SUBPROCESS_TIMEOUT

LOOK_UP = """
import sys
sys.path.insert(0, sys.argv[1])
from pyplantd.signatures import distributions
dist = distributions.distribution("demo_pkg")
print(dist, distributions.version(dist) if dist else None, "importlib.metadata" in sys.modules)
"""


def install(site: Path, version: str, settle: bool = True) -> None:
    """A distribution `demo-pkg` providing `demo_pkg`, as pip lays it out; `settle` dates
    its files and folders back, as for a package installed a while ago."""
    for old in site.glob("demo_pkg-*.dist-info"):
        for file in old.iterdir():
            file.unlink()
        old.rmdir()
    (site / "demo_pkg").mkdir(parents=True, exist_ok=True)
    (site / "demo_pkg" / "__init__.py").write_text("")
    info = site / f"demo_pkg-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: demo-pkg\nVersion: {version}\n")
    (info / "top_level.txt").write_text("demo_pkg\n")
    if settle:
        back = time.time() - 60
        for path in [info / "METADATA", info / "top_level.txt", info, site]:
            os.utime(path, (back, back))


def look_up(site: Path, cache: Path) -> tuple[str, str, bool]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYPLANTD_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", LOOK_UP, str(site)], capture_output=True, text=True, env=env,
        timeout=SUBPROCESS_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    dist, version, scanned = done.stdout.split()
    return dist, version, scanned == "True"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return tmp_path / "site-packages"


def test_a_second_process_finds_versions_in_the_cache(site, tmp_path):
    install(site, "1.0")
    assert look_up(site, tmp_path / "cache") == ("demo-pkg", "1.0", True)
    assert look_up(site, tmp_path / "cache") == ("demo-pkg", "1.0", False)  # nothing read


def test_an_upgrade_is_seen_at_once(site, tmp_path):
    install(site, "1.0")
    look_up(site, tmp_path / "cache")
    install(site, "1.1", settle=False)  # the folder changes: a package went, one came
    assert look_up(site, tmp_path / "cache") == ("demo-pkg", "1.1", True)


def test_metadata_rewritten_in_place_is_seen(site, tmp_path):
    install(site, "1.0")
    look_up(site, tmp_path / "cache")
    metadata = next(site.glob("demo_pkg-*.dist-info")) / "METADATA"
    metadata.write_text(metadata.read_text().replace("1.0", "2.0"))  # the folder's mtime stays
    assert look_up(site, tmp_path / "cache") == ("demo-pkg", "2.0", True)


def test_a_folder_changed_just_now_is_not_kept(site, tmp_path):
    """Its mtime could still be the same after a change within the same clock tick."""
    install(site, "1.0", settle=False)
    assert look_up(site, tmp_path / "cache")[2]
    assert look_up(site, tmp_path / "cache")[2]  # read again


@pytest.mark.parametrize("mode", [0o666, 0o620])
def test_a_cache_file_others_can_write_is_ignored(site, tmp_path, mode):
    install(site, "1.0")
    cache = tmp_path / "cache"
    look_up(site, cache)
    (file,) = cache.glob("distributions-*.json")
    data = json.loads(file.read_text())
    for entry in data["folders"].values():
        for dist in entry["dists"]:
            dist[1] = "6.6.6"  # what someone else would like pyplantd to believe
    file.write_text(json.dumps(data))
    assert look_up(site, cache)[1] == "6.6.6"  # the user's own, private file is believed
    file.chmod(mode)
    assert look_up(site, cache) == ("demo-pkg", "1.0", True)
