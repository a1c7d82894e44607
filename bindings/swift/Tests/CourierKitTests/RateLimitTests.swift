import CourierKit
import Foundation
import XCTest

/// The client-side rate limit through the binding; the same cases as the Kotlin
/// `RateLimitTest`.
final class RateLimitTests: XCTestCase {
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
}
