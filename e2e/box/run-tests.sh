#!/usr/bin/env bash
# Runs a test command against the box with DRILLBOOK_BOX_KUBECONFIG set: brings the box up
# first (`box.sh up`: node, images, chart) and takes it down afterwards on every exit path —
# unless a box was already running, which is then reused and left as it was found.
set -euo pipefail
cd "$(dirname "$0")/../.."
BOX_DIR="${BOX_DIR:-/var/lib/drillbook-box}"

if e2e/box/box.sh status >/dev/null 2>&1; then
  echo "==> reusing the running box (left up afterwards)" >&2
else
  trap 'echo "==> taking the box down" >&2; e2e/box/box.sh down >&2' EXIT
  e2e/box/box.sh up >/dev/null
fi
export DRILLBOOK_BOX_KUBECONFIG="$BOX_DIR/kubeconfig"
"$@"
