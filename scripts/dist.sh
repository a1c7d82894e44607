#!/usr/bin/env bash
# `make dist`: every artifact a user installs, built into dist/ from this checkout.
#
#   dist/python  courierkit-<v>-cp39-abi3-manylinux_2_17_x86_64...whl (release, built with
#                zig against glibc 2.17 and checked by maturin's auditwheel), and the sdist
#   dist/node    courierkit-<v>.tgz (JavaScript, types, loader; no Rust needed to install)
#                and courierkit-linux-x64-gnu-<v>.tgz (the prebuilt addon), from `npm pack`
#   dist/kotlin  courierkit-<v>.jar (classes + linux-x86-64/libcourier_ffi.so for JNA),
#                -sources.jar and the .pom; also `mvn install`ed as io.github.courierkit:courierkit
#   dist/rust    courierkit-<v>.crate from `cargo package` (verified: it builds on its own)
#   dist/mobile  the release staticlib for this host, the C header + module map and the
#                generated Swift and Kotlin sources (docs/mobile.md builds the mobile targets)
#
# Usage: dist.sh [python] [node] [kotlin] [rust] [mobile]   (default: all)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/courier/target}"
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(python node kotlin rust mobile)

step() { printf '\n\033[1m== dist: %s\033[0m  (%s)\n' "$*" "$(date +%T)"; }

# The build tools (maturin, ziglang), pinned, in the repository's virtualenv.
venv() {
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r python/requirements-dist.txt
}

dist_python() {
  step "python wheel (manylinux2014 via zig) and sdist"
  venv
  rm -rf dist/python && mkdir -p dist/python
  # The package's README and LICENSE live at the repository root and in python/ as files
  # of their own, so the sdist is complete when unpacked anywhere.
  (
    cd python
    # zig links against glibc 2.17 whatever this machine's glibc is; --compatibility makes
    # maturin's auditwheel check fail the build if any symbol is newer than the tag.
    PATH="$root/.venv/bin:$PATH" maturin build --release --zig --compatibility manylinux2014 \
      --target x86_64-unknown-linux-gnu --out "$root/dist/python" --quiet
    PATH="$root/.venv/bin:$PATH" maturin sdist --out "$root/dist/python"
  )
}

# The release libraries of the Node addon and the uniffi library (Kotlin, Swift), built
# in one cargo run: built one at a time, each resolved its own features and compiled the
# core again (about six minutes each on two cores). A second call finds them fresh.
release_libs() {
  cargo build -q --release -p courier-node -p courier-ffi
}

dist_node() {
  step "node: main package and linux-x64-gnu package"
  release_libs
  (
    cd node
    [ -d node_modules ] || npm ci --no-fund --no-audit --loglevel=error
    # The loader and its types come from napi's build and do not depend on the profile;
    # a checkout that never built the addon builds the debug one once to get them.
    [ -f native.js ] && [ -f native.d.ts ] || npm run build --silent
  )
  # What `napi build --release` does with the library on Linux: the same file, renamed.
  cp "$CARGO_TARGET_DIR/release/libcourier_node.so" node/courierkit.linux-x64-gnu.node
  rm -rf dist/node && mkdir -p dist/node
  local stage
  stage=$(mktemp -d)
  mkdir -p "$stage/main" "$stage/platform"
  cp node/index.js node/args.js node/index.mjs node/index.d.ts node/native.js node/native.d.ts node/README.md "$stage/main/"
  cp LICENSE "$stage/main/"
  cp node/courierkit.linux-x64-gnu.node LICENSE "$stage/platform/"
  # The published package.json: no scripts or devDependencies, the runtime's engines, and
  # the platform package as an optional dependency (npm installs only the one matching
  # os/cpu/libc), as napi-rs's loader (native.js) expects.
  node - "$stage" "$version" <<'JS'
const fs = require('fs')
const [stage, version] = process.argv.slice(2)
const dev = JSON.parse(fs.readFileSync('node/package.json', 'utf8'))
const platform = 'linux-x64-gnu'
const common = {
  version,
  license: dev.license,
  homepage: dev.homepage,
  repository: dev.repository,
  bugs: dev.bugs,
  // N-API 6 and the loader need nothing newer; 20 is the oldest line tested.
  engines: { node: '>=20' },
}
const main = {
  name: dev.name,
  description: dev.description,
  keywords: dev.keywords,
  ...common,
  main: dev.main,
  types: dev.types,
  exports: dev.exports,
  files: dev.files,
  peerDependencies: dev.peerDependencies,
  peerDependenciesMeta: dev.peerDependenciesMeta,
  optionalDependencies: { [`${dev.name}-${platform}`]: version },
}
const native = {
  name: `${dev.name}-${platform}`,
  description: `The ${platform} binary of ${dev.name}.`,
  ...common,
  os: ['linux'],
  cpu: ['x64'],
  libc: ['glibc'],
  main: `${dev.napi.binaryName}.${platform}.node`,
  files: [`${dev.napi.binaryName}.${platform}.node`, 'LICENSE'],
}
fs.writeFileSync(`${stage}/main/package.json`, JSON.stringify(main, null, 2) + '\n')
fs.writeFileSync(`${stage}/platform/package.json`, JSON.stringify(native, null, 2) + '\n')
JS
  (cd "$stage/main" && npm pack --silent --pack-destination "$root/dist/node" >/dev/null)
  (cd "$stage/platform" && npm pack --silent --pack-destination "$root/dist/node" >/dev/null)
  rm -rf "$stage"
}

dist_kotlin() {
  step "kotlin: JAR with the native library, sources JAR, POM (mvn install)"
  release_libs
  mvn -B -q -ntp -Dstyle.color=never -f bindings/kotlin/pom.xml -Pdist -Dcargo.build.skip=true \
    -Dmaven.test.skip=true install
  rm -rf dist/kotlin && mkdir -p dist/kotlin
  cp "bindings/kotlin/target/courierkit-$version.jar" "bindings/kotlin/target/courierkit-$version-sources.jar" dist/kotlin/
  cp bindings/kotlin/pom.xml "dist/kotlin/courierkit-$version.pom"
  local listing
  listing=$(unzip -l "dist/kotlin/courierkit-$version.jar")
  grep -q 'linux-x86-64/libcourier_ffi.so' <<<"$listing" \
    || { echo "dist: the JAR lacks linux-x86-64/libcourier_ffi.so" >&2; exit 1; }
}

dist_rust() {
  step "rust: cargo package (verified build of the packaged crate)"
  cargo package -q -p courierkit --allow-dirty
  rm -rf dist/rust && mkdir -p dist/rust
  cp "$CARGO_TARGET_DIR/package/courierkit-$version.crate" dist/rust/
}

dist_mobile() {
  step "mobile: staticlib, C header and module map, generated Swift and Kotlin"
  release_libs
  rm -rf dist/mobile && mkdir -p dist/mobile/lib dist/mobile/include dist/mobile/swift dist/mobile/kotlin
  cp "$CARGO_TARGET_DIR/release/libcourier_ffi.a" dist/mobile/lib/
  local gen
  gen=$(mktemp -d)
  cargo run -q -p uniffi-bindgen -- generate "$CARGO_TARGET_DIR/release/libcourier_ffi.so" \
    --language swift --out-dir "$gen/swift" --no-format
  cargo run -q -p uniffi-bindgen -- generate "$CARGO_TARGET_DIR/release/libcourier_ffi.so" \
    --language kotlin --out-dir dist/mobile/kotlin --no-format
  cp "$gen/swift/CourierFFI.h" dist/mobile/include/
  # The name SwiftPM and an XCFramework's Headers directory expect.
  cp "$gen/swift/CourierFFI.modulemap" dist/mobile/include/module.modulemap
  cp "$gen/swift/CourierKit.swift" dist/mobile/swift/
  cp bindings/swift/Sources/CourierKit/*.swift dist/mobile/swift/
  cp bindings/kotlin/src/main/kotlin/io/github/courierkit/*.kt dist/mobile/kotlin/io/github/courierkit/
  rm -rf "$gen"
}

for part in "${parts[@]}"; do
  "dist_$part"
done
step "artifacts"
find dist -type f \( -name '*.whl' -o -name '*.tar.gz' -o -name '*.tgz' -o -name '*.jar' -o -name '*.pom' -o -name '*.crate' -o -name '*.a' \) \
  -exec ls -l {} + | awk '{printf "%10d  %s\n", $5, $9}'
