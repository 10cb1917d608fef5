#!/bin/sh
# Builds this checkout's HEAD without shared session state, for BENCH_BASELINE: the sessions bucket
# is never read, written or watched (SharedSessions does nothing) and plain calls never become
# resumable streams (no call records or events on the bus, as with `--resumable-after 0`). What the
# bench then measures between `dmcp` and `base` is what sharing sessions across gateways costs.
#   sh bench/without-sharing/build.sh [DIR]   (default: ../dmcp-without-sharing)
# Needs this checkout's node_modules (npm ci); DIR is a git worktree, removed first if it exists.
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
dir=${1:-"$here/../dmcp-without-sharing"}
cd "$here"
if [ -e "$dir" ]; then git worktree remove --force "$dir"; fi
git worktree add --quiet --detach "$dir" HEAD
cd "$dir"
if ! git apply --check "$here/bench/without-sharing/without-sharing.patch" 2>/dev/null; then
  echo "bench/without-sharing/without-sharing.patch no longer applies to HEAD: make it again (see its hunks)" >&2
  exit 1
fi
git apply "$here/bench/without-sharing/without-sharing.patch"
ln -s "$here/node_modules" node_modules
npx tsc -p tsconfig.json
echo "built without sharing: BENCH_BASELINE=$dir BENCH_CHAINS=dmcp,base,tunnel npm run bench"
