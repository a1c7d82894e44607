#!/usr/bin/env bash
# `make test-dist`: installs each artifact from dist/ the way a user does, in a clean place,
# with cargo and rustc off PATH, and runs the quick starts against it:
#   python  a new virtualenv, `pip install dist/python/<wheel>` (nothing else), quickstart.py
#   node    a new directory, `npm install --offline <main.tgz> <platform.tgz>`, then
#           quickstart.mjs (ESM) and quickstart.cjs (CommonJS)
#   kotlin  dist/kotlin installed into the local Maven repository by its coordinates, then
#           the separate project examples/kotlin, which names only those coordinates
#   sdist   (this one needs cargo) the sdist built into a wheel in a clean virtualenv, which
#           then imports and runs quickstart.py
# The quick starts use the in-process memory:// broker, and RabbitMQ as well when
# COURIER_AMQP_URL is set. Run `make dist` first.
#
# Usage: test-dist.sh [python] [node] [kotlin] [sdist]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(python node kotlin sdist)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

step() { printf '\n\033[1m== test-dist: %s\033[0m  (%s)\n' "$*" "$(date +%T)"; }
fail() { echo "test-dist: $*" >&2; exit 1; }

# PATH without any directory that holds cargo or rustc: what is installed must not need them.
user_path=$(tr ':' '\n' <<<"$PATH" | while read -r dir; do
  [ -n "$dir" ] && [ ! -e "$dir/cargo" ] && [ ! -e "$dir/rustc" ] && printf '%s:' "$dir"
done)
user_path=${user_path%:}
as_user() { env PATH="$user_path" CARGO_TARGET_DIR= RUSTUP_HOME= "$@"; }
as_user sh -c '! command -v cargo && ! command -v rustc' >/dev/null \
  || fail "cargo or rustc is still on the PATH given to the installed artifacts"

one() { # the single file matching a glob, or a clear failure
  local matches=($1)
  [ ${#matches[@]} -eq 1 ] && [ -f "${matches[0]}" ] || fail "expected one file matching $1 (run make dist)"
  echo "${matches[0]}"
}

test_python() {
  step "python: pip install the wheel into a fresh virtualenv, run quickstart.py"
  local wheel
  wheel=$(one "dist/python/courierkit-$version-*.whl")
  as_user python3 -m venv "$work/venv"
  as_user "$work/venv/bin/pip" install -q --disable-pip-version-check --no-index "$wheel"
  # Only courierkit (and pip's own) in the environment: no runtime dependencies.
  local installed
  installed=$("$work/venv/bin/pip" list --format=freeze --disable-pip-version-check | grep -v -E '^(pip|setuptools|wheel)==')
  [ "$installed" = "courierkit==$version" ] || fail "the venv holds more than courierkit: $installed"
  (cd "$work" && as_user "$work/venv/bin/python" "$root/examples/python/quickstart.py")
}

test_node() {
  step "node: npm install both tarballs offline into a fresh directory, run ESM and CJS quick starts"
  local main platform
  main=$(one "$root/dist/node/courierkit-$version.tgz")
  platform=$(one "$root/dist/node/courierkit-linux-x64-gnu-$version.tgz")
  mkdir -p "$work/app"
  cp examples/node/quickstart.mjs examples/node/quickstart.cjs "$work/app/"
  (
    cd "$work/app"
    echo '{"name": "quickstart", "private": true}' >package.json
    as_user npm install --offline --no-audit --no-fund --loglevel=error "$main" "$platform"
    [ -f node_modules/courierkit-linux-x64-gnu/courierkit.linux-x64-gnu.node ] || fail "the addon was not installed"
    as_user node quickstart.mjs
    as_user node quickstart.cjs
  )
}

test_kotlin() {
  step "kotlin: the dist JAR by coordinates, then examples/kotlin (no jna.library.path)"
  local jar sources pom
  jar=$(one "dist/kotlin/courierkit-$version.jar")
  sources=$(one "dist/kotlin/courierkit-$version-sources.jar")
  pom=$(one "dist/kotlin/courierkit-$version.pom")
  as_user mvn -B -q -ntp -Dstyle.color=never install:install-file -Dfile="$jar" -Dsources="$sources" -DpomFile="$pom"
  # A copy outside the repository, so nothing of the checkout is on any path.
  cp -r examples/kotlin "$work/kotlin"
  (cd "$work/kotlin" && as_user mvn -B -q -ntp -Dstyle.color=never package exec:java)
}

test_sdist() {
  step "sdist: build a wheel from it in a fresh virtualenv (uses cargo), import and run"
  local sdist
  sdist=$(one "dist/python/courierkit-$version.tar.gz")
  python3 -m venv "$work/sdist-venv"
  # Build isolation fetches maturin as the sdist's pyproject.toml names it. The sdist is
  # unpacked here and its files touched: they carry fixed timestamps (a reproducible
  # archive), and cargo would take an older build of the same crates in the shared target
  # dir as fresh and the wheel would get stale native code. With fresh timestamps only
  # courier's own crates rebuild. What this checks is that the sdist holds everything a
  # build needs, not the optimiser: it is built with the dev profile (maturin's
  # MATURIN_PEP517_ARGS), so its dependencies are the ones the test builds compiled and
  # courier's crates compile in a minute instead of a release build's six. No pip cache:
  # it keys a wheel built from a local source by its path.
  mkdir -p "$work/sdist-src"
  tar -xzf "$sdist" -C "$work/sdist-src"
  find "$work/sdist-src" -type f -exec touch {} +
  MATURIN_PEP517_ARGS="--profile dev" "$work/sdist-venv/bin/pip" install -q \
    --disable-pip-version-check --no-cache-dir "$work/sdist-src/courierkit-$version"
  (cd "$work" && as_user "$work/sdist-venv/bin/python" "$root/examples/python/quickstart.py")
}

for part in "${parts[@]}"; do
  "test_$part"
done
step "all installed artifacts work: ${parts[*]}"
