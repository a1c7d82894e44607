#!/usr/bin/env bash
# The Node interop agent (agent.js) and parity driver (driver.js), per
# tests/interop/PROTOCOL.md.
#   run.sh build          installs node/node_modules and builds the native module if missing
#   run.sh ROLE [options] runs the agent
#   run.sh parity [args]  runs the parity driver
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/courier/target}"

# Runs a command with its output kept aside, shown only when it fails: `build` is quiet.
quietly() {
  local out
  out="$(mktemp)"
  if ! "$@" >"$out" 2>&1; then
    cat "$out" >&2
    rm -f "$out"
    echo "node/run.sh: failed: $*" >&2
    exit 1
  fi
  rm -f "$out"
}

if [[ "${1:-}" == build ]]; then
  cd "$root/node"
  [[ -d node_modules ]] || quietly npm ci --no-fund --no-audit --loglevel=error
  node -e "require('.')" 2>/dev/null || quietly npm run build
  quietly node -e "require('.')"
  exit 0
fi
if [[ "${1:-}" == parity ]]; then
  shift
  exec node "$here/driver.js" "$@"
fi
exec node "$here/agent.js" "$@"
