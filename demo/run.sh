#!/usr/bin/env bash
# `make demo`: runs the lab drills end to end against real processes (no cluster needed).
# Each drill prints its verdict table and writes reports under $REPORTS; rows go to a scratch
# copy of the lab runbook so the tracked docs/RUNBOOK.md stays clean.
# Exits 0 when every drill reached its *expected* verdict (the legacy drill is expected to fail,
# and so is the slow-proxy drill: its p95 gate must trip on the latency drillbook injects).
set -uo pipefail
BIN=${1:-target/debug/drillbook}
REPORTS=${2:-reports}
cd "$(dirname "$0")/.."
mkdir -p "$REPORTS"
RUNBOOK="$REPORTS/RUNBOOK.demo.md"
cp docs/RUNBOOK.md "$RUNBOOK"

# scenario file                          expected exit code (0 pass, 1 fail)
DRILLS=(
  "scenarios/lab/proxy-restart.yaml        0"
  "scenarios/lab/proxy-restart-legacy.yaml 1"
  "scenarios/lab/jobs-manager-restart.yaml 0"
  "scenarios/lab/midflight-rollback.yaml   0"
  "scenarios/lab/jobs-manager-unreachable.yaml 0"
  "scenarios/lab/slow-proxy.yaml           1"
)

summary=()
unexpected=0
started=$(date +%s)
for entry in "${DRILLS[@]}"; do
  read -r scenario expected <<<"$entry"
  printf '\n━━━ %s (expected: %s) ━━━\n' "$scenario" "$([ "$expected" = 0 ] && echo PASS || echo FAIL)"
  "$BIN" run "$scenario" --report-dir "$REPORTS" --drill-log "$RUNBOOK" --operator "${DRILL_OPERATOR:-make demo}"
  code=$?
  if [ "$code" = "$expected" ]; then
    summary+=("as expected   exit $code  $scenario")
  else
    summary+=("UNEXPECTED    exit $code (expected $expected)  $scenario")
    unexpected=$((unexpected + 1))
  fi
done

# Nothing the drills started may outlive them.
leftovers=$(pgrep -f "$BIN lab " || true)
if [ -n "$leftovers" ]; then
  echo "error: lab processes left behind: $leftovers" >&2
  unexpected=$((unexpected + 1))
fi

printf '\n━━━ demo summary (%ss) ━━━\n' "$(( $(date +%s) - started ))"
printf '  %s\n' "${summary[@]}"
echo "  reports: $REPORTS/   drill log: $RUNBOOK"
exit $(( unexpected > 0 ))
