// courier's telemetry in Swift: its log records in the host's logger, the log level, OTLP
// export of its spans and metrics, and the Prometheus text. Mirrors Kotlin's Telemetry.kt.
//
// Logging needs nothing from the application: the first `Client(configJson:)`,
// `Client.fromFile(path:)` or `Bus.connect(configJson:)` (or any `Courier` function)
// installs `CourierLogging.defaultSink()`: `os.Logger` (subsystem `io.github.courierkit`,
// category `courier.<module>`, e.g. `courier.http.call`) where the `os` module exists, else
// standard error. The level records are produced at is `COURIER_LOG` (default `warn`) until
// `Courier.setLogLevel(_:)` changes it.
//
// Export follows the OpenTelemetry environment variables until
// `Courier.configureTelemetry(...)` replaces them. Swift has no exit hook that can wait on an
// async call: flush with `try await Courier.flushTelemetry()` before the process ends
// (`Bus.close()` flushes too).

import Foundation
#if canImport(os)
import os
#endif

/// Process-wide telemetry settings: the log level and sink, OTLP export, flush, and the
/// Prometheus text. Every function installs the default log sink first (`CourierLogging`).
public enum Courier {
    /// Sets the level courier produces log records at, for every client and bus of the
    /// process. Records below it cost nothing: they are skipped before being formatted.
    public static func setLogLevel(_ level: LogLevel) {
        CourierLogging.install()
        CourierKit.setLogLevel(level: level)
    }

    /// The level courier produces log records at (`COURIER_LOG`, else `.warn`).
    public static func logLevel() -> LogLevel {
        CourierLogging.install()
        return CourierKit.logLevel()
    }

    /// Sends courier's log records to `sink` instead of the default; nil drops them.
    /// Called on courier's log thread, one record at a time.
    public static func setLogSink(_ sink: LogSink?) {
        CourierLogging.use(sink)
    }

    /// `setLogSink(_:)` with a closure.
    public static func setLogSink(_ handler: @escaping @Sendable (LogRecord) -> Void) {
        CourierLogging.use(ClosureLogSink(handler))
    }

    /// Replaces the telemetry settings of the whole process (the OpenTelemetry environment
    /// variables' until then). Metric readings restart from zero.
    ///
    /// - Parameters:
    ///   - tracesEndpoint: the full OTLP/HTTP traces URL (`http://collector:4318/v1/traces`);
    ///     nil: spans are not exported.
    ///   - metricsEndpoint: the full metrics URL (`.../v1/metrics`); nil: metrics are not
    ///     exported (still readable with `metricsText()`).
    ///   - serviceName: `service.name`; nil: `OTEL_SERVICE_NAME`, else `unknown_service`.
    ///   - sampler: as `OTEL_TRACES_SAMPLER`: `always_on` (nil), `always_off`,
    ///     `traceidratio` or their `parentbased_` forms.
    ///   - samplerArg: as `OTEL_TRACES_SAMPLER_ARG`: the ratio for `traceidratio`.
    ///   - metrics: whether metrics are recorded at all.
    ///   - metricsInterval: the export interval; nil: 60 s.
    /// - Throws: `CourierError.Config` naming the parameter (`traces_endpoint`,
    ///   `metrics_endpoint`, `sampler`, `sampler_arg`, `metrics_interval_ms`) whose value is
    ///   unusable; the settings in force stay.
    public static func configureTelemetry(
        tracesEndpoint: String? = nil,
        metricsEndpoint: String? = nil,
        serviceName: String? = nil,
        sampler: String? = nil,
        samplerArg: String? = nil,
        metrics: Bool = true,
        metricsInterval: Duration? = nil
    ) throws {
        CourierLogging.install()
        try CourierKit.configureTelemetry(settings: TelemetrySettings(
            tracesEndpoint: tracesEndpoint,
            metricsEndpoint: metricsEndpoint,
            serviceName: serviceName,
            sampler: sampler,
            samplerArg: samplerArg,
            metrics: metrics,
            metricsInterval: metricsInterval
        ))
    }

    /// Exports the finished spans and the current metric readings now, returning once the
    /// collectors answered (the export runs on courier's threads).
    ///
    /// - Throws: `CourierError.Connect` when a collector cannot be reached or refuses.
    public static func flushTelemetry() async throws {
        CourierLogging.install()
        try await CourierKit.flushTelemetry()
    }

    /// courier's metric readings in the Prometheus text format; empty while metrics are off.
    public static func metricsText() -> String {
        CourierLogging.install()
        return CourierKit.metricsText()
    }
}

/// Where courier's log records go.
///
/// Unless the application chose a sink (`Courier.setLogSink(_:)` or `use(_:)`), the first
/// client, bus or `Courier` call installs `defaultSink()`.
public enum CourierLogging {
    private final class State: @unchecked Sendable {
        let lock = NSLock()
        var chosen = false
    }

    private static let state = State()

    /// The sink installed when the application chose none: `CourierLogger` (os.Logger)
    /// where the `os` module exists, else `StandardErrorLogSink`.
    public static func defaultSink() -> LogSink {
        #if canImport(os)
        return CourierLogger()
        #else
        return StandardErrorLogSink()
        #endif
    }

    /// The logger name for a record's module: `http::call` is `courier.http.call`.
    public static func loggerName(_ target: String) -> String {
        target.isEmpty ? "courier" : "courier." + target.replacingOccurrences(of: "::", with: ".")
    }

    /// Installs `defaultSink()` unless a sink was chosen already; does nothing after the
    /// first call.
    public static func install() {
        state.lock.lock()
        defer { state.lock.unlock() }
        if !state.chosen {
            state.chosen = true
            setLogSinkNative(sink: defaultSink())
        }
    }

    /// Sends records to `sink` from now on (nil: nowhere); the default is never installed
    /// over it.
    public static func use(_ sink: LogSink?) {
        state.lock.lock()
        defer { state.lock.unlock() }
        state.chosen = true
        setLogSinkNative(sink: sink)
    }

    /// The generated converters of `Client(configJson:)`, `Client.fromFile(path:)` and
    /// `Bus.connect(configJson:)` call this (uniffi.toml), so the default sink is in place
    /// before the first client or bus logs anything.
    static func installed(_ value: String) -> String {
        install()
        return value
    }
}

#if canImport(os)
/// Forwards records to `os.Logger`: subsystem `io.github.courierkit`, category
/// `courier.<module>`. ERROR is `.error`, WARN `.default` (os has no warning type between
/// them), INFO `.info`, DEBUG and TRACE `.debug`. Messages are public: core redacts secrets
/// before a record exists.
public final class CourierLogger: LogSink {
    public let subsystem: String

    public init(subsystem: String = "io.github.courierkit") {
        self.subsystem = subsystem
    }

    public func log(record: LogRecord) {
        let type: OSLogType
        switch record.level {
        case .error: type = .error
        case .warn: type = .default
        case .info: type = .info
        case .debug, .trace: type = .debug
        case .off: return
        }
        let logger = Logger(subsystem: subsystem, category: CourierLogging.loggerName(record.target))
        logger.log(level: type, "\(record.message, privacy: .public)")
    }
}
#endif

/// Writes records to standard error, one line each (`WARN courier.http.call: message`):
/// the default where there is no `os` module (Linux).
public final class StandardErrorLogSink: LogSink {
    public init() {}

    public func log(record: LogRecord) {
        let line = "\(CourierLogging.levelName(record.level)) \(CourierLogging.loggerName(record.target)): \(record.message)\n"
        FileHandle.standardError.write(Data(line.utf8))
    }
}

/// A sink over a closure, for loggers of the application's own (swift-log, a test).
public final class ClosureLogSink: LogSink {
    private let handler: @Sendable (LogRecord) -> Void

    public init(_ handler: @escaping @Sendable (LogRecord) -> Void) {
        self.handler = handler
    }

    public func log(record: LogRecord) {
        handler(record)
    }
}

extension CourierLogging {
    /// The upper-case name of a level (`WARN`).
    public static func levelName(_ level: LogLevel) -> String {
        switch level {
        case .off: return "OFF"
        case .error: return "ERROR"
        case .warn: return "WARN"
        case .info: return "INFO"
        case .debug: return "DEBUG"
        case .trace: return "TRACE"
        }
    }
}
