#!/usr/bin/env bash
# The Swift interop agent and parity driver, per tests/interop/PROTOCOL.md: the SwiftPM
# package courier-interop (next to this script) over CourierKit (bindings/swift).
#   run.sh build          cargo builds courier-ffi and uniffi-bindgen generates the Swift
#                         bindings into bindings/swift, as bindings/swift/test.sh does, then
#                         `swift build -c debug` of courier-interop
#   run.sh ROLE [options] runs the agent (courier-interop/Sources/InteropAgent/Agent.swift)
#   run.sh parity [args]  runs the parity driver (courier-interop/Sources/ParityDriver/Parity.swift)
# Without `swift` on PATH every command prints one SKIPPED line on stderr and exits 3.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
# The package is a directory below this one, not this one: SwiftPM names a path package by
# its directory, and a root package called "swift" is taken for its dependency
# bindings/swift (see courier-interop/Package.swift).
package="$here/courier-interop"
swift_dir="$root/bindings/swift"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/courier/target}"
# CourierKit's manifest links the static library from here (its local development mode),
# even when an XCFramework lies next to it, as under bindings/swift/test.sh.
export COURIER_FFI_LIB_DIR="$CARGO_TARGET_DIR/debug"

if ! command -v swift >/dev/null 2>&1; then
  echo "swift: SKIPPED (no Swift toolchain on PATH)" >&2
  exit 3
fi

# Runs a command with its output kept aside, shown only when it fails: `build` is quiet.
quietly() {
  local out
  out="$(mktemp)"
  if ! "$@" >"$out" 2>&1; then
    cat "$out" >&2
    rm -f "$out"
    echo "swift/run.sh: failed: $*" >&2
    exit 1
  fi
  rm -f "$out"
}

# Moves a generated file into place only when it changed, so a build of an unchanged
# checkout does not recompile CourierKit.
place() {
  cmp -s "$1" "$2" || mv "$1" "$2"
}

if [[ "${1:-}" == build ]]; then
  case "$(uname -s)" in
    Darwin) cdylib=libcourier_ffi.dylib ;;
    *) cdylib=libcourier_ffi.so ;;
  esac
  cd "$root"
  quietly cargo build --quiet -p courier-ffi
  # Generated into a scratch directory first, so a failed run leaves no half-written
  # package; uniffi.toml (bindings/uniffi) names the modules, Swift CourierKit, C CourierFFI.
  scratch="$(mktemp -d)"
  trap 'rm -rf "$scratch"' EXIT
  quietly cargo run --quiet -p uniffi-bindgen -- generate "$COURIER_FFI_LIB_DIR/$cdylib" \
    --language swift --out-dir "$scratch" --no-format
  mkdir -p "$swift_dir/Sources/CourierFFI" "$swift_dir/Sources/CourierKit/Generated"
  # SwiftPM's systemLibrary target wants the module map under this exact name.
  place "$scratch/CourierFFI.modulemap" "$swift_dir/Sources/CourierFFI/module.modulemap"
  place "$scratch/CourierFFI.h" "$swift_dir/Sources/CourierFFI/CourierFFI.h"
  place "$scratch/CourierKit.swift" "$swift_dir/Sources/CourierKit/Generated/CourierKit.swift"
  quietly swift build -c debug --package-path "$package"
  exit 0
fi

program=InteropAgent
if [[ "${1:-}" == parity ]]; then
  shift
  program=ParityDriver
fi
binary="$package/.build/debug/$program"
if [[ ! -x "$binary" ]]; then
  echo "swift/run.sh: no $binary; run 'bash tests/interop/swift/run.sh build' first" >&2
  exit 1
fi
exec "$binary" "$@"
