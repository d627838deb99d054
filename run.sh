#!/usr/bin/env bash
# Set up the pinned environments (once), then run an invoke task in the first:
#   ./run.sh reproduce     the published study, checked figure by figure
#   ./run.sh test          the test suite
#   ./run.sh --list        every task
# .venv/ (requirements/replay.lock) holds vLLM 0.6.6.post1 and everything else;
# .venv-v1/ (requirements/compare.lock) holds today's vLLM for the comparison
# and is set up only for the tasks that use it.
set -euo pipefail
cd "$(dirname "$0")"

python=${PYTHON:-python3.11}

setup_env() {
  local venv=$1 lock=$2 locked project
  locked=$(sha256sum < "$lock")
  project=$(sha256sum < pyproject.toml)
  if [ "$(cat "$venv/.lock-sha256" 2>/dev/null)" != "$locked" ]; then
    echo "setting up $venv from $lock (a few minutes, several GB, once)" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv"
    # --no-deps: the lock is complete; pip check below proves it coherent.
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps \
      --require-hashes -r "$lock"
    echo "$locked" > "$venv/.lock-sha256"
  fi
  if [ "$(cat "$venv/.project-sha256" 2>/dev/null)" != "$project" ]; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps \
      --no-build-isolation -e .
    "$venv/bin/pip" check
    echo "$project" > "$venv/.project-sha256"
  fi
}

setup_env .venv requirements/replay.lock
case "${1:-}" in
  test | compare | compare-sweep) setup_env .venv-v1 requirements/compare.lock ;;
esac

export PATH="$PWD/.venv/bin:$PATH"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DVC_NO_ANALYTICS=1 DO_NOT_TRACK=1
exec .venv/bin/invoke "$@"
