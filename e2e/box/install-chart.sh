#!/usr/bin/env bash
# Installs the cutover system (charts/cutover-lab) into the box with real helm: the release
# `tracebloc` (stateless tokens, as after the cutover) and `tracebloc-legacy` (legacy tokens,
# as before it), each in its namespace of the same name. Idempotent (`helm upgrade --install`).
# Then waits until each proxy answers through its Service from the host, so a drill's baseline
# never starts before kube-proxy has synced the rules.
set -euo pipefail
cd "$(dirname "$0")/../.."

BOX_DIR="${BOX_DIR:-/var/lib/drillbook-box}"
export KUBECONFIG="$BOX_DIR/kubeconfig"
log() { printf '==> %s\n' "$*" >&2; }

tools=$(e2e/tools.sh)
helm="$tools/helm"
# release=namespace, values file, proxy Service address
RELEASES=(
  "tracebloc e2e/box/values/tracebloc.yaml 10.252.0.80:8080"
  "tracebloc-legacy e2e/box/values/tracebloc-legacy.yaml 10.252.0.90:8080"
)

for entry in "${RELEASES[@]}"; do
  read -r release values _ <<<"$entry"
  log "helm upgrade --install $release (charts/cutover-lab, namespace $release)"
  "$helm" upgrade --install "$release" charts/cutover-lab \
    --kube-context box --namespace "$release" --create-namespace \
    -f "$values" --wait --timeout 3m >&2
done

for entry in "${RELEASES[@]}"; do
  read -r release _ address <<<"$entry"
  log "waiting for requests-proxy of $release to answer through its Service ($address)"
  for _ in $(seq 1 60); do
    if curl -fsS --max-time 2 "http://$address/healthz" >/dev/null 2>&1; then
      continue 2
    fi
    sleep 1
  done
  echo "install-chart.sh: requests-proxy of $release does not answer at http://$address/healthz after 60 s" >&2
  exit 1
done
log "cutover system installed: releases tracebloc (stateless) and tracebloc-legacy (legacy)"
