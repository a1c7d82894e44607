// The Swift interop agent: plays one role (publish, consume or serve) of an interop scenario
// through courier's Swift API, CourierKit, exactly as tests/interop/PROTOCOL.md specifies.
// Run it through tests/interop/swift/run.sh, which builds it.
//
//     InteropAgent ROLE --bus URL --run ID [options]
//       publish --count N [--duplicates D]
//       consume --expect N --duplicates D
//       serve   --http URL --expect N
//       every role: [--max-ms MS] (default 120000)
//
// One JSON object per line on stdout, the last one {"event": "done", ...}; logs on stderr.
// Exit code 0 on success, 1 on failure, 2 for a bad command line, as the other agents.

import CourierKit
import Dispatch
import Foundation
import InteropSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Orders worked on at once by publish, consume and serve.
let inFlight = 16

/// How long one `next()` waits before the loop checks again whether it may stop.
let poll: Duration = .milliseconds(100)

/// The consumer's RPC timeout, from the protocol.
let rpcTimeout: Duration = .seconds(10)

/// The consumer's prefetch, from the protocol.
let prefetch: UInt16 = 50

let defaultMaxMs = 120_000

/// Kept out of `--max-ms` for the graceful end (closing the consumer and the bus), so the
/// soft deadline fails with a message before the watchdog has to end the process.
let shutdownMarginMs = 2_000

/// Exit code for a bad command line, as the other agents use.
let usageExit: Int32 = 2

let numeric: Set<String> = ["count", "duplicates", "expect", "max-ms"]

enum Role: String, CaseIterable {
    case publish, consume, serve

    /// What the role must be given besides `--bus` and `--run`.
    var needs: [String] {
        switch self {
        case .publish: return ["count"]
        case .consume: return ["expect", "duplicates"]
        case .serve: return ["http", "expect"]
        }
    }

    /// What the role may be given, with the default.
    var defaults: [String: Int] {
        self == .publish ? ["duplicates": 0] : [:]
    }
}

struct UsageError: Error, CustomStringConvertible {
    let description: String
}

struct Options: Sendable {
    let role: Role
    private let texts: [String: String]
    private let numbers: [String: Int]

    func text(_ name: String) -> String {
        texts[name] ?? ""
    }

    func number(_ name: String) -> Int {
        numbers[name] ?? 0
    }

    /// `ROLE --name value ...`; the role's required options must be there, no others.
    static func parse(_ args: [String]) throws -> Options {
        guard let first = args.first, let role = Role(rawValue: first) else {
            let roles = Role.allCases.map(\.rawValue).joined(separator: ", ")
            throw UsageError(description: "unknown role \(args.first ?? "(none)"); expected one of \(roles)")
        }
        let label = role.rawValue
        let known = Set(["bus", "run", "max-ms"] + role.needs).union(role.defaults.keys)
        var texts: [String: String] = [:]
        var numbers = role.defaults.merging(["max-ms": defaultMaxMs]) { given, _ in given }
        var seen: Set<String> = []
        var i = 1
        while i < args.count {
            let flag = args[i]
            let name = String(flag.dropFirst(2))
            guard flag.hasPrefix("--"), known.contains(name) else {
                throw UsageError(description: "\(label): unknown option \(flag)")
            }
            guard i + 1 < args.count else { throw UsageError(description: "\(label): \(flag) needs a value") }
            let value = args[i + 1]
            i += 2
            if numeric.contains(name) {
                guard let number = Int(value), number >= 0 else {
                    throw UsageError(description: "\(label): --\(name) must be a non-negative integer, got \(value)")
                }
                numbers[name] = number
            } else {
                texts[name] = value
            }
            seen.insert(name)
        }
        for name in ["bus", "run"] + role.needs where !seen.contains(name) {
            throw UsageError(description: "\(label): --\(name) is required")
        }
        let options = Options(role: role, texts: texts, numbers: numbers)
        if role == .publish, options.number("duplicates") > options.number("count") {
            throw UsageError(
                description: "publish: --duplicates \(options.number("duplicates")) exceeds --count \(options.number("count"))"
            )
        }
        return options
    }
}

/// The run's exchange and queues: the run id keeps runs apart on a shared broker.
struct Names: Sendable {
    let exchange: String
    let orders: String
    let pricing: String

    init(run: String) {
        exchange = "interop.\(run).orders"
        orders = "interop.\(run).orders"
        pricing = "interop.\(run).pricing"
    }
}

/// `--max-ms` passed while a consumer or server was still waiting for orders.
struct DeadlinePassed: Error {}

func logLine(_ message: String) {
    printLog("Agent.swift: \(message)")
}

func monotonicMs() -> UInt64 {
    DispatchTime.now().uptimeNanoseconds / 1_000_000
}

/// What a role has done so far, shared by its concurrent handlers: the orders handled and
/// the lines printed for them (the `done` count, and the message when `--max-ms` runs out),
/// and for consume and serve the handlers running.
actor RunProgress {
    private let verb: String
    private let expect: Int
    private var orders: Set<Int> = []
    private(set) var lines = 0
    private(set) var running = 0

    init(verb: String, expect: Int) {
        self.verb = verb
        self.expect = expect
    }

    /// Counts `order` as handled and prints its line; in the actor, so lines never interleave.
    func record(_ order: Int, _ line: JSON) {
        orders.insert(order)
        lines += 1
        printLine(line)
    }

    func started() {
        running += 1
    }

    func finished() {
        running -= 1
    }

    /// Whether a consumer or server has done its orders: every expected one handled and
    /// nothing in flight.
    func settled() -> Bool {
        orders.count >= expect && running == 0
    }

    var summary: String {
        "\(verb) \(orders.count) of \(expect) orders"
    }
}

/// A body such as `{"order": 3}`.
func orderBody(_ order: Int) -> Data {
    JSON.object([("order", JSON(order))]).data
}

func orderOf(_ body: Data) throws -> Int {
    try JSON.parse(body).requireInteger("order")
}

/// Declares the orders exchange, queue and binding; idempotent, so every role may do it.
func declareOrders(_ bus: Bus, _ names: Names) async throws {
    try await bus.declareExchange(name: names.exchange, kind: "topic")
    try await bus.declareQueue(name: names.orders)
    try await bus.bind(queue: names.orders, exchange: names.exchange, routingKey: "order.placed")
}

/// Runs `body(i)` for every `i` in `0..<count`, at most `inFlight` at once.
func forEachIndex(_ count: Int, _ body: @escaping @Sendable (Int) async throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        for i in 0..<count {
            if i >= inFlight {
                _ = try await group.next()
            }
            group.addTask { try await body(i) }
        }
        try await group.waitForAll()
    }
}

func publish(_ options: Options, _ bus: Bus, _ progress: RunProgress) async throws {
    let names = Names(run: options.text("run"))
    let count = options.number("count")
    let duplicates = options.number("duplicates")
    try await declareOrders(bus, names)
    // Each order's root, kept for its duplicate, which must carry the same trace.
    let roots = (0..<count).map { _ in TraceContext.newRoot().toCarrier() }
    @Sendable func send(_ i: Int) async throws -> Receipt {
        try await bus.publish(
            exchange: names.exchange, routingKey: "order.placed", body: orderBody(i),
            options: PublishOptions(messageId: "order-\(i)", trace: roots[i])
        )
    }
    try await forEachIndex(count) { i in
        let receipt = try await send(i)
        await progress.record(i, [
            "event": "published", "order": JSON(i), "message_id": JSON(receipt.messageId),
            "trace_id": JSON(receipt.traceContext().traceId()),
        ])
    }
    // Only after every first copy is confirmed, so each duplicate queues behind its original.
    try await forEachIndex(duplicates) { i in
        _ = try await send(i)
    }
    printLine(["event": "done", "published": JSON(count + duplicates)])
}

/// Hands deliveries to `handle`, at most `inFlight` at once, until `progress` has reached
/// `--expect` distinct orders, nothing is in flight, and `caughtUp()` holds. A handler that
/// fails is logged and its delivery returned to the queue, so a transient failure is
/// retried; the order counts only once it succeeds. Throws `DeadlinePassed` at `deadline`.
func drain(
    _ consumer: Consumer, _ progress: RunProgress, deadline: UInt64,
    caughtUp: @escaping @Sendable () -> Bool,
    handle: @escaping @Sendable (Delivery) async throws -> Void
) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        while true {
            if await progress.settled(), caughtUp() {
                break
            }
            if monotonicMs() >= deadline {
                throw DeadlinePassed()
            }
            // Every slot busy: wait for a handler to end (handlers never throw).
            while await progress.running >= inFlight {
                _ = try await group.next()
            }
            let next: Delivery?
            do {
                next = try await consumer.next(timeout: poll)
            } catch CourierError.Timeout(_, _, _) {
                continue
            }
            guard let delivery = next else {
                throw Failure("the consumer was closed before the run ended")
            }
            await progress.started()
            group.addTask {
                do {
                    try await handle(delivery)
                } catch {
                    let id = delivery.messageId() ?? "without an id"
                    logLine("message \(id): \(describe(error)); returning it to the queue")
                    do {
                        try await delivery.nack(requeue: true)
                    } catch {
                        logLine("nack \(id): \(describe(error))")
                    }
                }
                await progress.finished()
            }
        }
    }
}

func consume(_ options: Options, _ bus: Bus, _ progress: RunProgress, deadline: UInt64) async throws {
    let names = Names(run: options.text("run"))
    try await declareOrders(bus, names)
    // Declared here too, so requests sent before the server is up are queued, not unroutable.
    try await bus.declareQueue(name: names.pricing)
    let consumer = try await bus.consume(queue: names.orders, prefetch: prefetch)
    let duplicates = UInt64(options.number("duplicates"))
    // Dedup skips the publisher's duplicates inside `next()`: stopping before every one was
    // skipped would leave a late copy unseen.
    let skippedAll: @Sendable () -> Bool = { bus.stats().deduplicated >= duplicates }
    try await drain(consumer, progress, deadline: deadline, caughtUp: skippedAll) { d in
        let order = try orderOf(d.body())
        let reply = try await bus.request(
            routingKey: names.pricing, body: orderBody(order), timeout: rpcTimeout, trace: d.trace()
        )
        // Reported as the server sent it, whatever JSON it is.
        let price = try JSON.parse(reply.body()).requireMember("price")
        try await d.ack()
        await progress.record(order, [
            "event": "processed", "order": JSON(order), "message_id": JSON(d.messageId()),
            "trace_id": JSON(d.traceContext().traceId()), "price": price,
            "reply_trace_id": JSON(reply.traceContext().traceId()),
        ])
    }
    try await consumer.close()
    let processed = await progress.lines
    printLine(["event": "done", "processed": JSON(processed)])
}

func serve(_ options: Options, _ bus: Bus, _ progress: RunProgress, deadline: UInt64) async throws {
    let names = Names(run: options.text("run"))
    try await bus.declareQueue(name: names.pricing)
    let config: JSON = ["services": ["upstream": ["endpoints": [JSON(options.text("http"))]]]]
    let client = try Client(configJson: config.text)
    defer { client.close() }
    let server = try await bus.serve(queue: names.pricing)
    // Duplicates never reach the server (the consumer skips them): nothing follows the last order.
    try await drain(server, progress, deadline: deadline, caughtUp: { true }) { d in
        let order = try orderOf(d.body())
        // `call` rather than CourierKit's `get`, which takes no trace.
        let response = try await client.call(request: Request(
            method: "GET", target: "upstream", path: "/price/\(order)", trace: d.trace()
        ))
        try await d.reply(body: JSON.object([("order", JSON(order)), ("price", JSON(order * 10 + 1))]).data)
        try await d.ack()
        await progress.record(order, [
            "event": "served", "order": JSON(order), "trace_id": JSON(d.traceContext().traceId()),
            "http_status": JSON(response.status), "http_attempts": JSON(response.attempts),
        ])
    }
    try await server.close()
    let served = await progress.lines
    printLine(["event": "done", "served": JSON(served)])
}

/// The hard bound: whatever hangs, the process is gone after `ms`. uniffi's Swift bindings do
/// not forward task cancellation, so a call stuck in core cannot be cancelled, only left.
/// `_exit`, like the JVM's halt in Agent.kt: stdout has no buffer to flush (every line is one
/// write), and nothing that hangs can hold it up.
func startWatchdog(_ role: Role, ms: Int) {
    DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(ms)) {
        logLine("\(role.rawValue): gave up after --max-ms; exiting")
        _exit(1)
    }
}

@main
enum Agent {
    static func main() async {
        let started = monotonicMs()
        let options: Options
        do {
            options = try Options.parse(Array(CommandLine.arguments.dropFirst()))
        } catch {
            logLine("\(error)")
            exit(usageExit)
        }
        let role = options.role
        let maxMs = options.number("max-ms")
        startWatchdog(role, ms: maxMs)
        let deadline = started + UInt64(maxMs - min(shutdownMarginMs, maxMs / 10))
        let progress: RunProgress
        switch role {
        case .publish: progress = RunProgress(verb: "published", expect: options.number("count"))
        case .consume: progress = RunProgress(verb: "processed", expect: options.number("expect"))
        case .serve: progress = RunProgress(verb: "served", expect: options.number("expect"))
        }
        do {
            let config: JSON = ["urls": [JSON(options.text("bus"))]]
            let bus = try await Bus.connect(configJson: config.text)
            switch role {
            case .publish: try await publish(options, bus, progress)
            case .consume: try await consume(options, bus, progress, deadline: deadline)
            case .serve: try await serve(options, bus, progress, deadline: deadline)
            }
            try await bus.close()
        } catch is DeadlinePassed {
            let summary = await progress.summary
            logLine("\(role.rawValue): --max-ms \(maxMs) passed with \(summary)")
            exit(1)
        } catch {
            let summary = await progress.summary
            logLine("\(role.rawValue) failed (\(summary)): \(describe(error))")
            exit(1)
        }
    }
}
