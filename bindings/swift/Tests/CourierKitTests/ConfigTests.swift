import CourierKit
import Foundation
import XCTest

/// The typed configuration (Config.swift, generated from core's schema): every section
/// built as structs, accepted by core; nil turns the breaker off; credentials never show.
final class ConfigTests: XCTestCase {
    private var kit: Testkit!

    override func setUpWithError() throws {
        kit = try Testkit(upstreams: 2)
    }

    override func tearDown() {
        kit?.stop()
    }

    private func everySection() -> ClientConfig {
        ClientConfig(
            limits: HttpLimits(maxRequestBodyBytes: 1_000_000, maxResponseBodyBytes: 1_000_000, maxResponseHeaderBytes: 32_768),
            services: [
                "orders": ServiceConfig(
                    balancer: .roundRobin,
                    breaker: BreakerConfig(failureRatio: 0.6, maxOpenMs: 10_000, minCalls: 10, openMs: 1_000, probes: 2, windowMs: 5_000),
                    budget: BudgetConfig(minPerSec: 5, ratio: 0.5, windowMs: 5_000),
                    deadlineMs: 5_000,
                    endpoints: [Endpoint(url: kit.upstreams[0], version: "v1", weight: 2), Endpoint(url: kit.upstreams[1])],
                    headers: ["x-team": "payments"],
                    hedge: HedgeConfig(delayMs: 100, maxHedges: 1, percentile: 95),
                    maxConcurrency: 64,
                    outlier: OutlierConfig(baseEjectionMs: 1_000, consecutiveFailures: 3, maxEjectedRatio: 0.5, maxEjectionMs: 10_000),
                    rateLimit: RateLimitConfig(perSecond: 1_000, burst: 100, wait: true),
                    retry: RetryConfig(baseDelayMs: 10, maxAttempts: 2, maxDelayMs: 100, retryOn: [.connect, .timeout, .status(503)]),
                    timeoutMs: 2_000,
                    versions: VersionConfig(default: "v1", split: ["v1": 100])
                ),
                "adaptive": ServiceConfig(
                    adaptiveConcurrency: AdaptiveConcurrencyConfig(initialLimit: 10, maxLimit: 50, minLimit: 1),
                    breaker: nil,
                    endpoints: [Endpoint(url: kit.upstreams[1])],
                    outlier: nil
                ),
                "discovered": ServiceConfig(
                    discovery: DiscoveryConfig(dns: "localhost", port: 8080, refreshMs: 60_000, scheme: "http")
                ),
            ],
            tls: TlsConfig(minVersion: .v1_3)
        )
    }

    func testEveryClientSectionInTheTypedFormIsAcceptedAndUsed() async throws {
        let client = try Client(config: everySection())
        let response = try await client.get("orders", "/typed")
        XCTAssertEqual(response.status, 200)
        let stats = client.stats().services
        XCTAssertEqual(stats["orders"]?.breakerState, "closed")
        XCTAssertEqual(stats["orders"]?.endpoints.map(\.weight), [2, 1])
        XCTAssertEqual(stats["orders"]?.concurrencyLimit, 64)
        _ = try await client.get("adaptive", "/typed")
        XCTAssertEqual(client.stats().services["adaptive"]?.breakerState, "disabled", "breaker: nil turns it off")
    }

    func testAnInvalidTypedValueIsRefusedByCoreNamingItsField() throws {
        let bad = ClientConfig(services: ["orders": ServiceConfig(deadlineMs: 0, endpoints: [Endpoint(url: kit.upstreams[0])])])
        XCTAssertThrowsError(try Client(config: bad)) { error in
            guard case CourierError.Config(let field, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(field, "services.orders.deadline_ms")
        }
    }

    func testEveryBusSectionInTheTypedFormIsAcceptedAndCredentialsNeverShow() async throws {
        let config = BusConfig(
            urls: ["memory://typed-config-swift"],
            dedup: .memory(DedupConfig.Memory(capacity: 1_000, ttlMs: 60_000)),
            limits: MessageLimits(maxHeaderValueBytes: 4_096, maxHeaders: 16, maxMessageBytes: 1_000_000),
            maxUnconfirmed: 32,
            prefetch: 10,
            publishDeadlineMs: 5_000,
            reconnect: ReconnectConfig(baseDelayMs: 50, maxDelayMs: 500)
        )
        let bus = try await Bus.connect(config: config)
        try await bus.declareQueue(name: "orders")
        _ = try await bus.publish(exchange: "", routingKey: "orders", body: Data("typed".utf8))
        let consumer = try await bus.consume(queue: "orders")
        let delivery = try unwrapped(try await consumer.next(timeout: .seconds(5)))
        XCTAssertEqual(String(decoding: delivery.body(), as: UTF8.self), "typed")
        try await delivery.ack()
        try await bus.close()

        let secret = BusConfig(
            urls: ["amqp://courier:s3cret@127.0.0.1:5672/%2f"],
            dedup: .redis(DedupConfig.Redis(url: "redis://:hunter2@127.0.0.1:6379/0")),
            tls: TlsConfig(clientKeyPem: "-----BEGIN PRIVATE KEY-----\nsecret-key\n")
        )
        for text in [String(describing: secret), String(reflecting: secret)] {
            for word in ["s3cret", "hunter2", "secret-key"] {
                XCTAssertFalse(text.contains(word), text)
            }
        }
    }
}
