import CourierKit
import Foundation
import XCTest

/// Core's client-side load balancing as seen through the binding: version routing, the
/// latency-aware default balancer against round robin, and per-endpoint stats; the same
/// cases as the Kotlin `BalanceTest`.
///
/// Every test names its own service. Counts are the testkit's (what the upstreams
/// received), not the client's, except where the stats themselves are under test.
final class BalanceTests: XCTestCase {
    private static let calls = 400
    private static let workers = 8

    private var kit: Testkit!

    override func setUpWithError() throws {
        kit = try Testkit(upstreams: 4)
    }

    override func tearDown() {
        kit?.stop()
    }

    func testVersionRoutesOnlyToEndpointsWithThatVersion() async throws {
        let service = "balance-version"
        let endpoints = #"[{"url": "\#(kit.upstreams[0])", "version": "v1"}, {"url": "\#(kit.upstreams[1])", "version": "v2"}]"#
        let client = try Client(configJson: #"{"services": {"\#(service)": {"endpoints": \#(endpoints)}}}"#)
        defer { client.close() }

        for _ in 0..<20 {
            let response = try await client.call(request: Request(
                method: "GET", target: service, path: "/v", version: "v2"
            ))
            XCTAssertEqual(response.status, 200)
        }

        let v1 = try await kit.requestCount(0)
        let v2 = try await kit.requestCount(1)
        XCTAssertEqual(v1, 0, "the v1 endpoint got none")
        XCTAssertEqual(v2, 20, "the v2 endpoint got all 20")

        do {
            _ = try await client.call(request: Request(method: "GET", target: service, path: "/v", version: "v3"))
            XCTFail("expected CourierError.NoEndpoint")
        } catch CourierError.NoEndpoint(let detail, _, _) {
            XCTAssertFalse(detail.isEmpty)
        }
        let after0 = try await kit.requestCount(0)
        let after1 = try await kit.requestCount(1)
        XCTAssertEqual(after0 + after1, 20, "the v3 call reached no upstream")
    }

    func testP2cEwmaSendsFewCallsToASlowEndpoint() async throws {
        let slow = try await runAgainstSlowUpstream("balance-slow-p2c", "p2c_ewma")
        XCTAssertLessThanOrEqual(
            slow, Self.calls / 10, "upstream 3 (50 ms) received \(slow) of \(Self.calls) calls; want at most 10%"
        )
    }

    func testRoundRobinKeepsSendingASlowEndpointItsShare() async throws {
        let slow = try await runAgainstSlowUpstream("balance-slow-rr", "round_robin")
        XCTAssertGreaterThanOrEqual(
            slow, Self.calls / 5, "upstream 3 (50 ms) received \(slow) of \(Self.calls) calls; want at least 20%"
        )
    }

    /// Makes `calls` GETs to `service` (all four upstreams, `balancer`) from `workers`
    /// concurrent tasks while upstream 3 answers after 50 ms; checks the service's endpoint
    /// stats and returns how many requests upstream 3 received.
    private func runAgainstSlowUpstream(_ service: String, _ balancer: String) async throws -> Int {
        try await kit.behave(3, #"{"default": {"latency_ms": 50}}"#)
        let endpoints = "[" + kit.upstreams.map { "\"\($0)\"" }.joined(separator: ", ") + "]"
        let client = try Client(
            configJson: #"{"services": {"\#(service)": {"endpoints": \#(endpoints), "balancer": "\#(balancer)"}}}"#
        )
        defer { client.close() }

        let perWorker = Self.calls / Self.workers
        let non200 = try await withThrowingTaskGroup(of: Int.self, returning: Int.self) { group in
            for _ in 0..<Self.workers {
                group.addTask {
                    var bad = 0
                    for _ in 0..<perWorker {
                        let response = try await client.get(service, "/work")
                        if response.status != 200 { bad += 1 }
                    }
                    return bad
                }
            }
            var total = 0
            for try await bad in group { total += bad }
            return total
        }
        XCTAssertEqual(non200, 0, "every call answered 200")

        var counts: [Int] = []
        for i in 0..<4 {
            let count = try await kit.requestCount(i)
            counts.append(count)
        }
        XCTAssertEqual(counts.reduce(0, +), Self.calls, "per-upstream counts \(counts)")

        let stats = try XCTUnwrap(client.stats().services[service])
        XCTAssertEqual(stats.endpoints.count, 4, "one entry per endpoint: \(stats.endpoints)")
        XCTAssertEqual(
            stats.endpoints.map(\.requests).reduce(0, +), UInt64(Self.calls), "endpoint requests: \(stats.endpoints)"
        )
        XCTAssertEqual(stats.requests, UInt64(Self.calls))
        XCTAssertTrue(stats.endpoints.allSatisfy { !$0.ejected }, "nothing failed, so nothing is ejected")

        return counts[3]
    }
}
