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

    func testEveryVerbShortcutSendsItsMethodPathAndBody() async throws {
        let client = try Client(configJson: #"{"services": {"echo": {"endpoints": ["\#(kit.upstreams[0])"]}}}"#)
        defer { client.close() }
        let body = Data(#"{"sku": 1}"#.utf8)

        let get = try await client.get("echo", "/v/get")
        let head = try await client.head("echo", "/v/head")
        let options = try await client.options("echo", "/v/options")
        let delete = try await client.delete("echo", "/v/delete")
        let post = try await client.post("echo", "/v/post", body: body, idempotencyKey: "k-post")
        let put = try await client.put("echo", "/v/put", body: body)
        let patch = try await client.patch("echo", "/v/patch", body: body, idempotencyKey: "k-patch")
        let responses: [(String, Response)] = [
            ("GET", get), ("HEAD", head), ("OPTIONS", options), ("DELETE", delete),
            ("POST", post), ("PUT", put), ("PATCH", patch),
        ]
        for (method, response) in responses {
            XCTAssertEqual(response.status, 200, method)
            if method == "HEAD" { continue } // a HEAD response has no body to echo into
            let echo = try JSONSerialization.jsonObject(with: response.body) as? [String: Any]
            XCTAssertEqual(echo?["method"] as? String, method)
            XCTAssertEqual(echo?["path"] as? String, "/v/\(method.lowercased())")
            let bodyLen = ["POST", "PUT", "PATCH"].contains(method) ? body.count : 0
            XCTAssertEqual(echo?["body_len"] as? Int, bodyLen, method)
        }
        let methods = try await kit.methodCounts(0)
        XCTAssertEqual(methods, ["GET": 1, "HEAD": 1, "OPTIONS": 1, "DELETE": 1, "POST": 1, "PUT": 1, "PATCH": 1])
        let keys = try await kit.idempotencyKeyCounts(0)
        XCTAssertEqual(keys, ["k-post": 1, "k-patch": 1])
    }

    func testDeadlineEndsASlowCallWithTimeout() async throws {
        let client = try Client(configJson: #"{"services": {"echo": {"endpoints": ["\#(kit.upstreams[0])"]}}}"#)
        try await kit.behave(0, #"{"default": {"latency_ms": 3000}}"#)
        do {
            _ = try await client.get("echo", "/slow", deadline: .milliseconds(200))
            XCTFail("expected CourierError.Timeout")
        } catch CourierError.Timeout(let detail, _, _) {
            XCTAssertTrue(detail.contains("timed out"), detail)
        }
    }

    func testANegativeOrTooLongDeadlineIsAConfigErrorAndNothingIsSent() async throws {
        let client = try Client(configJson: #"{"services": {"echo": {"endpoints": ["\#(kit.upstreams[0])"]}}}"#)
        for deadline: Duration in [.milliseconds(-1), .seconds(31 * 24 * 3600), .seconds(Int64.max)] {
            do {
                _ = try await client.get("echo", "/", deadline: deadline)
                XCTFail("expected CourierError.Config for \(deadline)")
            } catch CourierError.Config(let field, _) {
                XCTAssertEqual(field, "deadline_ms")
            }
        }
        XCTAssertEqual(CourierDurations.milliseconds(.microseconds(2_999)), 2)
        XCTAssertEqual(CourierDurations.milliseconds(.seconds(Int64.min)), Int64.min)
        let count = try await kit.requestCount(0)
        XCTAssertEqual(count, 0)
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
        for try await delivery in consumer.deliveries(timeout: .milliseconds(10_000)) {
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
            for try await request in requests.deliveries(timeout: .milliseconds(10_000)) {
                try await request.reply(body: Data("echo: ".utf8) + request.body())
                try await request.ack()
                break
            }
            try await requests.close()
        }

        let reply = try await bus.request(routingKey: queue, body: Data("ping".utf8), timeout: .milliseconds(10_000))
        XCTAssertEqual(reply.body(), Data("echo: ping".utf8))
        try await serving.value
        try await bus.close()
    }

    func testPublishNoQueueTakesIsUnroutable() async throws {
        let bus = try await Bus.connect(configJson: #"{"urls": ["\#(url)"]}"#)
        do {
            _ = try await bus.publish(exchange: "", routingKey: "courier-test.swift.no-such-queue", body: Data("lost".utf8))
            XCTFail("expected CourierError.Unroutable")
        } catch CourierError.Unroutable(let detail, _, _, _, _) {
            XCTAssertTrue(detail.contains("unroutable"), detail)
        }
        try await bus.close()
    }
}
