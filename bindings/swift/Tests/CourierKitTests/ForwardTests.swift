import CourierKit
import Foundation
import XCTest

/// `Delivery.forward`: the next workflow step under an id derived from the current one.
final class ForwardTests: XCTestCase {
    func testForwardHandsOnOnceUnderADerivedIdThenAcks() async throws {
        let bus = try await Bus.connect(configJson: #"{"urls": ["memory://swift-forward-\#(UUID().uuidString)"]}"#)
        try await bus.declareQueue(name: "packing")
        try await bus.declareQueue(name: "shipping")
        let receipt = try await bus.publish(
            exchange: "", routingKey: "packing", body: Data("order".utf8), options: PublishOptions(messageId: "order-1")
        )
        // A second copy stands for the redelivery after a crash between confirm and ack.
        _ = try await bus.publish(
            exchange: "", routingKey: "packing", body: Data("order".utf8),
            options: PublishOptions(messageId: "order-1", trace: receipt.trace)
        )
        let packing = try await bus.consume(queue: "packing", dedup: false)
        for _ in 0..<2 {
            let next = try await packing.next(timeout: .milliseconds(5_000))
            let delivery = try XCTUnwrap(next)
            let sent = try await delivery.forward(exchange: "", routingKey: "shipping", body: Data("box".utf8))
            // uuid5(namespace, "order-1\n\nshipping"), as docs/messaging.md derives it.
            XCTAssertEqual(sent.messageId, "2916467f-36c7-58ab-adee-382fbc7648a5")
            do {
                try await delivery.ack()
                XCTFail("forward acked it already")
            } catch CourierError.Closed(_, _) {}
        }
        try await packing.close()
        let shipping = try await bus.consume(queue: "shipping")
        let next = try await shipping.next(timeout: .milliseconds(5_000))
        let box = try XCTUnwrap(next)
        XCTAssertEqual(box.messageId(), "2916467f-36c7-58ab-adee-382fbc7648a5")
        do {
            _ = try await box.forward(
                exchange: "", routingKey: "packing", body: Data(), options: PublishOptions(messageId: "mine")
            )
            XCTFail("a forward's id is derived")
        } catch CourierError.Config(let field, _) {
            XCTAssertEqual(field, "message_id")
        }
        try await box.ack()
        do {
            _ = try await shipping.next(timeout: .milliseconds(300))
            XCTFail("the second copy is skipped")
        } catch CourierError.Timeout(_, _, _) {}
        XCTAssertEqual(bus.stats().deduplicated, 1)
        try await shipping.close()
        try await bus.close()
    }
}
