#!/usr/bin/env bash
# Builds CourierFFI.xcframework (static libraries of courier-ffi for iOS, the iOS simulator and
# macOS, with the C header and module map) and the Swift sources that go with it, for
# SwiftPM's `.binaryTarget`. Needs macOS with Xcode 15+ and five rustup targets; without
# them it prints one "mobile-apple: SKIPPED (...)" line to stderr and exits 3, having built
# nothing. See docs/mobile.md.
#
# Writes:
#   bindings/swift/CourierFFI.xcframework                  (the local package's release mode)
#   bindings/swift/Sources/CourierKit/Generated/CourierKit.swift
#   dist/apple/CourierFFI.xcframework.zip                  (release asset)
#   dist/apple/CourierFFI.xcframework.zip.sha256           (swift package compute-checksum)
#   dist/apple/package/                                    (the published repo's contents:
#       Package.swift rendered from Package.release.swift.template, Sources, Tests)
#
# Environment: CARGO_TARGET_DIR (default ~/.cache/courier/target), COURIER_VERSION (default:
# the workspace version in Cargo.toml), IPHONEOS_DEPLOYMENT_TARGET (default 15.0) and
# MACOSX_DEPLOYMENT_TARGET (default 12.0), matching the platforms in Package.swift.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
swift_dir="$root/bindings/swift"
out="$root/dist/apple"

# --- Preflight: everything missing goes into one line, then exit 3. ---------------------
targets=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin)
missing=()
os="$(uname -s)"
[ "$os" = Darwin ] || missing+=("not macOS (uname -s: $os)")
tools=()
for tool in xcodebuild xcrun lipo ditto swift cargo; do
  command -v "$tool" >/dev/null 2>&1 || tools+=("$tool")
done
if [ ${#tools[@]} -gt 0 ]; then
  list="$(printf '%s, ' "${tools[@]}")"
  missing+=("no ${list%, }")
fi
if [ "$os" = Darwin ] && command -v xcodebuild >/dev/null 2>&1; then
  xcode_major="$(xcodebuild -version 2>/dev/null | sed -n 's/^Xcode \([0-9][0-9]*\).*/\1/p' | head -n 1)"
  if [ -z "$xcode_major" ] || [ "$xcode_major" -lt 15 ]; then
    missing+=("Xcode ${xcode_major:-?} is older than 15 or not selected (xcode-select -p)")
  fi
fi
if command -v rustup >/dev/null 2>&1; then
  installed="$(rustup target list --installed 2>/dev/null || true)"
  absent=()
  for t in "${targets[@]}"; do
    grep -qx "$t" <<<"$installed" || absent+=("$t")
  done
  [ ${#absent[@]} -eq 0 ] || missing+=("missing rustup targets (rustup target add ${absent[*]})")
else
  missing+=("no rustup (needed for the targets ${targets[*]})")
fi
if [ ${#missing[@]} -gt 0 ]; then
  reason="$(printf '%s; ' "${missing[@]}")"
  echo "mobile-apple: SKIPPED (needs macOS with Xcode 15+: ${reason%; }; nothing was built)" >&2
  exit 3
fi

# --- Build. ---------------------------------------------------------------------------------
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/courier/target}"
export IPHONEOS_DEPLOYMENT_TARGET="${IPHONEOS_DEPLOYMENT_TARGET:-15.0}"
export MACOSX_DEPLOYMENT_TARGET="${MACOSX_DEPLOYMENT_TARGET:-12.0}"
version="${COURIER_VERSION:-$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)}"
[ -n "$version" ] || { echo "mobile-apple: cannot read the workspace version from Cargo.toml; set COURIER_VERSION" >&2; exit 1; }

cd "$root"
for t in "${targets[@]}"; do
  echo "== cargo build --release -p courier-ffi --target $t"
  cargo build --release -p courier-ffi --target "$t"
done
lib() { echo "$CARGO_TARGET_DIR/$1/release/libcourier_ffi.a"; }

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/ios" "$stage/ios-simulator" "$stage/macos" "$stage/bindings" "$stage/headers/CourierFFI"
cp "$(lib aarch64-apple-ios)" "$stage/ios/libcourier_ffi.a"
lipo -create "$(lib aarch64-apple-ios-sim)" "$(lib x86_64-apple-ios)" -output "$stage/ios-simulator/libcourier_ffi.a"
lipo -create "$(lib aarch64-apple-darwin)" "$(lib x86_64-apple-darwin)" -output "$stage/macos/libcourier_ffi.a"

# Bindings from the macOS dylib of this build (any slice would do: same sources, same
# metadata). uniffi.toml (bindings/uniffi) names the modules: Swift CourierKit, C CourierFFI.
case "$(uname -m)" in
  arm64) host_target=aarch64-apple-darwin ;;
  *) host_target=x86_64-apple-darwin ;;
esac
echo "== uniffi-bindgen generate --language swift"
cargo run --quiet -p uniffi-bindgen -- generate "$CARGO_TARGET_DIR/$host_target/release/libcourier_ffi.dylib" \
  --language swift --out-dir "$stage/bindings" --no-format

# The module map must be named module.modulemap and live inside each slice's Headers
# directory. It goes one level down, in Headers/CourierFFI/: Xcode copies the Headers of
# every static XCFramework an app links into one include directory, where two top-level
# module.modulemap files would collide; clang also looks for <include dir>/<Module>/module.modulemap.
mv "$stage/bindings/CourierFFI.h" "$stage/headers/CourierFFI/CourierFFI.h"
mv "$stage/bindings/CourierFFI.modulemap" "$stage/headers/CourierFFI/module.modulemap"
grep -q 'module CourierFFI' "$stage/headers/CourierFFI/module.modulemap" \
  || { echo "mobile-apple: the generated module map does not declare module CourierFFI" >&2; exit 1; }

xcframework="$swift_dir/CourierFFI.xcframework"
rm -rf "$xcframework"
echo "== xcodebuild -create-xcframework"
xcodebuild -create-xcframework \
  -library "$stage/ios/libcourier_ffi.a" -headers "$stage/headers" \
  -library "$stage/ios-simulator/libcourier_ffi.a" -headers "$stage/headers" \
  -library "$stage/macos/libcourier_ffi.a" -headers "$stage/headers" \
  -output "$xcframework"
for slice in "$xcframework"/*/; do
  if [ ! -s "${slice}Headers/CourierFFI/module.modulemap" ] || [ ! -s "${slice}libcourier_ffi.a" ]; then
    echo "mobile-apple: ${slice} lacks libcourier_ffi.a or Headers/CourierFFI/module.modulemap" >&2
    exit 1
  fi
done

# The Swift sources that match this XCFramework, where the local package expects them.
mkdir -p "$swift_dir/Sources/CourierKit/Generated"
cp "$stage/bindings/CourierKit.swift" "$swift_dir/Sources/CourierKit/Generated/CourierKit.swift"

# Release asset: the zip holds CourierFFI.xcframework at its top level.
mkdir -p "$out"
zip="$out/CourierFFI.xcframework.zip"
rm -f "$zip"
(cd "$swift_dir" && ditto -c -k --sequesterRsrc --keepParent CourierFFI.xcframework "$zip")
checksum="$(cd "$swift_dir" && swift package compute-checksum "$zip")"
echo "$checksum" >"$zip.sha256"

# The published repo's contents, with the manifest rendered for this version and zip.
pkg="$out/package"
rm -rf "$pkg"
mkdir -p "$pkg/Sources" "$pkg/Tests"
sed -e "s/@VERSION@/$version/g" -e "s/@CHECKSUM@/$checksum/g" \
  "$swift_dir/Package.release.swift.template" >"$pkg/Package.swift"
cp -R "$swift_dir/Sources/CourierKit" "$pkg/Sources/CourierKit"
cp -R "$swift_dir/Tests/CourierKitTests" "$pkg/Tests/CourierKitTests"

echo "mobile-apple: built $xcframework"
echo "mobile-apple: release asset $zip"
echo "mobile-apple: checksum $checksum"
echo "mobile-apple: published package $pkg (upload the zip as release asset v$version/CourierFFI.xcframework.zip)"
