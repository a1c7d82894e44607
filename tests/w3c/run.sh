#!/usr/bin/env bash
# Runs the W3C Trace Context test suite against courier (tests/w3c/service.py).
#
#   tests/w3c/run.sh PATH_TO_TRACE_CONTEXT_CHECKOUT [test names...]
#
# PATH is a checkout of https://github.com/w3c/trace-context (the suite is its test/
# folder; it is not copied here). The Python that runs (PYTHON, default python3) must have
# courierkit (cd python && maturin develop) and aiohttp installed: see README.md.
# SPEC_LEVEL and STRICT_LEVEL default to 2 (Level 2, every test); the exit status is the
# suite's (0 when all pass).
set -euo pipefail

if [[ $# -lt 1 || ! -f "$1/test/test.py" ]]; then
  echo "usage: $0 PATH_TO_TRACE_CONTEXT_CHECKOUT [test names...]" >&2
  exit 2
fi
suite="$(cd "$1/test" && pwd)"
shift
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3}"
port="${SERVICE_PORT:-5000}"

"$python" "$here/service.py" --port "$port" &
service=$!
trap 'kill "$service" 2>/dev/null; wait "$service" 2>/dev/null || true' EXIT

for _ in $(seq 50); do
  if "$python" -c "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 0.2)" "$port" 2>/dev/null; then
    break
  fi
  sleep 0.2
done

cd "$suite"
SPEC_LEVEL="${SPEC_LEVEL:-2}" STRICT_LEVEL="${STRICT_LEVEL:-2}" \
  "$python" test.py "http://127.0.0.1:$port/test" "$@"
