#!/usr/bin/env bash
# The Rust interop agent (examples/interop_agent.rs), per tests/interop/PROTOCOL.md.
#   rust.sh build          builds the example
#   rust.sh ROLE [options] runs it
set -euo pipefail
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/courier/target}"
if [[ "${1:-}" == build ]]; then
  cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
  exec cargo build -q -p courier --example interop_agent
fi
exec "$CARGO_TARGET_DIR/debug/examples/interop_agent" "$@"
