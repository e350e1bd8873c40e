#!/usr/bin/env bash
# Runs the benchmarks and regenerates bench/RESULTS.md.
#
#   bash bench/run.sh               # every bench/bench_*.py
#   bash bench/run.sh bench_chain   # only the named ones; other sections are kept
#   bash bench/run.sh bench_pyplant -- --baseline-rev REV   # arguments for one benchmark
#
# Uses its own virtualenv, bench/.venv (created when missing): this checkout installed
# as users install it, PyPlant 0.6.0 to compare against, and psutil. PYTHON picks the interpreter
# that creates the venv (default python3).
set -euo pipefail

bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$bench_dir")"
venv="$bench_dir/.venv"
python="$venv/bin/python"
extras=(pyplant==0.6.0 psutil)

if [[ ! -x "$python" ]]; then
    echo "== creating $venv" >&2
    "${PYTHON:-python3}" -m venv "$venv"
fi

# pyplantd is installed as users install it (not editable: an editable install adds an import
# finder to every process's start, ~10 ms, for every engine alike), so it is reinstalled when
# its files change: the stamp is the hash of the tracked files and of uncommitted changes.
stamp="$venv/.bench-installed"
tree="$(cd "$root" && { git ls-files -s pyplantd client pyproject.toml; git diff HEAD -- pyplantd client pyproject.toml; git ls-files -o --exclude-standard pyplantd client; } | sha256sum | cut -d' ' -f1)"
want="$tree ${extras[*]}"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "== installing ${extras[*]} and $root into $venv" >&2
    "$python" -m pip install --quiet "${extras[@]}"
    if "$python" -m pip install --quiet "$root[dask]" &&
        "$python" -m pip install --quiet --force-reinstall --no-deps "$root"; then
        echo "$want" >"$stamp"
    else
        # The benchmarks still run: the pyplantd side reports the failure in RESULTS.md.
        echo "== warning: installing $root failed; pyplantd figures will be missing" >&2
    fi
fi

exec "$python" "$bench_dir/_runner.py" "$@"
