import CourierKit
import Foundation

/// The `courier-testkit` binary as a child process: fault-injecting HTTP upstreams and a
/// control API, the same ones every language's tests drive.
///
/// It prints one JSON line (`{"control": url, "upstreams": [url, ...], "otlp": url, "tls":
/// {"dir": path, "urls": {name: url, ...}}, ...}`) when ready and
/// exits when its stdin closes, which `stop()` does. The control API is driven with
/// courier's own `Client` (absolute-URL targets), so the tests need no URLSession, which
/// lives in FoundationNetworking on Linux.
final class Testkit {
    let control: String
    let upstreams: [String]
    /// The PKI directory of the HTTPS upstreams (`ca.pem`, `client.pem`, `client.key`, ...).
    let tlsDir: String
    /// HTTPS upstreams by name: `mtls`, `tls12`, `expired`, `wrong_san`, `other_ca`, `no_client_auth`.
    let tlsUrls: [String: String]
    /// The OTLP/HTTP receiver's base URL (`http://127.0.0.1:PORT`): exporters post to
    /// `/v1/traces` and `/v1/metrics`; `otlpSpans()` and `otlpMetrics()` read back what arrived.
    let otlp: String
    private let process: Process
    private let stdin: Pipe
    private let controlClient: Client

    /// `$COURIER_TESTKIT`, else `<cargo target dir>/debug/courier-testkit`.
    static var binary: String {
        let env = ProcessInfo.processInfo.environment
        if let path = env["COURIER_TESTKIT"] { return path }
        let target = env["CARGO_TARGET_DIR"] ?? (NSHomeDirectory() + "/.cache/courier/target")
        return target + "/debug/courier-testkit"
    }

    init(upstreams count: Int = 2) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: Testkit.binary)
        process.arguments = ["--upstreams", String(count)]
        stdin = Pipe()
        let stdout = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        try process.run()

        var line = Data()
        let reader = stdout.fileHandleForReading
        while !line.contains(UInt8(ascii: "\n")) {
            let chunk = reader.availableData
            if chunk.isEmpty { throw TestkitError.exited }
            line.append(chunk)
        }
        let ready = try JSONSerialization.jsonObject(with: line) as? [String: Any]
        guard let control = ready?["control"] as? String, let urls = ready?["upstreams"] as? [String] else {
            throw TestkitError.badReadyLine(String(decoding: line, as: UTF8.self))
        }
        let tls = ready?["tls"] as? [String: Any]
        guard let tlsDir = tls?["dir"] as? String, let tlsUrls = tls?["urls"] as? [String: String] else {
            throw TestkitError.badReadyLine(String(decoding: line, as: UTF8.self))
        }
        guard let otlp = ready?["otlp"] as? String else {
            throw TestkitError.badReadyLine(String(decoding: line, as: UTF8.self))
        }
        self.otlp = otlp
        self.control = control
        self.upstreams = urls
        self.tlsDir = tlsDir
        self.tlsUrls = tlsUrls
        self.controlClient = try Client(configJson: #"{"services": {}}"#)
    }

    /// PUTs a behaviour (`{"default": {...}, "script": [...]}`) for upstream `index`.
    func behave(_ index: Int, _ behaviorJson: String) async throws {
        _ = try await send("PUT", "/upstreams/\(index)/behavior", Data(behaviorJson.utf8))
    }

    /// How many requests upstream `index` received.
    func requestCount(_ index: Int) async throws -> Int {
        let log = try await send("GET", "/upstreams/\(index)/requests", nil)
        let json = try JSONSerialization.jsonObject(with: log) as? [String: Any]
        guard let total = json?["total"] as? Int else {
            throw TestkitError.badReply(String(decoding: log, as: UTF8.self))
        }
        return total
    }

    /// Requests upstream `index` received, counted by `Idempotency-Key` (requests without
    /// one are not counted).
    func idempotencyKeyCounts(_ index: Int) async throws -> [String: Int] {
        let log = try await send("GET", "/upstreams/\(index)/requests", nil)
        let json = try JSONSerialization.jsonObject(with: log) as? [String: Any]
        guard let counts = json?["by_idempotency_key"] as? [String: Int] else {
            throw TestkitError.badReply(String(decoding: log, as: UTF8.self))
        }
        return counts
    }

    /// Requests upstream `index` received, counted by method.
    func methodCounts(_ index: Int) async throws -> [String: Int] {
        let log = try await send("GET", "/upstreams/\(index)/requests", nil)
        let json = try JSONSerialization.jsonObject(with: log) as? [String: Any]
        guard let counts = json?["by_method"] as? [String: Int] else {
            throw TestkitError.badReply(String(decoding: log, as: UTF8.self))
        }
        return counts
    }

    /// Every span the OTLP receiver took so far, as OTLP JSON objects (`traceId`, `spanId`,
    /// `parentSpanId`, `name`, `kind`, `links`...), each with its `resource`.
    func otlpSpans() async throws -> [[String: Any]] {
        try await otlpItems("/spans")
    }

    /// Every metric the OTLP receiver took so far (`name`, `unit`, ...), as for `otlpSpans()`.
    func otlpMetrics() async throws -> [[String: Any]] {
        try await otlpItems("/metrics")
    }

    private func otlpItems(_ path: String) async throws -> [[String: Any]] {
        let data = try await send("GET", path, nil, to: otlp)
        guard let items = try JSONSerialization.jsonObject(with: data) as? [[String: Any]] else {
            throw TestkitError.badReply(String(decoding: data, as: UTF8.self))
        }
        return items
    }

    private func send(_ method: String, _ path: String, _ body: Data?, to base: String? = nil) async throws -> Data {
        let response = try await controlClient.call(request: Request(
            method: method, target: base ?? control, path: path,
            headers: ["content-type": "application/json"], body: body
        ))
        guard (200..<300).contains(Int(response.status)) else {
            throw TestkitError.badReply("\(method) \(path): \(response.status) \(response.text())")
        }
        return response.body
    }

    func stop() {
        try? stdin.fileHandleForWriting.close()
        process.waitUntilExit()
    }

    enum TestkitError: Error {
        case exited
        case badReadyLine(String)
        case badReply(String)
    }
}

/// `XCTUnwrap` for an awaited value: `try unwrapped(try await consumer.next(...))`.
/// XCTUnwrap's autoclosure cannot contain `await`.
func unwrapped<T>(
    _ value: T?, _ message: @autoclosure () -> String = "", file: StaticString = #filePath, line: UInt = #line
) throws -> T {
    try XCTUnwrap(value, message(), file: file, line: line)
}
