#!/usr/bin/env bash
# Benchmark `drillbook load` against wrk and oha on a loopback nginx (run by `make bench`;
# not part of the tests). Installs nothing: it checks for the tools and says how to get them.
#
# Knobs (environment):
#   BENCH_CONNECTIONS   connections for every tool            (default 32)
#   BENCH_DURATION      seconds per max-rate run              (default 10)
#   BENCH_FIXED_RATE    rate of the fixed-rate run, per second (default 10000)
#   BENCH_FIXED_SECONDS length of the fixed-rate run          (default 10)
#   BENCH_BIG_REQUESTS  requests of the long RSS run          (default 10000000; 10M takes minutes)
#   BENCH_SMALL_REQUESTS requests of the short RSS run        (default 100000)
#   OHA                 path of the oha binary                (default: PATH, then ~/.cache/oha/bin/oha)
set -euo pipefail

CONNECTIONS=${BENCH_CONNECTIONS:-32}
DURATION=${BENCH_DURATION:-10}
FIXED_RATE=${BENCH_FIXED_RATE:-10000}
FIXED_SECONDS=${BENCH_FIXED_SECONDS:-10}
BIG_REQUESTS=${BENCH_BIG_REQUESTS:-10000000}
SMALL_REQUESTS=${BENCH_SMALL_REQUESTS:-100000}
OHA=${OHA:-$(command -v oha || echo "$HOME/.cache/oha/bin/oha")}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
ROOT=$(cd "$(dirname "$0")/.." && pwd)

missing=()
[[ -x $NGINX ]] || missing+=("nginx: apt-get install -y nginx-light")
command -v wrk >/dev/null || missing+=("wrk: apt-get install -y wrk")
[[ -x $OHA ]] || missing+=("oha: cargo install oha --locked --root ~/.cache/oha  (then OHA=~/.cache/oha/bin/oha, or put it on PATH)")
[[ -x /usr/bin/time ]] || missing+=("GNU time: apt-get install -y time")
command -v jq >/dev/null || missing+=("jq: apt-get install -y jq")
command -v python3 >/dev/null || missing+=("python3 (to pick a free port): apt-get install -y python3")
if ((${#missing[@]})); then
    echo "bench: missing tools:" >&2
    printf '  %s\n' "${missing[@]}" >&2
    exit 1
fi

WORK=$(mktemp -d)
cleanup() {
    if [[ -f $WORK/nginx.pid ]]; then kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$WORK/html" "$WORK/logs"
printf 'drillbook bench: a small static body of about sixty-four bytes.\n' >"$WORK/html/index.html"
cat >"$WORK/nginx.conf" <<NGINX
worker_processes 1;
daemon on;
pid $WORK/nginx.pid;
error_log $WORK/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 60s;
    server {
        listen 127.0.0.1:$PORT;
        root $WORK/html;
        location / { index index.html; }
    }
}
NGINX
"$NGINX" -c "$WORK/nginx.conf" -p "$WORK" -e "$WORK/logs/error.log"
URL="http://127.0.0.1:$PORT/"
for _ in $(seq 50); do curl -fs "$URL" >/dev/null 2>&1 && break; sleep 0.1; done

echo "bench: building drillbook --release" >&2
(cd "$ROOT" && cargo build --release --quiet)
DRILLBOOK="$ROOT/target/release/drillbook"

# measure NAME CMD... : runs CMD under GNU time; leaves "user sys maxrss_kb" in $WORK/NAME.time.
measure() {
    local name=$1
    shift
    /usr/bin/time -f '%U %S %M' -o "$WORK/$name.time" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || {
        echo "bench: $name failed:" >&2
        cat "$WORK/$name.err" >&2
        exit 1
    }
}
cpu_us_per_request() { # name requests
    awk -v r="$2" '{ printf "%.2f", ($1 + $2) * 1e6 / r }' "$WORK/$1.time"
}
rss_mb() { awk '{ printf "%.1f", $3 / 1024 }' "$WORK/$1.time"; }

echo "bench: max rate, $CONNECTIONS connections, ${DURATION}s each (wrk, oha, drillbook)" >&2
measure wrk wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" "$URL"
wrk_requests=$(awk '/requests in/ { print $1 }' "$WORK/wrk.out")
wrk_rps=$(awk '/Requests\/sec/ { print $2 }' "$WORK/wrk.out")

measure oha "$OHA" --no-tui --output-format json -z "${DURATION}s" -c "$CONNECTIONS" "$URL"
oha_rps=$(jq '.summary.requestsPerSec' "$WORK/oha.out")
oha_requests=$(jq '[.statusCodeDistribution[]] | add' "$WORK/oha.out")

measure drillbook "$DRILLBOOK" -q load "$URL" --rate max --duration "${DURATION}s" \
    --connections "$CONNECTIONS" --json "$WORK/drillbook.json"
db_requests=$(jq '.total.requests' "$WORK/drillbook.json")
db_rps=$(jq '.total.rps' "$WORK/drillbook.json")

echo "bench: fixed ${FIXED_RATE}/s for ${FIXED_SECONDS}s" >&2
measure fixed "$DRILLBOOK" -q load "$URL" --rate "${FIXED_RATE}/s" --duration "${FIXED_SECONDS}s" \
    --connections "$CONNECTIONS" --json "$WORK/fixed.json"
fixed_rps=$(jq '.total.rps' "$WORK/fixed.json")
fixed_dropped=$(jq '.total.dropped' "$WORK/fixed.json")
fixed_saturated=$(jq '.total.saturated_windows' "$WORK/fixed.json")
fixed_p99=$(jq '.total.latency_ms.p99' "$WORK/fixed.json")
fixed_requests=$(jq '.total.requests' "$WORK/fixed.json")
fixed_lag=$(jq '.total.max_lag_ms' "$WORK/fixed.json")

echo "bench: RSS after $SMALL_REQUESTS vs $BIG_REQUESTS requests (max rate)" >&2
measure small "$DRILLBOOK" -q load "$URL" --rate max --duration 24h --max-requests "$SMALL_REQUESTS" \
    --connections "$CONNECTIONS" --json "$WORK/small.json"
measure big "$DRILLBOOK" -q load "$URL" --rate max --duration 24h --max-requests "$BIG_REQUESTS" \
    --connections "$CONNECTIONS" --json "$WORK/big.json"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

echo
echo "drillbook load benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), $(wrk -v 2>&1 | head -1 | awk '{print $1, $2}'), $("$OHA" --version), $("$DRILLBOOK" --version)"
echo "max rate, $CONNECTIONS connections, ${DURATION}s:"
printf '  %-10s %12s %12s %14s %12s\n' tool requests rps "cpu µs/req" "peak RSS MB"
printf '  %-10s %12s %12.0f %14s %12s\n' wrk "$wrk_requests" "$wrk_rps" "$(cpu_us_per_request wrk "$wrk_requests")" "$(rss_mb wrk)"
printf '  %-10s %12s %12.0f %14s %12s\n' oha "$oha_requests" "$oha_rps" "$(cpu_us_per_request oha "$oha_requests")" "$(rss_mb oha)"
printf '  %-10s %12s %12.0f %14s %12s\n' drillbook "$db_requests" "$db_rps" "$(cpu_us_per_request drillbook "$db_requests")" "$(rss_mb drillbook)"
echo "  RPS drillbook/oha: $(ratio "$db_rps" "$oha_rps") (target >= 1.0)   drillbook/wrk: $(ratio "$db_rps" "$wrk_rps") (target >= 0.8)"
echo "  CPU per request drillbook: $(cpu_us_per_request drillbook "$db_requests") µs (target <= 15)"
fixed_error=$(awk -v a="$fixed_rps" -v r="$FIXED_RATE" 'BEGIN { d = (a - r) / r * 100; if (d < 0) d = -d; printf "%.2f", d }')
echo "fixed ${FIXED_RATE}/s for ${FIXED_SECONDS}s: achieved $(printf '%.1f' "$fixed_rps")/s (error ${fixed_error} %, target <= 1 %),"
echo "  requests $fixed_requests, dropped $fixed_dropped, saturated windows $fixed_saturated, max lag $(printf '%.2f' "$fixed_lag") ms,"
echo "  corrected p99 ${fixed_p99} ms, CPU $(cpu_us_per_request fixed "$fixed_requests") µs/req, peak RSS $(rss_mb fixed) MB"
echo "RSS: $(rss_mb small) MB after $SMALL_REQUESTS requests, $(rss_mb big) MB after $BIG_REQUESTS requests:" \
    "ratio $(ratio "$(awk '{print $3}' "$WORK/big.time")" "$(awk '{print $3}' "$WORK/small.time")") (target <= 1.2)"
