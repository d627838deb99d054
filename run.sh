#!/usr/bin/env bash
# Set up the pinned environment (once), then run an invoke task in it:
#   ./run.sh reproduce     the published study, checked figure by figure
#   ./run.sh test          the test suite
set -euo pipefail
cd "$(dirname "$0")"

python=${PYTHON:-python3.11}
venv=.venv
stamp=$venv/.installed-from
wanted=$(cat requirements/replay.lock pyproject.toml | sha256sum | cut -d' ' -f1)

if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  echo "setting up $venv from requirements/replay.lock (a few minutes, ~7 GB)" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  # --no-deps: the lock is complete; pip check below proves it coherent.
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps \
    --require-hashes -r requirements/replay.lock
  "$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps \
    --no-build-isolation -e .
  "$venv/bin/pip" check
  echo "$wanted" > "$stamp"
fi

export PATH="$PWD/$venv/bin:$PATH"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 DVC_NO_ANALYTICS=1 DO_NOT_TRACK=1
exec "$venv/bin/invoke" "$@"
