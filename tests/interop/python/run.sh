#!/usr/bin/env bash
# The Python interop agent (agent.py) and parity driver (driver.py), per
# tests/interop/PROTOCOL.md.
# `run.sh build` makes sure .venv has the courier binding (maturin develop if not);
# `run.sh ROLE [options]` runs the agent with .venv's Python;
# `run.sh parity [args]` runs the parity driver.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
cd "$root"
if [ "${1:-}" = build ]; then
  if ! .venv/bin/python -c "import courierkit" 2>/dev/null; then
    cd python && VIRTUAL_ENV="$root/.venv" PATH="$root/.venv/bin:$PATH" maturin develop -q
  fi
  exit 0
fi
if [ "${1:-}" = parity ]; then
  shift
  exec "$root/.venv/bin/python" "$here/driver.py" "$@"
fi
exec "$root/.venv/bin/python" "$here/agent.py" "$@"
