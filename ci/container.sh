#!/usr/bin/env bash
# Build the Dockerfile with rootful podman and run the reproduction in it:
# the container must exit 0 and leave a passing check in the mounted folder.
# Then, where the disk allows, the same for the v1 target's comparison.
#
# No registry is needed: the base is a Debian bookworm made with debootstrap
# (kept in /var/tmp between runs) plus this host's CA bundle and a pip
# configuration that uses it, which only this CI base carries. Needs root.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=/var/tmp/prefix-sharing-ci
pip_cache=${PIP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pip}
run_id=ci-$$
minbase=localhost/prefix-sharing-minbase:$run_id
base=localhost/prefix-sharing-base:$run_id
image=localhost/prefix-sharing:$run_id
image_v1=localhost/prefix-sharing-v1:$run_id
work=$(mktemp -d)
started=$SECONDS

say() { printf '== %s (%ds)\n' "$*" "$((SECONDS - started))"; }

cleanup() {
  podman rmi --force "$image_v1" "$image" "$base" "$minbase" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

if [ "$(id -u)" != 0 ]; then
  echo "ci/container.sh: needs root (rootful podman, debootstrap)" >&2
  exit 2
fi

for tool in podman runc debootstrap newuidmap fuse-overlayfs slirp4netns; do
  if ! command -v "$tool" >/dev/null; then
    say "installing podman and debootstrap"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
      podman runc debootstrap uidmap fuse-overlayfs slirp4netns
    break
  fi
done

# crun and podman's default ulimits fail on this host.
nofile=$(ulimit -Hn)
nproc=$(ulimit -Hu)
[ "$nofile" = unlimited ] && nofile=1048576
if [ "$nproc" = unlimited ] || [ "$nproc" -gt 32768 ]; then nproc=32768; fi
cat > "$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF=$work/containers.conf

tarball=$cache/bookworm-minbase.tar
if [ ! -s "$tarball" ]; then
  say "debootstrap bookworm into $cache"
  mkdir -p "$cache"
  rootfs=$cache/rootfs.partial
  rm -rf "$rootfs"
  debootstrap --variant=minbase bookworm "$rootfs"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar --numeric-owner -C "$rootfs" -cf "$tarball.partial" .
  mv "$tarball.partial" "$tarball"
  rm -rf "$rootfs"
fi

say "making the CI base image"
mkdir "$work/base"
cp /etc/ssl/certs/ca-certificates.crt "$work/base/host-ca.crt"
cat > "$work/base/Containerfile" <<'EOF'
ARG MINBASE
FROM ${MINBASE}
# The package sources of the debian:bookworm-slim image (updates and security
# too), on the mirror debootstrap used.
RUN mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list) \
  && printf 'deb %s %s main\n' "$mirror" bookworm "$mirror" bookworm-updates \
       "$mirror-security" bookworm-security > /etc/apt/sources.list
# HTTPS from this host passes a proxy with its own certificate authority.
COPY host-ca.crt /etc/ssl/ci/host-ca.crt
RUN printf '[global]\ncert = /etc/ssl/ci/host-ca.crt\n' > /etc/pip.conf
EOF
podman import --quiet "$tarball" "$minbase" >/dev/null
podman build --quiet --pull=never --layers=false --build-arg "MINBASE=$minbase" \
  -t "$base" "$work/base" >/dev/null
podman rmi "$minbase" >/dev/null

# The host's pip cache serves the build where pip could cache downloads; behind
# this host's proxy it cannot (no Cache-Control), so every package comes anew.
say "building the image (pip cache: $pip_cache)"
mkdir -p "$pip_cache"
build_started=$SECONDS
podman build --pull=never --layers=false \
  --volume "$pip_cache:/root/.cache/pip" \
  --build-arg "BASE_IMAGE=$base" \
  -t "$image" "$root"
build_seconds=$((SECONDS - build_started))

say "running the reproduction, offline"
results=$work/results
mkdir "$results"
chown "$(podman image inspect --format '{{.Config.User}}' "$image")" "$results"
run_started=$SECONDS
status=0
podman run --rm --network none -v "$results:/artifact/results" "$image" \
  || status=$?
run_seconds=$((SECONDS - run_started))
if [ "$status" != 0 ]; then
  echo "ci/container.sh: the container exited with status $status" >&2
  exit 1
fi

python3 - "$results" <<'EOF'
import json, sys
from pathlib import Path

results = Path(sys.argv[1])
experiments = ["multi_turn", "single_turn",
               "multi_turn_no_caching", "single_turn_no_caching"]
expected = ["published.json", "check.json", "check.txt"]
expected += [f"{name}{suffix}" for name in experiments
             for suffix in (".json", ".requests.json")]
missing = [name for name in expected if not (results / name).is_file()]
if missing:
    sys.exit(f"ci/container.sh: missing in the results folder: {missing}")
verdict = json.loads((results / "check.json").read_text())["verdict"]
if verdict != "pass":
    sys.exit(f"ci/container.sh: the check's verdict is {verdict!r}")
print(f"results folder holds all {len(expected)} files; verdict: pass")
EOF

say "checking that an unwritable results folder is explained"
mkdir "$work/locked"
chmod 0755 "$work/locked"
status=0
podman run --rm --network none -v "$work/locked:/artifact/results" "$image" \
  > "$work/locked.log" 2>&1 || status=$?
if [ "$status" != 2 ] || ! grep -q "cannot write to /artifact/results" \
  "$work/locked.log"; then
  cat "$work/locked.log" >&2
  echo "ci/container.sh: no clear error for an unwritable results folder" >&2
  exit 1
fi

say "passed: build ${build_seconds}s, reproduction ${run_seconds}s"

# The comparison with today's vLLM, from the Dockerfile's v1 target: another
# 9.5 GB, and its build holds up to 45 GB of disk at once, so it runs only
# where the disk has room for it.
podman rmi "$image" >/dev/null
storage=$(podman info --format '{{.Store.GraphRoot}}')
free_gb=$(df --output=avail -BG "$storage" | tail -1 | tr -dc 0-9)
if [ "$free_gb" -lt 50 ]; then
  say "SKIPPED the v1 image: ${free_gb} GB free under $storage, 50 GB needed"
  exit 0
fi
say "building the v1 image"
build_started=$SECONDS
podman build --pull=never --layers=false --target v1 \
  --volume "$pip_cache:/root/.cache/pip" \
  --build-arg "BASE_IMAGE=$base" \
  -t "$image_v1" "$root"
build_seconds=$((SECONDS - build_started))

say "running the comparison, offline"
results=$work/results-v1
mkdir "$results"
chown "$(podman image inspect --format '{{.Config.User}}' "$image_v1")" "$results"
run_started=$SECONDS
podman run --rm --network none -v "$results:/artifact/results" "$image_v1"
run_seconds=$((SECONDS - run_started))
python3 - "$results" <<'EOF'
import json, sys
from pathlib import Path

rows = json.loads((Path(sys.argv[1]) / "comparison.json").read_text())
# The releases count their own hit rate in different units; nothing else differs.
differing = [row for row in rows if row["difference"]
             and row["figure"] != "vLLM's own hit rate"]
if not rows or differing:
    sys.exit(f"ci/container.sh: V0 and V1 differ: {differing or 'no rows'}")
print(f"V0 and V1 agree on all {len(rows)} figures but vLLM's own hit rate")
EOF
say "passed: v1 build ${build_seconds}s, comparison ${run_seconds}s"
