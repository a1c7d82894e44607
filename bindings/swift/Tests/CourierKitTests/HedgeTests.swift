import CourierKit
import Foundation
import XCTest

/// Hedged requests and the per-call idempotency key through the binding; the same cases as
/// the Kotlin `HedgeTest`. Round robin's first pick is the first endpoint, so a script that
/// hangs upstream 0's first request makes the first attempt hang; only a hedge to upstream 1
/// answers within the deadline. Every test names its own service.
final class HedgeTests: XCTestCase {
    private var kit: Testkit!

    override func setUpWithError() throws {
        kit = try Testkit(upstreams: 2)
    }

    override func tearDown() {
        kit?.stop()
    }

    private func hedged(_ service: String) throws -> Client {
        try Client(configJson: #"""
            {"services": {"\#(service)": {"endpoints": ["\#(kit.upstreams[0])", "\#(kit.upstreams[1])"],
             "balancer": "round_robin", "deadline_ms": 3000, "hedge": {"delay_ms": 50}}}}
            """#)
    }

    func testAHedgeAnswersWhileTheFirstAttemptHangs() async throws {
        try await kit.behave(0, #"{"script": [{"latency_ms": 10000}]}"#)
        let client = try hedged("swift-hedge")
        defer { client.close() }

        let response = try await client.get("swift-hedge", "/x")

        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.attempts, 2)
        let stats = try XCTUnwrap(client.stats().services["swift-hedge"])
        XCTAssertEqual([stats.hedges, stats.hedgesWon, stats.inFlight], [1, 1, 0])
        let first = try await kit.requestCount(0)
        let second = try await kit.requestCount(1)
        XCTAssertEqual([first, second], [1, 1])
    }

    func testAnIdempotentPostIsHedgedWithOneGeneratedKey() async throws {
        try await kit.behave(0, #"{"script": [{"latency_ms": 10000}]}"#)
        let client = try hedged("swift-hedge-post")
        defer { client.close() }

        let response = try await client.post("swift-hedge-post", "/orders", body: Data("{}".utf8), idempotent: true)

        XCTAssertEqual(response.attempts, 2)
        let key = try XCTUnwrap(response.idempotencyKey)
        let first = try await kit.idempotencyKeyCounts(0)
        let second = try await kit.idempotencyKeyCounts(1)
        XCTAssertEqual(first, [key: 1])
        XCTAssertEqual(second, [key: 1])
    }

    func testAPostWithoutAKeyIsNotHedged() async throws {
        try await kit.behave(0, #"{"script": [{"latency_ms": 300}]}"#)
        let client = try hedged("swift-hedge-plain")
        defer { client.close() }

        let response = try await client.post("swift-hedge-plain", "/orders", body: Data("{}".utf8))

        XCTAssertEqual(response.attempts, 1)
        XCTAssertNil(response.idempotencyKey)
        XCTAssertEqual(try XCTUnwrap(client.stats().services["swift-hedge-plain"]).hedges, 0)
    }

    func testAnIdempotentPostIsRetriedWithOneKeyAndAGivenKeyIsKept() async throws {
        try await kit.behave(0, #"{"script": [{"status": 503}, {"status": 503}], "default": {"status": 201}}"#)
        let client = try Client(configJson: #"{"services": {"swift-idem": {"endpoints": ["\#(kit.upstreams[0])"]}}}"#)
        defer { client.close() }

        let response = try await client.post("swift-idem", "/charges", body: Data("{}".utf8), idempotent: true)

        XCTAssertEqual(response.status, 201)
        XCTAssertEqual(response.attempts, 3)
        let key = try XCTUnwrap(response.idempotencyKey)
        let counts = try await kit.idempotencyKeyCounts(0)
        XCTAssertEqual(counts, [key: 3])
        let given = try await client.post("swift-idem", "/charges", idempotencyKey: "charge-17", idempotent: true)
        XCTAssertEqual(given.idempotencyKey, "charge-17")
    }

    func testHedgeSettingsAreCheckedAndNamed() {
        do {
            _ = try Client(configJson: #"{"services": {"a": {"endpoints": ["http://127.0.0.1:9"], "hedge": {"max_hedges": 9}}}}"#)
            XCTFail("expected CourierError.Config")
        } catch CourierError.Config(let field, _) {
            XCTAssertEqual(field, "services.a.hedge.max_hedges")
        } catch {
            XCTFail("unexpected \(error)")
        }
    }
}
