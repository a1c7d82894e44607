#!/usr/bin/env bash
# The Rust interop agent (core/examples/interop_agent.rs), per tests/interop/PROTOCOL.md.
#   rust.sh build          builds the example and the parity driver
#   rust.sh ROLE [options] runs the agent
#   rust.sh parity [args]  runs the parity driver (core/examples/parity_driver.rs)
set -euo pipefail
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/courier/target}"
if [[ "${1:-}" == build ]]; then
  cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
  exec cargo build -q -p courierkit --example interop_agent --example parity_driver
fi
if [[ "${1:-}" == parity ]]; then
  shift
  exec "$CARGO_TARGET_DIR/debug/examples/parity_driver" "$@"
fi
exec "$CARGO_TARGET_DIR/debug/examples/interop_agent" "$@"
