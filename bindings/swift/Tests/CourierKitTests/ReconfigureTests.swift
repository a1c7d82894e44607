import CourierKit
import Foundation
import XCTest

/// `reconfigure` through the binding; the same cases as the Kotlin `ReconfigureTest`.
final class ReconfigureTests: XCTestCase {
    private var kit: Testkit!

    override func setUpWithError() throws {
        kit = try Testkit(upstreams: 3)
    }

    override func tearDown() {
        kit?.stop()
    }

    func testAnInvalidConfigIsRejectedWhole() async throws {
        let client = try Client(configJson: #"{"services": {"keep": {"endpoints": ["\#(kit.upstreams[0])"]}}}"#)
        defer { client.close() }
        do {
            try client.reconfigure(configJson: #"{"services": {"keep": {"endpoints": ["\#(kit.upstreams[1])"]}, "other": {"endpoints": ["not a url"]}}}"#)
            XCTFail("expected CourierError.Config")
        } catch CourierError.Config(let field, _) {
            XCTAssertEqual(field, "services.other.endpoints[0].url")
        }
        let response = try await client.get("keep", "/x")
        XCTAssertEqual(response.endpoint.trimmingCharacters(in: ["/"]), kit.upstreams[0].trimmingCharacters(in: ["/"]))
    }

    func testLaterCallsUseTheNewConfig() async throws {
        let client = try Client(configJson: #"{"services": {"old": {"endpoints": ["\#(kit.upstreams[0])"]}}}"#)
        defer { client.close() }
        _ = try await client.get("old", "/x")
        try client.reconfigure(configJson: #"{"services": {"moved": {"endpoints": ["\#(kit.upstreams[1])"]}}}"#)
        let moved = try await client.get("moved", "/x")
        XCTAssertEqual(moved.endpoint.trimmingCharacters(in: ["/"]), kit.upstreams[1].trimmingCharacters(in: ["/"]))
        XCTAssertEqual(Array(client.stats().services.keys), ["moved"])
    }
}
