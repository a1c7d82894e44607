#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 60) or RUNS executions,
# whichever comes first: `bash scripts/fuzz.sh [SECONDS] [RUNS]`. Needs a nightly
# toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`); without them it says
# so in one line and exits 3. COURIER_FUZZ_SANITIZER=none builds without AddressSanitizer
# (quicker; what `make test` uses for its short run: courier's code is safe Rust, so the
# fuzzers look for panics, hangs and runaway memory, which need no sanitizer). Crashes land in fuzz/artifacts/<target>/; keep each one as
# a named regression test next to the code it broke.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-60}
runs=${2:-10000000}
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz: SKIPPED (no nightly toolchain: rustup toolchain install nightly)" >&2; exit 3
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: SKIPPED (no cargo-fuzz: cargo install cargo-fuzz --locked)" >&2; exit 3
fi
export CARGO_TARGET_DIR="${COURIER_FUZZ_TARGET_DIR:-$HOME/.cache/courier/fuzz-target}"
for target in $(cargo +nightly fuzz list); do
  echo "== fuzz: $target (${seconds} s or ${runs} runs)"
  # The whole output goes to a file: a target that no longer compiles must fail this
  # script, not vanish behind the filter that keeps the log short.
  out=$(mktemp)
  if ! cargo +nightly fuzz run -O -s "${COURIER_FUZZ_SANITIZER:-address}" "$target" -- -runs="$runs" -max_total_time="$seconds" >"$out" 2>&1; then
    grep -v '^ \{2,\}' "$out" | tail -40 >&2
    rm -f "$out"
    echo "fuzz: $target failed to build or run" >&2
    exit 1
  fi
  grep -E '^Done [0-9]+ runs|DONE' "$out" || true
  rm -f "$out"
  if compgen -G "artifacts/$target/crash-*" >/dev/null || compgen -G "artifacts/$target/timeout-*" >/dev/null || compgen -G "artifacts/$target/oom-*" >/dev/null; then
    echo "fuzz: $target crashed; inputs in fuzz/artifacts/$target" >&2
    exit 1
  fi
done
