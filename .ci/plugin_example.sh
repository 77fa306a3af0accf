#!/usr/bin/env bash
# CI: a method from another package, found by its entry point (methods/PLUGINS.md).
# Installs the worked example examples/noisybench-bootstrap into the project venv, then checks
# that `bench list` shows it as a plugin, that it trains beside a built-in under the inline
# launcher (one trial at a time, and packed: --trials-per-gpu 2) and the local one with the same
# numbers under each, that `bench table` has its row,
# that its trials are hashed with its version, and the example's own tests.  Then a second,
# broken plugin (its import raises ImportError), made in a temporary directory: `bench list`
# and runs of built-ins still work with one warning line naming it, and asking for its method
# is a one-line error.  Everything it installed is uninstalled at the end, also on failure.
#
# Prints one line per check and closes with `plugin_example: N passed, M failed`; exits non-zero
# on any failure.  Offline: --no-build-isolation builds with the venv's own setuptools, --no-index
# keeps pip away from any index.  PYTHON=/path/to/python picks another venv (default: .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd -P)

PYTHON=${PYTHON:-$repo/.venv/bin/python}
# A relative path (slurm_tests.sh passes .venv/bin/python) must survive the cd into $tmp below.
if [[ $PYTHON == */* && $PYTHON != /* ]]; then PYTHON=$repo/$PYTHON; fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}   # inline and launched trials: the same threads, the same sums
tmp=$(mktemp -d)
installed=()
CHECKS_NAME=plugin_example
source .ci/checks.sh
cleanup() {
  for dist in ${installed[@]+"${installed[@]}"}; do
    "$PYTHON" -m pip uninstall --yes --quiet "$dist" >/dev/null 2>&1 || echo "plugin_example: could not uninstall $dist" >&2
    if [[ $dist == noisybench-bootstrap ]]; then   # what the editable build left in the checkout
      rm -rf "$repo/examples/noisybench-bootstrap/build" "$repo"/examples/noisybench-bootstrap/src/*.egg-info
    fi
  done
  rm -rf "$tmp"
}
bench() { "$PYTHON" -m noisybench.bench.cli "$@"; }   # the `bench` console script, in whichever venv
install() {   # install DIST from DIR, remembered for the uninstall before pip even starts
  installed+=("$1")
  "$PYTHON" -m pip install --quiet --no-deps --no-build-isolation --no-index -e "$2" >"$tmp/pip.log" 2>&1
}

[[ -x $PYTHON ]] || abort "no project venv at $PYTHON (run \`make install\` first)"
"$PYTHON" -m pip show --quiet noisybench-bootstrap >/dev/null 2>&1 \
  && abort "noisybench-bootstrap is already installed in $("$PYTHON" -c 'import sys; print(sys.prefix)'); uninstall it first"

# --- 1. the example, installed -----------------------------------------------------------------
if install noisybench-bootstrap examples/noisybench-bootstrap; then
  pass "pip install --no-deps --no-build-isolation --no-index -e examples/noisybench-bootstrap"
else
  show "$tmp/pip.log"; abort "the example did not install"
fi
version=$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("noisybench-bootstrap"))')

bench list >"$tmp/list.out" 2>"$tmp/list.err" || { show "$tmp/list.err"; abort "bench list failed"; }
if grep -Eq "^  bootstrap +Bootstrapping .*\[plugin noisybench-bootstrap $version\]$" "$tmp/list.out" \
   && grep -Eq '^  standard ' "$tmp/list.out"; then
  pass "bench list shows bootstrap as plugin noisybench-bootstrap $version, beside the built-ins"
else
  show "$tmp/list.out"; fail "bench list does not show bootstrap as a plugin"
fi
# Written whole first: `tee | grep -q` under pipefail fails when grep's early exit gives tee a SIGPIPE.
bench list --hp bootstrap > "$tmp/hp.out" 2>&1 || true
if grep -Eq '^  beta: float \| None = None +Weight of the given label' "$tmp/hp.out"; then
  pass "bench list --hp bootstrap lists its hyperparameters with their sources"
else
  show "$tmp/hp.out"; fail "bench list --hp bootstrap"
fi

# --- 2. a sweep with a built-in, three ways: inline, inline packed, local -------------------------
sweep=(--methods standard,bootstrap --noise sym:0.4 --seeds 2 --epochs 3)
runs=(inline packed local)
# .ci/slurm_tests.sh runs this script while its one-node cluster is up, with PLUGIN_EXAMPLE_SLURM=1:
# then the sweep also goes through submitit's workers, which find the plugin by its entry point.
[[ ${PLUGIN_EXAMPLE_SLURM:-0} == 1 ]] && runs+=(slurm)
for run in "${runs[@]}"; do
  case $run in
    inline) flags=() ;;
    packed) flags=(--trials-per-gpu 2) ;;
    local) flags=(--launcher local --workers 2) ;;
    slurm) flags=(--launcher slurm --time 10 ${NOISYBENCH_SLURM_PARTITION:+--partition "$NOISYBENCH_SLURM_PARTITION"}) ;;
  esac
  if bench run "${sweep[@]}" "${flags[@]}" --results "$tmp/$run" >"$tmp/$run.out" 2>&1; then
    pass "bench run ${sweep[*]} ${flags[*]}"
  else
    show "$tmp/$run.out"; fail "bench run ${sweep[*]} ${flags[*]}"
  fi
  bench table --results "$tmp/$run" >"$tmp/$run.table" 2>"$tmp/$run.table.err" || true
done
if grep -Eq '^\| bootstrap +\|' "$tmp/inline.table" && grep -Eq '^\| standard +\|' "$tmp/inline.table"; then
  pass "bench table has a bootstrap row beside standard"
else
  show "$tmp/inline.table" "$tmp/inline.table.err"; fail "bench table has no bootstrap row"
fi
for run in "${runs[@]:1}"; do
  if diff -u "$tmp/inline.table" "$tmp/$run.table" >"$tmp/$run.diff"; then
    pass "the $run run's table is the inline one, digit for digit"
  else
    show "$tmp/$run.diff"; fail "the $run run's table differs from the inline one"
  fi
done
if grep -lq "\"plugin\": \"noisybench-bootstrap==$version\"" "$tmp"/inline/digits_bootstrap_*/spec.json 2>/dev/null \
   && ! grep -q '"plugin"' "$tmp"/inline/digits_standard_*/spec.json; then
  pass "bootstrap's trials record noisybench-bootstrap==$version in their spec (and hash); standard's record none"
else
  fail "the plugin's version is not in its trials' spec.json"
fi

# --- 3. the example's own tests ------------------------------------------------------------------
# From $tmp: `python -m pytest` puts its working directory on sys.path, and the checkout's bare
# folders there would shadow the installed noisybench.
if (cd "$tmp" && "$PYTHON" -m pytest -q -p no:cacheprovider "$repo/examples/noisybench-bootstrap/tests") \
     >"$tmp/pytest.out" 2>&1; then
  pass "examples/noisybench-bootstrap/tests: $(tail -n 1 "$tmp/pytest.out")"
else
  show "$tmp/pytest.out"; fail "examples/noisybench-bootstrap/tests"
fi

# --- 4. a broken plugin leaves the rest working ------------------------------------------------
broken=$tmp/noisybench-broken-example
mkdir -p "$broken/src/noisybench_broken_example"
cat >"$broken/pyproject.toml" <<'EOF'
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "noisybench-broken-example"
version = "0.0.1"

[project.entry-points."noisybench.methods"]
broken = "noisybench_broken_example"

[tool.setuptools.packages.find]
where = ["src"]
EOF
echo 'raise ImportError("this plugin is broken on purpose")' >"$broken/src/noisybench_broken_example/__init__.py"
if install noisybench-broken-example "$broken"; then
  pass "a broken plugin installed (its import raises ImportError)"
else
  show "$tmp/pip.log"; abort "the broken plugin did not install"
fi
if bench list >"$tmp/list2.out" 2>"$tmp/list2.err" && grep -Eq '^  bootstrap ' "$tmp/list2.out" \
   && grep -Eq '^  standard ' "$tmp/list2.out"; then
  pass "bench list still works with a broken plugin installed"
else
  show "$tmp/list2.out" "$tmp/list2.err"; fail "bench list fails with a broken plugin installed"
fi
if [[ $(wc -l <"$tmp/list2.err") == 1 ]] \
   && grep -q '^bench: warning: plugin noisybench-broken-example 0.0.1 (entry point broken = noisybench_broken_example) failed to import.*ImportError: this plugin is broken on purpose' "$tmp/list2.err"; then
  pass "one warning line names it: $(cut -c1-110 "$tmp/list2.err")..."
else
  show "$tmp/list2.err"; fail "bench list does not warn in one line naming the broken plugin"
fi
if bench run --methods standard --noise sym:0.4 --seeds 1 --epochs 2 --results "$tmp/with-broken" \
     >"$tmp/run2.out" 2>&1; then
  pass "bench run --methods standard works with a broken plugin installed"
else
  show "$tmp/run2.out"; fail "bench run --methods standard fails with a broken plugin installed"
fi
set +e
bench run --methods broken --noise sym:0.4 --seeds 1 --results "$tmp/broken-run" >"$tmp/run3.out" 2>"$tmp/run3.err"
status=$?
set -e
# stderr: the discovery's warning, then the one-line error.
if [[ $status == 2 ]] && [[ $(grep -c '^bench: error: ' "$tmp/run3.err") == 1 ]] \
   && [[ $(grep -vc '^bench: warning: plugin noisybench-broken-example' "$tmp/run3.err") == 1 ]] \
   && grep -q "^bench: error: unknown method 'broken'.*noisybench-broken-example 0.0.1.*failed to import" "$tmp/run3.err" \
   && [[ ! -e $tmp/broken-run ]]; then
  pass "bench run --methods broken: exit 2, a one-line error naming the plugin, nothing written"
else
  show "$tmp/run3.err"; fail "bench run --methods broken (exit $status)"
fi

summary
[[ $failed == 0 ]]
