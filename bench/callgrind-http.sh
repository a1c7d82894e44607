#!/usr/bin/env bash
# Instructions per HTTP call, courier's Client against bare reqwest, from callgrind
# (valgrind --tool=callgrind): steadier than wall time on a noisy 2-core machine.
# Each client runs twice (LOW and HIGH sequential calls); the difference of the totals
# over the difference in calls is its cost per call, the in-process upstream included
# (the same for both). Leaves the HIGH runs' profiles in $OUT for callgrind_annotate.
#
# Usage: [FEATURES=telemetry] bench/callgrind-http.sh [LOW] [HIGH]   (default 500 1500);
# FEATURES=telemetry counts courier as the bindings run it (log layer, metrics, spans).
set -euo pipefail
cd "$(dirname "$0")/.."
low=${1:-500}
high=${2:-1500}
out=${OUT:-target/callgrind}
command -v valgrind >/dev/null || { echo "callgrind-http: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
cargo build -q --release -p courier-bench ${FEATURES:+--features "$FEATURES"}
bin=${CARGO_TARGET_DIR:-target}/release/courier-bench
mkdir -p "$out"
total() { # who calls -> instructions
  valgrind --tool=callgrind --callgrind-out-file="$out/$1-$2.out" "$bin" http-ops "$1" "$2" 2>&1 \
    | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
declare -A per_call
for who in reqwest courier; do
  a=$(total "$who" "$low")
  b=$(total "$who" "$high")
  per_call[$who]=$(( (b - a) / (high - low) ))
  echo "$who: $(( per_call[$who] )) instructions per call ($a at $low calls, $b at $high)"
done
echo "courier / reqwest: $(awk -v c="${per_call[courier]}" -v r="${per_call[reqwest]}" 'BEGIN { printf "%.2f", c / r }')"
echo "profiles: $out/courier-$high.out, $out/reqwest-$high.out (callgrind_annotate --inclusive=yes)"
