import CourierKit
import Foundation
import XCTest

/// Delayed publishes (`delay`) and delayed retries (`retryDelays`) on RabbitMQ and
/// memory://. Delays are checked as lower bounds: a message may never arrive early.
final class DelayTests: XCTestCase {
    private var urls: [String] {
        [
            ProcessInfo.processInfo.environment["COURIER_AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/%2f",
            "memory://swift-delay-\(UUID().uuidString.lowercased())",
        ]
    }

    private func take(_ consumer: Consumer) async throws -> Delivery {
        let next = try await consumer.next(timeout: .milliseconds(5_000))
        return try XCTUnwrap(next, "a delivery within 5 s")
    }

    private func millis(since start: DispatchTime) -> UInt64 {
        (DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1_000_000
    }

    func testADelayedMessageIsOvertakenAndArrivesNoEarlierThanItsDelay() async throws {
        for url in urls {
            let bus = try await Bus.connect(configJson: #"{"urls": ["\#(url)"]}"#)
            let queue = "courier-test.swift.delayed.\(UUID().uuidString.lowercased())"
            try await bus.declareQueue(name: queue, options: QueueOptions(quorum: false, deadLetter: false))
            let sent = DispatchTime.now()
            let receipt = try await bus.publish(
                exchange: "", routingKey: queue, body: Data("later".utf8), options: PublishOptions(delay: .milliseconds(700))
            )
            _ = try await bus.publish(exchange: "", routingKey: queue, body: Data("now".utf8))
            let consumer = try await bus.consume(queue: queue)
            let first = try await take(consumer)
            XCTAssertEqual(first.body(), Data("now".utf8))
            try await first.ack()
            let later = try await take(consumer)
            XCTAssertGreaterThanOrEqual(millis(since: sent), 700)
            XCTAssertEqual(later.body(), Data("later".utf8))
            XCTAssertEqual(later.messageId(), receipt.messageId)
            try await later.ack()
            XCTAssertEqual(bus.stats().delayed, 1)
            try await consumer.close()
            try await bus.close()
        }
    }

    func testNacksComeBackAfterEachRetryDelayThenDeadLetter() async throws {
        for url in urls {
            let bus = try await Bus.connect(configJson: #"{"urls": ["\#(url)"]}"#)
            let queue = "courier-test.swift.retry.\(UUID().uuidString.lowercased())"
            try await bus.declareQueue(name: queue, options: QueueOptions(retryDelays: [.milliseconds(200), .milliseconds(400)]))
            _ = try await bus.publish(
                exchange: "", routingKey: queue, body: Data("flaky".utf8), options: PublishOptions(messageId: "order-1")
            )
            let consumer = try await bus.consume(queue: queue)
            var delivery = try await take(consumer)
            for (retry, delayMs) in [(1, UInt64(200)), (2, UInt64(400))] {
                let nacked = DispatchTime.now()
                try await delivery.nack(requeue: true)
                delivery = try await take(consumer)
                XCTAssertGreaterThanOrEqual(millis(since: nacked), delayMs)
                XCTAssertEqual(delivery.messageId(), "order-1")
                XCTAssertEqual(delivery.headers()["x-courier-retries"], String(retry))
                XCTAssertEqual(delivery.routingKey(), queue)
            }
            try await delivery.nack(requeue: true)
            let dead = try await bus.consume(queue: "\(queue).dlq")
            let parked = try await take(dead)
            XCTAssertEqual(parked.messageId(), "order-1")
            XCTAssertEqual(parked.headers()["x-courier-retries"], "2")
            try await parked.ack()
            let stats = bus.stats()
            XCTAssertEqual(stats.retried, 2)
            XCTAssertEqual(stats.nacked, 3)
            try await consumer.close()
            try await dead.close()
            try await bus.close()
        }
    }

    func testInvalidDelaysAreRefusedWithTheFieldNamed() async throws {
        let bus = try await Bus.connect(configJson: #"{"urls": ["memory://swift-delay-bad"]}"#)
        try await bus.declareQueue(name: "orders")
        do {
            try await bus.declareQueue(name: "retrying", options: QueueOptions(retryDelays: [.milliseconds(1_000), .milliseconds(0)]))
            XCTFail("a zero delay must be refused")
        } catch CourierError.Config(let field, _) {
            XCTAssertEqual(field, "retry_delays_ms[1]")
        }
        do {
            _ = try await bus.publish(
                exchange: "", routingKey: "orders", body: Data("x".utf8), options: PublishOptions(delay: .milliseconds(0))
            )
            XCTFail("a zero delay must be refused")
        } catch CourierError.Config(let field, _) {
            XCTAssertEqual(field, "delay_ms")
        }
        XCTAssertEqual(bus.stats().published, 0)
        try await bus.close()
    }
}
