#!/usr/bin/env bash
# The Python interop agent (agent.py), per tests/interop/PROTOCOL.md.
# `python.sh build` makes sure .venv has the courier binding (maturin develop if not);
# `python.sh ROLE [options]` runs the agent with .venv's Python;
# `python.sh parity [args]` runs the parity driver (tests/interop/parity/driver.py).
set -euo pipefail
cd "$(dirname "$0")/../../.."
root=$PWD
if [ "${1:-}" = build ]; then
  if ! .venv/bin/python -c "import courierkit" 2>/dev/null; then
    cd python && VIRTUAL_ENV="$root/.venv" PATH="$root/.venv/bin:$PATH" maturin develop -q
  fi
  exit 0
fi
if [ "${1:-}" = parity ]; then
  shift
  exec "$root/.venv/bin/python" "$root/tests/interop/parity/driver.py" "$@"
fi
exec "$root/.venv/bin/python" "$root/tests/interop/agents/agent.py" "$@"
