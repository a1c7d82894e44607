#!/usr/bin/env bash
# Builds the CourierKit Android library (AAR): libcourier_ffi.so for arm64-v8a, armeabi-v7a,
# x86_64 and x86 with cargo-ndk, the uniffi Kotlin bindings, Courier.kt, and JNA as an AAR
# dependency. Needs the Android NDK r26+, the Android SDK, cargo-ndk 3.x, four rustup
# targets, JDK 17 and Gradle 8.9+; without them it prints one "mobile-android: SKIPPED (...)"
# line to stderr and exits 3, having built nothing. See docs/mobile.md.
#
# Usage: scripts/mobile-android.sh [extra Gradle tasks, e.g. :courierkit:publishToMavenLocal]
#
# Writes:
#   $CARGO_TARGET_DIR/mobile/android/            the staged Gradle project (module :courierkit,
#                                                build.gradle.kts from bindings/android/)
#   dist/android/courierkit-android-<version>.aar
#
# Environment: ANDROID_NDK_HOME (or ANDROID_NDK_ROOT), ANDROID_HOME (or ANDROID_SDK_ROOT),
# CARGO_TARGET_DIR (default ~/.cache/courier/target), GRADLE (a gradle or gradlew to run;
# default: bindings/android/gradlew if present, else gradle on PATH), COURIER_VERSION
# (default: the workspace version in Cargo.toml).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
abis=(arm64-v8a armeabi-v7a x86_64 x86)
rust_targets=(aarch64-linux-android armv7-linux-androideabi x86_64-linux-android i686-linux-android)

# --- Preflight: everything missing goes into one line, then exit 3. ---------------------
missing=()

ndk="${ANDROID_NDK_HOME:-${ANDROID_NDK_ROOT:-}}"
if [ -z "$ndk" ]; then
  missing+=("no Android NDK: set ANDROID_NDK_HOME")
elif [ ! -f "$ndk/source.properties" ]; then
  missing+=("no Android NDK at $ndk (no source.properties)")
else
  ndk_major="$(sed -n 's/^Pkg\.Revision *= *\([0-9][0-9]*\).*/\1/p' "$ndk/source.properties" | head -n 1)"
  if [ -z "$ndk_major" ] || [ "$ndk_major" -lt 26 ]; then
    missing+=("Android NDK r26+ (found r${ndk_major:-?} at $ndk)")
  fi
fi

sdk="${ANDROID_HOME:-${ANDROID_SDK_ROOT:-}}"
if [ -z "$sdk" ] || [ ! -d "$sdk" ]; then
  missing+=("no Android SDK: set ANDROID_HOME")
fi

if ! command -v cargo >/dev/null 2>&1; then
  missing+=("no cargo")
elif ! ndk_version="$(cargo ndk --version 2>/dev/null)"; then
  missing+=("no cargo-ndk: cargo install cargo-ndk --version ^3")
else
  cargo_ndk_major="$(sed -n 's/^cargo-ndk \([0-9][0-9]*\)\..*/\1/p' <<<"$ndk_version" | head -n 1)"
  if [ -n "$cargo_ndk_major" ] && [ "$cargo_ndk_major" -ne 3 ]; then
    missing+=("cargo-ndk 3.x (found $ndk_version)")
  fi
fi

if command -v rustup >/dev/null 2>&1; then
  installed="$(rustup target list --installed 2>/dev/null || true)"
  absent=()
  for t in "${rust_targets[@]}"; do
    grep -qx "$t" <<<"$installed" || absent+=("$t")
  done
  [ ${#absent[@]} -eq 0 ] || missing+=("missing rustup targets (rustup target add ${absent[*]})")
else
  missing+=("no rustup (needed for the targets ${rust_targets[*]})")
fi

if ! command -v java >/dev/null 2>&1; then
  missing+=("no JDK 17 (java)")
else
  java_major="$(java -version 2>&1 | sed -n 's/.*version "\([0-9][0-9]*\).*/\1/p' | head -n 1)"
  if [ -z "$java_major" ] || [ "$java_major" -lt 17 ]; then
    missing+=("JDK 17+ (java -version says ${java_major:-nothing})")
  fi
fi

gradle="${GRADLE:-}"
if [ -z "$gradle" ]; then
  if [ -x "$root/bindings/android/gradlew" ]; then
    gradle="$root/bindings/android/gradlew"
  else
    gradle=gradle
  fi
fi
command -v "$gradle" >/dev/null 2>&1 || missing+=("no gradle (Gradle 8.9+ on PATH, or GRADLE=/path/to/gradlew)")

if [ ${#missing[@]} -gt 0 ]; then
  reason="$(printf '%s; ' "${missing[@]}")"
  echo "mobile-android: SKIPPED (${reason%; }; nothing was built)" >&2
  exit 3
fi

# --- Build. ---------------------------------------------------------------------------------
export ANDROID_NDK_HOME="$ndk"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/courier/target}"
version="${COURIER_VERSION:-$(sed -n 's/^version = "\(.*\)"$/\1/p' "$root/Cargo.toml" | head -n 1)}"
[ -n "$version" ] || { echo "mobile-android: cannot read the workspace version from Cargo.toml; set COURIER_VERSION" >&2; exit 1; }

project="$CARGO_TARGET_DIR/mobile/android"
module="$project/courierkit"
jni_libs="$module/src/main/jniLibs"
generated="$module/src/generated/uniffi"
# Sources are staged afresh each run; Gradle's caches under build/ are kept.
rm -rf "$module/src"
mkdir -p "$jni_libs" "$generated" "$module/src/main/kotlin"

cd "$root"
echo "== cargo ndk (${abis[*]})"
cargo ndk -t arm64-v8a -t armeabi-v7a -t x86_64 -t x86 -o "$jni_libs" build --release -p courier-ffi
for abi in "${abis[@]}"; do
  [ -s "$jni_libs/$abi/libcourier_ffi.so" ] \
    || { echo "mobile-android: cargo-ndk did not produce $jni_libs/$abi/libcourier_ffi.so" >&2; exit 1; }
done

# The Kotlin bindings come from the host build of the same sources: uniffi reads the
# interface from the library's metadata, which does not depend on the target.
# uniffi.toml (bindings/uniffi) sets the package io.github.courierkit.ffi and the renames.
case "$(uname -s)" in
  Darwin) host_cdylib=libcourier_ffi.dylib ;;
  *) host_cdylib=libcourier_ffi.so ;;
esac
echo "== cargo build --release -p courier-ffi (host, for uniffi-bindgen)"
cargo build --release -p courier-ffi
echo "== uniffi-bindgen generate --language kotlin"
cargo run --quiet -p uniffi-bindgen -- generate "$CARGO_TARGET_DIR/release/$host_cdylib" \
  --language kotlin --out-dir "$generated" --no-format
[ -s "$generated/io/github/courierkit/ffi/courier_ffi.kt" ] \
  || { echo "mobile-android: uniffi-bindgen did not write io/github/courierkit/ffi/courier_ffi.kt" >&2; exit 1; }
cp -R "$root/bindings/kotlin/src/main/kotlin/." "$module/src/main/kotlin/"

sed "s/@VERSION@/$version/g" "$root/bindings/android/build.gradle.kts.template" >"$module/build.gradle.kts"
cat >"$module/consumer-rules.pro" <<'EOF'
# JNA finds its classes and fields by reflection, and calls back into Java from native code.
-dontwarn java.awt.**
-keep class com.sun.jna.** { *; }
-keepclassmembers class * extends com.sun.jna.** { public *; }
# The uniffi bindings: Structure subclasses, callback interfaces and the library interface
# JNA binds by name.
-keep class io.github.courierkit.ffi.** { *; }
# The JNI fast path of call and publish (JniCalls.kt): its natives are bound by name, and
# core's workers call JniCalls.settle, which nothing in Kotlin calls.
-keep class io.github.courierkit.JniCalls { *; }
-keep class io.github.courierkit.JniCalls$Pending { *; }
# opentelemetry-api is optional (Courier.kt checks for it at run time).
-dontwarn io.opentelemetry.**
-dontwarn org.slf4j.**
EOF
cat >"$project/settings.gradle.kts" <<'EOF'
// Staged by scripts/mobile-android.sh; edit bindings/android/build.gradle.kts.template instead.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "courierkit-android"
include(":courierkit")
EOF
cat >"$project/gradle.properties" <<'EOF'
org.gradle.jvmargs=-Xmx2g -Dfile.encoding=UTF-8
android.useAndroidX=true
kotlin.code.style=official
EOF
printf 'sdk.dir=%s\n' "$sdk" >"$project/local.properties"

echo "== $gradle :courierkit:assembleRelease $*"
"$gradle" -p "$project" --no-daemon :courierkit:assembleRelease "$@"

aar="$module/build/outputs/aar/courierkit-release.aar"
[ -s "$aar" ] || { echo "mobile-android: Gradle did not produce $aar" >&2; exit 1; }
if command -v unzip >/dev/null 2>&1; then
  listing="$(unzip -Z1 "$aar")"
else
  listing="$(jar tf "$aar")"
fi
for abi in "${abis[@]}"; do
  grep -qx "jni/$abi/libcourier_ffi.so" <<<"$listing" \
    || { echo "mobile-android: $aar lacks jni/$abi/libcourier_ffi.so" >&2; exit 1; }
done

out="$root/dist/android"
mkdir -p "$out"
cp "$aar" "$out/courierkit-android-$version.aar"
echo "mobile-android: built $out/courierkit-android-$version.aar (${abis[*]})"
