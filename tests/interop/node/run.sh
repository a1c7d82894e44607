#!/usr/bin/env bash
# The Node interop agent (tests/interop/PROTOCOL.md).
#   node.sh build          installs node/node_modules and builds the native module if missing
#   node.sh ROLE [options] runs tests/interop/agents/agent.js
#   node.sh parity [args]  runs the parity driver, tests/interop/parity/driver.js
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/courier/target}"

# Runs a command with its output kept aside, shown only when it fails: `build` is quiet.
quietly() {
  local out
  out="$(mktemp)"
  if ! "$@" >"$out" 2>&1; then
    cat "$out" >&2
    rm -f "$out"
    echo "node.sh: failed: $*" >&2
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
  exec node "$root/tests/interop/parity/driver.js" "$@"
fi
exec node "$root/tests/interop/agents/agent.js" "$@"
