#!/usr/bin/env bash
# One prepared device check of noisybench, run from a bare checkout:
#
#     benchmarks/device_check.sh [--device cuda|cpu] [--tiny] [--out DIR]
#
# (default: --device cuda, --out $OUT if set, else ./device_check_out).  Writes
# DIR/device_check.json and DIR/device_check.md; exits 0 when every step passed, 1 otherwise.
# On a machine without noisybench installed: small wheels carried in .whl/ (submitit and its
# dependencies) are unpacked into /tmp/nb-site, and the checkout is made importable as
# noisybench.* without installing (below).  PYTHON=... picks the interpreter (default python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"

# Wheels carried with the checkout (submitit, cloudpickle, typing_extensions): unpacked, not
# resolved, so nothing is fetched from an index.
shopt -s nullglob
wheels=("$ROOT"/.whl/*.whl)
shopt -u nullglob
if ((${#wheels[@]})); then
    # Not fatal: without them the check still runs, and what needs them fails in its summary.
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/nb-site "${wheels[@]}" || echo "device_check.sh: could not unpack ${wheels[*]}" >&2
    export PYTHONPATH="/tmp/nb-site${PYTHONPATH:+:$PYTHONPATH}"
fi

# Why a temp dir of symlinks: the code imports only noisybench.<folder>, which setup.cfg's
# package_dir maps onto the checkout's top-level folders (core/, bench/, ...); there is no
# noisybench/ folder to put on the path.  A directory holding noisybench/<folder> -> checkout
# symlinks, with no __init__.py in noisybench/, gives the same names as an implicit namespace
# package (as the install does), so `python -m noisybench.bench.cli` and the tests run from
# this checkout without a pip install.  Put first on PYTHONPATH, it is also what an
# installed copy (if any) loses to, so the checkout's code is what gets checked.
SHIM="$(mktemp -d "${TMPDIR:-/tmp}/nb-shim.XXXXXX")"
trap 'rm -rf "$SHIM"' EXIT
mkdir "$SHIM/noisybench"
for folder in core datasets noise methods results slurm bench; do
    ln -s "$ROOT/$folder" "$SHIM/noisybench/$folder"
done
export PYTHONPATH="$SHIM${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export PYTHON

# Run from the caller's directory, so a relative --out lands where the caller means it.  In the
# background with TERM/INT/HUP passed on, so that stopping this script stops the check too,
# which then kills its children and still writes both summaries.
set +e
"$PYTHON" "$ROOT/benchmarks/device_check.py" "$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM INT HUP
while :; do
    wait "$child"
    status=$?
    kill -0 "$child" 2>/dev/null || break  # wait returned for a signal; the check is still ending
done
exit "$status"
