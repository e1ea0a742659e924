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

# The drill-level tests written for `make e2e` (tests/common/e2e.rs) run here on the real node
# too. They expect the e2e harness's kubeconfig: the cluster under the contexts `drill-e2e` and
# `prod-e2e`, and a current-context `wrong-default` that points nowhere, so code that forgets
# the explicit context fails.
kubectl="$(e2e/tools.sh)/kubectl"
e2e_kubeconfig="$BOX_DIR/e2e.kubeconfig"
"$kubectl" --kubeconfig "$BOX_DIR/kubeconfig" config view --raw --flatten >"$e2e_kubeconfig"
chmod 0600 "$e2e_kubeconfig"
k() { "$kubectl" --kubeconfig "$e2e_kubeconfig" config "$@" >/dev/null; }
k rename-context box drill-e2e
k set-context prod-e2e --cluster=box --user=box-admin
k set-cluster nowhere --server=https://127.0.0.1:1 --insecure-skip-tls-verify=true
k set-context wrong-default --cluster=nowhere --user=box-admin
k use-context wrong-default
export DRILLBOOK_E2E_KUBECONFIG="$e2e_kubeconfig"
export DRILLBOOK_E2E_CONTEXT=drill-e2e
export DRILLBOOK_E2E_SERVER=https://10.250.0.2:6443
"$@"
