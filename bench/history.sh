#!/usr/bin/env bash
# Benchmark `drillbook history` over N runs (run by `make bench`; not part of the tests).
#
# Builds a reports folder of N run folders from a real report (tests/fixtures, a 3-phase
# Kubernetes drill), each with its own run id, start time and p95, then times:
#   cold   `history` with no index: every report.json is read (the peer: what a tool without
#          an index does on every call), and the index is written;
#   warm   `history` with the index: one file read, the folder listing, nothing else.
# Each timing is the best of BENCH_HISTORY_REPEAT runs (wall clock, `--no-charts` off: the
# chart is written too).
#
# Knobs: BENCH_HISTORY_RUNS (default "1000 10000"), BENCH_HISTORY_REPEAT (default 3),
#        DRILLBOOK (default target/release/drillbook, else target/debug/drillbook).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${DRILLBOOK:-$ROOT/target/release/drillbook}
[ -x "$BIN" ] || BIN=$ROOT/target/debug/drillbook
RUNS=${BENCH_HISTORY_RUNS:-1000 10000}
REPEAT=${BENCH_HISTORY_REPEAT:-3}
TEMPLATE=$ROOT/tests/fixtures/reports/pass-proxy-restart/report.json
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

best_of() { # best wall-clock seconds of REPEAT runs of "$@" (setup before each: $SETUP)
  local best=""
  for _ in $(seq "$REPEAT"); do
    eval "${SETUP:-true}"
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null
    end=$(date +%s.%N)
    best=$(python3 -c "import sys; a=float(sys.argv[1]); b=sys.argv[2]; print(a if not b else min(a, float(b)))" "$(echo "$end - $start" | bc)" "$best")
  done
  printf '%.3f' "$best"
}

echo "drillbook history benchmark ($BIN)"
printf '%8s %14s %12s %12s %12s\n' runs "reports (MB)" "index (MB)" "cold s" "warm s"
for n in $RUNS; do
  dir=$WORK/reports-$n
  python3 - "$TEMPLATE" "$dir" "$n" <<'PY'
import json, os, sys, datetime
template, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
base = json.load(open(template))
start = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
for i in range(n):
    r = dict(base)
    r["run_id"] = f"{i:08x}"
    t = start + datetime.timedelta(hours=i)
    r["started_at"] = t.isoformat().replace("+00:00", "Z")
    r["ended_at"] = (t + datetime.timedelta(seconds=60)).isoformat().replace("+00:00", "Z")
    r["scenario"] = dict(base["scenario"], name=f"drill-{i % 10}")
    phases = []
    for p in base.get("phases", []):
        p = json.loads(json.dumps(p))
        if p.get("load"):
            p["load"]["latency_ms"]["p95"] = 100 + (i % 17)
        phases.append(p)
    r["phases"] = phases
    d = os.path.join(out, f"{t:%Y-%m-%d}-drill-{i % 10}-{i:08x}")
    os.makedirs(d)
    with open(os.path.join(d, "report.json"), "w") as f:
        json.dump(r, f)
PY
  size=$(du -sm "$dir" | cut -f1)
  cold=$(SETUP="rm -f '$dir/history.ndjson'" best_of "$BIN" history --report-dir "$dir")
  warm=$(SETUP=true best_of "$BIN" history --report-dir "$dir")
  index=$(python3 -c "import os,sys; print(f'{os.path.getsize(sys.argv[1])/1e6:.2f}')" "$dir/history.ndjson")
  printf '%8s %14s %12s %12s %12s\n' "$n" "$size" "$index" "$cold" "$warm"
  rm -rf "$dir"
done
