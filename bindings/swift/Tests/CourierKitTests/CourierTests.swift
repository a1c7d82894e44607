import CourierKit
import Foundation
import XCTest

final class ClientTests: XCTestCase {
    private var kit: Testkit!

    override func setUpWithError() throws {
        kit = try Testkit(upstreams: 2)
    }

    override func tearDown() {
        kit?.stop()
    }

    func testGetReachesTheConfiguredUpstreamOnce() async throws {
        let client = try Client(configJson: #"{"services": {"echo": {"endpoints": ["\#(kit.upstreams[0])"]}}}"#)
        defer { client.close() }

        let response = try await client.get("echo", "/v1/items")

        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(response.attempts, 1, "a 200 on the first attempt needs no retry")
        XCTAssertTrue(response.text().contains("\"/v1/items\""), "the testkit echoes the path")
        let count = try await kit.requestCount(0)
        XCTAssertEqual(count, 1, "the upstream saw exactly one request")
    }

    func testDeadlineEndsASlowCallWithTimeout() async throws {
        let client = try Client(configJson: #"{"services": {"echo": {"endpoints": ["\#(kit.upstreams[0])"]}}}"#)
        try await kit.behave(0, #"{"default": {"latency_ms": 3000}}"#)
        do {
            _ = try await client.get("echo", "/slow", deadlineMs: 200)
            XCTFail("expected CourierError.Timeout")
        } catch CourierError.Timeout(let detail) {
            XCTAssertTrue(detail.contains("timed out"), detail)
        }
    }

    func testClientLoadsItsConfigFromATomlFile() async throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("courier-\(UUID().uuidString).toml")
        defer { try? FileManager.default.removeItem(at: file) }
        try "[services.fromfile]\nendpoints = [\"\(kit.upstreams[0])\"]\n".write(to: file, atomically: true, encoding: .utf8)
        let client = try Client.fromFile(path: file.path)
        let response = try await client.get("fromfile", "/")
        XCTAssertEqual(response.status, 200)
    }

    func testConfigErrorNamesTheField() throws {
        XCTAssertThrowsError(try Client(configJson: #"{"services": {"a": {"endpoints": []}}}"#)) { error in
            guard case CourierError.Config(let field, _) = error else {
                return XCTFail("expected CourierError.Config, got \(error)")
            }
            XCTAssertEqual(field, "services.a.endpoints")
        }
    }
}

final class BusTests: XCTestCase {
    private var url: String {
        ProcessInfo.processInfo.environment["COURIER_AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/%2f"
    }

    func testPublishConsumeAckRoundTrip() async throws {
        let bus = try await Bus.connect(configJson: #"{"urls": ["\#(url)"]}"#)
        let queue = "courier-test.swift.roundtrip"
        try await bus.declareQueue(name: queue)
        let id = try await bus.publish(
            exchange: "", routingKey: queue, body: Data("hello from swift".utf8),
            options: PublishOptions(headers: ["x-lang": "swift"])
        ).messageId

        let consumer = try await bus.consume(queue: queue, prefetch: 10)
        var mine: Delivery?
        // Messages left by an interrupted earlier run are acked away, not asserted on.
        for try await delivery in consumer.deliveries(timeoutMs: 10_000) {
            if delivery.messageId() == id {
                mine = delivery
                break
            }
            try await delivery.ack()
        }
        let delivery = try XCTUnwrap(mine, "the published message must arrive")
        XCTAssertEqual(delivery.body(), Data("hello from swift".utf8))
        XCTAssertEqual(delivery.headers()["x-lang"], "swift")
        XCTAssertEqual(delivery.routingKey(), queue)
        try await delivery.ack()
        try await consumer.close()
        try await bus.close()
    }

    func testRequestToAServedQueueGetsItsReplyOverDirectReplyTo() async throws {
        let bus = try await Bus.connect(configJson: #"{"urls": ["\#(url)"]}"#)
        let queue = "courier-test.swift.rpc"
        try await bus.declareQueue(name: queue)
        // Requests left by an interrupted earlier run expired with their timeout.
        let requests = try await bus.serve(queue: queue)
        let serving = Task {
            for try await request in requests.deliveries(timeoutMs: 10_000) {
                try await request.reply(body: Data("echo: ".utf8) + request.body())
                try await request.ack()
                break
            }
            try await requests.close()
        }

        let reply = try await bus.request(routingKey: queue, body: Data("ping".utf8), timeoutMs: 10_000)
        XCTAssertEqual(reply.body(), Data("echo: ping".utf8))
        try await serving.value
        try await bus.close()
    }

    func testPublishNoQueueTakesIsUnroutable() async throws {
        let bus = try await Bus.connect(configJson: #"{"urls": ["\#(url)"]}"#)
        do {
            _ = try await bus.publish(exchange: "", routingKey: "courier-test.swift.no-such-queue", body: Data("lost".utf8))
            XCTFail("expected CourierError.Unroutable")
        } catch CourierError.Unroutable(let detail) {
            XCTAssertTrue(detail.contains("unroutable"), detail)
        }
        try await bus.close()
    }
}
