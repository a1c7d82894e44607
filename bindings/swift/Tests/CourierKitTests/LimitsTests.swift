import CourierKit
import Foundation
import XCTest

/// The client-side rate limit and the adaptive concurrency limit through the binding; the
/// same cases as the Kotlin `LimitsTest`.
final class LimitsTests: XCTestCase {
    private var kit: Testkit!

    override func setUpWithError() throws {
        kit = try Testkit(upstreams: 1)
    }

    override func tearDown() {
        kit?.stop()
    }

    private func limited(_ service: String, _ rate: String) throws -> Client {
        try Client(configJson: #"{"services": {"\#(service)": {"endpoints": ["\#(kit.upstreams[0])"], "rate_limit": \#(rate)}}}"#)
    }

    func testPastTheBurstALimitThatDoesNotWaitThrowsRateLimited() async throws {
        let client = try limited("swift-rate", #"{"per_second": 0.5, "burst": 2, "wait": false}"#)
        defer { client.close() }
        for _ in 0..<2 {
            let response = try await client.get("swift-rate", "/x")
            XCTAssertEqual(response.status, 200)
        }
        do {
            _ = try await client.get("swift-rate", "/x")
            XCTFail("expected CourierError.RateLimited")
        } catch CourierError.RateLimited(_, let service, let retryAfterMs) {
            XCTAssertEqual(service, "swift-rate")
            XCTAssertTrue((1001...2000).contains(retryAfterMs), "\(retryAfterMs)")
        }
        let stats = try XCTUnwrap(client.stats().services["swift-rate"])
        XCTAssertEqual(stats.rateLimited, 1)
        XCTAssertEqual(stats.ratePerSec, 0.5)
    }

    func testKeysHaveBucketsOfTheirOwn() async throws {
        let client = try limited("swift-rate-keys", #"{"per_second": 0.5, "burst": 1, "wait": false}"#)
        defer { client.close() }
        func keyed(_ key: String) -> Request {
            Request(method: "GET", target: "swift-rate-keys", path: "/x", rateKey: key)
        }
        _ = try await client.call(request: keyed("tenant-a"))
        do {
            _ = try await client.call(request: keyed("tenant-a"))
            XCTFail("expected CourierError.RateLimited")
        } catch CourierError.RateLimited {}
        _ = try await client.call(request: keyed("tenant-b"))
        let count = try await kit.requestCount(0)
        XCTAssertEqual(count, 2)
    }

    func testA429WithRetryAfterPausesTheBucket() async throws {
        try await kit.behave(0, #"{"script": [{"status": 429, "retry_after": "30"}]}"#)
        let client = try limited("swift-rate-429", #"{"per_second": 1000, "burst": 100, "wait": false}"#)
        defer { client.close() }
        let first = try await client.get("swift-rate-429", "/x")
        XCTAssertEqual(first.status, 429)
        do {
            _ = try await client.get("swift-rate-429", "/x")
            XCTFail("expected CourierError.RateLimited")
        } catch CourierError.RateLimited(_, _, let retryAfterMs) {
            XCTAssertGreaterThan(retryAfterMs, 25_000)
        }
        let rate = try XCTUnwrap(client.stats().services["swift-rate-429"]?.ratePerSec)
        XCTAssertTrue(rate >= 500 && rate < 1000, "\(rate)")
    }

    func testRateKeyErrorsNameTheField() async throws {
        let client = try Client(configJson: #"{"services": {"swift-open": {"endpoints": ["\#(kit.upstreams[0])"]}}}"#)
        defer { client.close() }
        do {
            _ = try await client.call(request: Request(method: "GET", target: "swift-open", rateKey: "tenant-a"))
            XCTFail("expected CourierError.Config")
        } catch CourierError.Config(let field, _) {
            XCTAssertEqual(field, "rate_key")
        }
    }

    func testAnAdaptiveLimitThrowsOverloadedPastItsCurrentLimit() async throws {
        try await kit.behave(0, #"{"default": {"latency_ms": 300}}"#)
        let client = try Client(configJson: #"""
            {"services": {"swift-adaptive": {"endpoints": ["\#(kit.upstreams[0])"],
             "adaptive_concurrency": {"min_limit": 1, "max_limit": 50, "initial_limit": 2}}}}
            """#)
        defer { client.close() }
        XCTAssertEqual(try XCTUnwrap(client.stats().services["swift-adaptive"]).concurrencyLimit, 2)
        async let first = client.get("swift-adaptive", "/x")
        async let second = client.get("swift-adaptive", "/x")
        var waits = 0
        while try XCTUnwrap(client.stats().services["swift-adaptive"]).inFlight < 2, waits < 200 {
            waits += 1
            try await Task.sleep(nanoseconds: 5_000_000)
        }
        do {
            _ = try await client.get("swift-adaptive", "/x")
            XCTFail("expected CourierError.Overloaded")
        } catch CourierError.Overloaded(_, _, let limit) {
            XCTAssertEqual(limit, 2)
        }
        let statuses = try await [first.status, second.status]
        XCTAssertEqual(statuses, [200, 200])
    }
}
