#!/usr/bin/env bash
# `make demo-k8s`: runs the seed drills on the box (`make box`), a real one-node Kubernetes with
# the cutover system installed by helm. Each drill prints its verdict table and writes reports
# under $REPORTS; rows go to a scratch copy of the box runbook so docs/RUNBOOK.box.md stays clean.
# Exits 0 when every drill reached its *expected* verdict (the legacy drill is expected to fail,
# the pre-flight to refuse while training Jobs run).
set -uo pipefail
BIN=${1:-target/debug/drillbook}
REPORTS=${2:-reports}
cd "$(dirname "$0")/.."
BOX_DIR="${BOX_DIR:-/var/lib/drillbook-box}"
if ! e2e/box/box.sh status >/dev/null 2>&1; then
  echo "demo-k8s: no box is running; bring it up first with: sudo make box" >&2
  exit 2
fi
export KUBECONFIG="$BOX_DIR/kubeconfig"
# The drills' helm steps use the pinned helm of the box.
PATH="$(e2e/tools.sh):$PATH"
mkdir -p "$REPORTS"
RUNBOOK="$REPORTS/RUNBOOK.box.demo.md"
cp docs/RUNBOOK.box.md "$RUNBOOK"

# scenario file                            namespace to settle  expected exit  extra arguments
DRILLS=(
  "scenarios/box/proxy-restart.yaml          tracebloc        0"
  "scenarios/box/proxy-restart-legacy.yaml   tracebloc-legacy 1"
  "scenarios/box/jobs-manager-restart.yaml   tracebloc        0"
  "scenarios/box/midflight-rollback.yaml     tracebloc        0"
  "scenarios/box/flag-flip-rolls-pods.yaml   tracebloc-legacy 0"
  "scenarios/box/preflight.yaml              tracebloc        5"
  "scenarios/box/canary-bake.yaml            tracebloc        0 --var image=box.local/drillbook:candidate"
  "scenarios/box/canary-bake.yaml            tracebloc        4 --var image=box.local/drillbook:candidate-fails-5pct"
  # http_fault (issue #23): faults injected by fault proxies interposed at a Service.
  "scenarios/box/jobs-manager-unreachable.yaml tracebloc      0"
  # The legacy release under the same blackhole: measured for comparison (passes as well).
  "scenarios/box/jobs-manager-unreachable-legacy.yaml tracebloc-legacy 0"
  "scenarios/box/canary-injected-errors.yaml tracebloc        4"
  "scenarios/box/slow-proxy.yaml             tracebloc        4"
)
# The chart's image: a clean bake keeps its candidate, the demo puts the release back after it.
STABLE_IMAGE=box.local/drillbook:dev

# A drill's undo (helm rollback, a restarted pod) may still be rolling: start each drill on a
# settled release, like an operator would.
settle() {
  for deployment in requests-proxy jobs-manager; do
    kubectl --context box -n "$1" rollout status "deployment/$deployment" --timeout=180s >/dev/null
  done
}

summary=()
unexpected=0
started=$(date +%s)
for entry in "${DRILLS[@]}"; do
  read -r scenario namespace expected extra <<<"$entry"
  printf '\n━━━ %s %s(expected exit %s) ━━━\n' "$scenario" "${extra:+$extra }" "$expected"
  settle "$namespace"
  if [ "$scenario" = scenarios/box/preflight.yaml ]; then
    # Submit a training Job (it runs ~30 s) so the pre-flight has one to find, whatever the
    # previous drill's undo did to the Jobs started in the background.
    curl -fsS --noproxy '*' --max-time 10 -X POST http://10.252.0.81:8081/jobs >/dev/null
  fi
  drill_started=$(date +%s)
  # shellcheck disable=SC2086 # `extra` is a list of arguments
  "$BIN" run "$scenario" $extra --report-dir "$REPORTS" --drill-log "$RUNBOOK" --operator "${DRILL_OPERATOR:-make demo-k8s}"
  code=$?
  if [ "$scenario" = scenarios/box/canary-bake.yaml ]; then
    kubectl --context box -n tracebloc set image deployment/requests-proxy "requests-proxy=$STABLE_IMAGE" >/dev/null
  fi
  took=$(( $(date +%s) - drill_started ))
  if [ "$code" = "$expected" ]; then
    summary+=("as expected   exit $code  ${took}s  $scenario${extra:+ $extra}")
  else
    summary+=("UNEXPECTED    exit $code (expected $expected)  ${took}s  $scenario${extra:+ $extra}")
    unexpected=$((unexpected + 1))
  fi
done

printf '\n━━━ demo-k8s summary (%ss) ━━━\n' "$(( $(date +%s) - started ))"
printf '  %s\n' "${summary[@]}"
echo "  reports: $REPORTS/   drill log: $RUNBOOK"
exit $(( unexpected > 0 ))
