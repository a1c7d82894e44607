import CourierKit
import Foundation
import XCTest

/// Hostile input: a panic inside core, an over-long header name, a path leaving the base
/// path. Each must end in a thrown CourierError, never a crash or a hang.
final class HostileTests: XCTestCase {
    func testAPanicInsideCoreThrowsInternal() async throws {
        do {
            try await panicForTests()
            XCTFail("expected CourierError.Internal")
        } catch CourierError.Internal(let detail) {
            XCTAssertTrue(detail.contains("forced panic"), detail)
        }
    }

    func testAHeaderNameLongerThan255BytesIsAConfigError() async throws {
        let bus = try await Bus.connect(configJson: #"{"urls": ["memory://swift-hostile-\#(UUID().uuidString.lowercased())"]}"#)
        try await bus.declareQueue(name: "q")
        do {
            _ = try await bus.publish(
                exchange: "", routingKey: "q", body: Data("x".utf8),
                options: PublishOptions(headers: [String(repeating: "h", count: 256): "v"])
            )
            XCTFail("expected CourierError.Config")
        } catch CourierError.Config(let field, _) {
            XCTAssertEqual(field, "headers")
        }
        try await bus.close()
    }

    func testAPathLeavingTheBasePathIsAConfigError() async throws {
        let client = try Client(configJson: #"{"services": {"orders": {"endpoints": ["http://127.0.0.1:9/api/v1"]}}}"#)
        do {
            _ = try await client.call(request: Request(method: "GET", target: "orders", path: "%2e%2e/%2e%2e/admin"))
            XCTFail("expected CourierError.Config")
        } catch CourierError.Config(let field, _) {
            XCTAssertEqual(field, "path")
        }
    }
}
