#!/usr/bin/env bash
# CI: noisybench installed from its built wheel (not editable) beside Hugging Face `datasets`.
# The old layout installed the card folders under their bare names (a top-level `datasets`
# package among them), which shadowed or overwrote Hugging Face's.  This builds the wheel, checks
# that it holds nothing but `noisybench/` and its .dist-info, installs it into a fresh venv next
# to `datasets` from PyPI, runs the `bench` console script from outside the checkout and
# uninstalls it again, checking each time that `import datasets` is still Hugging Face's.
#
# Prints one line per check and closes with `coexistence: N passed, M failed`; exits non-zero
# on any failure.  Needs the project venv (.venv, made by `make test`) and access to PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd -P)

PYTHON=${PYTHON:-$repo/.venv/bin/python}   # the project venv: it builds the wheel and lends torch
tmp=$(mktemp -d)
CHECKS_NAME=coexistence
source .ci/checks.sh
cleanup() { rm -rf "$tmp"; }

[[ -x $PYTHON ]] || abort "no project venv at $PYTHON (run \`make install\` first)"

# --- 1. the wheel ----------------------------------------------------------------------------
# DIST_EXTRA_CONFIG (read by setuptools' distutils) sends setuptools' build/ into $tmp: the
# checkout stays clean, and stale files of an earlier build (build/lib is never emptied) cannot
# slip into this wheel.
printf '[build]\nbuild_base = %s\n' "$tmp/build" >"$tmp/build.cfg"
if DIST_EXTRA_CONFIG="$tmp/build.cfg" "$PYTHON" -m pip wheel --no-deps --no-build-isolation \
    -w "$tmp/wheel" . >"$tmp/wheel.log" 2>&1; then
  wheel=$(compgen -G "$tmp/wheel/noisybench-*.whl" | head -n 1 || true)
  [[ -n $wheel ]] || abort "pip wheel succeeded but left no noisybench-*.whl in $tmp/wheel"
  pass "wheel built: $(basename "$wheel")"
else
  show <(tail -n 30 "$tmp/wheel.log") >&2
  abort "pip wheel failed (last lines of its output above)"
fi

# --- 2. its top-level names, 3. its package data --------------------------------------------
if "$PYTHON" - "$wheel" >"$tmp/names.txt" 2>&1 <<'EOF'
import sys, zipfile
from pathlib import Path
wheel = Path(sys.argv[1])
version = wheel.name.split("-")[1]
tops = sorted({name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()})
expected = sorted(["noisybench", f"noisybench-{version}.dist-info"])
print("top-level names:", ", ".join(tops))
if tops != expected:
    extra = [t for t in tops if t not in expected]
    missing = [t for t in expected if t not in tops]
    print(f"expected exactly {', '.join(expected)}; extra: {extra or 'none'}, missing: {missing or 'none'}")
    sys.exit(1)
EOF
then
  pass "wheel top level is exactly noisybench/ and its .dist-info"; show "$tmp/names.txt"
else
  fail "wheel top level is not just noisybench/ and its .dist-info"; show "$tmp/names.txt" >&2
fi

if "$PYTHON" - "$wheel" "$repo" >"$tmp/data.txt" 2>&1 <<'EOF'
import sys, zipfile
from pathlib import Path
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
repo = Path(sys.argv[2])
bad = False
for folder, pattern in [("results/reference", "*.csv"), ("slurm", "*.sh")]:
    want = sorted(f"noisybench/{folder}/{p.name}" for p in (repo / folder).glob(pattern))
    have = sorted(n for n in names if n.startswith(f"noisybench/{folder}/") and Path(n).match(pattern)
                  and n.count("/") == folder.count("/") + 2)
    missing = [w for w in want if w not in names]
    print(f"noisybench/{folder}/{pattern}: {len(have)} in the wheel ({', '.join(Path(h).name for h in have) or 'none'})")
    if not have or missing:
        bad = True
        print(f"  missing from the wheel: {', '.join(missing) or f'any {pattern}'}")
sys.exit(1 if bad else 0)
EOF
then
  pass "wheel holds the package data"; show "$tmp/data.txt"
else
  fail "wheel lacks package data (setup.cfg [options.package_data])"; show "$tmp/data.txt" >&2
fi

# --- 4. a fresh venv: Hugging Face datasets from PyPI, then the wheel -------------------------
want_version=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
python3 -m venv "$tmp/venv" || abort "python3 -m venv failed"
vpy=$tmp/venv/bin/python
have_version=$("$vpy" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[[ $have_version == "$want_version" ]] ||
  abort "python3 is $have_version but the project venv is $want_version: the shared torch would not load"
site=$("$vpy" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
project_site=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
unset PYTHONPATH PYTHONHOME
export PATH="$tmp/venv/bin:$PATH" VIRTUAL_ENV="$tmp/venv"

if ! "$vpy" -m pip install --quiet datasets >"$tmp/pip-datasets.log" 2>&1; then
  show <(tail -n 30 "$tmp/pip-datasets.log") >&2
  abort "pip install datasets (Hugging Face, from PyPI) failed"
fi
# The wheel goes in before the .pth below: with the project's site-packages on sys.path, pip
# would also see the project's own (editable) noisybench of the same version.
if ! "$vpy" -m pip install --quiet --no-deps "$wheel" >"$tmp/pip-wheel.log" 2>&1; then
  show <(tail -n 30 "$tmp/pip-wheel.log") >&2
  abort "pip install --no-deps $(basename "$wheel") failed"
fi
# torch, torchvision, scipy, scikit-learn ... (~6 GB) are borrowed from the project venv rather
# than downloaded again: a .pth line that is a directory is appended to sys.path, after this
# venv's own site-packages, so what pip just installed (Hugging Face `datasets`, its numpy,
# pandas, pyarrow ..., and the wheel) wins; only what is missing here comes from the project.
# Written after `pip install datasets`, so pip resolved datasets' dependencies into this venv.
# (.pth files inside the appended directory are not run: the project's editable finder stays off.)
echo "$project_site" >"$site/zz-noisybench-project-venv.pth"
datasets_version=$("$vpy" -m pip show datasets 2>/dev/null | sed -n 's/^Version: //p')
pass "fresh venv: Hugging Face datasets $datasets_version from PyPI + the wheel (--no-deps), shared deps from $project_site"

# --- 5. imports from outside the checkout ------------------------------------------------------
cd "$tmp"
if "$vpy" -c "import datasets; datasets.load_dataset; import noisybench.datasets, noisybench.bench.cli; print(datasets.__file__); print(noisybench.datasets.__file__)" \
    >"$tmp/import.txt" 2>&1; then
  hf_file=$(sed -n 1p "$tmp/import.txt")
  nb_file=$(sed -n 2p "$tmp/import.txt")
  if [[ $hf_file == "$site/datasets/__init__.py" ]]; then
    pass "import datasets is Hugging Face's: $hf_file"
  else
    fail "import datasets gives $hf_file, not Hugging Face's $site/datasets/__init__.py"
  fi
  if [[ $nb_file == "$site/noisybench/datasets/__init__.py" ]]; then
    pass "noisybench.datasets comes from the installed wheel: $nb_file"
  else
    fail "noisybench.datasets comes from $nb_file, not the wheel's $site/noisybench/datasets/__init__.py"
  fi
else
  fail "import datasets + noisybench.datasets + noisybench.bench.cli failed"; show "$tmp/import.txt" >&2
fi

# --- 6. the console script ---------------------------------------------------------------------
if "$tmp/venv/bin/bench" list >"$tmp/list.txt" 2>&1; then
  pass "bench list ($(wc -l <"$tmp/list.txt") lines)"; show <(head -n 8 "$tmp/list.txt")
else
  fail "bench list failed"; show <(tail -n 30 "$tmp/list.txt") >&2
fi

if OMP_NUM_THREADS=1 "$tmp/venv/bin/bench" run --methods standard --noise sym:0.2 --seeds 1 --epochs 2 \
    --results "$tmp/runs" >"$tmp/run.txt" 2>&1 && grep -q '| standard' "$tmp/run.txt"; then
  pass "bench run (standard, sym:0.2, 1 seed, 2 epochs) printed its table"; show <(grep '^|' "$tmp/run.txt")
else
  fail "bench run (standard, sym:0.2, 1 seed, 2 epochs) failed or printed no '| standard' row"
  show <(tail -n 30 "$tmp/run.txt") >&2
fi

# --- 7. what pip installed, and uninstalling it ----------------------------------------------
if "$vpy" -m pip show -f noisybench >"$tmp/show.txt" 2>&1; then
  location=$(sed -n 's/^Location: //p' "$tmp/show.txt")
  # Under "Files:", paths relative to Location; ../../../bin/bench is the console script.
  sed -n '/^Files:/,$p' "$tmp/show.txt" | tail -n +2 | sed 's/^ *//' |
    grep -v -E '^(noisybench/|noisybench-[^/]+\.dist-info/|\.\./\.\./\.\./bin/bench$)' >"$tmp/stray.txt" || true
  if [[ $location != "$site" ]]; then
    fail "pip show -f noisybench: Location is $location, not this venv's $site"
  elif [[ -s $tmp/stray.txt ]]; then
    fail "pip show -f noisybench lists $(wc -l <"$tmp/stray.txt") files outside noisybench/ and its .dist-info (the first 20):"
    show <(head -n 20 "$tmp/stray.txt") >&2
  else
    pass "pip show -f noisybench: $(sed -n '/^Files:/,$p' "$tmp/show.txt" | tail -n +2 | wc -l) files, all under noisybench/, its .dist-info or bin/bench"
  fi
else
  fail "pip show -f noisybench failed"; show "$tmp/show.txt" >&2
fi

# Only ever uninstall this venv's copy: with the project's site-packages on sys.path, a second
# uninstall would go looking for the project's own noisybench (pip refuses, being outside the venv).
if compgen -G "$site/noisybench-*.dist-info" >/dev/null &&
    "$vpy" -m pip uninstall -y noisybench >"$tmp/uninstall.txt" 2>&1; then
  # pip leaves the namespace directory noisybench/ behind, empty (it holds no file of its own);
  # a file or the .dist-info left behind is a failure.
  left=$(cd "$site" && { find noisybench -type f 2>/dev/null; ls -d noisybench-*.dist-info 2>/dev/null; } | head -n 5 | tr '\n' ' ' || true)
  if "$vpy" -c "import datasets; datasets.load_dataset; print(datasets.__file__)" >"$tmp/after.txt" 2>&1 &&
      [[ $(cat "$tmp/after.txt") == "$site/datasets/__init__.py" ]] && [[ -z $left ]]; then
    pass "pip uninstall -y noisybench: no file of it left, import datasets still works ($(cat "$tmp/after.txt"))"
  else
    fail "after pip uninstall -y noisybench: import datasets gives '$(tail -n 1 "$tmp/after.txt")'${left:+, still in site-packages: $left}"
    show "$tmp/after.txt" >&2
  fi
else
  fail "pip uninstall -y noisybench failed (or the wheel was never installed here)"
  [[ -f $tmp/uninstall.txt ]] && show "$tmp/uninstall.txt" >&2
fi

summary
[[ $failed == 0 ]]
