import CourierKit
import Foundation
import XCTest

/// TLS through the binding: the `tls` section passes through as JSON; handshake failures
/// are `CourierError.Tls`.
final class TlsTests: XCTestCase {
    private var kit: Testkit!

    override func setUpWithError() throws {
        kit = try Testkit(upstreams: 0)
    }

    override func tearDown() {
        kit?.stop()
    }

    /// A config for the mTLS upstream; one attempt, so a handshake failure surfaces rather
    /// than being retried away.
    private func secure(_ tls: [String: String]) throws -> String {
        let mtls = try XCTUnwrap(kit.tlsUrls["mtls"], "the testkit names an mtls upstream")
        let service: [String: Any] = ["endpoints": [mtls], "retry": ["max_attempts": 1]]
        return try json(["services": ["secure": service], "tls": tls])
    }

    func testMutualTlsCallSucceeds() async throws {
        let client = try Client(configJson: secure(tlsConfig(kit.tlsDir)))
        defer { client.close() }

        let response = try await client.get("secure", "/over-tls")

        XCTAssertEqual(response.status, 200)
        XCTAssertTrue(response.text().contains("\"/over-tls\""), "the upstream echoes the path")
    }

    func testNoClientCertificateFailsWithTlsNamingIt() async throws {
        let client = try Client(configJson: secure(tlsConfig(kit.tlsDir, client: nil)))
        defer { client.close() }
        do {
            _ = try await client.get("secure", "/")
            XCTFail("expected CourierError.Tls")
        } catch CourierError.Tls(let detail, _) {
            XCTAssertTrue(detail.contains("client certificate"), detail)
            XCTAssertFalse(detail.contains("PRIVATE KEY"), detail)
        }
    }

    func testACertificateWithoutItsKeyIsAConfigErrorOnClientKeyPem() throws {
        var tls = try tlsConfig(kit.tlsDir)
        tls.removeValue(forKey: "client_key_pem")
        let config = try secure(tls)
        XCTAssertThrowsError(try Client(configJson: config)) { error in
            guard case CourierError.Config(let field, _) = error else {
                return XCTFail("expected CourierError.Config, got \(error)")
            }
            XCTAssertEqual(field, "tls.client_key_pem")
        }
    }

    func testAmqpsPublishAndConsumeWithAClientCertificate() async throws {
        let env = ProcessInfo.processInfo.environment
        guard let url = env["COURIER_AMQPS_URL"], !url.isEmpty else {
            throw XCTSkip("COURIER_AMQPS_URL is unset (tests/scripts/test-all.sh sets up RabbitMQ's TLS listener)")
        }
        let pki = env["COURIER_PKI_DIR"] ?? (NSHomeDirectory() + "/.cache/courier/pki")
        let tls = try tlsConfig(pki)
        let bus = try await Bus.connect(configJson: json(["urls": [url], "tls": tls]))
        let queue = "courier-test.swift.tls"
        try await bus.declareQueue(name: queue)
        let id = try await bus.publish(exchange: "", routingKey: queue, body: Data("over tls".utf8)).messageId

        let consumer = try await bus.consume(queue: queue)
        var mine: Delivery?
        // Messages left by an interrupted earlier run are acked away, not asserted on.
        for try await delivery in consumer.deliveries(timeout: .milliseconds(5_000)) {
            if delivery.messageId() == id {
                mine = delivery
                break
            }
            try await delivery.ack()
        }
        let delivery = try XCTUnwrap(mine, "the published message must arrive")
        XCTAssertEqual(delivery.body(), Data("over tls".utf8))
        try await delivery.ack()
        try await consumer.close()
        try await bus.close()
    }
}

/// The client side of a `tls` section from the PKI in `dir`: its CA, and `client`'s
/// certificate and key unless nil.
private func tlsConfig(_ dir: String, client: String? = "client") throws -> [String: String] {
    func read(_ name: String) throws -> String {
        try String(contentsOfFile: dir + "/" + name, encoding: .utf8)
    }
    let ca = try read("ca.pem")
    var tls = ["ca_pem": ca]
    if let client {
        tls["client_cert_pem"] = try read(client + ".pem")
        tls["client_key_pem"] = try read(client + ".key")
    }
    return tls
}

/// `value` as JSON text (JSONSerialization escapes the PEM's line breaks).
private func json(_ value: [String: Any]) throws -> String {
    try String(decoding: JSONSerialization.data(withJSONObject: value), as: UTF8.self)
}
