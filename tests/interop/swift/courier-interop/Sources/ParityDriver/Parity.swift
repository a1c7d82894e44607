// The Swift parity driver: runs the cases in the JSON files of tests/interop/cases through
// courier's Swift API, CourierKit, and prints one normalised outcome per case
// (tests/interop/PROTOCOL.md, "Parity suite"). Run it through
// tests/interop/swift/run.sh parity, which builds it.
//
//     ParityDriver CASES.json... --testkit-control URL --testkit-upstreams URL,URL,... --amqp URL
//
// One JSON object per line on stdout, {"case": name, "outcome": {...}}; logs on stderr.
// Every case, call and step is awaited in turn, as the other drivers run them.

import CourierKit
import Foundation
import InteropSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Bounds every control-API request; the testkit answers in milliseconds.
let controlDeadline: Duration = .seconds(10)

/// Exit code for a bad command line, as the agents use.
let usageExit: Int32 = 2

func logLine(_ message: String) {
    printLog("Parity.swift: \(message)")
}

struct DriverArgs {
    let files: [String]
    let control: String
    let upstreams: [String]
    let amqp: String

    static func parse(_ argv: [String]) throws -> DriverArgs {
        var files: [String] = []
        var options: [String: String] = [:]
        var i = 0
        while i < argv.count {
            let arg = argv[i]
            i += 1
            guard arg.hasPrefix("--") else {
                files.append(arg)
                continue
            }
            let name = String(arg.dropFirst(2))
            guard ["testkit-control", "testkit-upstreams", "amqp"].contains(name) else {
                throw Failure("unknown option \(arg)")
            }
            guard i < argv.count else { throw Failure("\(arg) needs a value") }
            options[name] = argv[i]
            i += 1
        }
        func take(_ name: String) throws -> String {
            guard let value = options[name] else { throw Failure("--\(name) is required") }
            return value
        }
        guard !files.isEmpty else { throw Failure("no cases files given") }
        return try DriverArgs(
            files: files,
            control: take("testkit-control"),
            upstreams: take("testkit-upstreams").split(separator: ",").map { String($0) },
            amqp: take("amqp")
        )
    }
}

/// The testkit's control API, driven with a courier `Client` of its own (absolute-URL
/// targets), as the Swift tests drive it: URLSession lives in FoundationNetworking on Linux.
/// Its failures are `Failure`s, never `CourierError`s, so a control request that fails ends
/// the case as a driver error and is never taken for a call's outcome.
final class Testkit {
    let control: String
    let upstreams: [String]
    private let client: Client

    init(control: String, upstreams: [String]) throws {
        self.control = control
        self.upstreams = upstreams
        client = try Client(configJson: #"{"services": {}}"#)
    }

    func send(_ method: String, _ path: String, _ body: JSON? = nil) async throws -> JSON? {
        let response: Response
        do {
            response = try await client.call(request: Request(
                method: method, target: control, path: path,
                headers: ["content-type": "application/json"], body: body?.data, deadline: controlDeadline
            ))
        } catch {
            throw Failure("testkit \(method) \(path): \(describe(error))")
        }
        guard (200..<300).contains(response.status) else {
            throw Failure("testkit \(method) \(path): \(response.status) \(response.text())")
        }
        return try response.body.isEmpty ? nil : JSON.parse(response.body)
    }

    /// Requests each of the first `count` upstreams has received so far.
    func totals(_ count: Int) async throws -> [Int64] {
        var totals: [Int64] = []
        for i in 0..<count {
            let path = "/upstreams/\(i)/requests"
            guard let answer = try await send("GET", path) else { throw Failure("testkit GET \(path): no body") }
            totals.append(try answer.requireInteger("total"))
        }
        return totals
    }
}

/// The case with every placeholder string (`{upstream:N}`, `{memory}`, `{amqp}`) replaced.
func substitute(_ value: JSON, _ names: [String: String]) -> JSON {
    switch value {
    case let .string(text):
        return names[text].map(JSON.string) ?? value
    case let .array(items):
        return .array(items.map { substitute($0, names) })
    case let .object(fields):
        return .object(fields.map { ($0.0, substitute($0.1, names)) })
    default:
        return value
    }
}

/// The kind code every language shares (`circuit_open`). CourierKit has no accessor for it
/// (Python and Node expose `kind`, Kotlin's is the exception class's name), so it is spelled
/// here, a case each: a variant added to `CourierError` breaks this switch at compile time.
func kind(of error: CourierError) -> String {
    switch error {
    case .Config: return "config"
    case .Timeout: return "timeout"
    case .CircuitOpen: return "circuit_open"
    case .BudgetExhausted: return "budget_exhausted"
    case .Overloaded: return "overloaded"
    case .RateLimited: return "rate_limited"
    case .NoEndpoint: return "no_endpoint"
    case .Connect: return "connect"
    case .Tls: return "tls"
    case .Unroutable: return "unroutable"
    case .PublishRejected: return "publish_rejected"
    case .Broker: return "broker"
    case .LimitExceeded: return "limit_exceeded"
    case .Closed: return "closed"
    case .Internal: return "internal"
    }
}

func outcome(of error: CourierError) -> [(String, JSON)] {
    if case let .Config(field, _) = error {
        return [("error", "config"), ("field", JSON(field))]
    }
    return [("error", JSON(kind(of: error)))]
}

/// Every counter under the snake_case name the other languages use.
func bySnakeName(_ stats: BusStats) -> [String: UInt64] {
    [
        "published": stats.published, "confirmed": stats.confirmed, "resent": stats.resent,
        "returned": stats.returned, "publish_rejected": stats.publishRejected,
        "republished": stats.republished, "delivered": stats.delivered,
        "acked": stats.acked, "nacked": stats.nacked, "rejected": stats.rejected,
        "redelivered": stats.redelivered, "deduplicated": stats.deduplicated,
        "retried": stats.retried, "delayed": stats.delayed, "expired": stats.expired,
        "rpc_in_flight": stats.rpcInFlight, "reconnects": stats.reconnects,
    ]
}

func trimmingSlashes(_ url: String) -> String {
    var url = Substring(url)
    while url.hasSuffix("/") {
        url = url.dropLast()
    }
    return String(url)
}

/// A publish step's `headers`: an object of strings, or none.
func headerMap(_ s: JSON) throws -> [String: String] {
    var headers: [String: String] = [:]
    for (name, value) in try s.optionalObject("headers") ?? [] {
        guard let text = value.stringValue else { throw Failure("header \(name) must be a string, got \(value.text)") }
        headers[name] = text
    }
    return headers
}

func httpRequest(_ call: JSON) throws -> Request {
    var headers: [String: String] = [:]
    for (name, value) in try call.optionalObject("headers") ?? [] {
        guard let text = value.stringValue else { throw Failure("header \(name) must be a string, got \(value.text)") }
        headers[name] = text
    }
    return try Request(
        method: call.requireString("method"),
        target: call.requireString("target"),
        path: call.optionalString("path") ?? "",
        headers: headers,
        body: call.optionalString("body").map { Data($0.utf8) },
        deadline: call.optionalMillis("deadline_ms"),
        idempotencyKey: call.optionalString("idempotency_key"),
        idempotent: call.optionalBool("idempotent") ?? false,
        version: call.optionalString("version")
    )
}

func runHttp(_ c: JSON, _ kit: Testkit) async throws -> JSON {
    let behaviors = try c.requireList("upstreams")
    _ = try await kit.send("POST", "/reset")
    for (i, behavior) in behaviors.enumerated() {
        _ = try await kit.send("PUT", "/upstreams/\(i)/behavior", behavior)
    }
    let urls = kit.upstreams.map(trimmingSlashes)
    let client = try Client(configJson: c.requireMember("config").text)
    defer { client.close() }
    var calls: [JSON] = []
    for call in try c.requireList("calls") {
        if let config = call.member("reconfigure") {
            var result: [(String, JSON)]
            do {
                try client.reconfigure(configJson: config.text)
                result = [("ok", .bool(true))]
            } catch let error as CourierError {
                result = outcome(of: error)
            }
            result.append(("requests", .array(behaviors.map { _ in JSON(0) })))
            calls.append(.object(result))
            continue
        }
        let request = try httpRequest(call)
        let before = try await kit.totals(behaviors.count)
        var result: [(String, JSON)]
        do {
            let response = try await client.call(request: request)
            let endpoint = trimmingSlashes(response.endpoint)
            result = [
                ("status", JSON(response.status)),
                ("attempts", JSON(response.attempts)),
                ("upstream", urls.firstIndex(of: endpoint).map { JSON($0) } ?? JSON(endpoint)),
            ]
        } catch let error as CourierError {
            result = outcome(of: error)
        }
        let after = try await kit.totals(behaviors.count)
        result.append(("requests", .array(zip(after, before).map { JSON($0 - $1) })))
        calls.append(.object(result))
    }
    return ["calls": .array(calls)]
}

enum Settle: String {
    case ack, reject, nack, forward
    case process
    case processFail = "process_fail"
}

/// What a `process_fail` step's handler throws inside `Delivery.process`.
struct HandlerFailed: Error {}

/// Takes deliveries until `next` times out after `wait_ms`, settling each as the step says,
/// then closes the consumer (on a failure too).
func consumeStep(_ bus: Bus, _ s: JSON) async throws -> JSON {
    let settleName = try s.requireString("settle")
    guard let settle = Settle(rawValue: settleName) else { throw Failure("unknown settle \(settleName)") }
    let wait: Duration = try s.requireMillis("wait_ms")
    let consumer = try await bus.consume(queue: s.requireString("queue"), dedup: s.requireBool("dedup"))
    var ids: [JSON] = []
    do {
        receiving: while true {
            let next: Delivery?
            do {
                next = try await consumer.next(timeout: wait)
            } catch CourierError.Timeout(_, _, _) {
                break receiving
            }
            guard let delivery = next else { throw Failure("the consumer closed") }
            ids.append(JSON(delivery.messageId()))
            switch settle {
            case .ack: try await delivery.ack()
            case .reject: try await delivery.reject()
            case .nack: try await delivery.nack(requeue: true)
            case .forward:
                _ = try await delivery.forward(
                    exchange: "", routingKey: s.requireString("forward_to"), body: delivery.body()
                )
            case .process:
                try await delivery.process { _ in }
            case .processFail:
                do {
                    try await delivery.process(requeue: false) { _ in throw HandlerFailed() }
                } catch is HandlerFailed {}
            }
        }
    } catch {
        try? await consumer.close()
        throw error
    }
    try await consumer.close()
    return ["message_ids": .array(ids)]
}

/// Takes batches of up to `max` until one comes back empty after `wait_ms`, settling each
/// batch with one call as the step says, then closes the consumer (on a failure too).
func consumeBatchesStep(_ bus: Bus, _ s: JSON) async throws -> JSON {
    let settleName = try s.requireString("settle")
    guard let settle = Settle(rawValue: settleName) else {
        throw Failure("unknown batch settle \(settleName)")
    }
    let wait: Duration = try s.requireMillis("wait_ms")
    let max: UInt32 = try s.requireInteger("max")
    let consumer = try await bus.consume(queue: s.requireString("queue"), dedup: s.requireBool("dedup"))
    var ids: [JSON] = []
    do {
        while true {
            guard let batch = try await consumer.nextBatch(max: max, timeout: wait) else {
                throw Failure("the consumer closed")
            }
            let deliveries = batch.deliveries()
            if deliveries.isEmpty { break }
            ids += deliveries.map { JSON($0.messageId()) }
            switch settle {
            case .ack: try await batch.ack()
            case .reject: try await batch.reject()
            case .nack: try await batch.nack(requeue: true)
            case .forward, .process, .processFail: throw Failure("\(settle.rawValue) is not a batch settle")
            }
        }
    } catch {
        try? await consumer.close()
        throw error
    }
    try await consumer.close()
    return ["message_ids": .array(ids)]
}

/// A control-API request (cutting the bus's connection through a proxy). Its `body`, when
/// present, is the request's JSON, not a message body; an answer other than 2xx is a
/// `Failure`, which ends the case as a driver error.
func testkitStep(_ kit: Testkit, _ s: JSON) async throws -> JSON {
    var body = s.member("body")
    if case .some(.null) = body {
        body = nil
    }
    _ = try await kit.send(s.requireString("method"), s.requireString("path"), body)
    return ["ok": true]
}

func step(_ bus: Bus, _ kit: Testkit, _ s: JSON) async throws -> JSON {
    let op = try s.requireString("op")
    if op == "testkit" {
        return try await testkitStep(kit, s)
    }
    let exchange = try s.optionalString("exchange") ?? ""
    let body = try Data((s.optionalString("body") ?? "").utf8)
    switch op {
    case "declare_queue":
        let delays: [Duration] = try s.member("retry_delays_ms").map { _ in
            try s.requireList("retry_delays_ms").map { delay in
                guard case let .number(text) = delay, let ms = Int64(text) else {
                    throw Failure("retry_delays_ms must list integers, got \(delay.text)")
                }
                return .milliseconds(ms)
            }
        } ?? []
        try await bus.declareQueue(name: s.requireString("queue"), options: QueueOptions(retryDelays: delays))
    case "publish":
        _ = try await bus.publish(
            exchange: exchange, routingKey: s.requireString("routing_key"), body: body,
            options: PublishOptions(
                headers: headerMap(s), messageId: s.optionalString("message_id"),
                delay: s.optionalMillis("delay_ms"), ttl: s.optionalMillis("ttl_ms")
            )
        )
    case "publish_many":
        let messages = try s.requireList("messages").map { m in
            try BatchMessage(
                exchange: m.optionalString("exchange") ?? "", routingKey: m.requireString("routing_key"),
                body: Data((m.optionalString("body") ?? "").utf8),
                options: PublishOptions(messageId: m.optionalString("message_id"))
            )
        }
        let results = try await bus.publishMany(messages: messages).map { result -> JSON in
            switch result {
            case .confirmed: return ["ok": true]
            case .failed(let error): return .object(outcome(of: error))
            }
        }
        return ["results": .array(results)]
    case "request":
        _ = try await bus.request(
            routingKey: s.requireString("routing_key"), body: body, exchange: exchange,
            timeout: s.requireMillis("timeout_ms")
        )
    case "consume":
        return try await consumeStep(bus, s)
    case "consume_batches":
        return try await consumeBatchesStep(bus, s)
    case "stats":
        let stats = bySnakeName(bus.stats())
        let fields = try s.requireList("fields").map { field -> (String, JSON) in
            guard let name = field.stringValue, let value = stats[name] else {
                throw Failure("no bus counter \(field.text)")
            }
            return (name, JSON(value))
        }
        return .object(fields)
    default:
        throw Failure("unknown op \(op)")
    }
    return ["ok": true]
}

func runBus(_ c: JSON, _ kit: Testkit) async throws -> JSON {
    let steps = try c.requireList("steps")
    let bus = try await Bus.connect(configJson: c.requireMember("config").text)
    var outcomes: [JSON] = []
    do {
        for s in steps {
            do {
                outcomes.append(try await step(bus, kit, s))
            } catch let error as CourierError {
                outcomes.append(.object(outcome(of: error)))
            }
        }
    } catch {
        // Anything but a courier error ends the case as a driver error; the bus closes anyway.
        try? await bus.close()
        throw error
    }
    try await bus.close()
    return ["steps": .array(outcomes)]
}

func runConfig(_ c: JSON) async throws -> JSON {
    let config = try c.requireMember("config").text
    let target = try c.requireString("target")
    do {
        switch target {
        case "client":
            try Client(configJson: config).close()
        case "bus":
            try await Bus.connect(configJson: config).close()
        default:
            throw Failure("unknown target \(target)")
        }
    } catch let error as CourierError {
        return .object(outcome(of: error))
    }
    return ["ok": true]
}

/// The outcome of one case; whatever escapes it other than through a call or a step is its
/// `driver_error`, and the next case still runs.
func run(_ raw: JSON, _ args: DriverArgs, _ kit: Testkit) async -> JSON {
    var names = [
        "{memory}": "memory://parity-swift-\(UUID().uuidString.lowercased())",
        "{amqp}": args.amqp,
    ]
    for (i, url) in args.upstreams.enumerated() {
        names["{upstream:\(i)}"] = url
    }
    let c = substitute(raw, names)
    do {
        switch try c.requireString("kind") {
        case "http": return try await runHttp(c, kit)
        case "bus": return try await runBus(c, kit)
        case "config": return try await runConfig(c)
        case let kind: throw Failure("unknown kind \(kind)")
        }
    } catch {
        return ["driver_error": JSON(describe(error))]
    }
}

@main
enum Parity {
    static func main() async {
        let args: DriverArgs
        do {
            args = try DriverArgs.parse(Array(CommandLine.arguments.dropFirst()))
        } catch {
            logLine("\(error)")
            exit(usageExit)
        }
        do {
            let kit = try Testkit(control: args.control, upstreams: args.upstreams)
            for file in args.files {
                let cases = try JSON.parse(Data(contentsOf: URL(fileURLWithPath: file))).requireList("cases")
                for raw in cases {
                    let result = await run(raw, args, kit)
                    printLine(["case": raw.member("name") ?? .null, "outcome": result])
                }
            }
        } catch {
            logLine(describe(error))
            exit(1)
        }
    }
}
