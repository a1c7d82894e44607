#!/usr/bin/env bash
# Builds courier-ffi (and the testkit the tests start), generates the Swift bindings into
# this package, checks them, then runs `swift test` when a Swift toolchain is installed.
#
# Generated (gitignored): Sources/CourierFFI/{CourierFFI.h,module.modulemap} and
# Sources/CourierKit/Generated/CourierKit.swift. Without `swift` on PATH it says so in one line
# and exits 0: the bindings were generated and checked, but nothing was compiled or run.
#
# Environment: CARGO_TARGET_DIR (default ~/.cache/courier/target), COURIER_AMQP_URL and
# COURIER_TESTKIT (read by the tests).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/courier/target}"
lib_dir="$CARGO_TARGET_DIR/debug"
case "$(uname -s)" in
  Darwin) cdylib=libcourier_ffi.dylib ;;
  *) cdylib=libcourier_ffi.so ;;
esac

cd "$root"
cargo build --quiet -p courier-ffi -p courier-testkit

# Generate into a scratch dir, then move into place, so a failed run leaves no half-written
# package. uniffi.toml (bindings/uniffi) names the modules: Swift `CourierKit`, C `CourierFFI`.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cargo run --quiet -p uniffi-bindgen -- generate "$lib_dir/$cdylib" \
  --language swift --out-dir "$scratch" --no-format

ffi_dir="$here/Sources/CourierFFI"
gen_dir="$here/Sources/CourierKit/Generated"
rm -rf "$ffi_dir" "$gen_dir"
mkdir -p "$ffi_dir" "$gen_dir"
# SwiftPM's systemLibrary target wants the module map under this exact name.
mv "$scratch/CourierFFI.modulemap" "$ffi_dir/module.modulemap"
mv "$scratch/CourierFFI.h" "$ffi_dir/CourierFFI.h"
mv "$scratch/CourierKit.swift" "$gen_dir/CourierKit.swift"

fail() { echo "swift bindings check failed: $*" >&2; exit 1; }
for f in "$ffi_dir/module.modulemap" "$ffi_dir/CourierFFI.h" "$gen_dir/CourierKit.swift" "$lib_dir/libcourier_ffi.a"; do
  [ -s "$f" ] || fail "$f is missing or empty"
done
grep -q 'module CourierFFI' "$ffi_dir/module.modulemap" || fail "module map does not declare module CourierFFI"
for decl in 'open class Client' 'open class Bus' 'open class Consumer' 'open class Delivery' \
            'enum CourierError' 'public struct Request' 'public struct Response' \
            'func callNative(request: Request, cancel: CancelToken? = nil) *async throws *-> *Response' 'case BudgetExhausted(' 'func nextNative(timeout: Millis? = nil, cancel: CancelToken? = nil)' \
            'func stats() -> ClientStats' 'public struct ServiceStats' 'public struct EndpointStats' \
            'public var endpoints: \[EndpointStats\]' 'func stats() -> BusStats' 'public struct BusStats' \
            'public var rpcInFlight: UInt64' 'func requestNative(routingKey' 'func publishNative(exchange: String, routingKey: String, body: Data, options: PublishOptions = PublishOptions(), cancel: CancelToken? = nil)' 'open class CancelToken' 'func cancel()' 'func isCancelled() -> Bool' 'func serve(queue' \
            'func reply(body' 'func replyTo() -> String?' 'dedup: Bool? = nil' 'public var deadline: Millis?' \
            'open class TraceContext' 'static func parse(traceparent' 'static func newRoot()' \
            'static func fromCarrier(carrier' 'func traceContext() -> TraceContext' \
            'public protocol LogSink' 'func log(record: LogRecord)' 'public struct LogRecord' 'public struct LogField' \
            'public enum LogLevel' 'public struct TelemetrySettings' 'func setLogSinkNative(sink: LogSink?)' \
            'func setLogLevel(level: LogLevel)' 'func logLevel() -> LogLevel' \
            'func configureTelemetry(settings: TelemetrySettings' 'func flushTelemetry() *async throws' \
            'func metricsText() -> String' 'public typealias ConfigJson = String' \
            'public typealias ConfigPath = String' 'CourierLogging.installed(value)' \
            'public typealias Millis = Duration' 'CourierDurations.milliseconds(value)' 'Duration.milliseconds(builtinValue)' \
            'func publishManyNative(messages: \[BatchMessage\], cancel: CancelToken? = nil) *async throws *-> *\[PublishResult\]' \
            'public enum PublishResult' 'case failed(' '*/error: CourierError' 'open class Batch' \
            'func nextBatchNative(max: UInt32, timeout: Millis, cancel: CancelToken? = nil) *async throws *-> *Batch?' \
            'func deliveries() -> \[Delivery\]' 'func remaining() -> Millis?' 'public var ttl: Millis?' \
            'func deadlineFromHeaders(headers: \[String: String\]) *throws *-> *Millis?' 'public var expired: UInt64' \
            'func finish(succeeded: Bool, requeue: Bool?) *async throws'; do
  grep -q "$decl" "$gen_dir/CourierKit.swift" || fail "CourierKit.swift lacks '$decl'"
done
# The hand-written layer (Sources/CourierKit/*.swift, not compiled without a toolchain) must use
# the generated names: the seven verb shortcuts over call(request:), core's Request/Response.
sources="$here/Sources/CourierKit"
for verb in get head options delete post put patch; do
  grep -q "public func $verb(" "$sources/Client+Verbs.swift" || fail "Client+Verbs.swift lacks the $verb shortcut"
done
grep -q 'call(request: Request(' "$sources/Client+Verbs.swift" || fail "Client+Verbs.swift does not call call(request: Request(...))"
# The scope and the loop that closes its consumer call the generated names.
for call in 'public func process<T>(requeue: Bool? = nil' 'try await finish(succeeded: ' 'public final class AsyncIterator' 'try? await consumer.close()'; do
  grep -qF "$call" "$sources/Deliveries.swift" || fail "Deliveries.swift lacks '$call'"
done
# Telemetry.swift wraps the generated telemetry functions under these exact names, and the
# generated ConfigJson/ConfigPath converters call CourierLogging.installed(_:) (uniffi.toml).
for call in 'setLogSinkNative(sink: ' 'CourierKit.setLogLevel(level: ' 'CourierKit.logLevel()' \
            'CourierKit.configureTelemetry(settings: TelemetrySettings(' 'CourierKit.flushTelemetry()' \
            'CourierKit.metricsText()' 'static func installed(_ value: String) -> String' \
            'public final class CourierLogger: LogSink' 'public func log(record: LogRecord)'; do
  grep -qF "$call" "$sources/Telemetry.swift" || fail "Telemetry.swift lacks '$call'"
done
# Durations.swift converts Swift's Duration for the generated Millis converters, and
# ConfigJSON.swift gives Client and Bus their typed-config entry points over the
# generated ones; Config.swift is generated from core's schema (scripts/config-types.py).
grep -qF 'public static func milliseconds(_ duration: Duration) -> Int64' "$sources/Durations.swift" \
  || fail "Durations.swift lacks CourierDurations.milliseconds"
for call in 'convenience init(config: ClientConfig) throws' 'try self.init(configJson: config.json())' \
            'static func connect(config: BusConfig) async throws -> Bus' 'try await connect(configJson: config.json())'; do
  grep -qF "$call" "$sources/ConfigJSON.swift" || fail "ConfigJSON.swift lacks '$call'"
done
for type in 'public struct ClientConfig' 'public struct ServiceConfig' 'public struct BusConfig' 'public enum DedupConfig'; do
  grep -qF "$type" "$sources/Config.swift" || fail "Config.swift lacks '$type'"
done
# Cancellation.swift wraps the renamed operations under their own names, cancelling a token
# from the task's cancellation handler.
for call in 'withTaskCancellationHandler' 'token.cancel()' 'callNative(request: request, cancel: $0)' \
            'publishNative(exchange: exchange, routingKey: routingKey, body: body, options: options, cancel: $0)' \
            'publishManyNative(messages: messages, cancel: $0)' 'requestNative(' \
            'nextNative(timeout: timeout, cancel: $0)' 'nextBatchNative(max: max, timeout: timeout, cancel: $0)'; do
  grep -qF "$call" "$sources/Cancellation.swift" || fail "Cancellation.swift lacks '$call'"
done
[ "$(grep -c 'public func use<T>' "$sources/Scopes.swift")" = 3 ] || fail "Scopes.swift lacks use { } for Client, Bus and Consumer"
stale="$(grep -rlE '\bHttp(Request|Response)\b|RetryBudgetExhausted' "$sources"/*.swift "$here/Tests" "$gen_dir" \
  "$root/tests/interop/swift/courier-interop/Sources" || true)"
[ -z "$stale" ] || fail "old names (HttpRequest, HttpResponse, RetryBudgetExhausted) in: $stale"
# Every FFI function the Swift code calls must be declared in the header and exported by
# the static library: the three files must come from the same build.
symbols="$(grep -o 'uniffi_courier_ffi_fn_[A-Za-z0-9_]*' "$gen_dir/CourierKit.swift" | sort -u)"
[ -n "$symbols" ] || fail "CourierKit.swift calls no FFI functions"
archive_symbols="$(nm -g --defined-only "$lib_dir/libcourier_ffi.a" 2>/dev/null | grep -o 'uniffi_courier_ffi_fn_[A-Za-z0-9_]*' | sort -u || true)"
for s in $symbols; do
  grep -qw "$s" "$ffi_dir/CourierFFI.h" || fail "$s is called but not declared in CourierFFI.h"
  if [ -n "$archive_symbols" ]; then
    grep -qx "$s" <<<"$archive_symbols" || fail "$s is not exported by libcourier_ffi.a"
  fi
done

# The ```swift snippets of the docs, compiled with the tests (generated, gitignored).
python3 "$root/scripts/docs-snippets.py" swift "$here/Tests/CourierKitTests/Generated"
grep -q 'func snippet' "$here/Tests/CourierKitTests/Generated/DocSnippets.swift" || fail "no Swift doc snippets were found"

if ! command -v swift >/dev/null 2>&1; then
  # COURIER_REQUIRE_SWIFT=1 (set it on a machine meant to test Swift) turns the skip into
  # a failure, so a lost toolchain cannot pass as green.
  if [ "${COURIER_REQUIRE_SWIFT:-}" = 1 ]; then
    fail "no Swift toolchain on PATH, and COURIER_REQUIRE_SWIFT=1"
  fi
  echo "swift: SKIPPED (no Swift toolchain on this machine; bindings generated and checked; no Swift code compiled, no tests run; COURIER_REQUIRE_SWIFT=1 makes this a failure)"
  exit 0
fi

cd "$here"
COURIER_FFI_LIB_DIR="$lib_dir" exec swift test
