// The HTTP verb shortcuts over the generated `Client.call(request:)`: the same seven as
// in every language (`get`, `head`, `options` and `delete` without a body; `post`, `put`
// and `patch` with one). Each is `call` with that method; for a query, a per-attempt
// timeout, a version or a trace, build a `Request` and `call` it.

import Foundation

extension Client {
    /// `GET target + path`; see `Request` for the other fields.
    ///
    /// ```swift
    /// let resp = try await client.get("orders", "/v1/items", deadline: .seconds(2))
    /// print(resp.status, resp.text())
    /// ```
    public func get(
        _ target: String, _ path: String = "", headers: [String: String] = [:], deadline: Duration? = nil
    ) async throws -> Response {
        try await send("GET", target, path, body: nil, headers: headers, idempotencyKey: nil, deadline: deadline)
    }

    /// `HEAD target + path`: `get`'s status and headers without the body.
    public func head(
        _ target: String, _ path: String = "", headers: [String: String] = [:], deadline: Duration? = nil
    ) async throws -> Response {
        try await send("HEAD", target, path, body: nil, headers: headers, idempotencyKey: nil, deadline: deadline)
    }

    /// `OPTIONS target + path`.
    public func options(
        _ target: String, _ path: String = "", headers: [String: String] = [:], deadline: Duration? = nil
    ) async throws -> Response {
        try await send("OPTIONS", target, path, body: nil, headers: headers, idempotencyKey: nil, deadline: deadline)
    }

    /// `DELETE target + path`; idempotent, so retried like `get`.
    public func delete(
        _ target: String, _ path: String = "", headers: [String: String] = [:], deadline: Duration? = nil
    ) async throws -> Response {
        try await send("DELETE", target, path, body: nil, headers: headers, idempotencyKey: nil, deadline: deadline)
    }

    /// `POST` with a body; give an `idempotencyKey`, or set `idempotent` for a key courier makes
    /// (returned as `Response.idempotencyKey`), to make it retryable and hedgeable.
    public func post(
        _ target: String, _ path: String = "", body: Data? = nil, headers: [String: String] = [:],
        idempotencyKey: String? = nil, deadline: Duration? = nil, idempotent: Bool = false
    ) async throws -> Response {
        try await send(
            "POST", target, path, body: body, headers: headers, idempotencyKey: idempotencyKey,
            deadline: deadline, idempotent: idempotent
        )
    }

    /// `PUT` with a body; idempotent, so retried like `get`.
    public func put(
        _ target: String, _ path: String = "", body: Data? = nil, headers: [String: String] = [:],
        idempotencyKey: String? = nil, deadline: Duration? = nil, idempotent: Bool = false
    ) async throws -> Response {
        try await send(
            "PUT", target, path, body: body, headers: headers, idempotencyKey: idempotencyKey,
            deadline: deadline, idempotent: idempotent
        )
    }

    /// `PATCH` with a body; like `post`, retried only with an `idempotencyKey` or `idempotent`.
    public func patch(
        _ target: String, _ path: String = "", body: Data? = nil, headers: [String: String] = [:],
        idempotencyKey: String? = nil, deadline: Duration? = nil, idempotent: Bool = false
    ) async throws -> Response {
        try await send(
            "PATCH", target, path, body: body, headers: headers, idempotencyKey: idempotencyKey,
            deadline: deadline, idempotent: idempotent
        )
    }

    private func send(
        _ method: String, _ target: String, _ path: String, body: Data?, headers: [String: String],
        idempotencyKey: String?, deadline: Duration?, idempotent: Bool = false
    ) async throws -> Response {
        try await call(request: Request(
            method: method, target: target, path: path, headers: headers, body: body,
            deadline: deadline, idempotencyKey: idempotencyKey, idempotent: idempotent
        ))
    }
}
