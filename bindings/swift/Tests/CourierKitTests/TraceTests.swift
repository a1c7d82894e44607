import CourierKit
import Foundation
import XCTest

/// `TraceContext` (core's W3C context) and `trace` carriers on publishes, requests and calls.
/// Swift has no host OpenTelemetry API to read, so a parent is always passed explicitly.
final class TraceTests: XCTestCase {
    private let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    private let traceId = "4bf92f3577b34da6a3ce929d0e0e4736"

    private func memoryBus(_ test: String) async throws -> Bus {
        let url = "memory://swift-trace-\(test)-\(UUID().uuidString.lowercased())"
        return try await Bus.connect(configJson: #"{"urls": ["\#(url)"]}"#)
    }

    func testTraceContextRoundTripsThroughItsCarrier() throws {
        let ctx = try TraceContext.parse(traceparent: traceparent, tracestate: "vendor=abc")
        XCTAssertEqual(ctx.traceId(), traceId)
        XCTAssertEqual(ctx.spanId(), "00f067aa0ba902b7")
        XCTAssertTrue(ctx.sampled())
        XCTAssertEqual(ctx.tracestate(), "vendor=abc")
        XCTAssertEqual(ctx.description, traceparent)
        let carrier = ctx.toCarrier()
        XCTAssertEqual(carrier, ["traceparent": traceparent, "tracestate": "vendor=abc"])
        let again = try TraceContext.parse(traceparent: carrier["traceparent"]!, tracestate: carrier["tracestate"])
        XCTAssertEqual(again, ctx, "same ids, flags and tracestate")
        XCTAssertEqual(again.hashValue, ctx.hashValue)
        XCTAssertEqual(TraceContext.fromCarrier(carrier: carrier), ctx)

        let child = ctx.child()
        XCTAssertEqual(child.traceId(), ctx.traceId())
        XCTAssertNotEqual(child.spanId(), ctx.spanId())
        let root = TraceContext.newRoot()
        XCTAssertEqual(root.traceId().count, 32)
        XCTAssertNil(root.tracestate())
        XCTAssertEqual(try TraceContext.parse(traceparent: root.traceparent()), root)
    }

    func testInvalidTraceparentIsAConfigErrorNamingIt() {
        do {
            _ = try TraceContext.parse(traceparent: "00-bad")
            XCTFail("expected CourierError.Config")
        } catch CourierError.Config(let field, _) {
            XCTAssertEqual(field, "traceparent")
        } catch {
            XCTFail("expected CourierError.Config, got \(error)")
        }
    }

    func testTraceContextIsTheParentOfAPublishAndARequest() async throws {
        let bus = try await memoryBus("parent")
        try await bus.declareQueue(name: "orders")
        let parent = try TraceContext.parse(traceparent: traceparent)
        let receipt = try await bus.publish(
            exchange: "", routingKey: "orders", body: Data("x".utf8),
            options: PublishOptions(trace: parent.toCarrier())
        )
        XCTAssertEqual(receipt.traceContext().traceId(), traceId, "the message continues the parent's trace")
        XCTAssertNotEqual(receipt.traceContext().spanId(), parent.spanId(), "the message is a child span")
        let consumer = try await bus.consume(queue: "orders")
        let next = try await consumer.next(timeout: .milliseconds(5_000))
        let delivery = try XCTUnwrap(next, "the published message must arrive")
        XCTAssertEqual(delivery.traceContext(), receipt.traceContext())
        try await delivery.ack()
        try await consumer.close()

        try await bus.declareQueue(name: "pricing")
        let server = try await bus.serve(queue: "pricing")
        let serving = Task { () async throws -> TraceContext? in
            let request = try await server.next(timeout: .milliseconds(5_000))
            try await request?.reply(body: Data("ok".utf8))
            try await request?.ack()
            return request?.traceContext()
        }
        let reply = try await bus.request(
            routingKey: "pricing", body: Data("q".utf8), trace: parent.child().toCarrier()
        )
        let served = try await serving.value
        XCTAssertEqual(served?.traceId(), traceId, "the server sees the caller's trace")
        XCTAssertEqual(reply.traceContext().traceId(), traceId, "the reply continues it")
        try await server.close()
        try await bus.close()
    }
}
