// What the Swift agent and parity driver share: a small JSON value, its reader and writer,
// and the stdout/stderr lines of tests/interop/PROTOCOL.md.
//
// Not Foundation's JSONSerialization: it forgets the order of an object's keys, and on Apple
// platforms reads 1 as true and true as 1 (both NSNumber), while parity.py compares outcomes
// type for type. Numbers keep the text they were read with, so a config reaches core as the
// case file spells it and an integer is written back as the same integer.

import Foundation

/// A JSON value; an object keeps its keys in order.
public enum JSON: Sendable {
    case null
    case bool(Bool)
    /// The number as written (`3`, `0.0`, `2592000001`).
    case number(String)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    public init<T: BinaryInteger>(_ value: T) {
        self = .number(String(value))
    }

    /// A string, or null for nil.
    public init(_ value: String?) {
        self = value.map(JSON.string) ?? .null
    }

    public static func parse(_ data: Data) throws -> JSON {
        var reader = Reader(data)
        let value = try reader.value()
        try reader.end()
        return value
    }

    /// The compact JSON text.
    public var text: String {
        var out = ""
        write(into: &out)
        return out
    }

    public var data: Data {
        Data(text.utf8)
    }

    public var stringValue: String? {
        if case let .string(value) = self { return value }
        return nil
    }

    private func write(into out: inout String) {
        switch self {
        case .null:
            out += "null"
        case let .bool(value):
            out += value ? "true" : "false"
        case let .number(text):
            out += text
        case let .string(value):
            JSON.quote(value, into: &out)
        case let .array(items):
            out += "["
            for (n, item) in items.enumerated() {
                if n > 0 { out += "," }
                item.write(into: &out)
            }
            out += "]"
        case let .object(fields):
            out += "{"
            for (n, (key, value)) in fields.enumerated() {
                if n > 0 { out += "," }
                JSON.quote(key, into: &out)
                out += ":"
                value.write(into: &out)
            }
            out += "}"
        }
    }

    private static func quote(_ value: String, into out: inout String) {
        out += "\""
        for c in value.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if c.value < 0x20 {
                    let hex = String(c.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(c)
                }
            }
        }
        out += "\""
    }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(stringLiteral value: String) {
        self = .string(value)
    }

    public init(integerLiteral value: Int) {
        self = .number(String(value))
    }

    public init(booleanLiteral value: Bool) {
        self = .bool(value)
    }

    public init(arrayLiteral elements: JSON...) {
        self = .array(elements)
    }

    /// Keeps the literal's order, as the other languages print their objects.
    public init(dictionaryLiteral elements: (String, JSON)...) {
        self = .object(elements)
    }
}

/// Reading the cases and message bodies: each accessor names the key it wanted, so malformed
/// data ends as a readable `driver_error`. An optional member may be absent or null.
extension JSON {
    /// The member `key` of an object as written, null included; nil when absent.
    public func member(_ key: String) -> JSON? {
        guard case let .object(fields) = self else { return nil }
        return fields.first { $0.0 == key }?.1
    }

    public func requireMember(_ key: String) throws -> JSON {
        guard let value = member(key) else { throw Failure("\"\(key)\" is missing") }
        return value
    }

    public func requireString(_ key: String) throws -> String {
        guard let value = try optionalString(key) else { throw Failure("\"\(key)\" must be a string") }
        return value
    }

    public func optionalString(_ key: String) throws -> String? {
        guard let value = present(key) else { return nil }
        guard let text = value.stringValue else { throw Failure("\"\(key)\" must be a string, got \(value.text)") }
        return text
    }

    public func requireInteger<T: FixedWidthInteger>(_ key: String) throws -> T {
        guard let value: T = try optionalInteger(key) else { throw Failure("\"\(key)\" must be an integer") }
        return value
    }

    public func optionalInteger<T: FixedWidthInteger>(_ key: String) throws -> T? {
        guard let value = present(key) else { return nil }
        guard case let .number(text) = value, let number = T(text, radix: 10) else {
            throw Failure("\"\(key)\" must be an integer within \(T.self), got \(value.text)")
        }
        return number
    }

    /// A duration given in whole milliseconds, as the cases write it (`"wait_ms": 300`).
    public func optionalMillis(_ key: String) throws -> Duration? {
        try optionalInteger(key).map { (ms: Int64) in .milliseconds(ms) }
    }

    public func requireMillis(_ key: String) throws -> Duration {
        .milliseconds(try requireInteger(key) as Int64)
    }

    public func requireBool(_ key: String) throws -> Bool {
        guard case let .bool(value)? = present(key) else { throw Failure("\"\(key)\" must be a boolean") }
        return value
    }

    public func optionalBool(_ key: String) throws -> Bool? {
        guard let value = present(key) else { return nil }
        guard case let .bool(flag) = value else { throw Failure("\"\(key)\" must be a boolean, got \(value.text)") }
        return flag
    }

    public func requireList(_ key: String) throws -> [JSON] {
        guard case let .array(items)? = present(key) else { throw Failure("\"\(key)\" must be a list") }
        return items
    }

    public func optionalObject(_ key: String) throws -> [(String, JSON)]? {
        guard let value = present(key) else { return nil }
        guard case let .object(fields) = value else { throw Failure("\"\(key)\" must be an object, got \(value.text)") }
        return fields
    }

    private func present(_ key: String) -> JSON? {
        guard let value = member(key) else { return nil }
        if case .null = value { return nil }
        return value
    }
}

/// A failure of the agent or driver itself (malformed data, a testkit that does not answer),
/// never a `CourierError`, so it cannot pass for a call's or a step's outcome.
public struct Failure: Error, CustomStringConvertible {
    public let description: String

    public init(_ description: String) {
        self.description = description
    }
}

/// `Type: message`, as the other languages report an error in a log line or a `driver_error`.
public func describe(_ error: Error) -> String {
    "\(type(of: error)): \(error)"
}

/// Prints `value` as one line on stdout, in one write, so lines never interleave and none
/// waits in a buffer when the process ends.
public func printLine(_ value: JSON) {
    FileHandle.standardOutput.write(Data((value.text + "\n").utf8))
}

/// One line on stderr, where every log goes: stdout carries only JSON lines.
public func printLog(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}

/// Just enough of a JSON reader for the cases: the whole text as Unicode scalars.
private struct Reader {
    private static let space: Set<Unicode.Scalar> = [" ", "\t", "\n", "\r"]
    private static let numberScalars = Set("0123456789+-.eE".unicodeScalars)

    private let s: [Unicode.Scalar]
    private var i = 0

    init(_ data: Data) {
        s = Array(String(decoding: data, as: UTF8.self).unicodeScalars)
    }

    mutating func value() throws -> JSON {
        skipSpace()
        guard i < s.count else { throw fail("unexpected end") }
        switch s[i] {
        case "{": return try object()
        case "[": return try array()
        case "\"": return .string(try string())
        case "t": return try literal("true", .bool(true))
        case "f": return try literal("false", .bool(false))
        case "n": return try literal("null", .null)
        case "-", "0"..."9": return try number()
        case let c: throw fail("unexpected \(c)")
        }
    }

    mutating func end() throws {
        skipSpace()
        guard i == s.count else { throw fail("trailing characters") }
    }

    private mutating func object() throws -> JSON {
        i += 1
        var fields: [(String, JSON)] = []
        skipSpace()
        if i < s.count, s[i] == "}" {
            i += 1
            return .object(fields)
        }
        while true {
            skipSpace()
            let key = try string()
            try expect(":")
            fields.append((key, try value()))
            skipSpace()
            switch try take() {
            case ",": continue
            case "}": return .object(fields)
            default: throw fail("expected , or }")
            }
        }
    }

    private mutating func array() throws -> JSON {
        i += 1
        var items: [JSON] = []
        skipSpace()
        if i < s.count, s[i] == "]" {
            i += 1
            return .array(items)
        }
        while true {
            items.append(try value())
            skipSpace()
            switch try take() {
            case ",": continue
            case "]": return .array(items)
            default: throw fail("expected , or ]")
            }
        }
    }

    private mutating func string() throws -> String {
        try expect("\"")
        var out = String.UnicodeScalarView()
        while true {
            let c = try take()
            switch c {
            case "\"":
                return String(out)
            case "\\":
                let escaped = try take()
                switch escaped {
                case "n": out.append("\n")
                case "t": out.append("\t")
                case "r": out.append("\r")
                case "b": out.append("\u{8}")
                case "f": out.append("\u{C}")
                case "\"", "\\", "/": out.append(escaped)
                case "u": out.append(try escapedScalar())
                default: throw fail("bad escape \\\(escaped)")
                }
            default:
                out.append(c)
            }
        }
    }

    /// The character of a `\uXXXX` escape, joining a UTF-16 surrogate pair; a lone surrogate
    /// becomes U+FFFD.
    private mutating func escapedScalar() throws -> Unicode.Scalar {
        let unit = try hex4()
        if (0xD800..<0xDC00).contains(unit), i + 1 < s.count, s[i] == "\\", s[i + 1] == "u" {
            let start = i
            i += 2
            let low = try hex4()
            if (0xDC00..<0xE000).contains(low) {
                return Unicode.Scalar(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)) ?? "\u{FFFD}"
            }
            i = start
        }
        return Unicode.Scalar(unit) ?? "\u{FFFD}"
    }

    private mutating func hex4() throws -> UInt32 {
        guard i + 4 <= s.count, let unit = UInt32(String(String.UnicodeScalarView(s[i..<i + 4])), radix: 16) else {
            throw fail("bad \\u escape")
        }
        i += 4
        return unit
    }

    private mutating func number() throws -> JSON {
        let start = i
        while i < s.count, Reader.numberScalars.contains(s[i]) {
            i += 1
        }
        let text = String(String.UnicodeScalarView(s[start..<i]))
        guard Double(text) != nil else { throw fail("bad number \(text)") }
        return .number(text)
    }

    private mutating func literal(_ word: String, _ value: JSON) throws -> JSON {
        for c in word.unicodeScalars {
            guard try take() == c else { throw fail("expected \(word)") }
        }
        return value
    }

    private mutating func expect(_ c: Unicode.Scalar) throws {
        skipSpace()
        guard try take() == c else { throw fail("expected \(c)") }
    }

    private mutating func take() throws -> Unicode.Scalar {
        guard i < s.count else { throw fail("unexpected end") }
        i += 1
        return s[i - 1]
    }

    private mutating func skipSpace() {
        while i < s.count, Reader.space.contains(s[i]) {
            i += 1
        }
    }

    private func fail(_ message: String) -> Failure {
        Failure("JSON at character \(i): \(message)")
    }
}
