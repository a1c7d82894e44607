// The typed configuration (Config.swift, generated from core's config schema) as the JSON
// core reads, and the entry points that take it: `Client(config:)` and
// `Bus.connect(config:)` beside the generated `Client(configJson:)` and
// `Bus.connect(configJson:)`.

import Foundation

/// A JSON object key: the config schema's snake_case names, written as they are.
struct ConfigKey: CodingKey {
    let stringValue: String
    var intValue: Int? { nil }

    init(_ name: String) { stringValue = name }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// `value` as the JSON core reads. Throws `EncodingError` for a value JSON cannot hold (a NaN).
func configJSON<T: Encodable>(_ value: T) throws -> String {
    String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
}

extension ClientConfig {
    /// The JSON core reads, the same as a `configJson:` string.
    public func json() throws -> String { try configJSON(self) }
}

extension BusConfig {
    /// The JSON core reads, the same as a `configJson:` string.
    public func json() throws -> String { try configJSON(self) }
}

extension Client {
    /// A client from typed configuration: `try Client(config: ClientConfig(services: [...]))`.
    ///
    /// Throws `CourierError.Config` naming the field of the first invalid value.
    public convenience init(config: ClientConfig) throws {
        try self.init(configJson: config.json())
    }
}

extension Bus {
    /// Connects a bus from typed configuration: `try await Bus.connect(config: BusConfig(urls: [...]))`.
    ///
    /// Throws `CourierError.Config` for an invalid config; `Connect` or `Tls` when no broker accepts.
    public static func connect(config: BusConfig) async throws -> Bus {
        try await connect(configJson: config.json())
    }
}
