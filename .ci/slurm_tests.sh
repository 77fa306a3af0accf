#!/usr/bin/env bash
# CI: the SLURM-marked tests (tests/test_slurm_cluster.py, tests/test_slurm_sweep.py) against a real
# one-node cluster: start it, run `pytest -m slurm`, stop it at exit -- also when the start or a test
# fails or the job is interrupted; while it is up, also .ci/plugin_example.sh with its SLURM leg.
# Exit status: the tests' (or 1 if the cluster did not start or the plugin example failed).
# Needs root (the start script installs Debian packages and starts daemons).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
[[ -x $PYTHON ]] || PYTHON=python3

started=$(date +%s)
# Set before starting, so that a start that fails half-way is cleaned up too.  The trap does not
# change the exit status: the shell keeps the status of the command that ended the script.
trap 'slurm/stop_cluster.sh; echo "slurm_tests: $(( $(date +%s) - started )) s in all" >&2' EXIT

slurm/start_cluster.sh
# Talk to this cluster even where /etc/slurm/slurm.conf belongs to another one (the start script
# then leaves that link alone).
export SLURM_CONF=${NOISYBENCH_SLURM_DIR:-/tmp/noisybench-slurm}/etc/slurm.conf
# A cluster that does not answer must fail CI, not skip the tests.
rc=0
NOISYBENCH_REQUIRE_SLURM=1 "$PYTHON" -P -m pytest -m slurm -q -rs -p no:cacheprovider --durations=5 "$@" || rc=$?
# While the cluster is up: the worked plugin example under every launcher, SLURM's included (its
# submitit workers must find the plugin by its entry point, not by pickled code).
PYTHON=$PYTHON PLUGIN_EXAMPLE_SLURM=1 bash .ci/plugin_example.sh || rc=$(( rc ? rc : 1 ))
exit "$rc"
