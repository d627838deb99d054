#!/bin/sh
# Starts every command of the image in /artifact, with a usable results folder.
# A folder mounted over /artifact/results hides the files committed there;
# those the pipeline reads (published.json) are put back when missing.
set -eu

results=/artifact/results
committed=/usr/local/share/prefix-sharing/results

probe="$results/.write-test.$$"
if ! (: > "$probe") 2>/dev/null; then
  owner=$(stat -c '%u:%g' "$results" 2>/dev/null || echo unknown)
  cat >&2 <<MESSAGE
error: cannot write to $results (owned by $owner), running as $(id -u):$(id -g).
If you mounted a host folder there, run as its owner:
  docker run --rm --user "\$(id -u):\$(id -g)" \\
    -v "\$PWD/results:/artifact/results" IMAGE
or make it writable for this user (chmod a+rwx results).
MESSAGE
  exit 2
fi
rm -f "$probe"

for file in "$committed"/*; do
  name=${file##*/}
  if [ ! -e "$results/$name" ]; then
    cp "$file" "$results/$name"
    echo "restored $name into $results (the mounted folder lacked it)" >&2
  fi
done

exec "$@"
