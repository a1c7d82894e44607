import CourierKit
import Foundation
import XCTest

/// The in-process broker (`memory://NAME`): no RabbitMQ needed. Broker names are
/// process-wide, so every test connects to a name of its own.
final class MemoryBusTests: XCTestCase {
    private let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    private func memoryURL(_ test: String) -> String {
        "memory://swift-\(test)-\(UUID().uuidString.lowercased())"
    }

    private func connect(_ url: String, extra: String = "") async throws -> Bus {
        let more = extra.isEmpty ? "" : ", \(extra)"
        return try await Bus.connect(configJson: #"{"urls": ["\#(url)"]\#(more)}"#)
    }

    /// Answers `count` requests from `server` in a task of their own (with `echo: <body>`
    /// and the request's `x-lang` header when `reply` is set, else not at all), acks each,
    /// then closes the server. The task's value is each request's reply-to address.
    ///
    /// A fixed count rather than cancelling the task, so the test joins it without
    /// depending on a close racing a pending `next()`.
    private func answer(_ server: Consumer, count: Int, reply: Bool) -> Task<[String?], Error> {
        Task {
            var replyTos: [String?] = []
            for try await request in server.deliveries(timeout: .milliseconds(10_000)) {
                replyTos.append(request.replyTo())
                if reply {
                    var headers: [String: String] = [:]
                    if let lang = request.headers()["x-lang"] { headers["x-lang"] = lang }
                    try await request.reply(body: Data("echo: ".utf8) + request.body(), headers: headers)
                }
                try await request.ack()
                if replyTos.count == count { break }
            }
            try await server.close()
            return replyTos
        }
    }

    func testPublishedMessageIsConsumedAndAcked() async throws {
        let bus = try await connect(memoryURL("roundtrip"))
        try await bus.declareQueue(name: "orders")
        let receipt = try await bus.publish(
            exchange: "", routingKey: "orders", body: Data("hello".utf8),
            options: PublishOptions(headers: ["x-lang": "swift"], correlationId: "c-1", deadline: .milliseconds(2_000))
        )
        let consumer = try await bus.consume(queue: "orders")
        let next = try await consumer.next(timeout: .milliseconds(5_000))
        let delivery = try XCTUnwrap(next, "the published message must arrive")
        XCTAssertEqual(delivery.messageId(), receipt.messageId)
        XCTAssertEqual(delivery.body(), Data("hello".utf8))
        XCTAssertEqual(delivery.headers()["x-lang"], "swift")
        XCTAssertEqual(delivery.correlationId(), "c-1")
        XCTAssertNil(delivery.replyTo(), "a published message is not a request")
        XCTAssertEqual(delivery.trace(), receipt.trace)
        do {
            try await delivery.reply(body: Data("no".utf8))
            XCTFail("expected CourierError.Config: only a request can be replied to")
        } catch CourierError.Config(let field, _) {
            XCTAssertEqual(field, "reply")
        }
        try await delivery.ack()
        try await consumer.close()

        let stats = bus.stats()
        XCTAssertEqual(stats.published, 1)
        XCTAssertEqual(stats.confirmed, 1)
        XCTAssertEqual(stats.delivered, 1)
        XCTAssertEqual(stats.acked, 1)
        try await bus.close()
    }

    func testMessageIdAlreadyAckedIsSkippedAndCountedAsDeduplicated() async throws {
        let bus = try await connect(memoryURL("dedup"))
        try await bus.declareQueue(name: "orders")
        for id in ["order-1", "order-1", "order-2"] {
            _ = try await bus.publish(
                exchange: "", routingKey: "orders", body: Data(id.utf8), options: PublishOptions(messageId: id)
            )
        }
        let consumer = try await bus.consume(queue: "orders", prefetch: 1)
        var seen: [String?] = []
        // The first copy is acked before the next pull, so the second is a known duplicate
        // there: core acks and skips it, and hands over order-2.
        for _ in 0..<2 {
            let next = try await consumer.next(timeout: .milliseconds(5_000))
            let delivery = try XCTUnwrap(next, "a delivery must arrive")
            seen.append(delivery.messageId())
            try await delivery.ack()
        }
        XCTAssertEqual(seen, ["order-1", "order-2"], "each message id reaches the application once")
        do {
            _ = try await consumer.next(timeout: .milliseconds(200))
            XCTFail("expected CourierError.Timeout: the duplicate was consumed by core")
        } catch CourierError.Timeout(_, _, _) {
        }
        try await consumer.close()

        let stats = bus.stats()
        XCTAssertEqual(stats.deduplicated, 1)
        XCTAssertEqual(stats.published, 3)
        XCTAssertEqual(stats.delivered, 2)
        XCTAssertEqual(stats.acked, 2)
        try await bus.close()
    }

    func testConsumerWithoutDedupSeesEveryCopy() async throws {
        let bus = try await connect(memoryURL("no-dedup"))
        try await bus.declareQueue(name: "orders")
        for _ in 0..<2 {
            _ = try await bus.publish(
                exchange: "", routingKey: "orders", body: Data("same".utf8), options: PublishOptions(messageId: "same")
            )
        }
        let consumer = try await bus.consume(queue: "orders", dedup: false)
        for _ in 0..<2 {
            let next = try await consumer.next(timeout: .milliseconds(5_000))
            let delivery = try XCTUnwrap(next, "a delivery must arrive")
            XCTAssertEqual(delivery.messageId(), "same")
            try await delivery.ack()
        }
        try await consumer.close()
        XCTAssertEqual(bus.stats().deduplicated, 0)
        try await bus.close()
    }

    func testRequestIsAnsweredByAServerTask() async throws {
        let url = memoryURL("rpc")
        // Two connections to one in-process broker, as a client and a server process would be.
        let server = try await connect(url)
        let client = try await connect(url)
        try await server.declareQueue(name: "pricing")
        let requests = try await server.serve(queue: "pricing")
        let serving = answer(requests, count: 2, reply: true)

        let reply = try await client.request(
            routingKey: "pricing", body: Data("quote".utf8),
            headers: ["x-lang": "swift"], trace: ["traceparent": traceparent]
        )
        XCTAssertEqual(reply.body(), Data("echo: quote".utf8))
        XCTAssertEqual(reply.headers()["x-lang"], "swift", "the server's reply headers arrive")
        XCTAssertNotNil(reply.correlationId(), "a reply carries its request's correlation id")
        let traceId = reply.trace()["traceparent"].map { String($0.split(separator: "-")[1]) }
        XCTAssertEqual(traceId, "4bf92f3577b34da6a3ce929d0e0e4736", "the reply continues the caller's trace")
        try await reply.ack() // a reply was settled by the broker: a no-op

        let second = try await client.request(routingKey: "pricing", body: Data("again".utf8), timeout: .milliseconds(2_000))
        XCTAssertEqual(second.body(), Data("echo: again".utf8))

        let replyTos = try await serving.value
        XCTAssertEqual(replyTos.count, 2)
        XCTAssertTrue(replyTos.allSatisfy { $0 != nil }, "every request carries a reply-to address")
        let stats = client.stats()
        XCTAssertEqual(stats.published, 2, "two requests")
        XCTAssertEqual(stats.rpcInFlight, 0, "no request is waiting any more")
        XCTAssertEqual(server.stats().acked, 2, "the server acked both requests")
        try await client.close()
        try await server.close()
    }

    func testRequestWhoseServerDoesNotReplyFailsWithTimeout() async throws {
        let bus = try await connect(memoryURL("rpc-timeout"))
        try await bus.declareQueue(name: "silent")
        let requests = try await bus.serve(queue: "silent")
        let serving = answer(requests, count: 1, reply: false)
        do {
            _ = try await bus.request(routingKey: "silent", body: Data("hello?".utf8), timeout: .milliseconds(300))
            XCTFail("expected CourierError.Timeout")
        } catch CourierError.Timeout(let detail, _, _) {
            XCTAssertTrue(detail.contains("request"), detail)
        }
        let replyTos = try await serving.value
        XCTAssertEqual(replyTos.count, 1, "the server got the request")
        XCTAssertEqual(bus.stats().rpcInFlight, 0, "a timed-out request is forgotten")
        try await bus.close()
    }

    func testRequestNoQueueTakesIsUnroutable() async throws {
        let bus = try await connect(memoryURL("rpc-unroutable"))
        do {
            _ = try await bus.request(routingKey: "nobody-home", body: Data("hello?".utf8), timeout: .milliseconds(2_000))
            XCTFail("expected CourierError.Unroutable")
        } catch CourierError.Unroutable(_, _, _, _, _) {
        }
        try await bus.close()
    }

    func testStatsStartAtZeroOnANewBus() async throws {
        let bus = try await connect(memoryURL("stats"), extra: #""dedup": {"store": "memory", "capacity": 10}"#)
        XCTAssertEqual(
            bus.stats(),
            BusStats(
                published: 0, confirmed: 0, resent: 0, returned: 0, publishRejected: 0,
                republished: 0, delivered: 0, acked: 0, nacked: 0, rejected: 0, redelivered: 0,
                deduplicated: 0, retried: 0, delayed: 0, expired: 0, rpcInFlight: 0, reconnects: 0
            )
        )
        try await bus.close()
    }

    func testClosedBusRefusesPublishesWithClosed() async throws {
        let bus = try await connect(memoryURL("closed"))
        try await bus.declareQueue(name: "orders")
        try await bus.close()
        do {
            _ = try await bus.publish(exchange: "", routingKey: "orders", body: Data("late".utf8))
            XCTFail("expected CourierError.Closed")
        } catch CourierError.Closed(_, _) {
        }
    }
}
