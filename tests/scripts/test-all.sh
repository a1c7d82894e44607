#!/usr/bin/env bash
# `make test`: sets up what a fresh machine lacks (RabbitMQ, Redis, a Python virtualenv, npm and
# Maven packages), then runs every suite in every language. Stops at the first failure
# and ends with one line per language saying how many tests passed.
#
# Usage: test-all.sh [rust] [fuzz] [python] [node] [cluster] [kotlin] [swift] [interop] [dist]   (default: all of them)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/courier/target}"
export COURIER_TESTKIT="$CARGO_TARGET_DIR/debug/courier-testkit"
logs=$(mktemp -d)
summary=()
langs=("$@")
[ ${#langs[@]} -gt 0 ] || langs=(rust fuzz python node cluster kotlin swift interop dist)
# Set once a step has installed that language's packages and built its binding from this
# checkout, so interop does not do it again.
python_ready=false
node_ready=false
kotlin_ready=false

step() { printf '\n\033[1m== %s\033[0m  (%s)\n' "$*" "$(date +%T)"; }

# Runs a command with its output shown and kept in $logs/$1.log.
logged() {
  local name=$1; shift
  "$@" 2>&1 | tee "$logs/$name.log"
}

setup_common() {
  # First: the RabbitMQ TLS setup takes its certificates from the testkit's PKI.
  step "testkit"
  cargo build -q -p courier-testkit
  # One PKI for every testkit process, the broker and the tests, so they trust each other.
  export COURIER_PKI_DIR="${COURIER_PKI_DIR:-$HOME/.cache/courier/pki}"
  "$COURIER_TESTKIT" pki --out "$COURIER_PKI_DIR" >/dev/null
  echo "pki: $COURIER_PKI_DIR"
  step "RabbitMQ, with a TLS listener (client certificates, SASL EXTERNAL)"
  # A broker named by the caller is not ours to reconfigure for TLS. Our own local broker is
  # configured for TLS before its first start (ensure-rabbitmq-tls.sh installs, configures,
  # then starts it), so a fresh machine never restarts it.
  if [ -z "${COURIER_AMQP_URL:-}" ] || [ -n "${COURIER_AMQPS_URL:-}" ]; then
    COURIER_AMQPS_URL=$(bash tests/scripts/ensure-rabbitmq-tls.sh)
    export COURIER_AMQPS_URL
    echo "TLS broker: $COURIER_AMQPS_URL"
  else
    echo "TLS broker: none (COURIER_AMQP_URL names a broker of its own and COURIER_AMQPS_URL is unset)"
  fi
  COURIER_AMQP_URL=$(bash tests/scripts/ensure-rabbitmq.sh)
  export COURIER_AMQP_URL
  echo "broker: ${COURIER_AMQP_URL/\/\/*@///***@}"
  step "Redis (dedup store)"
  bash tests/scripts/ensure-redis.sh
  export COURIER_REDIS_URL="${COURIER_REDIS_URL:-redis://127.0.0.1:6379/0}"
}

run_rust() {
  step "rust: fmt, clippy, tests"
  cargo fmt --all -- --check
  cargo clippy -q --workspace --all-targets -- -D warnings
  # Core alone, with and without its telemetry feature (the bindings turn it on, and
  # --workspace unifies features, so the plain build is checked on its own).
  cargo clippy -q -p courierkit --all-targets -- -D warnings
  cargo clippy -q -p courierkit --features telemetry --all-targets -- -D warnings
  cargo clippy -q -p courierkit --features schema --all-targets -- -D warnings
  # The config schema and every binding's typed config generated from it are current.
  python3 scripts/config-types.py --check
  # Exactly one rustls crypto provider: a second one makes rustls refuse to choose at run time.
  if cargo tree -q --workspace --all-features -e normal -i aws-lc-rs >/dev/null 2>&1; then
    echo "aws-lc-rs is in the dependency tree; only ring is allowed (cargo tree -i aws-lc-rs)" >&2
    exit 1
  fi
  # --workspace builds core with the bindings' telemetry feature, so its telemetry and
  # otlp tests run here; the core alone is tested without it.
  logged rust cargo test -q --workspace
  logged rust-plain cargo test -q -p courierkit --lib
  local n
  n=$(cat "$logs/rust.log" "$logs/rust-plain.log" | grep -Eo 'test result: ok\. [0-9]+ passed' | awk '{s+=$4} END {print s+0}')
  summary+=("rust:   $n passed")
}

# Every fuzz target for a few seconds, so the harnesses cannot rot (the long runs are
# `bash scripts/fuzz.sh`). Needs the nightly toolchain these machines carry; cargo-fuzz
# is installed here when missing.
run_fuzz() {
  step "fuzz: each cargo-fuzz target for 8 s"
  if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz: SKIPPED (no nightly toolchain: rustup toolchain install nightly)"
    summary+=("fuzz:   SKIPPED (no nightly toolchain)")
    return
  fi
  if ! cargo fuzz --version >/dev/null 2>&1; then
    CARGO_TARGET_DIR="$HOME/.cache/courier/tools-target" cargo install -q --locked cargo-fuzz --version 0.13.2
  fi
  logged fuzz env COURIER_FUZZ_SANITIZER=none bash scripts/fuzz.sh 8
  summary+=("fuzz:   $(grep -c '^Done [0-9]* runs' "$logs/fuzz.log") targets, $(grep -Eo '^Done [0-9]+' "$logs/fuzz.log" | awk '{s+=$2} END {print s+0}') runs, no crash")
}

# The virtualenv with the test tools and the binding built from this checkout.
setup_python() {
  if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
  .venv/bin/pip install -q --disable-pip-version-check -r python/requirements-dev.txt
  (cd python && VIRTUAL_ENV="$root/.venv" PATH="$root/.venv/bin:$PATH" maturin develop -q)
  python_ready=true
}

setup_node() {
  (cd node && npm ci --no-fund --no-audit --loglevel=error)
}

run_python() {
  step "python: venv, build, lint, tests"
  setup_python
  (cd python && ../.venv/bin/ruff check . && ../.venv/bin/ruff format --check .)
  .venv/bin/ruff check -q --config python/pyproject.toml examples/python tests/w3c bench/peers scripts
  .venv/bin/ruff format -q --check --config python/pyproject.toml examples/python tests/w3c bench/peers scripts
  (cd python && ../.venv/bin/python -m mypy.stubtest courierkit._courier --allowlist stubtest-allowlist.txt)
  # The public types are precise: the package, a typed usage file and the examples pass --strict.
  (cd python && ../.venv/bin/python -m mypy --strict courierkit tests/typed_usage.py ../examples/python ../scripts/config-types.py ../scripts/docs-snippets.py)
  logged python bash -c "cd python && ../.venv/bin/python -m pytest -q -p no:cacheprovider"
  local n
  n=$(grep -Eo '[0-9]+ passed' "$logs/python.log" | tail -1 | awk '{print $1}')
  summary+=("python: ${n:-0} passed")
}

run_node() {
  step "node: install, build, typecheck, tests"
  setup_node
  logged node bash -c "cd node && npm test --silent"
  node_ready=true
  local n
  n=$(grep -Eo 'ℹ pass [0-9]+' "$logs/node.log" | awk '{print $3}')
  summary+=("node:   ${n:-0} passed")
}

# The scenarios that need a three-node RabbitMQ cluster (docs/cluster.md): Rust's in
# core/tests/cluster, Python's and Node's leader kill and partition. The cluster is stopped
# afterwards, so the steps after this one have its memory back.
run_cluster() {
  step "cluster: three RabbitMQ nodes; a queue leader killed, a node restarted twice, a partition"
  COURIER_CLUSTER_URLS=$(bash tests/scripts/ensure-rabbitmq-cluster.sh)
  export COURIER_CLUSTER_URLS
  # One at a time: each test kills or stops nodes the others use.
  # Each suite starts without the queues of the one before (or of an interrupted run): a node
  # restart recovers every quorum queue, and on this small machine each one costs boot time.
  bash tests/scripts/ensure-rabbitmq-cluster.sh delete-queues courier-test.
  logged cluster-rust cargo test -q -p courierkit --test cluster -- --include-ignored --skip soak --test-threads 1 --nocapture
  $python_ready || setup_python
  if ! $node_ready; then
    [ -d node/node_modules ] || setup_node
    (cd node && npm run build --silent)
    node_ready=true
  fi
  bash tests/scripts/ensure-rabbitmq-cluster.sh delete-queues courier-test.
  logged cluster-python bash -c "cd python && ../.venv/bin/python -m pytest -q -s -p no:cacheprovider tests/test_cluster.py"
  bash tests/scripts/ensure-rabbitmq-cluster.sh delete-queues courier-test.
  logged cluster-node bash -c "cd node && node --test --test-reporter=spec test/cluster.test.js"
  unset COURIER_CLUSTER_URLS
  bash tests/scripts/ensure-rabbitmq-cluster.sh stop
  local rust python node
  rust=$(grep -Eo 'test result: ok\. [0-9]+ passed' "$logs/cluster-rust.log" | awk '{s+=$4} END {print s+0}')
  python=$(grep -Eo '[0-9]+ passed' "$logs/cluster-python.log" | tail -1 | awk '{print $1}')
  node=$(grep -Eo 'ℹ pass [0-9]+' "$logs/cluster-node.log" | awk '{print $3}')
  summary+=("cluster: rust ${rust} passed, python ${python:-0} passed, node ${node:-0} passed")
}

run_kotlin() {
  step "kotlin: cargo build, uniffi-bindgen, maven tests"
  logged kotlin mvn -B -ntp -f bindings/kotlin/pom.xml test
  # `mvn test` compiled the interop agent and parity driver too (they are test sources).
  kotlin_ready=true
  local n
  n=$(grep -E 'Tests run: [0-9]+, Failures: 0, Errors: 0' "$logs/kotlin.log" | tail -1 | grep -Eo 'Tests run: [0-9]+' | awk '{print $3}')
  local skipped
  skipped=$(grep -E 'Tests run: [0-9]+, Failures: 0, Errors: 0' "$logs/kotlin.log" | tail -1 | grep -Eo 'Skipped: [0-9]+' | awk '{print $2}')
  summary+=("kotlin: $(( ${n:-0} - ${skipped:-0} )) passed")
}

run_swift() {
  step "swift: generate bindings, swift test"
  logged swift bash bindings/swift/test.sh
  if grep -q '^swift: SKIPPED' "$logs/swift.log"; then
    summary+=("swift:  $(grep '^swift: SKIPPED' "$logs/swift.log" | head -1 | sed 's/^swift: //')")
  else
    local n
    n=$(grep -Eo 'Executed [0-9]+ tests?, with 0 failures' "$logs/swift.log" | tail -1 | awk '{print $2}')
    summary+=("swift:  ${n:-0} passed")
  fi
}

run_interop() {
  step "interop: each language's agent with every other's over RabbitMQ, and with pika; the parity suite"
  # On its own (`make interop`) the python and node steps have not run: install what a
  # fresh clone lacks and build both bindings from this checkout. Each language's wrapper
  # (tests/interop/<lang>/run.sh) builds the rest (crate courier-interop, the Kotlin test
  # classes).
  $python_ready || setup_python
  if ! $node_ready; then
    [ -d node/node_modules ] || setup_node
    (cd node && npm run build --silent)
  fi
  .venv/bin/ruff check -q --config python/pyproject.toml tests/interop
  .venv/bin/ruff format -q --check --config python/pyproject.toml tests/interop
  local built=""
  $kotlin_ready && built=kotlin
  COURIER_INTEROP_BUILT=$built logged interop .venv/bin/python tests/interop/run.py
  # The parity table: every language's driver over tests/interop/cases (the builds above
  # are done, so its own are quick).
  # run.py just built every agent from this checkout: the parity runner reuses that.
  COURIER_INTEROP_BUILT=1 logged parity .venv/bin/python tests/interop/parity.py
  local n parity
  n=$(grep -Eo '^interop: [0-9]+ scenarios passed' "$logs/interop.log" | awk '{print $2}')
  parity=$(grep -Eo '^parity: [0-9]+ cases x [0-9]+ languages agree' "$logs/parity.log" || true)
  summary+=("interop: ${n:-0} scenarios passed, ${parity:-parity: no result}")
}

# The packages users install (scripts/dist.sh), then each installed from dist/ in a clean
# place with cargo off PATH and its quick start run (scripts/test-dist.sh).
run_dist() {
  step "dist: every artifact, each installed as a user would, quick starts run"
  logged dist bash scripts/dist.sh
  logged test-dist bash scripts/test-dist.sh
  local parts
  # The step lines are bold (ANSI escapes around them): take the text after "work: ".
  parts=$(sed -n 's/.*all installed artifacts work: \([a-z ]*\).*/\1/p' "$logs/test-dist.log")
  summary+=("dist:   $(find dist -maxdepth 2 -type f \( -name '*.whl' -o -name '*.tar.gz' -o -name '*.tgz' -o -name '*.jar' -o -name '*.crate' \) | wc -l) artifacts built; installed and run: ${parts:-none}")
}

# Wall time per step, printed with the summary so a slow step is plain to see.
timings=()
t=$SECONDS
setup_common
timings+=("setup $((SECONDS - t)) s")
for lang in "${langs[@]}"; do
  t=$SECONDS
  "run_$lang"
  timings+=("$lang $((SECONDS - t)) s")
done

step "summary"
printf '%s\n' "${summary[@]}"
echo "time: $(IFS=,; echo "${timings[*]}" | sed 's/,/, /g')"
