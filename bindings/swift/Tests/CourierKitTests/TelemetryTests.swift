import CourierKit
import Foundation
import XCTest

/// Telemetry from Swift, the same cases as the Kotlin `TelemetryTest`: core's log records in a
/// host sink, courier's spans as children of the caller's context at an OTLP receiver, metrics
/// as Prometheus text and at the receiver, typed errors for unusable settings.
///
/// Settings, sink and level are process-wide: each test sets what it relies on, asserts only
/// on its own service names and trace ids, and `tearDown` puts the defaults back.
final class TelemetryTests: XCTestCase {
    private var kit: Testkit!

    override func setUpWithError() throws {
        kit = try Testkit(upstreams: 1)
    }

    override func tearDown() {
        try? Courier.configureTelemetry()
        Courier.setLogLevel(.warn)
        Courier.setLogSink(CourierLogging.defaultSink())
        kit?.stop()
    }

    /// Records from courier's log thread, read from the test's.
    private final class Records: @unchecked Sendable {
        private let lock = NSLock()
        private var records: [LogRecord] = []

        func add(_ record: LogRecord) {
            lock.lock()
            defer { lock.unlock() }
            records.append(record)
        }

        var all: [LogRecord] {
            lock.lock()
            defer { lock.unlock() }
            return records
        }

        /// The first record matching `predicate`, waiting up to 10 s for the log thread.
        func first(where predicate: (LogRecord) -> Bool) async throws -> LogRecord {
            for _ in 0..<200 {
                if let record = all.first(where: predicate) { return record }
                try await Task.sleep(nanoseconds: 50_000_000)
            }
            XCTFail("no such record in \(all)")
            throw CancellationError()
        }
    }

    /// The upstream with credentials in its URL, which must show in no record, span or metric.
    private func makeClient(_ service: String) throws -> Client {
        let endpoint = kit.upstreams[0].replacingOccurrences(of: "http://", with: "http://ops:s3cret@")
        return try Client(configJson: #"{"services": {"\#(service)": {"endpoints": ["\#(endpoint)"]}}}"#)
    }

    private func failOnce() async throws {
        try await kit.behave(0, #"{"script": [{"status": 503}], "default": {"status": 200}}"#)
    }

    func testCoreLogRecordsReachTheSinkAtTheLevelSet() async throws {
        let records = Records()
        Courier.setLogSink { records.add($0) }
        Courier.setLogLevel(.debug)
        XCTAssertEqual(Courier.logLevel(), .debug)
        try await failOnce()
        let client = try makeClient("swift-logs")
        defer { client.close() }
        let response = try await client.get("swift-logs", "/items")
        XCTAssertEqual(response.attempts, 2)

        let retry = try await records.first { $0.message.hasPrefix("retry") && $0.message.contains("service=swift-logs") }
        XCTAssertEqual(retry.level, .debug)
        XCTAssertEqual(retry.target, "http::call")
        XCTAssertEqual(CourierLogging.loggerName(retry.target), "courier.http.call")
        XCTAssertTrue(retry.fields.contains(LogField(key: "service", value: "swift-logs")), "\(retry)")
        XCTAssertFalse(records.all.contains { "\($0)".contains("s3cret") }, "no password in any record")

        // Below the level, nothing is produced.
        Courier.setLogLevel(.warn)
        let before = records.all.count
        try await failOnce()
        _ = try await client.get("swift-logs", "/items")
        try await Task.sleep(nanoseconds: 300_000_000)
        XCTAssertEqual(records.all.count, before, "no debug record at warn")
    }

    func testTheDefaultSinkIsOSLoggerWhereAvailable() {
        #if canImport(os)
        XCTAssertTrue(CourierLogging.defaultSink() is CourierLogger)
        #else
        XCTAssertTrue(CourierLogging.defaultSink() is StandardErrorLogSink)
        #endif
        XCTAssertEqual(CourierLogging.loggerName("messaging::amqp::link"), "courier.messaging.amqp.link")
        XCTAssertEqual(CourierLogging.loggerName(""), "courier")
    }

    func testCourierSpansAreChildrenOfTheCallersContextAtTheCollector() async throws {
        try Courier.configureTelemetry(
            tracesEndpoint: kit.otlp + "/v1/traces",
            metricsEndpoint: kit.otlp + "/v1/metrics",
            serviceName: "swift-test"
        )
        // Swift has no host OpenTelemetry API: the caller's context is passed explicitly.
        let parent = TraceContext.newRoot()
        let client = try makeClient("swift-traced")
        defer { client.close() }
        let response = try await client.call(request: Request(
            method: "GET", target: "swift-traced", path: "/items", trace: parent.toCarrier()
        ))
        let echo = try XCTUnwrap(JSONSerialization.jsonObject(with: response.body) as? [String: Any])
        let sent = try XCTUnwrap((echo["headers"] as? [String: String])?["traceparent"])
        let sentParts = sent.split(separator: "-").map(String.init)
        XCTAssertEqual(sentParts[1], parent.traceId(), "the upstream continues the caller's trace")

        let url = "memory://swift-telemetry-\(UUID().uuidString.lowercased())"
        let bus = try await Bus.connect(configJson: #"{"urls": ["\#(url)"]}"#)
        try await bus.declareQueue(name: "telemetry")
        let receipt = try await bus.publish(
            exchange: "", routingKey: "telemetry", body: Data("x".utf8),
            options: PublishOptions(trace: parent.toCarrier())
        )
        let consumer = try await bus.consume(queue: "telemetry")
        do {
            // The CONSUMER span lasts as long as the delivery: scoped, so it ends here.
            let next = try await consumer.next(timeout: .milliseconds(5_000))
            let delivery = try XCTUnwrap(next)
            try await delivery.ack()
        }
        try await consumer.close()
        try await bus.close()
        try await Courier.flushTelemetry()

        var spans: [[String: Any]] = []
        for _ in 0..<100 {
            spans = try await kit.otlpSpans().filter { $0["traceId"] as? String == parent.traceId() }
            if Set(spans.compactMap { kind($0) }).isSuperset(of: [clientKind, producerKind, consumerKind]) { break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        let attempt = try XCTUnwrap(spans.first { kind($0) == clientKind }, "\(spans)")
        XCTAssertEqual(attempt["spanId"] as? String, sentParts[2], "the span the upstream was sent")
        XCTAssertEqual(attempt["parentSpanId"] as? String, parent.spanId(), "a child of the caller's context")
        XCTAssertTrue("\(attempt["resource"] ?? "")".contains("swift-test"))
        let producer = try XCTUnwrap(spans.first { kind($0) == producerKind }, "\(spans)")
        XCTAssertEqual(producer["spanId"] as? String, receipt.traceContext().spanId())
        XCTAssertEqual(producer["parentSpanId"] as? String, parent.spanId())
        let processing = try XCTUnwrap(spans.first { kind($0) == consumerKind }, "\(spans)")
        XCTAssertEqual(processing["parentSpanId"] as? String, producer["spanId"] as? String)
        let links = processing["links"] as? [[String: Any]] ?? []
        XCTAssertTrue(links.contains { $0["spanId"] as? String == producer["spanId"] as? String }, "\(processing)")
        let exported = try await kit.otlpSpans()
        XCTAssertFalse("\(exported)".contains("s3cret"), "no password in exported spans")
    }

    func testMetricsReadAsPrometheusTextAndArriveAtTheCollector() async throws {
        try Courier.configureTelemetry(metricsEndpoint: kit.otlp + "/v1/metrics", serviceName: "swift-test")
        try await failOnce()
        let client = try makeClient("swift-metered")
        defer { client.close() }
        _ = try await client.get("swift-metered", "/items")

        let text = Courier.metricsText()
        XCTAssertTrue(text.contains("# TYPE http_client_request_duration_seconds histogram"), text)
        XCTAssertTrue(text.contains("http_client_request_duration_seconds_count{"), text)
        XCTAssertTrue(text.contains(#"courier_retry_attempts_total{courier_service="swift-metered"} 1"#), text)
        XCTAssertFalse(text.contains("s3cret"))

        try await Courier.flushTelemetry()
        var duration: [String: Any]?
        for _ in 0..<100 {
            duration = try await kit.otlpMetrics().last { $0["name"] as? String == "http.client.request.duration" }
            if duration != nil { break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        XCTAssertEqual(try XCTUnwrap(duration)["unit"] as? String, "s")
    }

    func testUnusableSettingsAreConfigErrorsNamingTheParameter() throws {
        let cases: [(String, () throws -> Void)] = [
            ("traces_endpoint", { try Courier.configureTelemetry(tracesEndpoint: "ftp://x") }),
            ("metrics_endpoint", { try Courier.configureTelemetry(metricsEndpoint: "not a url") }),
            ("sampler", { try Courier.configureTelemetry(sampler: "xray") }),
            ("sampler_arg", { try Courier.configureTelemetry(sampler: "traceidratio", samplerArg: "2") }),
            ("metrics_interval_ms", { try Courier.configureTelemetry(metricsInterval: .milliseconds(0)) }),
        ]
        // Metrics off: each case would turn them on, so an empty text shows nothing changed.
        try Courier.configureTelemetry(metrics: false)
        XCTAssertEqual(Courier.metricsText(), "")
        for (want, configure) in cases {
            do {
                try configure()
                XCTFail("\(want): expected CourierError.Config")
            } catch CourierError.Config(let field, let reason) {
                XCTAssertEqual(field, want)
                XCTAssertFalse(reason.isEmpty)
            }
            XCTAssertEqual(Courier.metricsText(), "", "after the refused \(want)")
        }
    }
}

private let clientKind = 3
private let producerKind = 4
private let consumerKind = 5

/// A span's kind as OTLP numbers it (JSON exports may spell it out).
private func kind(_ span: [String: Any]) -> Int? {
    if let number = span["kind"] as? Int { return number }
    let names = ["SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER",
                 "SPAN_KIND_CLIENT", "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER"]
    return (span["kind"] as? String).flatMap { names.firstIndex(of: $0) }
}
