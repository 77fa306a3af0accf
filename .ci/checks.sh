# Sourced by the CI check scripts (.ci/coexistence.sh, .ci/plugin_example.sh): one line per
# check, a closing count, and an unexpected error counted as a failure.  Set CHECKS_NAME before
# sourcing; a script that must undo something at exit defines cleanup() after it.
started=$SECONDS
passed=0
failed=0
summarised=0

summary() {
  summarised=1
  echo "$CHECKS_NAME: $((SECONDS - started)) s in all"
  echo "$CHECKS_NAME: $passed passed, $failed failed"
}
cleanup() { :; }
on_exit() {
  local rc=$?
  if [[ $summarised == 0 ]]; then   # an unexpected error stopped the script: count it
    echo "$CHECKS_NAME: FAIL unexpected error (exit status $rc), see above" >&2
    failed=$((failed + 1))
    summary
  fi
  cleanup
}
trap on_exit EXIT

pass() { passed=$((passed + 1)); echo "$CHECKS_NAME: PASS $*"; }
fail() { failed=$((failed + 1)); echo "$CHECKS_NAME: FAIL $*" >&2; }
# A failed step that the remaining checks need: report, summarise, stop.
abort() { fail "$*"; echo "$CHECKS_NAME: stopping here, the remaining checks need this step" >&2; summary; exit 1; }
show() { sed 's/^/    /' "$@"; }   # indent a command's output under its check
