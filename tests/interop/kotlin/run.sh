#!/usr/bin/env bash
# The Kotlin interop agent (Agent.kt, main class io.github.courierkit.interop.AgentKt) and
# parity driver (Parity.kt, io.github.courierkit.interop.ParityKt), per
# tests/interop/PROTOCOL.md. Both are in this directory and compiled by bindings/kotlin's
# Maven build with its test sources (build-helper-maven-plugin adds this directory as a
# test source root), so they ship nothing and surefire finds no tests in them.
#   run.sh build          mvn test-compile: cargo builds courier-ffi, uniffi-bindgen
#                         generates the bindings, Kotlin compiles main and test sources
#                         (these two files among them), and the test classpath is written
#                         to bindings/kotlin/target/test-classpath.txt
#   run.sh ROLE [options] runs the agent with plain java on that classpath, with the
#                         system properties surefire gives the tests
#   run.sh parity [args]  runs the parity driver the same way
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
kotlin="$root/bindings/kotlin"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/courier/target}"

if [[ "${1:-}" == build ]]; then
  out="$(mktemp)"
  if ! mvn -B -q -ntp -f "$kotlin/pom.xml" test-compile >"$out" 2>&1; then
    cat "$out" >&2
    rm -f "$out"
    echo "kotlin/run.sh: mvn test-compile failed" >&2
    exit 1
  fi
  rm -f "$out"
  exit 0
fi

classpath_file="$kotlin/target/test-classpath.txt"
if [[ ! -s "$classpath_file" ]]; then
  echo "kotlin/run.sh: no $classpath_file; run 'bash tests/interop/kotlin/run.sh build' first" >&2
  exit 1
fi
main=io.github.courierkit.interop.AgentKt
if [[ "${1:-}" == parity ]]; then
  shift
  main=io.github.courierkit.interop.ParityKt
fi
# A short-lived client: C1 only, the serial collector and the JDK's class-data archive
# start it fastest; VM warnings go to stderr, since stdout carries only JSON lines.
exec java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto -XX:+DisplayVMOutputToStderr \
  -Djna.library.path="$CARGO_TARGET_DIR/debug" \
  -Dcourier.cargoTargetDir="$CARGO_TARGET_DIR" \
  -cp "$kotlin/target/classes:$kotlin/target/test-classes:$(<"$classpath_file")" \
  "$main" "$@"
