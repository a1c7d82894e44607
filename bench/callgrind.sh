#!/usr/bin/env bash
# Instructions per operation, courier against the crate it is built on, from callgrind
# (valgrind --tool=callgrind): steadier than wall time on a noisy 2-core machine.
#   http: courier's Client against bare reqwest, sequential GETs of an in-process upstream;
#   amqp: courier's Bus::publish against lapin sending the same id and traceparent,
#         confirmed, 256 in flight, to the local RabbitMQ (COURIER_AMQP_URL).
# Each side runs twice (LOW and HIGH operations); the difference of the totals over the
# difference in operations is its cost per operation (the in-process upstream's share is
# the same for both). Leaves the HIGH runs' profiles in $OUT for callgrind_annotate.
#
# Usage: [FEATURES=telemetry] bench/callgrind.sh http|amqp [LOW] [HIGH]   (default 300 900)
# FEATURES=telemetry counts courier as the bindings run it (log layer, metrics, spans).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:?usage: bench/callgrind.sh http|amqp [LOW] [HIGH]}
low=${2:-300}
high=${3:-900}
out=${OUT:-target/callgrind}
case "$mode" in
  http) peer=reqwest ;;
  amqp) peer=lapin ;;
  *) echo "callgrind: http or amqp, not $mode" >&2; exit 2 ;;
esac
command -v valgrind >/dev/null || { echo "callgrind: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
cargo build -q --release -p courier-bench ${FEATURES:+--features "$FEATURES"}
bin=${CARGO_TARGET_DIR:-target}/release/courier-bench
mkdir -p "$out"
total() { # who count -> instructions
  valgrind --tool=callgrind --callgrind-out-file="$out/$mode-$1-$2.out" "$bin" "$mode-ops" "$1" "$2" 2>&1 \
    | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
declare -A per_op
for who in "$peer" courier; do
  a=$(total "$who" "$low")
  b=$(total "$who" "$high")
  per_op[$who]=$(( (b - a) / (high - low) ))
  echo "$who: ${per_op[$who]} instructions per operation ($a at $low, $b at $high)"
done
echo "courier / $peer: $(awk -v c="${per_op[courier]}" -v r="${per_op[$peer]}" 'BEGIN { printf "%.2f", c / r }')"
echo "profiles: $out/$mode-courier-$high.out, $out/$mode-$peer-$high.out (callgrind_annotate --inclusive=yes)"
