#!/usr/bin/env bash
# Runs the benchmarks and regenerates bench/RESULTS.md.
#
#   bash bench/run.sh               # every bench/bench_*.py
#   bash bench/run.sh bench_chain   # only the named ones; other sections are kept
#   bash bench/run.sh bench_pyplant -- --baseline-rev REV   # arguments for one benchmark
#
# Uses its own virtualenv, bench/.venv (created when missing): this checkout installed
# editable, PyPlant 0.6.0 to compare against, and psutil. PYTHON picks the interpreter
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

# Reinstall only when pyproject.toml, the extras or the set of packages change: the install is
# editable, but its import finder records which directories are packages at install time.
stamp="$venv/.bench-installed"
packages="$(cd "$root" && find pyplantd -name __init__.py -not -path '*/.*' | sort | tr '\n' ' ')"
want="$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1) ${extras[*]} $packages"
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    echo "== installing ${extras[*]} and $root (editable) into $venv" >&2
    "$python" -m pip install --quiet "${extras[@]}"
    if "$python" -m pip install --quiet -e "$root[dask]"; then
        echo "$want" >"$stamp"
    else
        # The benchmarks still run: the pyplantd side reports the failure in RESULTS.md.
        echo "== warning: installing $root failed; pyplantd figures will be missing" >&2
    fi
fi

exec "$python" "$bench_dir/_runner.py" "$@"
