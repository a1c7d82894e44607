import CourierKit
import Foundation
import XCTest

/// Core's retries, idempotency rules and circuit breaker as seen through the binding; the
/// same cases as the Kotlin `ResilienceTest`.
///
/// Every test names its own service: retry budgets are per process and per service name,
/// so sharing a name would let one test's retries spend another's budget. (The deadline
/// case is `ClientTests.testDeadlineEndsASlowCallWithTimeout`.)
final class ResilienceTests: XCTestCase {
    private var kit: Testkit!

    override func setUpWithError() throws {
        kit = try Testkit(upstreams: 1)
    }

    override func tearDown() {
        kit?.stop()
    }

    /// A client with one `service` on upstream 0; `extra` is spliced into the service's config.
    private func makeClient(_ service: String, _ extra: String = "") throws -> Client {
        let more = extra.isEmpty ? "" : ", " + extra
        return try Client(configJson: #"{"services": {"\#(service)": {"endpoints": ["\#(kit.upstreams[0])"]\#(more)}}}"#)
    }

    private func post(_ client: Client, _ service: String, idempotencyKey: String? = nil) async throws -> Response {
        try await client.call(request: Request(
            method: "POST", target: service, path: "/orders", body: Data("{}".utf8), idempotencyKey: idempotencyKey
        ))
    }

    func testGetIsRetriedPastTwo503s() async throws {
        let service = "resilience-get-503"
        try await kit.behave(0, #"{"script": [{"status": 503}, {"status": 503}], "default": {"status": 200}}"#)
        let client = try makeClient(service)
        defer { client.close() }

        let response = try await client.get(service, "/flaky")

        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.attempts, 3)
        let count = try await kit.requestCount(0)
        XCTAssertEqual(count, 3, "two 503s and the 200")
        let stats = try XCTUnwrap(client.stats().services[service])
        XCTAssertEqual(stats.requests, 1, "one call, however many attempts")
        XCTAssertEqual(stats.attempts, 3)
        XCTAssertEqual(stats.retries, 2)
    }

    func testPostWithoutIdempotencyKeyIsNotRetriedAfterMidResponseReset() async throws {
        let service = "resilience-post-no-key"
        try await kit.behave(0, #"{"default": {"reset": "mid_response"}}"#)
        let client = try makeClient(service)
        defer { client.close() }

        do {
            _ = try await post(client, service)
            XCTFail("expected CourierError.Connect")
        } catch CourierError.Connect(let detail, _, _, _) {
            XCTAssertFalse(detail.isEmpty)
        }

        let count = try await kit.requestCount(0)
        XCTAssertEqual(count, 1, "the server may have acted on it, so it is sent once")
        XCTAssertEqual(client.stats().services[service]?.retries, 0)
    }

    func testPostWithIdempotencyKeyIsRetriedAfterMidResponseReset() async throws {
        let service = "resilience-post-key"
        try await kit.behave(0, #"{"default": {"reset": "mid_response"}}"#)
        let client = try makeClient(service)
        defer { client.close() }

        do {
            _ = try await post(client, service, idempotencyKey: "k-1")
            XCTFail("expected CourierError.Connect")
        } catch CourierError.Connect(let detail, _, _, _) {
            XCTAssertFalse(detail.isEmpty)
        }

        let count = try await kit.requestCount(0)
        XCTAssertEqual(count, 3, "max_attempts defaults to 3")
        let byKey = try await kit.idempotencyKeyCounts(0)
        XCTAssertEqual(byKey, ["k-1": 3], "every attempt carries the same key")
    }

    func testOpenBreakerFailsFastWithoutReachingTheUpstream() async throws {
        let service = "resilience-breaker"
        try await kit.behave(0, #"{"default": {"status": 503}}"#)
        // Each piece starts with a space so no raw string opens with `#""`.
        let breaker = #" "retry": {"max_attempts": 1}, "breaker": {"min_calls": 2, "failure_ratio": 0.5,"#
            + #" "open_ms": 60000, "max_open_ms": 60000, "probes": 1}"#
        let client = try makeClient(service, breaker)
        defer { client.close() }

        for _ in 0..<2 {
            let response = try await client.get(service, "/down")
            XCTAssertEqual(response.status, 503, "a final 5xx is a response, not an error")
        }
        do {
            _ = try await client.get(service, "/down")
            XCTFail("expected CourierError.CircuitOpen")
        } catch CourierError.CircuitOpen(let detail, _, let retryAfterMs) {
            XCTAssertFalse(detail.isEmpty)
            XCTAssertGreaterThan(retryAfterMs, 0, "says when the breaker lets a probe through")
        }

        let count = try await kit.requestCount(0)
        XCTAssertEqual(count, 2, "the rejected call never reached the upstream")
        let stats = try XCTUnwrap(client.stats().services[service])
        XCTAssertEqual(stats.breakerState, "open")
        XCTAssertEqual(stats.breakerOpened, 1)
        XCTAssertEqual(stats.circuitRejected, 1)
    }
}
