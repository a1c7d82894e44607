#!/usr/bin/env bash
# The Rust interop agent and parity driver, per tests/interop/PROTOCOL.md: the two
# binaries of the workspace crate courier-interop (this directory; not a default member,
# so a plain `cargo build`/`cargo test` at the root leaves it out).
#   run.sh build          builds both (src/bin/interop-agent.rs, src/bin/parity-driver.rs)
#   run.sh ROLE [options] runs the agent
#   run.sh parity [args]  runs the parity driver
set -euo pipefail
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/courier/target}"
if [[ "${1:-}" == build ]]; then
  cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
  exec cargo build -q -p courier-interop --bin interop-agent --bin parity-driver
fi
if [[ "${1:-}" == parity ]]; then
  shift
  exec "$CARGO_TARGET_DIR/debug/parity-driver" "$@"
fi
exec "$CARGO_TARGET_DIR/debug/interop-agent" "$@"
